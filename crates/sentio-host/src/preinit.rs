//! Pre-initialization (Wizer): instantiate a component once, call its `sentio-preinit` export,
//! and write a new component whose memory is the snapshot. Spin (and `sentio serve`) then start
//! every request from that snapshot: compiled recognizers, a parsed tokenizer, a loaded model.
//!
//! The snapshot also freezes whatever the init function seeded from randomness (std's `HashMap`
//! keys): Sentio's request-scoped maps keyed by customer data are ordered maps for that reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::outbound::OutboundHooks;
use crate::runtime::{HostState, InstanceMemory};

/// The export every pre-initializable Sentio component has (`world preinit` in `wit/sentio.wit`).
pub const INIT_EXPORT: &str = "sentio-preinit";

/// Returns the pre-initialized component's bytes.
pub async fn preinit(wasm: &[u8]) -> Result<Vec<u8>> {
    // A plain engine: the snapshot is a portable component, not native code.
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
    let linker = crate::runtime::linker(&engine)?;
    let state = HostState {
        admitted: None,
        component: "preinit".into(),
        table: ResourceTable::new(),
        wasi: WasiCtxBuilder::new().inherit_stderr().build(),
        http: WasiHttpCtx::new(),
        hooks: OutboundHooks::default(),
        variables: Arc::new(BTreeMap::new()),
        limits: InstanceMemory::new(StoreLimitsBuilder::new().build()),
    };
    let mut store = Store::new(&engine, state);
    let mut wizer = wasmtime_wizer::Wizer::new();
    wizer.init_func(INIT_EXPORT).keep_init_func(true);
    let (snapshot, _) = wizer
        .run_component(&mut store, wasm, async |store, component| {
            linker.instantiate_async(store, component).await
        })
        .await
        .map_err(anyhow::Error::from)
        .context("pre-initializing the component")?;
    Ok(snapshot)
}
