//! Calls the `redactor` library component (`world redactor` of `wit/sentio.wit`) from native
//! code through bindings generated from the same WIT: no HTTP, one instance per call or reused.

use std::path::Path;

use anyhow::Result;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "sentio:edge/redactor",
    });
}

pub use bindings::exports::sentio::edge::redaction::{
    EntityOperator, Finding, MaskOptions, Operator, Policy, RedactionError, RedactionResult,
};
use bindings::{Redactor, RedactorPre};

/// What a library-component instance needs from the host: WASI only.
pub struct LibraryState {
    table: ResourceTable,
    wasi: WasiCtx,
}

impl WasiView for LibraryState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The compiled, pre-linked component.
pub struct RedactorComponent {
    engine: Engine,
    pre: RedactorPre<LibraryState>,
}

/// One instance with its store.
pub struct RedactorInstance {
    store: Store<LibraryState>,
    bindings: Redactor,
}

impl RedactorComponent {
    /// Loads (and caches the compiled form of) the component at `wasm_path`.
    pub fn load(engine: &Engine, wasm_path: &Path, cache_dir: &Path) -> Result<Self> {
        let component = crate::runtime::load_component(engine, wasm_path, cache_dir)?;
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let pre = RedactorPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Self {
            engine: engine.clone(),
            pre,
        })
    }

    pub fn instantiate(&self) -> Result<RedactorInstance> {
        let state = LibraryState {
            table: ResourceTable::new(),
            wasi: WasiCtxBuilder::new().build(),
        };
        let mut store = Store::new(&self.engine, state);
        // The engine counts epochs for request deadlines; a direct call has none.
        store.set_epoch_deadline(u64::MAX / 2);
        let bindings = self.pre.instantiate(&mut store)?;
        Ok(RedactorInstance { store, bindings })
    }
}

impl RedactorInstance {
    pub fn redact(&mut self, text: &str, policy: &Policy) -> Result<Result<RedactionResult, RedactionError>> {
        Ok(self
            .bindings
            .sentio_edge_redaction()
            .call_redact(&mut self.store, text, policy)?)
    }

    pub fn redact_batch(
        &mut self,
        texts: &[String],
        policy: &Policy,
    ) -> Result<Result<Vec<RedactionResult>, RedactionError>> {
        Ok(self
            .bindings
            .sentio_edge_redaction()
            .call_redact_batch(&mut self.store, texts, policy)?)
    }

    pub fn supported_entities(&mut self) -> Result<Vec<String>> {
        Ok(self
            .bindings
            .sentio_edge_redaction()
            .call_supported_entities(&mut self.store)?)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            default_operator: None,
            operators: Vec::new(),
            score_threshold: None,
            entities: None,
            exclude_entities: Vec::new(),
            hash_key: None,
        }
    }
}
