//! The wasmtime side: one engine with the pooling allocator, components compiled once and cached
//! on disk, a linker with WASI (0.2 and 0.3), wasi:http and Spin's variables, and the per-request
//! store state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use sha2::{Digest as _, Sha256};
pub use wasmtime::Engine;
use wasmtime::component::{Accessor, Component, HasData, Linker, ResourceTable};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::outbound::OutboundHooks;

/// How often the epoch ticks; request deadlines are counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Spin's default `--max-instance-reuse-count`: requests one `wasi:http/handler@0.3` instance
/// serves before Spin drops it.
pub const SPIN_MAX_INSTANCE_REUSE_COUNT: u32 = 128;

/// Limits for every instance.
#[derive(Debug, Clone)]
pub struct InstanceLimits {
    /// Most component instances alive at once, idle reusable ones included; more requests wait
    /// for one. The pooling allocator gets twice as many slots, as headroom.
    pub max_concurrent_requests: u32,
    /// Largest linear memory one instance may grow to.
    pub max_memory_bytes: usize,
    /// Requests one `wasi:http/handler@0.3` instance serves before it is dropped (Spin's
    /// `--max-instance-reuse-count`). 1, the default here, is a fresh instance per request;
    /// Spin itself reuses 0.3 instances (up to [`SPIN_MAX_INSTANCE_REUSE_COUNT`] requests). 0.2
    /// components are never reused.
    pub max_instance_reuse_count: u32,
    /// Requests one instance serves at the same time (Spin's
    /// `--max-instance-concurrent-reuse-count`). They share the instance's single thread.
    pub max_instance_concurrent_reuse_count: u32,
    /// How long a reusable instance waits idle for its next request before it is dropped
    /// (Spin's `--idle-instance-timeout`).
    pub idle_instance_timeout: Duration,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 128,
            max_memory_bytes: 512 << 20,
            max_instance_reuse_count: 1,
            max_instance_concurrent_reuse_count: 1,
            idle_instance_timeout: Duration::from_secs(1),
        }
    }
}

/// Builds the engine Spin-style hosting needs: component model with async, pooling allocator,
/// epoch interruption for request deadlines.
pub fn engine(limits: &InstanceLimits) -> Result<Engine> {
    build_engine(limits, true)
}

/// The engine for calling library components directly (`crate::library`): as [`engine`], but
/// without epoch interruption. A direct call has no deadline, and the checks that epoch
/// interruption compiles into every loop header and function entry of the guest cost it 12–20 %
/// of redaction's time and about 20 % of a classification's here (BENCHMARKS.md, stop 31).
/// A component compiled by this engine can never be interrupted: give it only work that ends.
pub fn library_engine() -> Result<Engine> {
    build_engine(&InstanceLimits::default(), false)
}

fn build_engine(limits: &InstanceLimits, deadlines: bool) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(deadlines);
    #[cfg(feature = "profiling")]
    if std::env::var_os("SENTIO_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let max_instances = limits.max_concurrent_requests * 2;
    let mut pooling = PoolingAllocationConfig::new();
    pooling.total_component_instances(max_instances);
    pooling.total_core_instances(max_instances * 4);
    pooling.total_memories(max_instances * 2);
    pooling.total_tables(max_instances * 4);
    pooling.total_stacks(max_instances);
    pooling.max_memory_size(limits.max_memory_bytes);
    pooling.max_memories_per_component(4);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")
}

/// Loads a component, compiling it once: the native code is cached under `cache_dir`, keyed by
/// the component's bytes and the engine's settings, so later starts only map it in.
pub fn load_component(engine: &Engine, wasm_path: &Path, cache_dir: &Path) -> Result<Component> {
    let bytes = std::fs::read(wasm_path)
        .with_context(|| format!("reading component {}", wasm_path.display()))?;
    let mut hasher = Sha256::new();
    hasher.update(&bytes);
    std::hash::Hash::hash(
        &engine.precompile_compatibility_hash(),
        &mut HashWriter(&mut hasher),
    );
    let key: String = hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cached = cache_dir.join(format!("{key}.cwasm"));
    if cached.exists() {
        // SAFETY: the file was written by `Engine::precompile_component` of an engine with the
        // same compatibility hash (it is part of the file name) into the host's private cache.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &cached) };
        match loaded {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(path = %cached.display(), error = %e, "discarding unreadable compiled component")
            }
        }
    }
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling component {}", wasm_path.display()))?;
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating cache dir {}", cache_dir.display()))?;
    // Write then rename, so a concurrent start never maps a half-written file. The temporary name
    // is unique per process and per call: two threads compiling the same component must not
    // rename each other's file away.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = cache_dir.join(format!("{key}.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, &compiled)?;
    std::fs::rename(&tmp, &cached)?;
    #[allow(unsafe_code)]
    // SAFETY: as above; the bytes were produced by this engine a moment ago.
    let component = unsafe { Component::deserialize(engine, &compiled) }?;
    Ok(component)
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Store data of one request's instance.
pub struct HostState {
    /// The host's admission permit, returned when the instance is dropped (none in preinit).
    pub admitted: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The component's id in the manifest, for the log line the instance leaves behind.
    pub component: Arc<str>,
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub hooks: OutboundHooks,
    pub variables: Arc<BTreeMap<String, String>>,
    pub limits: InstanceMemory,
}

impl Drop for HostState {
    fn drop(&mut self) {
        // What one instance cost in linear memory (the pre-initialized image plus what the
        // request grew): `scripts/load` reads these lines to report memory per instance.
        tracing::debug!(
            component = %self.component,
            linear_memory_bytes = self.limits.peak_bytes,
            "instance done"
        );
    }
}

/// The store's limits, remembering the largest linear memory the instance was created with or
/// grew to.
pub struct InstanceMemory {
    limits: StoreLimits,
    pub peak_bytes: usize,
}

impl InstanceMemory {
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            limits,
            peak_bytes: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for InstanceMemory {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.peak_bytes = self.peak_bytes.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl HostState {
    pub fn http_view(&mut self) -> WasiHttpCtxView<'_> {
        self.http()
    }
}

mod spin_bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "sentio:edge/spin-platform",
    });
}

use spin_bindings::spin::variables::variables as spin_variables;

/// `spin:variables` reads the resolved variables of the instance's component.
struct SpinVariables;

impl HasData for SpinVariables {
    type Data<'a> = &'a BTreeMap<String, String>;
}

impl spin_variables::Host for &BTreeMap<String, String> {}

impl<T> spin_variables::HostWithStore<T> for SpinVariables {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> Result<String, spin_variables::Error> {
        // Spin's rule: lower-case letters, digits and underscores, starting with a letter.
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(spin_variables::Error::InvalidName(name));
        }
        accessor.with(|mut view| {
            view.get()
                .get(&name)
                .cloned()
                .ok_or(spin_variables::Error::Undefined(name))
        })
    }
}

/// The linker every component is instantiated with.
pub fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    spin_variables::add_to_linker::<_, SpinVariables>(&mut linker, |s: &mut HostState| {
        &*s.variables
    })?;
    Ok(linker)
}

/// Where compiled components are cached: `$SENTIO_CACHE_DIR`, else `.sentio-cache` beside the
/// manifest.
pub fn default_cache_dir(manifest_dir: &Path) -> PathBuf {
    std::env::var_os("SENTIO_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join(".sentio-cache"))
}
