//! API errors and the one table from error kind to HTTP status.
//!
//! Every tier answers errors the same way: `{"error": {"kind", "message", "field"?}}` with the
//! status from [`ApiError::status`]. Messages name the problem and the field, never echo the text.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {detail}")]
    MalformedJson { detail: String },
    #[error("request body is not valid UTF-8 (at byte {valid_up_to})")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("{message}")]
    InvalidField { field: String, message: String },
    #[error("request body is larger than the {limit_bytes}-byte limit")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("send `Content-Type: application/json` (got {found})")]
    UnsupportedMediaType { found: String },
    #[error("method {method} is not allowed here; use {allowed}")]
    MethodNotAllowed {
        method: String,
        allowed: &'static str,
    },
    #[error("missing or wrong API key: send it as `{header}`")]
    Unauthorized { header: &'static str },
    #[error("forbidden: {detail}")]
    Forbidden { detail: String },
    #[error("rate limit reached: retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("no endpoint at {path}")]
    NotFound { path: String },
    #[error("bad request: {detail}")]
    BadRequest { detail: String },
    #[error("no answer within {seconds} s")]
    Timeout { seconds: u64 },
    #[error("service unavailable: {detail}")]
    Unavailable { detail: String },
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

impl ApiError {
    /// The one table from error kind to HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::MalformedJson { .. } | Self::InvalidUtf8 { .. } | Self::BadRequest { .. } => 400,
            Self::Unauthorized { .. } => 401,
            Self::Forbidden { .. } => 403,
            Self::NotFound { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::PayloadTooLarge { .. } => 413,
            Self::UnsupportedMediaType { .. } => 415,
            Self::InvalidField { .. } => 422,
            Self::RateLimited { .. } => 429,
            Self::Internal { .. } => 500,
            Self::Unavailable { .. } => 503,
            Self::Timeout { .. } => 504,
        }
    }

    /// Stable machine-readable name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MalformedJson { .. } => "malformed_json",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::InvalidField { .. } => "invalid_field",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotFound { .. } => "not_found",
            Self::BadRequest { .. } => "bad_request",
            Self::Timeout { .. } => "timeout",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal { .. } => "internal",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The JSON body: `{"error": {"kind", "message", "field"?}}`.
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            kind: &'a str,
            message: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            field: Option<&'a str>,
        }
        let body = Body {
            error: Inner {
                kind: self.kind(),
                message: self.to_string(),
                field: self.field(),
            },
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"error":{"kind":"internal"}}"#.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases = [
            (
                ApiError::MalformedJson {
                    detail: String::new(),
                },
                400,
            ),
            (ApiError::InvalidUtf8 { valid_up_to: 0 }, 400),
            (ApiError::invalid("text", "x"), 422),
            (ApiError::PayloadTooLarge { limit_bytes: 1 }, 413),
            (
                ApiError::UnsupportedMediaType {
                    found: String::new(),
                },
                415,
            ),
            (
                ApiError::MethodNotAllowed {
                    method: "GET".into(),
                    allowed: "POST",
                },
                405,
            ),
            (ApiError::NotFound { path: "/".into() }, 404),
            (
                ApiError::Forbidden {
                    detail: String::new(),
                },
                403,
            ),
            (
                ApiError::RateLimited {
                    retry_after_secs: 1,
                },
                429,
            ),
            (
                ApiError::Unauthorized {
                    header: "authorization",
                },
                401,
            ),
            (
                ApiError::Internal {
                    detail: String::new(),
                },
                500,
            ),
            (
                ApiError::BadRequest {
                    detail: String::new(),
                },
                400,
            ),
            (ApiError::Timeout { seconds: 1 }, 504),
            (
                ApiError::Unavailable {
                    detail: String::new(),
                },
                503,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(err.status(), status, "{err:?}");
        }
    }

    #[test]
    fn json_shape() {
        let body: serde_json::Value =
            serde_json::from_slice(&ApiError::invalid("texts[2]", "must be a string").to_json())
                .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"kind": "invalid_field", "message": "must be a string", "field": "texts[2]"}})
        );
    }
}
