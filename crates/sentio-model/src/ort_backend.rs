//! onnxruntime through the `ort` crate (feature `ort`), loading the `libonnxruntime` shared
//! library that the PyPI `onnxruntime` wheel ships (`onnxruntime/capi/libonnxruntime.so.*`):
//! nothing is downloaded at build time. The heavy tier picks it or tract by measurement
//! (`sentio bench heavy` times both in one run when built with the feature).

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;

use crate::{Backend, ModelError, TokenBatch};

pub struct OrtBackend {
    /// `Session::run` takes `&mut self`; one run at a time per session.
    session: Mutex<Session>,
    labels: usize,
}

impl OrtBackend {
    /// Loads the onnxruntime library at `dylib` (once per process) and the model, with
    /// `threads` intra-op threads.
    pub fn load(
        onnx: &[u8],
        labels: usize,
        dylib: &Path,
        threads: usize,
    ) -> Result<Self, ModelError> {
        let load = |e: String| ModelError::ModelLoad(format!("onnxruntime: {e}"));
        let environment = environment(dylib).map_err(load)?;
        let mut builder = Session::builder(&environment)
            .map_err(|e| load(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| load(e.to_string()))?;
        let session = builder
            .commit_from_memory(onnx)
            .map_err(|e| load(e.to_string()))?;
        Ok(Self {
            session: Mutex::new(session),
            labels,
        })
    }
}

/// The library is loaded once per process: the first `dylib` given wins.
fn environment(dylib: &Path) -> Result<Environment, String> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            ort::init_from(dylib)
                .map_err(|e| format!("loading {}: {e}", dylib.display()))?
                .with_name("sentio")
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
}

impl Backend for OrtBackend {
    fn engine(&self) -> &'static str {
        "onnxruntime"
    }

    fn max_batch(&self) -> usize {
        8
    }

    fn logits(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>, ModelError> {
        let infer = |e: ort::Error| ModelError::Inference(format!("onnxruntime: {e}"));
        let shape = [batch.rows, batch.cols];
        let ids = Tensor::from_array((shape, batch.ids.clone())).map_err(infer)?;
        let mask = Tensor::from_array((shape, batch.mask.clone())).map_err(infer)?;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session
            .run(ort::inputs!["input_ids" => ids, "attention_mask" => mask])
            .map_err(infer)?;
        let (_, data) = outputs["logits"]
            .try_extract_tensor::<f32>()
            .map_err(infer)?;
        if data.len() != batch.rows * self.labels {
            return Err(ModelError::BadOutput {
                expected: batch.rows,
                got: data.len() / self.labels.max(1),
            });
        }
        Ok(data.chunks(self.labels).map(<[f32]>::to_vec).collect())
    }
}
