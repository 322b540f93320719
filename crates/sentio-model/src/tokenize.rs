use std::borrow::Cow;

use tokenizers::Tokenizer;

use crate::{ModelConfig, ModelError};

/// The model's WordPiece tokenizer (from its `tokenizer.json`), with padding and truncation turned
/// off: the pipeline pads per batch and chunks long texts itself.
pub struct WordPiece {
    tokenizer: Tokenizer,
    cls: u32,
    sep: u32,
    pad: u32,
    /// Content tokens per chunk (max_tokens minus [CLS] and [SEP]).
    window: usize,
    overlap: usize,
}

/// One model input: `[CLS] tokens [SEP]`, plus how many content tokens it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub ids: Vec<u32>,
    pub content_tokens: usize,
}

impl WordPiece {
    pub fn from_json(bytes: &[u8], config: &ModelConfig) -> Result<Self, ModelError> {
        let mut tokenizer =
            Tokenizer::from_bytes(bytes).map_err(|e| ModelError::TokenizerLoad(e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| ModelError::TokenizerLoad(e.to_string()))?;
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| ModelError::TokenizerLoad(format!("vocabulary has no {token}")))
        };
        Ok(Self {
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            pad: id("[PAD]")?,
            window: config.max_tokens - 2,
            overlap: config.chunk_overlap,
            tokenizer,
        })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// What the model reads for `text`: emoji the vocabulary lacks spelled out by name
    /// ([`crate::describe_emoji`]); text without them is returned as it is.
    pub fn model_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        crate::describe_emoji(text, |symbol| self.tokenizer.token_to_id(symbol).is_some())
    }

    /// Content token ids of `text`, without special tokens (the tokenizer alone: callers that
    /// classify pass [`Self::model_text`]).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| ModelError::Tokenize(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Splits content tokens into model inputs of at most `max_tokens`, consecutive windows
    /// sharing `chunk_overlap` tokens. An empty text still yields one `[CLS] [SEP]` chunk.
    pub fn chunks(&self, tokens: &[u32]) -> Vec<Chunk> {
        let step = self.window - self.overlap;
        let mut chunks = Vec::new();
        let mut start = 0;
        loop {
            let end = (start + self.window).min(tokens.len());
            let mut ids = Vec::with_capacity(end - start + 2);
            ids.push(self.cls);
            ids.extend_from_slice(&tokens[start..end]);
            ids.push(self.sep);
            chunks.push(Chunk {
                ids,
                content_tokens: end - start,
            });
            if end == tokens.len() {
                return chunks;
            }
            start += step;
        }
    }
}
