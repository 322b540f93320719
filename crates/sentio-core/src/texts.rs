//! The `text` / `texts` pair every text endpoint accepts, checked in one place.

use crate::ApiError;

/// The texts of a request, in order: one `text`, or a batch `texts[]`.
pub enum Texts {
    One(String),
    Many(Vec<String>),
}

impl Texts {
    /// Exactly one of `text` and `texts`; a batch is non-empty and at most `max_batch` long.
    pub fn from_request(
        text: Option<String>,
        texts: Option<Vec<String>>,
        max_batch: usize,
    ) -> Result<Self, ApiError> {
        match (text, texts) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "texts",
                "give either `text` or `texts`, not both",
            )),
            (None, None) => Err(ApiError::invalid(
                "text",
                "missing: give `text` (a string) or `texts` (an array of strings)",
            )),
            (Some(t), None) => Ok(Texts::One(t)),
            (None, Some(ts)) if ts.is_empty() => {
                Err(ApiError::invalid("texts", "must not be empty"))
            }
            (None, Some(ts)) if ts.len() > max_batch => Err(ApiError::invalid(
                "texts",
                format!("at most {max_batch} texts per request"),
            )),
            (None, Some(ts)) => Ok(Texts::Many(ts)),
        }
    }
}
