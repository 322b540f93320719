//! Edge configuration from named variables (Spin variables in a component, environment variables
//! natively). Lookup is injected, so tests need no real environment.

use sentio_redact::{RecognizerFile, RecognizerSpec};

/// Default request body limit: 256 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default most texts in one `texts[]` batch.
pub const DEFAULT_MAX_BATCH_TEXTS: usize = 256;
/// Default most texts in one `/classify-sentiment` batch.
pub const DEFAULT_MAX_CLASSIFY_TEXTS: usize = 64;
/// Default most sentence-level results per text.
pub const DEFAULT_MAX_SENTENCES: usize = 32;
/// Default most model tokens in one sentiment request: about 64 KB of English, and about half of
/// the 30 s request deadline inside the edge component (README, "Long texts").
pub const DEFAULT_MAX_REQUEST_TOKENS: usize = 16_384;
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
    /// `max_classify_texts`: most texts in one `/classify-sentiment` batch.
    pub max_classify_texts: usize,
    /// `max_sentences`: most sentence-level results per text.
    pub max_sentences: usize,
    /// `max_request_tokens`: most model tokens (every text's `tokens` together) one sentiment
    /// request may hold; beyond it the request is a 422 before the model runs.
    pub max_request_tokens: usize,
    /// `escalation_negative_threshold`, `escalation_drop_threshold`, `escalation_window`.
    pub escalation: EscalationThresholds,
    /// `heavy_url`, `heavy_api_key`, `escalation_confidence_threshold`, `escalation_budget_ms`,
    /// `overflow_url`, `overflow_api_key`, `deferred_callback_url`.
    pub routing: RoutingConfig,
    /// `audit_url`, `audit_api_key`.
    pub audit: AuditForwarding,
}

/// Where the edge sends the audit records of its predictions when nothing in front of it keeps
/// them (on Spin, the heavy tier's `POST /v1/audit`; `sentio serve`'s gateway records them itself
/// and leaves this off). They are sent after the answer, so the caller never waits for them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditForwarding {
    /// e.g. `https://heavy.example/v1/audit`; absent: the edge sends nothing.
    pub url: Option<String>,
    /// Sent as `x-api-key`.
    pub api_key: Option<String>,
}

/// When and where the edge hands a text on: to the heavy tier (answer now) or to the overflow
/// queue (answer later by webhook). Without `heavy_url` and `overflow_url` the edge answers alone.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    /// Base URL of the heavy tier (`…/v1/classify` is appended), e.g. `http://127.0.0.1:3000/heavy`.
    pub heavy_url: Option<String>,
    /// Sent as `x-api-key` to the heavy tier.
    pub heavy_api_key: Option<String>,
    /// Escalate when the edge's confidence in any text is below this.
    pub confidence_threshold: f32,
    /// Longest the caller waits for escalation on top of the edge's own work, queueing included.
    pub budget_ms: u64,
    /// Where a deferred text is queued (one envelope per `POST`), e.g. `…/overflow`.
    pub overflow_url: Option<String>,
    /// Sent as `x-api-key` to the overflow endpoint.
    pub overflow_api_key: Option<String>,
    /// Webhook that receives re-scored deferred texts (the worker's default applies when absent).
    pub deferred_callback_url: Option<String>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            heavy_url: None,
            heavy_api_key: None,
            confidence_threshold: 0.6,
            budget_ms: 400,
            overflow_url: None,
            overflow_api_key: None,
            deferred_callback_url: None,
        }
    }
}

/// When `/analyze-conversation` and `/stream-sentiment` raise the escalation signal. Polarity is
/// `positive - negative` in [-1, 1].
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationThresholds {
    /// Escalate when the mean polarity of the customer's last `window` turns is at or below this.
    pub negative: f32,
    /// Escalate when that mean fell by at least this much against the `window` turns before.
    pub drop: f32,
    /// Customer turns per window.
    pub window: usize,
}

impl Default for EscalationThresholds {
    fn default() -> Self {
        Self {
            negative: -0.5,
            drop: 0.8,
            window: 3,
        }
    }
}

impl EscalationThresholds {
    /// Range checks, naming the field under `prefix` (a request's `escalation` or a variable).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(-1.0..=1.0).contains(&self.negative) {
            return Err(("negative", "must be between -1 and 1".into()));
        }
        if !(0.0..=2.0).contains(&self.drop) || self.drop == 0.0 {
            return Err(("drop", "must be above 0 and at most 2".into()));
        }
        if !(1..=50).contains(&self.window) {
            return Err(("window", "must be between 1 and 50".into()));
        }
        Ok(())
    }
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_batch_texts: DEFAULT_MAX_BATCH_TEXTS,
            hash_key: None,
            custom_recognizers: Vec::new(),
            max_classify_texts: DEFAULT_MAX_CLASSIFY_TEXTS,
            max_sentences: DEFAULT_MAX_SENTENCES,
            max_request_tokens: DEFAULT_MAX_REQUEST_TOKENS,
            escalation: EscalationThresholds::default(),
            routing: RoutingConfig::default(),
            audit: AuditForwarding::default(),
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
    /// This configuration as `tenant` sees it: the hash operator, pseudonyms and input hashes
    /// use the tenant's own key, derived from `redact_hash_key`.
    pub fn for_tenant(mut self, tenant: Option<&str>) -> Self {
        if let (Some(tenant), Some(key)) = (tenant, self.hash_key.as_deref()) {
            self.hash_key = Some(crate::context::tenant_key(key, tenant));
        }
        self
    }

    /// Every variable the edge components read.
    pub const VARIABLES: &'static [&'static str] = &[
        "max_body_bytes",
        "max_batch_texts",
        "redact_hash_key",
        "redact_custom_recognizers",
        "max_classify_texts",
        "max_sentences",
        "max_request_tokens",
        "escalation_negative_threshold",
        "escalation_drop_threshold",
        "escalation_window",
        "heavy_url",
        "heavy_api_key",
        "escalation_confidence_threshold",
        "escalation_budget_ms",
        "overflow_url",
        "overflow_api_key",
        "deferred_callback_url",
        "audit_url",
        "audit_api_key",
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
        if let Some(v) = get("max_classify_texts") {
            config.max_classify_texts = parse_usize("max_classify_texts", &v, 1, 1024)?;
        }
        if let Some(v) = get("max_sentences") {
            config.max_sentences = parse_usize("max_sentences", &v, 0, 1024)?;
        }
        if let Some(v) = get("max_request_tokens") {
            config.max_request_tokens = parse_usize("max_request_tokens", &v, 16, 10_000_000)?;
        }
        if let Some(v) = get("escalation_window") {
            config.escalation.window = parse_usize("escalation_window", &v, 1, 50)?;
        }
        for (name, slot) in [
            (
                "escalation_negative_threshold",
                &mut config.escalation.negative,
            ),
            ("escalation_drop_threshold", &mut config.escalation.drop),
        ] {
            if let Some(v) = get(name) {
                *slot = v.trim().parse().map_err(|_| ConfigError::Invalid {
                    name,
                    reason: "not a number".into(),
                })?;
            }
        }
        for (name, slot) in [
            ("heavy_url", &mut config.routing.heavy_url),
            ("overflow_url", &mut config.routing.overflow_url),
            (
                "deferred_callback_url",
                &mut config.routing.deferred_callback_url,
            ),
            ("audit_url", &mut config.audit.url),
        ] {
            if let Some(v) = get(name) {
                let v = v.trim().trim_end_matches('/').to_owned();
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        name,
                        reason: "must be an http:// or https:// URL".into(),
                    });
                }
                *slot = Some(v);
            }
        }
        config.routing.heavy_api_key = get("heavy_api_key");
        config.routing.overflow_api_key = get("overflow_api_key");
        config.audit.api_key = get("audit_api_key");
        if let Some(v) = get("escalation_confidence_threshold") {
            let t: f32 = v.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "escalation_confidence_threshold",
                reason: "not a number".into(),
            })?;
            if !(0.0..=1.0).contains(&t) {
                return Err(ConfigError::Invalid {
                    name: "escalation_confidence_threshold",
                    reason: "must be between 0 and 1".into(),
                });
            }
            config.routing.confidence_threshold = t;
        }
        if let Some(v) = get("escalation_budget_ms") {
            config.routing.budget_ms = parse_usize("escalation_budget_ms", &v, 10, 60_000)? as u64;
        }
        config
            .escalation
            .check()
            .map_err(|(field, reason)| ConfigError::Invalid {
                name: match field {
                    "negative" => "escalation_negative_threshold",
                    "drop" => "escalation_drop_threshold",
                    _ => "escalation_window",
                },
                reason,
            })?;
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
            ("max_request_tokens", "512"),
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
        assert_eq!(c.max_request_tokens, 512);
        assert_eq!(c.custom_recognizers.len(), 1);
        for (name, value) in [("redact_hash_key", "short"), ("max_request_tokens", "8")] {
            let bad = EdgeConfig::from_lookup(|k| (k == name).then(|| value.into()));
            assert!(
                matches!(bad, Err(ConfigError::Invalid { name: n, .. }) if n == name),
                "{name}={value}: {bad:?}"
            );
        }
    }
}
