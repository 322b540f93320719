//! Sentiment classification for every Sentio tier.
//!
//! The shape follows text-embeddings-inference: a [`Backend`] turns a padded batch of token ids into
//! logits (tract here, onnxruntime in the heavy tier), and a [`Pipeline`] owns everything around it:
//! emoji spelled out by name, WordPiece tokenization, chunking of long texts, sentence splitting,
//! batching by length and temperature-calibrated probabilities. Callers hold a [`Classifier`],
//! which every pipeline is.
//!
//! Nothing here touches HTTP, files or clocks beyond `Instant`: the crate builds for native and
//! `wasm32-wasip2` alike, and model bytes are handed in by the caller, except with the
//! `edge-student` feature, which compiles the edge's student model in for the wasm components.

mod backend;
mod config;
#[cfg(feature = "edge-student")]
mod edge_student;
mod emoji;
mod error;
#[cfg(feature = "ort")]
mod ort_backend;
mod pipeline;
mod sentences;
mod tokenize;
mod tract_backend;

pub use backend::{Backend, TokenBatch};
pub use config::{ModelConfig, ModelInfo};
#[cfg(feature = "edge-student")]
pub use edge_student::edge_student;
pub use emoji::describe_emoji;
pub use error::ModelError;
#[cfg(feature = "ort")]
pub use ort_backend::OrtBackend;
pub use pipeline::{
    Classification, Classifier, ClassifyOptions, Label, Pipeline, Scores, SentenceResult,
};
pub use sentences::split_sentences;
pub use tokenize::{Chunk, WordPiece};
pub use tract_backend::TractBackend;

/// The pipeline the edge runs: tract inside the component.
pub type TractPipeline = Pipeline<TractBackend>;

impl TractPipeline {
    /// Parses and optimizes the model, parses the tokenizer. Expensive (tens of ms): build it once
    /// (the edge does it before its Wizer snapshot, the Lambdas once per cold start).
    pub fn load(
        onnx: &[u8],
        tokenizer_json: &[u8],
        config_json: &[u8],
    ) -> Result<Self, ModelError> {
        let config = ModelConfig::from_json(config_json)?;
        let backend = TractBackend::load(onnx, config.labels.len())?;
        Pipeline::new(
            backend,
            WordPiece::from_json(tokenizer_json, &config)?,
            config,
            sha256_hex(onnx),
        )
    }
}

/// Hex sha256 of model bytes: the model card and `/classify-sentiment` responses name it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
