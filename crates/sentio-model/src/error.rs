use thiserror::Error;

/// What can go wrong between text and probabilities. Shells map every variant to one HTTP status
/// through `sentio_core::ApiError`; none carries customer text.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("model config is invalid: {0}")]
    Config(String),
    #[error("tokenizer could not be loaded: {0}")]
    TokenizerLoad(String),
    #[error("text could not be tokenized: {0}")]
    Tokenize(String),
    #[error("model could not be loaded: {0}")]
    ModelLoad(String),
    #[error("inference failed: {0}")]
    Inference(String),
    /// The texts of one call hold more content tokens than [`crate::ClassifyOptions::max_tokens`].
    #[error("the texts hold {tokens} tokens, over the limit of {limit} for one call")]
    TooManyTokens { tokens: usize, limit: usize },
    #[error("backend returned {got} logits rows for a batch of {expected}")]
    BadOutput { expected: usize, got: usize },
}
