//! Which request this is and for whom: the request id that names every prediction, and the
//! tenant whose keys apply. `sentio serve`'s gateway (or any gateway in front of Spin) sets the
//! two headers after authenticating the caller; a client cannot choose them, because the gateway
//! overwrites what the client sent.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::sentiment_api::TextSentiment;

/// Set by the gateway: the request's id (random, unique).
pub const REQUEST_ID_HEADER: &str = "x-sentio-request-id";
/// Set by the gateway: the authenticated tenant.
pub const TENANT_HEADER: &str = "x-sentio-tenant";

/// W3C Trace Context: the caller's trace, continued through every hop (edge → heavy → queue →
/// webhook).
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Longest request id or tenant id accepted from the gateway's headers.
const MAX_ID_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    pub tenant: Option<String>,
    /// A well-formed W3C `traceparent`, when the request carried one.
    pub traceparent: Option<String>,
}

/// A random request id: `req_` and 24 hex digits (96 bits).
pub fn new_request_id() -> String {
    format!("req_{}", random_id_hex(12))
}

/// `bytes` random bytes in hex, for identifiers (request, trace and span ids), never secrets:
/// without an entropy source they come from the clock, still unique within this instance and
/// never all zero (which W3C trace context reserves).
pub fn random_id_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    if getrandom::fill(&mut random).is_err() || random.iter().all(|b| *b == 0) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        random
            .iter_mut()
            .zip(nanos.to_le_bytes().iter().cycle())
            .for_each(|(b, n)| *b = *n | 1);
    }
    hex(&random)
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl RequestContext {
    /// Reads the gateway's headers through `get`; a missing or malformed request id is replaced
    /// by a fresh one, a malformed tenant is ignored.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        let request_id = get(REQUEST_ID_HEADER)
            .filter(|id| is_valid_id(id))
            .map_or_else(new_request_id, str::to_owned);
        let tenant = get(TENANT_HEADER)
            .filter(|t| is_valid_id(t))
            .map(str::to_owned);
        let traceparent = get(TRACEPARENT_HEADER)
            .filter(|t| parse_traceparent(t).is_some())
            .map(str::to_owned);
        Self {
            request_id,
            tenant,
            traceparent,
        }
    }

    /// The id of the `index`-th prediction of this request (feedback and the audit trail name
    /// predictions by it).
    pub fn prediction_id(&self, index: usize) -> String {
        format!("{}.{index}", self.request_id)
    }

    /// Gives each result its prediction id (numbered from `first`) and, with a key, the keyed
    /// hash of the text it was computed from.
    pub fn stamp(
        &self,
        results: &mut [TextSentiment],
        raw_texts: &[&str],
        first: usize,
        key: Option<&[u8]>,
    ) {
        for (i, (result, text)) in results.iter_mut().zip(raw_texts).enumerate() {
            result.prediction_id = Some(self.prediction_id(first + i));
            result.input_hash = key.map(|k| input_hash(k, text));
        }
    }
}

/// Splits a W3C `traceparent` (`00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`)
/// into its trace id and parent span id; `None` when malformed or all-zero (which the
/// specification says to ignore).
pub fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    (parts.next().is_none()
        && version == "00"
        && hex(trace, 32)
        && hex(span, 16)
        && hex(flags, 2)
        && nonzero(trace)
        && nonzero(span))
    .then_some((trace, span))
}

/// HMAC-SHA256 of the raw text under the tenant's key, 128 bits in hex: the audit trail can tell
/// whether two predictions saw the same input without storing it (and without the key, a short
/// input such as a phone number cannot be found by trying them all).
pub fn input_hash(key: &[u8], text: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(b"sentio-input\0");
    mac.update(text.as_bytes());
    hex(&mac.finalize().into_bytes()[..16])
}

/// The tenant's own key, derived from the application key: tenants never share hashes or
/// pseudonym values, and no per-tenant secret has to be distributed to the edge.
pub fn tenant_key(application_key: &[u8], tenant: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(application_key)
        .expect("HMAC accepts any key length");
    mac.update(b"sentio-tenant\0");
    mac.update(tenant.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked() {
        let ctx = RequestContext::from_headers(|name| match name {
            REQUEST_ID_HEADER => Some("req_abc"),
            TENANT_HEADER => Some("acme"),
            _ => None,
        });
        assert_eq!(ctx.request_id, "req_abc");
        assert_eq!(ctx.tenant.as_deref(), Some("acme"));
        assert_eq!(ctx.prediction_id(2), "req_abc.2");

        // Injection attempts and junk are replaced or dropped, never echoed.
        let bad = RequestContext::from_headers(|name| match name {
            REQUEST_ID_HEADER => Some("x\r\nset-cookie: a"),
            TENANT_HEADER => Some("a b"),
            _ => None,
        });
        assert!(bad.request_id.starts_with("req_") && bad.request_id.len() == 28);
        assert_eq!(bad.tenant, None);
        let fresh = RequestContext::from_headers(|_| None);
        assert_ne!(fresh.request_id, new_request_id());
    }

    #[test]
    fn traceparents() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(good),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f35-00f067aa0ba902b7-01",
            "",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        let ctx = RequestContext::from_headers(|name| (name == TRACEPARENT_HEADER).then_some(good));
        assert_eq!(ctx.traceparent.as_deref(), Some(good));
    }

    #[test]
    fn keyed_hashes_depend_on_key_and_text() {
        let key = b"0123456789abcdef0123";
        let a = input_hash(key, "call me on 07700 900123");
        assert_eq!(a.len(), 32);
        assert_eq!(a, input_hash(key, "call me on 07700 900123"));
        assert_ne!(a, input_hash(key, "call me on 07700 900124"));
        assert_ne!(
            a,
            input_hash(b"another key of 20 by", "call me on 07700 900123")
        );
        let acme = tenant_key(key, "acme");
        assert_eq!(acme, tenant_key(key, "acme"));
        assert_ne!(acme, tenant_key(key, "globex"));
        assert_ne!(input_hash(&acme, "x"), input_hash(key, "x"));
    }
}
