//! The edge's student model compiled into the binary (feature `edge-student`): the wasm
//! components carry it because a Spin component has no model files to read, and a pre-initialized
//! snapshot must hold the parsed, optimized pipeline. Loaded once per instance (before the
//! snapshot), borrowed by every call after.

use std::sync::OnceLock;

use crate::TractPipeline;

const MODEL_ONNX: &[u8] = include_bytes!("../../../models/sentiment-student/model.onnx");
const MODEL_TOKENIZER: &[u8] = include_bytes!("../../../models/sentiment-student/tokenizer.json");
const MODEL_CONFIG: &[u8] = include_bytes!("../../../models/sentiment-student/config.json");

static STUDENT: OnceLock<Result<TractPipeline, String>> = OnceLock::new();

/// The student pipeline, loaded on first use. The error is the load failure's message (a
/// committed model that fails to load is a build defect; callers report it as an internal error).
pub fn edge_student() -> Result<&'static TractPipeline, &'static str> {
    STUDENT
        .get_or_init(|| {
            TractPipeline::load(MODEL_ONNX, MODEL_TOKENIZER, MODEL_CONFIG)
                .map_err(|e| format!("model failed to load: {e}"))
        })
        .as_ref()
        .map_err(String::as_str)
}
