//! The heavy tier's and the worker's settings, read through an injected lookup (environment
//! variables in the Lambdas and `sentio serve`; a table in tests).

use sentio_core::EdgeConfig;
use sentio_core::envelope::callback_host;
use sentio_queue::webhook::MIN_SECRET_BYTES;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("environment variable `{name}` is invalid: {reason}")]
pub struct HeavyConfigError {
    pub name: String,
    pub reason: String,
}

/// Variables, by their environment names.
#[derive(Debug, Clone, PartialEq)]
pub struct HeavyConfig {
    /// Redaction and classification limits, from the same variables as the edge
    /// (`SENTIO_MAX_BODY_BYTES`, `SENTIO_REDACT_HASH_KEY`, …). `max_classify_texts` defaults to 256.
    pub api: EdgeConfig,
    /// `SENTIO_HEAVY_API_KEY`: when set, every request must send it as `x-api-key`.
    pub api_key: Option<String>,
    /// `SENTIO_MAX_JOB_ITEMS`: most items in one `/v1/jobs` request (default 10 000).
    pub max_job_items: usize,
    /// `SENTIO_MAX_JOB_BODY_BYTES`: largest `/v1/jobs` body (default 6 MiB, Lambda's own limit).
    pub max_job_body_bytes: usize,
    /// `SENTIO_WEBHOOK_SECRET`: signs deliveries (at least 16 bytes). The worker refuses to start
    /// without it; the heavy router does not need it.
    pub webhook_secret: Option<Vec<u8>>,
    /// `SENTIO_DEFAULT_CALLBACK_URL`: where results go when an item names no callback.
    pub default_callback_url: Option<String>,
    /// `SENTIO_CALLBACK_ALLOWED_HOSTS`: comma-separated `host[:port]` or `*.suffix` entries that
    /// callbacks may point at (default `127.0.0.1,localhost`: the local stack only).
    pub callback_allowed_hosts: Vec<String>,
    /// `SENTIO_WEBHOOK_TIMEOUT_MS`: one delivery attempt's limit (default 5000).
    pub webhook_timeout_ms: u64,
}

pub const DEFAULT_MAX_HEAVY_TEXTS: usize = 256;

impl HeavyConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, HeavyConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let err = |name: &str, reason: &str| HeavyConfigError {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let mut api =
            EdgeConfig::from_lookup(|name| get(&format!("SENTIO_{}", name.to_uppercase())))
                .map_err(|e| match e {
                    sentio_core::ConfigError::Invalid { name, reason } => HeavyConfigError {
                        name: format!("SENTIO_{}", name.to_uppercase()),
                        reason,
                    },
                })?;
        if get("SENTIO_MAX_CLASSIFY_TEXTS").is_none() {
            api.max_classify_texts = DEFAULT_MAX_HEAVY_TEXTS;
        }
        let number =
            |name: &str, default: u64, min: u64, max: u64| -> Result<u64, HeavyConfigError> {
                match get(name) {
                    None => Ok(default),
                    Some(v) => v
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (min..=max).contains(n))
                        .ok_or_else(|| {
                            err(name, &format!("must be a whole number from {min} to {max}"))
                        }),
                }
            };
        let webhook_secret = match get("SENTIO_WEBHOOK_SECRET") {
            Some(s) if s.len() < MIN_SECRET_BYTES => {
                return Err(err(
                    "SENTIO_WEBHOOK_SECRET",
                    &format!("must be at least {MIN_SECRET_BYTES} bytes"),
                ));
            }
            other => other.map(String::into_bytes),
        };
        let default_callback_url = match get("SENTIO_DEFAULT_CALLBACK_URL") {
            Some(url) => {
                sentio_core::envelope::check_callback_url("SENTIO_DEFAULT_CALLBACK_URL", &url)
                    .map_err(|e| err("SENTIO_DEFAULT_CALLBACK_URL", &e.to_string()))?;
                Some(url)
            }
            None => None,
        };
        let callback_allowed_hosts = get("SENTIO_CALLBACK_ALLOWED_HOSTS")
            .unwrap_or_else(|| "127.0.0.1,localhost".into())
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        Ok(Self {
            api,
            api_key: get("SENTIO_HEAVY_API_KEY"),
            max_job_items: number("SENTIO_MAX_JOB_ITEMS", 10_000, 1, 100_000)? as usize,
            max_job_body_bytes: number(
                "SENTIO_MAX_JOB_BODY_BYTES",
                6 * 1024 * 1024,
                1024,
                64 << 20,
            )? as usize,
            webhook_secret,
            default_callback_url,
            callback_allowed_hosts,
            webhook_timeout_ms: number("SENTIO_WEBHOOK_TIMEOUT_MS", 5_000, 10, 120_000)?,
        })
    }

    /// Whether a (checked) callback URL points at an allowed host. An entry without a port allows
    /// every port of that host; `*.example.com` allows its subdomains.
    pub fn callback_allowed(&self, url: &str) -> bool {
        let authority = callback_host(url);
        let host = if authority.starts_with('[') {
            // IPv6 literal: `[::1]:8080`.
            authority.split_inclusive(']').next().unwrap_or("")
        } else {
            authority.split(':').next().unwrap_or("")
        };
        self.callback_allowed_hosts.iter().any(|entry| {
            if let Some(suffix) = entry.strip_prefix("*.") {
                host.ends_with(&format!(".{suffix}"))
            } else if entry.contains(':') {
                *entry == authority
            } else {
                entry == host
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<HeavyConfig, HeavyConfigError> {
        HeavyConfig::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_and_errors() {
        let c = config(&[]).unwrap();
        assert_eq!(c.api.max_classify_texts, 256);
        assert_eq!(c.max_job_items, 10_000);
        assert!(c.webhook_secret.is_none());
        assert_eq!(
            config(&[("SENTIO_WEBHOOK_SECRET", "short")])
                .unwrap_err()
                .name,
            "SENTIO_WEBHOOK_SECRET"
        );
        assert_eq!(
            config(&[("SENTIO_MAX_SENTENCES", "x")]).unwrap_err().name,
            "SENTIO_MAX_SENTENCES"
        );
        assert_eq!(
            config(&[("SENTIO_DEFAULT_CALLBACK_URL", "ftp://x")])
                .unwrap_err()
                .name,
            "SENTIO_DEFAULT_CALLBACK_URL"
        );
    }

    #[test]
    fn callback_allow_list_table() {
        let c = config(&[(
            "SENTIO_CALLBACK_ALLOWED_HOSTS",
            "127.0.0.1:8080, hooks.example.com, *.crm.example",
        )])
        .unwrap();
        for (url, allowed) in [
            ("http://127.0.0.1:8080/h", true),
            ("http://127.0.0.1:8081/h", false),
            ("https://hooks.example.com/x", true),
            ("https://hooks.example.com:8443/x", true),
            ("https://evil.hooks.example.com/x", false),
            ("https://eu.crm.example/x", true),
            ("https://crm.example/x", false),
            ("https://example.com/x", false),
        ] {
            assert_eq!(c.callback_allowed(url), allowed, "{url}");
        }
        let default = config(&[]).unwrap();
        assert!(default.callback_allowed("http://127.0.0.1:9999/x"));
        assert!(default.callback_allowed("http://localhost:9999/x"));
        assert!(!default.callback_allowed("http://10.0.0.1/x"));
    }
}
