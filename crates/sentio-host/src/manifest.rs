//! `spin.toml` (manifest version 2): the parts a local host needs to run HTTP components as Spin
//! does — triggers and routes, component sources, files, variables, allowed outbound hosts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid Spin manifest: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, AppVariable>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, ComponentSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// An application variable: a default, or required, and maybe secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppVariable {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpTrigger {
    pub route: Route,
    #[serde(default)]
    pub component: Option<String>,
}

/// A route: a path pattern, or `{ private = true }` for components only reachable internally.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Route {
    Path(String),
    Private { private: bool },
}

#[derive(Debug, Clone, Deserialize)]
pub struct ComponentSpec {
    pub source: Source,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub files: Vec<FileMount>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variables: values or `{{ app_variable }}` templates.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub build: Option<BuildSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Source {
    Path(String),
    Remote { url: String, digest: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileMount {
    /// A path relative to the manifest, mounted at the same path under `/`.
    Path(String),
    Mapped {
        source: String,
        destination: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct BuildSpec {
    pub command: String,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<(Self, PathBuf), ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let manifest = Self::parse(&text).map_err(|reason| ManifestError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok((manifest, base))
    }

    /// Parses and checks a manifest's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let manifest: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if manifest.spin_manifest_version != 2 {
            return Err(format!(
                "spin_manifest_version is {}, only 2 is supported",
                manifest.spin_manifest_version
            ));
        }
        for trigger in &manifest.trigger.http {
            let Some(id) = &trigger.component else {
                return Err("every [[trigger.http]] needs a `component`".into());
            };
            if !manifest.component.contains_key(id) {
                return Err(format!(
                    "trigger names component `{id}`, which is not defined"
                ));
            }
            if let Route::Path(route) = &trigger.route
                && !route.starts_with('/')
            {
                return Err(format!("route `{route}` must start with `/`"));
            }
        }
        for (id, component) in &manifest.component {
            for var in component.variables.values() {
                for name in template_references(var)? {
                    if !manifest.variables.contains_key(&name) {
                        return Err(format!(
                            "component `{id}` uses variable `{name}`, which [variables] does not define"
                        ));
                    }
                }
            }
        }
        Ok(manifest)
    }
}

/// Names referenced as `{{ name }}` in a component variable's template.
pub fn template_references(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `{{{{` in `{template}`"))?;
        names.push(after[..close].trim().to_owned());
        rest = &after[close + 2..];
    }
    Ok(names)
}

/// Expands `{{ name }}` references with `lookup`.
pub fn render_template(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `{{{{` in `{template}`"))?;
        let name = after[..close].trim();
        out.push_str(&lookup(name).ok_or_else(|| format!("variable `{name}` has no value"))?);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
key = { required = true, secret = true }
limit = { default = "10" }
[[trigger.http]]
route = "/redact"
component = "redact"
[component.redact]
source = "x.wasm"
variables = { hash_key = "{{ key }}", max = "n={{limit}}" }
"#;

    #[test]
    fn parses_and_checks() {
        let m = Manifest::parse(MANIFEST).unwrap();
        assert_eq!(m.trigger.http.len(), 1);
        assert!(m.variables["key"].required);
        let bad = MANIFEST.replace("{{ key }}", "{{ nope }}");
        assert!(Manifest::parse(&bad).unwrap_err().contains("nope"));
        let v1 = MANIFEST.replace("= 2", "= 1");
        assert!(Manifest::parse(&v1).is_err());
    }

    #[test]
    fn the_project_manifest_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let (m, _) = Manifest::load(&path).unwrap();
        assert_eq!(m.application.name, "sentio-edge");
        let routes: Vec<_> = m
            .trigger
            .http
            .iter()
            .map(|t| (t.route.clone(), t.component.clone().unwrap()))
            .collect();
        assert!(matches!(&routes[0], (Route::Path(r), c) if r == "/redact" && c == "edge-redact"));
        let redact = &m.component["edge-redact"];
        assert!(
            matches!(&redact.source, Source::Path(p) if p.ends_with("edge_redact.preinit.wasm"))
        );
        assert!(
            redact
                .build
                .as_ref()
                .unwrap()
                .command
                .contains("sentio-cli -- preinit")
        );
        for name in redact.variables.keys() {
            assert!(
                m.variables.contains_key(name),
                "{name} is an app variable too"
            );
        }
    }

    #[test]
    fn templates() {
        let r = render_template("n={{limit}}/{{ x }}", |k| Some(k.to_uppercase())).unwrap();
        assert_eq!(r, "n=LIMIT/X");
        assert!(render_template("{{ open", |_| None).is_err());
    }
}
