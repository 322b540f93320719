//! Webhook signatures: how a receiver knows a result came from Sentio and is fresh.
//!
//! Each delivery carries
//!
//! ```text
//! Sentio-Signature: t=1764236400,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//! Sentio-Delivery-Id: job_…:3
//! ```
//!
//! `v1` is hex HMAC-SHA256 under the shared secret over `"{t}.{body}"`: the timestamp is signed
//! with the body, so an old delivery cannot be replayed with a new timestamp. A receiver checks the
//! MAC in constant time and refuses a `t` outside its replay window (default 300 s either way), then
//! de-duplicates by `Sentio-Delivery-Id` (the item id: a redelivered item carries the same id and
//! the same body). During secret rotation the header may carry several `v1=` entries.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "sentio-signature";
pub const DELIVERY_ID_HEADER: &str = "sentio-delivery-id";
/// Default replay window, seconds either side of the receiver's clock.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// Shortest accepted signing secret.
pub const MIN_SECRET_BYTES: usize = 16;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Sentio-Signature` header value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let mut out = format!("t={timestamp},v1=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "signature timestamp is {age_secs} s away from now, outside the {tolerance_secs} s window"
    )]
    OutsideWindow { age_secs: u64, tolerance_secs: u64 },
    #[error("no signature matches the body")]
    Mismatch,
    #[error("this signed delivery was already accepted: a replay")]
    Replayed,
}

/// The parts of a `Sentio-Signature` header: its timestamp and every `v1` tag.
fn parse_header(header: &str) -> Result<(u64, Vec<Vec<u8>>), SignatureError> {
    let mut timestamp = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("expected key=value pairs"))?;
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| SignatureError::Malformed("t is not a Unix time"))?,
                )
            }
            "v1" => tags.push(decode_hex(value).ok_or(SignatureError::Malformed("v1 is not hex"))?),
            _ => {} // later schemes are ignored, as receivers must
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t"))?;
    if tags.is_empty() {
        return Err(SignatureError::Malformed("no v1"));
    }
    Ok((timestamp, tags))
}

/// The reference verifier: what a receiver runs on each delivery.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    verified(secret, header, body, now_secs, tolerance_secs).map(|_| ())
}

/// [`verify`]'s work, answering the signature's timestamp and the `v1` tag that matched.
fn verified(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(u64, Vec<u8>), SignatureError> {
    let (timestamp, tags) = parse_header(header)?;
    let age_secs = now_secs.abs_diff(timestamp);
    if age_secs > tolerance_secs {
        return Err(SignatureError::OutsideWindow {
            age_secs,
            tolerance_secs,
        });
    }
    let expected = mac(secret, timestamp, body);
    tags.into_iter()
        .find(|tag| expected.clone().verify_slice(tag).is_ok())
        .map(|tag| (timestamp, tag))
        .ok_or(SignatureError::Mismatch)
}

/// A receiver's memory of the signed deliveries it accepted within the replay window: the same
/// signed request sent again (same `t`, same MAC) is refused as [`SignatureError::Replayed`].
/// A genuine redelivery of an item is signed afresh at a new `t`, so it passes here and the
/// receiver de-duplicates it by `Sentio-Delivery-Id`. Memory is bounded by the window: entries
/// older than it are dropped, since [`verify`] refuses their timestamps anyway.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    /// (timestamp, the `v1` tag that matched) of accepted deliveries.
    seen: std::collections::BTreeSet<(u64, Vec<u8>)>,
}

impl ReplayGuard {
    /// [`verify`], then refuse a delivery whose signature was accepted before.
    pub fn accept(
        &mut self,
        secret: &[u8],
        header: &str,
        body: &[u8],
        now_secs: u64,
        tolerance_secs: u64,
    ) -> Result<(), SignatureError> {
        let (timestamp, tag) = verified(secret, header, body, now_secs, tolerance_secs)?;
        let oldest = now_secs.saturating_sub(tolerance_secs);
        self.seen = self.seen.split_off(&(oldest, Vec::new()));
        if self.seen.insert((timestamp, tag)) {
            Ok(())
        } else {
            Err(SignatureError::Replayed)
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-secret";

    #[test]
    fn signs_and_verifies() {
        let header = sign(SECRET, 1_764_236_400, b"{\"a\":1}");
        assert!(header.starts_with("t=1764236400,v1="));
        assert_eq!(
            verify(SECRET, &header, b"{\"a\":1}", 1_764_236_450, 300),
            Ok(())
        );
    }

    #[test]
    fn refusals_table() {
        let header = sign(SECRET, 1_000, b"body");
        // (header, body, secret, now, expected refusal)
        type Case<'a> = (&'a str, &'a [u8], &'a [u8], u64, SignatureError);
        let cases: Vec<Case> = vec![
            (&header, b"body!", SECRET, 1_000, SignatureError::Mismatch),
            (
                &header,
                b"body",
                b"another-secret-16b",
                1_000,
                SignatureError::Mismatch,
            ),
            (
                &header,
                b"body",
                SECRET,
                1_000 + 301,
                SignatureError::OutsideWindow {
                    age_secs: 301,
                    tolerance_secs: 300,
                },
            ),
            (
                "v1=00",
                b"body",
                SECRET,
                1_000,
                SignatureError::Malformed("no t"),
            ),
            (
                "t=1000",
                b"body",
                SECRET,
                1_000,
                SignatureError::Malformed("no v1"),
            ),
            (
                "t=1000,v1=zz",
                b"body",
                SECRET,
                1_000,
                SignatureError::Malformed("v1 is not hex"),
            ),
        ];
        for (header, body, secret, now, want) in cases {
            assert_eq!(
                verify(secret, header, body, now, 300),
                Err(want),
                "{header}"
            );
        }
    }

    #[test]
    fn replay_with_a_new_timestamp_fails() {
        let header = sign(SECRET, 1_000, b"body");
        let tag = header.split_once(",v1=").unwrap().1;
        let forged = format!("t=2000,v1={tag}");
        assert_eq!(
            verify(SECRET, &forged, b"body", 2_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_replay_guard_refuses_the_same_signed_delivery_twice() {
        let mut guard = ReplayGuard::default();
        let first = sign(SECRET, 1_000, b"body");
        assert_eq!(guard.accept(SECRET, &first, b"body", 1_000, 300), Ok(()));
        assert_eq!(
            guard.accept(SECRET, &first, b"body", 1_010, 300),
            Err(SignatureError::Replayed)
        );
        // The same item delivered again, signed at a new time: not a replay.
        let redelivery = sign(SECRET, 1_030, b"body");
        assert_eq!(
            guard.accept(SECRET, &redelivery, b"body", 1_030, 300),
            Ok(())
        );
        // Past the window the timestamp is refused before the memory is asked, and the memory
        // forgets what the window no longer covers.
        assert!(matches!(
            guard.accept(SECRET, &first, b"body", 1_400, 300),
            Err(SignatureError::OutsideWindow { .. })
        ));
        let late = sign(SECRET, 1_400, b"other");
        assert_eq!(guard.accept(SECRET, &late, b"other", 1_400, 300), Ok(()));
        assert_eq!(
            guard.seen.len(),
            1,
            "entries older than the window were kept"
        );
    }

    #[test]
    fn rotation_accepts_any_listed_tag() {
        let old = sign(b"old-secret-0123456789", 1_000, b"b");
        let new = sign(SECRET, 1_000, b"b");
        let both = format!("{old},v1={}", new.split_once(",v1=").unwrap().1);
        assert_eq!(verify(SECRET, &both, b"b", 1_000, 300), Ok(()));
    }
}
