//! Calls the library components — `redactor` (`world redactor` of `wit/sentio.wit`) and
//! `classifier` (`world classifier`) — from native code through bindings generated from the same
//! WIT: no HTTP, one instance per call or reused.

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

mod classifier_bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "sentio:edge/classifier",
    });
}

pub use classifier_bindings::exports::sentio::edge::sentiment::{
    Classification, ClassifyError, Label, Scores, SentenceResult,
};
use classifier_bindings::{Classifier, ClassifierPre};

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

/// A fresh store for one library-component instance: WASI with nothing granted, no deadline.
fn library_store(engine: &Engine) -> Store<LibraryState> {
    let state = LibraryState {
        table: ResourceTable::new(),
        wasi: WasiCtxBuilder::new().build(),
    };
    let mut store = Store::new(engine, state);
    // A direct call has no deadline. Under an engine with epoch interruption (`runtime::engine`,
    // Spin's settings) the deadline must still be set, or the first check traps.
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

/// Compiles (or loads from the cache) and pre-links a library component, which imports WASI only.
fn library_pre(
    engine: &Engine,
    wasm_path: &Path,
    cache_dir: &Path,
) -> Result<wasmtime::component::InstancePre<LibraryState>> {
    let component = crate::runtime::load_component(engine, wasm_path, cache_dir)?;
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Ok(linker.instantiate_pre(&component)?)
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
        Ok(Self {
            engine: engine.clone(),
            pre: RedactorPre::new(library_pre(engine, wasm_path, cache_dir)?)?,
        })
    }

    pub fn instantiate(&self) -> Result<RedactorInstance> {
        let mut store = library_store(&self.engine);
        let bindings = self.pre.instantiate(&mut store)?;
        Ok(RedactorInstance { store, bindings })
    }
}

impl RedactorInstance {
    pub fn redact(
        &mut self,
        text: &str,
        policy: &Policy,
    ) -> Result<Result<RedactionResult, RedactionError>> {
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
        Ok(self.bindings.sentio_edge_redaction().call_redact_batch(
            &mut self.store,
            texts,
            policy,
        )?)
    }

    pub fn supported_entities(&mut self) -> Result<Vec<String>> {
        Ok(self
            .bindings
            .sentio_edge_redaction()
            .call_supported_entities(&mut self.store)?)
    }
}

/// The compiled, pre-linked `classifier` component.
pub struct ClassifierComponent {
    engine: Engine,
    pre: ClassifierPre<LibraryState>,
}

/// One `classifier` instance with its store.
pub struct ClassifierInstance {
    store: Store<LibraryState>,
    bindings: Classifier,
}

impl ClassifierComponent {
    /// Loads (and caches the compiled form of) the component at `wasm_path`.
    pub fn load(engine: &Engine, wasm_path: &Path, cache_dir: &Path) -> Result<Self> {
        Ok(Self {
            engine: engine.clone(),
            pre: ClassifierPre::new(library_pre(engine, wasm_path, cache_dir)?)?,
        })
    }

    pub fn instantiate(&self) -> Result<ClassifierInstance> {
        let mut store = library_store(&self.engine);
        let bindings = self.pre.instantiate(&mut store)?;
        Ok(ClassifierInstance { store, bindings })
    }
}

impl ClassifierInstance {
    /// Classifies already-redacted texts.
    pub fn classify(
        &mut self,
        texts: &[String],
    ) -> Result<Result<Vec<Classification>, ClassifyError>> {
        Ok(self
            .bindings
            .sentio_edge_sentiment()
            .call_classify(&mut self.store, texts)?)
    }
}

// `Policy` is generated by bindgen!, so it cannot carry a derive.
#[allow(clippy::derivable_impls)]
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
