use serde::{Deserialize, Serialize};

use crate::ModelError;

/// `config.json` beside each model in `models/`: written by `models/scripts/export.py`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Stable name, e.g. `sentio-sentiment-student`.
    pub id: String,
    /// Bumped whenever the weights change.
    pub version: String,
    /// Output order of the logits; Sentio's models use negative, neutral, positive.
    pub labels: Vec<String>,
    /// Longest sequence the model is run on, special tokens included. Longer texts are chunked.
    pub max_tokens: usize,
    /// Tokens shared by consecutive chunks of a long text, so no sentence is only ever seen cut.
    pub chunk_overlap: usize,
    /// Temperature fitted on the dev split: probabilities are `softmax(logits / temperature)`.
    pub temperature: f32,
    /// `fp32` or `int8` (per-channel dynamic quantization).
    pub precision: String,
    /// Free text for humans (base model, layers, training data): shown by `sentio models`.
    #[serde(default)]
    pub description: String,
}

impl ModelConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ModelError> {
        let config: Self =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Config(e.to_string()))?;
        if config.labels != ["negative", "neutral", "positive"] {
            return Err(ModelError::Config(format!(
                "labels must be [negative, neutral, positive], got {:?}",
                config.labels
            )));
        }
        if config.max_tokens < 8 || config.chunk_overlap >= config.max_tokens / 2 {
            return Err(ModelError::Config(
                "max_tokens must be >= 8 and chunk_overlap < max_tokens / 2".into(),
            ));
        }
        if !(config.temperature.is_finite() && config.temperature > 0.0) {
            return Err(ModelError::Config(
                "temperature must be a positive number".into(),
            ));
        }
        Ok(config)
    }
}

/// Which model answered: every classification response carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub version: String,
    pub engine: String,
    pub precision: String,
    /// First 16 hex digits of the ONNX file's sha256 (the model card lists the full digests).
    pub sha256: String,
}
