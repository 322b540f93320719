//! Request metadata that flows through every tier unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ApiError;

/// How urgently a caller wants an answer; routing (edge, escalate, queue) reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

/// Who and where a text came from. Passed through to responses, queues and webhooks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// `chat`, `email`, `voice`, `ticket`, ... (free text, used for segmenting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// When the customer wrote it, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Caller-defined labels (string to string), e.g. `{"region": "eu", "plan": "pro"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// Longest identifier or label value accepted in metadata.
pub const MAX_METADATA_VALUE: usize = 256;
pub const MAX_ATTRIBUTES: usize = 32;

impl Metadata {
    /// Checks what serde cannot: lengths and the timestamp format.
    pub fn check(&self, field_prefix: &str) -> Result<(), ApiError> {
        let f = |name: &str| format!("{field_prefix}.{name}");
        for (name, value) in [
            ("customer_id", &self.customer_id),
            ("channel", &self.channel),
            ("conversation_id", &self.conversation_id),
        ] {
            if value.as_ref().is_some_and(|v| v.len() > MAX_METADATA_VALUE) {
                return Err(ApiError::invalid(
                    f(name),
                    format!("must be at most {MAX_METADATA_VALUE} bytes"),
                ));
            }
        }
        if let Some(ts) = &self.timestamp
            && !is_rfc3339(ts)
        {
            return Err(ApiError::invalid(
                f("timestamp"),
                "must be an RFC 3339 date-time such as 2026-11-27T09:30:00Z",
            ));
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(ApiError::invalid(
                f("attributes"),
                format!("at most {MAX_ATTRIBUTES} attributes"),
            ));
        }
        if let Some((k, _)) = self
            .attributes
            .iter()
            .find(|(k, v)| k.len() > MAX_METADATA_VALUE || v.len() > MAX_METADATA_VALUE)
        {
            return Err(ApiError::invalid(
                f(&format!("attributes.{k}")),
                format!("keys and values must be at most {MAX_METADATA_VALUE} bytes"),
            ));
        }
        Ok(())
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`, with calendar-valid fields.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return false;
    }
    if b[13] != b':' || b[16] != b':' {
        return false;
    }
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if d == 0 || d > dim || h > 23 || mi > 59 || sec > 60 {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &frac[digits..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let all_digits = [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit());
            all_digits
                && (h1 - b'0') * 10 + (h2 - b'0') <= 23
                && (m1 - b'0') * 10 + (m2 - b'0') <= 59
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_table() {
        for (s, ok) in [
            ("2026-11-27T09:30:00Z", true),
            ("2026-11-27T09:30:00.123+01:00", true),
            ("2024-02-29T00:00:00-05:00", true),
            ("2023-02-29T00:00:00Z", false),
            ("2026-13-01T00:00:00Z", false),
            ("2026-11-27 09:30:00", false),
            ("yesterday", false),
            ("2026-11-27T09:30:00.Z", false),
        ] {
            assert_eq!(is_rfc3339(s), ok, "{s}");
        }
    }
}
