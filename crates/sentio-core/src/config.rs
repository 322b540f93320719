//! Edge configuration from named variables (Spin variables in a component, environment variables
//! natively). Lookup is injected, so tests need no real environment.

use sentio_redact::{RecognizerFile, RecognizerSpec};

/// Default request body limit: 256 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default most texts in one `texts[]` batch.
pub const DEFAULT_MAX_BATCH_TEXTS: usize = 256;
/// Shortest accepted hash key.
pub const MIN_HASH_KEY_BYTES: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("variable `{name}` is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// What the edge components read from their variables. Names are the Spin variable names; the
/// native host maps `SENTIO_<NAME>` environment variables onto them.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    /// `max_body_bytes`: largest accepted request body.
    pub max_body_bytes: usize,
    /// `max_batch_texts`: most texts in one request.
    pub max_batch_texts: usize,
    /// `redact_hash_key`: the tenant key for the hash operator (at least 16 bytes).
    pub hash_key: Option<Vec<u8>>,
    /// `redact_custom_recognizers`: extra recognizers in the TOML shape of
    /// `crates/sentio-redact/data/recognizers.toml`.
    pub custom_recognizers: Vec<RecognizerSpec>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_batch_texts: DEFAULT_MAX_BATCH_TEXTS,
            hash_key: None,
            custom_recognizers: Vec::new(),
        }
    }
}

fn parse_usize(
    name: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    let n: usize = value.trim().parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: "not a whole number".into(),
    })?;
    if !(min..=max).contains(&n) {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("must be between {min} and {max}"),
        });
    }
    Ok(n)
}

impl EdgeConfig {
    /// Every variable the edge components read.
    pub const VARIABLES: &'static [&'static str] = &[
        "max_body_bytes",
        "max_batch_texts",
        "redact_hash_key",
        "redact_custom_recognizers",
    ];

    /// Reads the variables through `get`; an absent or empty variable takes its default.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut config = Self::default();
        if let Some(v) = get("max_body_bytes") {
            config.max_body_bytes = parse_usize("max_body_bytes", &v, 1024, 64 * 1024 * 1024)?;
        }
        if let Some(v) = get("max_batch_texts") {
            config.max_batch_texts = parse_usize("max_batch_texts", &v, 1, 10_000)?;
        }
        if let Some(v) = get("redact_hash_key") {
            if v.len() < MIN_HASH_KEY_BYTES {
                return Err(ConfigError::Invalid {
                    name: "redact_hash_key",
                    reason: format!("must be at least {MIN_HASH_KEY_BYTES} bytes"),
                });
            }
            config.hash_key = Some(v.into_bytes());
        }
        if let Some(v) = get("redact_custom_recognizers") {
            let file = RecognizerFile::from_toml(&v).map_err(|e| ConfigError::Invalid {
                name: "redact_custom_recognizers",
                reason: e.to_string(),
            })?;
            config.custom_recognizers = file.recognizers;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(
            EdgeConfig::from_lookup(|_| None).unwrap(),
            EdgeConfig::default()
        );
        let vars = [
            ("max_body_bytes", "2048"),
            ("redact_hash_key", "0123456789abcdef0123"),
            (
                "redact_custom_recognizers",
                "[[recognizer]]\nname='x'\nentity='X'\ndeny_list=['acme']",
            ),
        ];
        let c = EdgeConfig::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        assert_eq!(c.max_body_bytes, 2048);
        assert_eq!(c.custom_recognizers.len(), 1);
        let bad = EdgeConfig::from_lookup(|k| (k == "redact_hash_key").then(|| "short".into()));
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                name: "redact_hash_key",
                ..
            })
        ));
    }
}
