//! Sentio's local host: runs the HTTP components of a `spin.toml` on 127.0.0.1 the way Spin does.
//!
//! * reads the manifest: routes, component sources, files, variables, allowed outbound hosts;
//! * compiles each component once (cached on disk) and pre-links it (`InstancePre` / `ServicePre`);
//! * serves both `wasi:http/handler@0.3.0` (spin-sdk 7) and `wasi:http/incoming-handler@0.2`
//!   components from the pooling allocator, a fresh instance per request by default; 0.3
//!   instances can be reused for several requests, as Spin reuses them (`InstanceLimits`);
//! * implements `spin:variables` from `[variables]`, `SPIN_VARIABLE_*` and `--variable`.

pub mod library;
pub mod manifest;
pub mod outbound;
pub mod preinit;
pub mod routes;
pub mod runtime;
mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use wasmtime::Engine;
use wasmtime::component::Component;

pub use runtime::InstanceLimits;
pub use server::{App, Exchange, Interceptor, NativeHandler, NativeRoute};

use manifest::{FileMount, Manifest, Route, Source};
use outbound::AllowedHost;

/// How to run an application.
#[derive(Debug, Clone)]
pub struct HostOptions {
    pub manifest_path: PathBuf,
    /// Compiled-component cache; `$SENTIO_CACHE_DIR` or `.sentio-cache` beside the manifest.
    pub cache_dir: Option<PathBuf>,
    /// `--variable name=value`: wins over everything.
    pub variables: BTreeMap<String, String>,
    /// The environment to read `SPIN_VARIABLE_<NAME>` from (injected for tests).
    pub environment: BTreeMap<String, String>,
    pub limits: InstanceLimits,
    /// A request that has not produced its response by then is answered 504 and its instance
    /// stopped.
    pub request_timeout: Duration,
}

impl HostOptions {
    pub fn new(manifest_path: impl Into<PathBuf>) -> Self {
        Self {
            manifest_path: manifest_path.into(),
            cache_dir: None,
            variables: BTreeMap::new(),
            environment: std::env::vars().collect(),
            limits: InstanceLimits::default(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// One component, ready to instantiate per request.
pub(crate) struct PreparedComponent {
    pub id: String,
    pub route: String,
    pub pre: wasmtime_wasi_http::handler::ProxyPre<runtime::HostState>,
    pub variables: Arc<BTreeMap<String, String>>,
    pub environment: Vec<(String, String)>,
    /// (host dir, guest path)
    pub mounts: Vec<(PathBuf, String)>,
    pub allowed_outbound: Vec<AllowedHost>,
}

/// Resolves application variables: `--variable`, then `SPIN_VARIABLE_<NAME>`, then the default.
pub(crate) fn resolve_app_variables(
    manifest: &Manifest,
    options: &HostOptions,
) -> Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    for (name, spec) in &manifest.variables {
        let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        let value = options
            .variables
            .get(name)
            .or_else(|| options.environment.get(&env_name))
            .cloned()
            .or_else(|| spec.default.clone());
        match value {
            Some(v) => {
                values.insert(name.clone(), v);
            }
            None if spec.required => {
                bail!("variable `{name}` is required: set {env_name} or pass --variable {name}=...")
            }
            None => {}
        }
    }
    for name in options.variables.keys() {
        if !manifest.variables.contains_key(name) {
            bail!("--variable {name}: the manifest's [variables] has no `{name}`");
        }
    }
    Ok(values)
}

pub(crate) fn prepare_components(
    manifest: &Manifest,
    base: &std::path::Path,
    options: &HostOptions,
    engine: &Engine,
) -> Result<Vec<PreparedComponent>> {
    let app_vars = resolve_app_variables(manifest, options)?;
    let cache_dir = options
        .cache_dir
        .clone()
        .unwrap_or_else(|| runtime::default_cache_dir(base));
    let linker = runtime::linker(engine)?;
    let mut prepared = Vec::new();
    for trigger in &manifest.trigger.http {
        let Route::Path(route) = &trigger.route else {
            continue; // private components are reachable only through other components
        };
        let id = trigger.component.clone().unwrap_or_default();
        let spec = &manifest.component[&id];
        let path = match &spec.source {
            Source::Path(p) => base.join(p),
            Source::Remote { url, .. } => {
                bail!("component `{id}`: remote sources ({url}) need a registry; build it locally")
            }
        };
        let component: Component = runtime::load_component(engine, &path, &cache_dir)
            .with_context(|| format!("component `{id}` (build it first: see README)"))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("component `{id}` imports something this host lacks"))?;
        let pre = match wasmtime_wasi_http::p3::bindings::ServicePre::new(instance_pre.clone()) {
            Ok(p3) => wasmtime_wasi_http::handler::ProxyPre::P3(p3),
            Err(_) => wasmtime_wasi_http::handler::ProxyPre::P2(
                wasmtime_wasi_http::p2::bindings::ProxyPre::new(instance_pre).map_err(anyhow::Error::from).with_context(
                    || format!("component `{id}` exports neither wasi:http/handler@0.3 nor incoming-handler@0.2"),
                )?,
            ),
        };
        let mut variables = BTreeMap::new();
        for (name, template) in &spec.variables {
            let value = manifest::render_template(template, |n| app_vars.get(n).cloned())
                .map_err(|e| anyhow::anyhow!("component `{id}` variable `{name}`: {e}"))?;
            variables.insert(name.clone(), value);
        }
        let mut mounts = Vec::new();
        for file in &spec.files {
            let (source, destination) = match file {
                FileMount::Path(p) => (p.clone(), format!("/{}", p.trim_start_matches('/'))),
                FileMount::Mapped {
                    source,
                    destination,
                } => (source.clone(), destination.clone()),
            };
            let host_path = base.join(&source);
            if host_path.is_dir() {
                mounts.push((host_path, destination));
            } else if host_path.is_file() {
                let parent = host_path.parent().map(PathBuf::from).unwrap_or_default();
                let guest_parent = std::path::Path::new(&destination)
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "/".into());
                mounts.push((parent, guest_parent));
            } else {
                bail!("component `{id}`: file `{source}` does not exist");
            }
        }
        let allowed_outbound = spec
            .allowed_outbound_hosts
            .iter()
            .map(|h| {
                let rendered = manifest::render_template(h, |n| app_vars.get(n).cloned())
                    .map_err(anyhow::Error::msg)?;
                AllowedHost::parse(&rendered).map_err(anyhow::Error::msg)
            })
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("component `{id}` allowed_outbound_hosts"))?;
        prepared.push(PreparedComponent {
            id,
            route: route.clone(),
            pre,
            variables: Arc::new(variables),
            environment: spec
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            mounts,
            allowed_outbound,
        });
    }
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_precedence() {
        let manifest = Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
a = { default = "from-default" }
b = { default = "from-default" }
c = { default = "from-default" }
"#,
        )
        .unwrap();
        let mut options = HostOptions::new("spin.toml");
        options.environment = BTreeMap::from([
            ("SPIN_VARIABLE_B".into(), "from-env".into()),
            ("SPIN_VARIABLE_C".into(), "from-env".into()),
        ]);
        options.variables = BTreeMap::from([("c".into(), "from-flag".into())]);
        let v = resolve_app_variables(&manifest, &options).unwrap();
        assert_eq!(v["a"], "from-default");
        assert_eq!(v["b"], "from-env");
        assert_eq!(v["c"], "from-flag");
        options.variables.insert("zzz".into(), "x".into());
        assert!(resolve_app_variables(&manifest, &options).is_err());
    }
}
