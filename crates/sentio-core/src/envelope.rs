//! The nearline queue's message envelope (version 1) and the result the worker delivers by
//! webhook. One envelope is one item: a job of 500 texts is 500 messages, so a failed item is
//! retried alone and a poison item ends in the dead-letter queue alone.
//!
//! The schema is documented in `wit/queue-envelope.schema.json`; these types are the one
//! implementation of it on every tier (the edge builds envelopes for deferred escalations, the
//! heavy tier for jobs, the worker reads them).

use serde::{Deserialize, Serialize};

use crate::sentiment_api::{TextSentiment, Tier};
use crate::{ApiError, Metadata};
use sentio_model::ModelInfo;

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;
/// Largest redacted text in one envelope: SQS takes at most 256 KiB per message, and the
/// envelope's other fields and JSON escaping need room.
pub const MAX_ENVELOPE_TEXT_BYTES: usize = 192 * 1024;
/// Longest job or item id.
pub const MAX_ID_BYTES: usize = 128;

/// Who put an item on the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvelopeSource {
    /// `POST /v1/jobs` on the heavy tier.
    Job,
    /// The edge could not get the heavy tier's answer within its budget.
    DeferredEscalation,
    /// A serverless workflow sending to the queue directly.
    Workflow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub version: u32,
    pub job_id: String,
    /// Unique per item; the worker is idempotent by it.
    pub item_id: String,
    pub source: EnvelopeSource,
    /// Already redacted: raw customer text never enters the queue.
    pub redacted_text: String,
    #[serde(default)]
    pub metadata: Metadata,
    /// Sentence-level results wanted.
    #[serde(default)]
    pub sentences: bool,
    /// Where the result goes; the worker's configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// When it was queued, Unix milliseconds.
    pub enqueued_at_ms: u64,
    /// W3C `traceparent` of the request that queued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The tenant that queued it (the gateway's `x-sentio-tenant`): its audit record and the
    /// delivery carry it, so the tenant's own key can correct the prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl Envelope {
    /// Parses and checks one queue message body, naming the field at fault.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let envelope: Envelope = crate::http::parse_json(body)?;
        envelope.check()?;
        Ok(envelope)
    }

    /// Checks what serde cannot.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.version != ENVELOPE_VERSION {
            return Err(ApiError::invalid(
                "version",
                format!(
                    "envelope version {} is not supported (this build reads {ENVELOPE_VERSION})",
                    self.version
                ),
            ));
        }
        check_id("job_id", &self.job_id)?;
        check_id("item_id", &self.item_id)?;
        if self.redacted_text.len() > MAX_ENVELOPE_TEXT_BYTES {
            return Err(ApiError::invalid(
                "redacted_text",
                format!("must be at most {MAX_ENVELOPE_TEXT_BYTES} bytes"),
            ));
        }
        if let Some(url) = &self.callback_url {
            check_callback_url("callback_url", url)?;
        }
        if let Some(tenant) = &self.tenant {
            check_id("tenant", tenant)?;
        }
        self.metadata.check("metadata")
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("envelopes always serialize")
    }
}

/// Ids are what a caller correlates webhooks by: printable ASCII without spaces, bounded.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(ApiError::invalid(
            field,
            format!("must be 1 to {MAX_ID_BYTES} bytes"),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(ApiError::invalid(
            field,
            "may hold only letters, digits and - _ . :",
        ));
    }
    Ok(())
}

/// A callback is an absolute http(s) URL without credentials, spaces or control characters (a
/// header or request-line injection needs one of those).
pub fn check_callback_url(field: &str, url: &str) -> Result<(), ApiError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| ApiError::invalid(field, "must be an http:// or https:// URL"))?;
    if url.len() > 2048 {
        return Err(ApiError::invalid(field, "must be at most 2048 bytes"));
    }
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(ApiError::invalid(
            field,
            "must not contain spaces or control characters",
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(ApiError::invalid(
            field,
            "must name a host and carry no credentials",
        ));
    }
    Ok(())
}

/// The host (and port, if any) of a checked callback URL, lowercased: what allow-lists match.
pub fn callback_host(url: &str) -> String {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// A job id from 16 random bytes (the caller brings the randomness: core does no I/O).
pub fn job_id_from(random: [u8; 16]) -> String {
    let mut id = String::from("job_");
    for b in random {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// What the worker delivers to the callback for one item. Everything in it follows from the
/// envelope and the model, so a redelivered message produces the same bytes (the delivery time
/// travels in the signature header, not here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredItem {
    pub version: u32,
    pub job_id: String,
    pub item_id: String,
    pub source: EnvelopeSource,
    pub tier: Tier,
    pub model: ModelInfo,
    pub result: TextSentiment,
    pub metadata: Metadata,
    /// The envelope's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            version: ENVELOPE_VERSION,
            job_id: "job_1".into(),
            item_id: "job_1:0".into(),
            source: EnvelopeSource::Job,
            redacted_text: "my card <CREDIT_CARD> was charged twice".into(),
            metadata: Metadata::default(),
            sentences: false,
            callback_url: Some("http://127.0.0.1:9/hook".into()),
            enqueued_at_ms: 1,
            traceparent: None,
            tenant: Some("acme".into()),
        }
    }

    #[test]
    fn round_trips_and_checks() {
        let e = envelope();
        assert_eq!(Envelope::parse(&e.to_json()).unwrap(), e);
    }

    #[test]
    fn bad_envelopes_name_their_field() {
        type Mutation = Box<dyn Fn(&mut Envelope)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("version", Box::new(|e| e.version = 2)),
            ("job_id", Box::new(|e| e.job_id = String::new())),
            ("item_id", Box::new(|e| e.item_id = "a b".into())),
            (
                "redacted_text",
                Box::new(|e| e.redacted_text = "x".repeat(MAX_ENVELOPE_TEXT_BYTES + 1)),
            ),
            (
                "callback_url",
                Box::new(|e| e.callback_url = Some("ftp://x".into())),
            ),
            (
                "callback_url",
                Box::new(|e| e.callback_url = Some("http://u:p@host/".into())),
            ),
            (
                "callback_url",
                Box::new(|e| e.callback_url = Some("http://host/\r\nX-Evil: 1".into())),
            ),
        ];
        for (field, mutate) in cases {
            let mut e = envelope();
            mutate(&mut e);
            let err = Envelope::parse(&e.to_json()).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
        }
        let err = Envelope::parse(br#"{"version":1}"#).unwrap_err();
        assert_eq!(err.status(), 422, "{err}");
    }

    #[test]
    fn callback_hosts() {
        assert_eq!(
            callback_host("https://Hooks.Example.com/x?y"),
            "hooks.example.com"
        );
        assert_eq!(callback_host("http://127.0.0.1:8080/h"), "127.0.0.1:8080");
        assert!(job_id_from([0xab; 16]).starts_with("job_abab"));
    }
}
