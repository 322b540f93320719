//! Access control: API keys per tenant (stored as SHA-256, compared in constant time), scopes
//! per endpoint, a token bucket per key, and the CORS allowlist for widget origins.
//!
//! The keys file (`SENTIO_ACCESS_FILE`, TOML):
//!
//! ```toml
//! [cors]
//! origins = ["https://support.example.com"]
//!
//! [[key]]
//! id = "acme-widget"            # names the key in logs and metrics, never the secret
//! tenant = "acme"
//! sha256 = "9f86d081884c7d65…"  # `sentio keys new` prints a key and this entry
//! scopes = ["classify", "redact", "feedback"]
//! rate_per_second = 20           # sustained
//! burst = 40                     # bucket size
//! ```
//!
//! Without a file the gateway is open (local development): every request is admitted as no
//! tenant, and only same-origin browser requests pass CORS.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use sentio_core::ApiError;

/// What a key may do; each endpoint needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Redact,
    Classify,
    Feedback,
    Audit,
    Metrics,
    Dashboard,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Redact => "redact",
            Scope::Classify => "classify",
            Scope::Feedback => "feedback",
            Scope::Audit => "audit",
            Scope::Metrics => "metrics",
            Scope::Dashboard => "dashboard",
        }
    }
}

/// The one table from path to the scope it needs; `None` is public (the widget's files, the
/// dashboard page itself, the OpenAPI document, the health check, and the heavy tier, which
/// checks its own `x-api-key` as it does behind API Gateway).
pub fn scope_for(path: &str) -> Option<Scope> {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "redact" => Some(Scope::Redact),
        "classify-sentiment" | "analyze-conversation" | "stream-sentiment" => Some(Scope::Classify),
        "feedback" => Some(Scope::Feedback),
        "audit" => Some(Scope::Audit),
        "metrics" => Some(Scope::Metrics),
        "dashboard" if path.trim_start_matches('/').starts_with("dashboard/api") => {
            Some(Scope::Dashboard)
        }
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessFileError {
    #[error("the access file is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("key `{id}`: {reason}")]
    Key { id: String, reason: String },
    #[error("cors.origins: `{origin}` is not an origin (scheme://host[:port], no path)")]
    Origin { origin: String },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    #[serde(default)]
    pub cors: CorsConfig,
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins whose pages may call the API (`https://support.example.com`).
    #[serde(default)]
    pub origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub id: String,
    pub tenant: String,
    /// Hex SHA-256 of the key: the file never holds a usable secret.
    pub sha256: String,
    pub scopes: BTreeSet<Scope>,
    #[serde(default = "default_rate")]
    pub rate_per_second: f64,
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_rate() -> f64 {
    50.0
}

fn default_burst() -> u32 {
    100
}

/// SHA-256 of a key, in hex: what the access file stores.
pub fn hash_key(key: &str) -> String {
    sentio_model::sha256_hex(key.as_bytes())
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn is_origin(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|host| {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    })
}

/// Who a request was admitted as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `None` in open mode.
    pub tenant: Option<String>,
    pub key_id: Option<String>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

struct Key {
    entry: KeyEntry,
    hash: [u8; 32],
    bucket: Mutex<Bucket>,
}

/// The loaded access rules.
pub struct AccessControl {
    /// `None`: open mode.
    keys: Option<Vec<Key>>,
    origins: BTreeSet<String>,
}

impl AccessControl {
    /// No keys: everything admitted, CORS same-origin only.
    pub fn open() -> Self {
        Self {
            keys: None,
            origins: BTreeSet::new(),
        }
    }

    pub fn from_toml(text: &str) -> Result<Self, AccessFileError> {
        let file: AccessFile = toml::from_str(text)?;
        let mut keys = Vec::new();
        let mut ids = BTreeSet::new();
        for entry in file.keys {
            let bad = |reason: &str| AccessFileError::Key {
                id: entry.id.clone(),
                reason: reason.to_owned(),
            };
            let hash = parse_hex32(&entry.sha256.to_ascii_lowercase())
                .ok_or_else(|| bad("sha256 must be 64 hex digits"))?;
            if !ids.insert(entry.id.clone()) {
                return Err(bad("the id is used twice"));
            }
            if entry.tenant.is_empty()
                || entry.tenant.len() > 64
                || !entry
                    .tenant
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(bad(
                    "tenant must be 1 to 64 letters, digits, `-`, `_` or `.`",
                ));
            }
            if !(entry.rate_per_second > 0.0 && entry.rate_per_second.is_finite()) {
                return Err(bad("rate_per_second must be above 0"));
            }
            if entry.burst == 0 {
                return Err(bad("burst must be at least 1"));
            }
            keys.push(Key {
                bucket: Mutex::new(Bucket {
                    tokens: f64::from(entry.burst),
                    updated: Instant::now(),
                }),
                entry,
                hash,
            });
        }
        for origin in &file.cors.origins {
            if !is_origin(origin) {
                return Err(AccessFileError::Origin {
                    origin: origin.clone(),
                });
            }
        }
        Ok(Self {
            keys: Some(keys),
            origins: file.cors.origins.into_iter().collect(),
        })
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_none()
    }

    /// Checks the `Authorization: Bearer <key>` header for `scope`, then spends one token of
    /// the key's bucket.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        scope: Scope,
        now: Instant,
    ) -> Result<Principal, ApiError> {
        let Some(keys) = &self.keys else {
            return Ok(Principal {
                tenant: None,
                key_id: None,
            });
        };
        let unauthorized = ApiError::Unauthorized {
            header: "Authorization: Bearer <key>",
        };
        let presented = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(unauthorized.clone())?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Every key is compared, so the time taken does not tell which one came close.
        let mut found = None;
        for key in keys {
            if bool::from(key.hash.ct_eq(&digest)) {
                found = Some(key);
            }
        }
        let key = found.ok_or(unauthorized)?;
        if !key.entry.scopes.contains(&scope) {
            return Err(ApiError::Forbidden {
                detail: format!("this key lacks the `{}` scope", scope.as_str()),
            });
        }
        let mut bucket = key.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let rate = key.entry.rate_per_second;
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(f64::from(key.entry.burst));
        bucket.updated = now;
        if bucket.tokens < 1.0 {
            let wait = (1.0 - bucket.tokens) / rate;
            return Err(ApiError::RateLimited {
                retry_after_secs: wait.ceil().max(1.0) as u64,
            });
        }
        bucket.tokens -= 1.0;
        Ok(Principal {
            tenant: Some(key.entry.tenant.clone()),
            key_id: Some(key.entry.id.clone()),
        })
    }

    /// Whether a browser page at `origin` may call this server at `own_origin`: the same
    /// origin always, others only when listed.
    pub fn origin_allowed(&self, origin: &str, own_origin: &str) -> bool {
        origin == own_origin || self.origins.contains(origin)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rules() -> AccessControl {
        AccessControl::from_toml(&format!(
            r#"
            [cors]
            origins = ["https://support.example.com"]

            [[key]]
            id = "acme-widget"
            tenant = "acme"
            sha256 = "{}"
            scopes = ["classify"]
            rate_per_second = 2
            burst = 3

            [[key]]
            id = "globex-ops"
            tenant = "globex"
            sha256 = "{}"
            scopes = ["metrics", "dashboard", "audit"]
            "#,
            hash_key("sk_acme_widget_123"),
            hash_key("sk_globex_ops_456").to_uppercase(),
        ))
        .unwrap()
    }

    #[test]
    fn keys_scopes_and_tenants() {
        let rules = rules();
        let now = Instant::now();
        let cases: &[(Option<&str>, Scope, Result<&str, u16>)] = &[
            (
                Some("Bearer sk_acme_widget_123"),
                Scope::Classify,
                Ok("acme"),
            ),
            (
                Some("Bearer sk_globex_ops_456"),
                Scope::Metrics,
                Ok("globex"),
            ),
            (Some("Bearer sk_acme_widget_123"), Scope::Metrics, Err(403)),
            (Some("Bearer sk_acme_widget_12"), Scope::Classify, Err(401)),
            (Some("sk_acme_widget_123"), Scope::Classify, Err(401)),
            (Some("Bearer "), Scope::Classify, Err(401)),
            (None, Scope::Classify, Err(401)),
        ];
        for (header, scope, want) in cases {
            let got = rules
                .authorize(*header, *scope, now)
                .map(|p| p.tenant.unwrap())
                .map_err(|e| e.status());
            assert_eq!(
                got.as_deref().map_err(|s| *s),
                want.as_ref().map(|t| *t).map_err(|s| *s),
                "{header:?} {scope:?}"
            );
        }
    }

    #[test]
    fn token_bucket_limits_and_refills() {
        let rules = rules();
        let key = Some("Bearer sk_acme_widget_123");
        let start = Instant::now();
        for _ in 0..3 {
            rules.authorize(key, Scope::Classify, start).unwrap();
        }
        let limited = rules.authorize(key, Scope::Classify, start).unwrap_err();
        assert_eq!(
            limited,
            ApiError::RateLimited {
                retry_after_secs: 1
            }
        );
        // 2 tokens per second: half a second later one request passes again.
        let later = start + Duration::from_millis(500);
        rules.authorize(key, Scope::Classify, later).unwrap();
        assert!(rules.authorize(key, Scope::Classify, later).is_err());
    }

    #[test]
    fn origins() {
        let rules = rules();
        let own = "http://127.0.0.1:3000";
        assert!(rules.origin_allowed(own, own));
        assert!(rules.origin_allowed("https://support.example.com", own));
        assert!(!rules.origin_allowed("https://evil.example", own));
        assert!(!rules.origin_allowed("https://support.example.com.evil", own));
        assert!(!AccessControl::open().origin_allowed("https://support.example.com", own));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let bad = [
            (
                "[[key]]\nid='a'\ntenant='t'\nsha256='abc'\nscopes=[]",
                "64 hex",
            ),
            (
                "[[key]]\nid='a'\ntenant='t t'\nsha256='{h}'\nscopes=[]",
                "tenant",
            ),
            (
                "[[key]]\nid='a'\ntenant='t'\nsha256='{h}'\nscopes=['root']",
                "TOML",
            ),
            ("[cors]\norigins=['https://x.example/path']", "origin"),
            (
                "[[key]]\nid='a'\ntenant='t'\nsha256='{h}'\nscopes=[]\n[[key]]\nid='a'\ntenant='t'\nsha256='{h}'\nscopes=[]",
                "twice",
            ),
        ];
        for (text, expect) in bad {
            let text = text.replace("{h}", &hash_key("k"));
            let err = AccessControl::from_toml(&text).err().unwrap().to_string();
            assert!(err.contains(expect), "{text}: {err}");
        }
    }

    #[test]
    fn scope_table() {
        let cases = [
            ("/redact", Some(Scope::Redact)),
            ("/classify-sentiment", Some(Scope::Classify)),
            ("/stream-sentiment", Some(Scope::Classify)),
            ("/analyze-conversation/", Some(Scope::Classify)),
            ("/feedback", Some(Scope::Feedback)),
            ("/audit/req_1.0", Some(Scope::Audit)),
            ("/metrics", Some(Scope::Metrics)),
            ("/dashboard/api/summary", Some(Scope::Dashboard)),
            ("/dashboard", None),
            ("/web/widget.js", None),
            ("/openapi.json", None),
            ("/heavy/v1/classify", None),
        ];
        for (path, scope) in cases {
            assert_eq!(scope_for(path), scope, "{path}");
        }
    }
}
