//! Operators: what a finding becomes in the redacted text (Presidio's anonymizer operators).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What to put in place of a finding.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operator {
    /// `<ENTITY_TYPE>`, or `new_value` when given.
    Replace {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_value: Option<String>,
    },
    /// Replace characters with `masking_char`: `chars_to_mask` of them (all when absent) from the
    /// start, or from the end with `from_end`; `keep_last` masks all but the last N instead.
    Mask {
        #[serde(default = "default_masking_char")]
        masking_char: char,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chars_to_mask: Option<usize>,
        #[serde(default)]
        from_end: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep_last: Option<usize>,
    },
    /// Delete the value.
    Remove,
    /// `<ENTITY_TYPE#hex>`: HMAC-SHA256 of the normalized value under the tenant's key, truncated to
    /// `length` hex digits. Stable across calls and requests for the same key.
    Hash {
        #[serde(default = "default_hash_length")]
        length: usize,
    },
    /// `<ENTITY_TYPE_N>`: the same value gets the same N within one request or conversation.
    Pseudonym,
    /// Leave the text as it is (the finding is still reported).
    Keep,
}

fn default_masking_char() -> char {
    '*'
}

fn default_hash_length() -> usize {
    16
}

pub const MIN_HASH_LENGTH: usize = 8;
pub const MAX_HASH_LENGTH: usize = 64;

/// Which operator a finding went through, without its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorKind {
    Replace,
    Mask,
    Remove,
    Hash,
    Pseudonym,
    Keep,
}

impl Operator {
    pub fn kind(&self) -> OperatorKind {
        match self {
            Self::Replace { .. } => OperatorKind::Replace,
            Self::Mask { .. } => OperatorKind::Mask,
            Self::Remove => OperatorKind::Remove,
            Self::Hash { .. } => OperatorKind::Hash,
            Self::Pseudonym => OperatorKind::Pseudonym,
            Self::Keep => OperatorKind::Keep,
        }
    }

    /// Checks parameters that serde cannot: returns the offending field's name and the problem.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match self {
            Self::Hash { length } if !(MIN_HASH_LENGTH..=MAX_HASH_LENGTH).contains(length) => {
                Err((
                    "length",
                    format!("must be between {MIN_HASH_LENGTH} and {MAX_HASH_LENGTH}"),
                ))
            }
            Self::Mask {
                chars_to_mask: Some(_),
                keep_last: Some(_),
                ..
            } => Err((
                "keep_last",
                "give either chars_to_mask or keep_last, not both".into(),
            )),
            _ => Ok(()),
        }
    }
}

impl Default for Operator {
    fn default() -> Self {
        Self::Replace { new_value: None }
    }
}

/// Operators per entity type, with a default for the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorPolicy {
    #[serde(default)]
    pub default: Operator,
    #[serde(default)]
    pub per_entity: BTreeMap<String, Operator>,
}

impl OperatorPolicy {
    pub fn for_entity(&self, entity: &str) -> &Operator {
        self.per_entity.get(entity).unwrap_or(&self.default)
    }
}

/// Keeps `<PERSON_1>` the same person across the texts of one request or conversation.
/// Ordered maps, not hash maps: keys are customer-controlled, and a pre-initialized component
/// would freeze a hash seed into its snapshot.
#[derive(Debug, Default, Clone)]
pub struct Pseudonyms {
    assigned: BTreeMap<(String, String), usize>,
    next: BTreeMap<String, usize>,
}

impl Pseudonyms {
    /// The N of `<ENTITY_N>` for `value`: the same for every spelling of one value.
    pub fn number(&mut self, entity: &str, value: &str) -> usize {
        let key = (entity.to_owned(), normalize(value));
        match self.assigned.get(&key) {
            Some(&n) => n,
            None => {
                let counter = self.next.entry(entity.to_owned()).or_insert(0);
                *counter += 1;
                self.assigned.insert(key, *counter);
                *counter
            }
        }
    }
}

/// The form of a value that two spellings of it share: full-width folded to ASCII, lower-case,
/// letters and digits only ("415-555-2671" and "(415) 555 2671" hash alike).
pub fn normalize(value: &str) -> String {
    crate::validators::fold_full_width(value)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Keyed hash of a value for the hash operator.
pub fn keyed_hash(key: &[u8], entity: &str, value: &str, length: usize) -> String {
    // A key of any length is valid for HMAC, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(entity.as_bytes());
    mac.update(b"\0");
    mac.update(normalize(value).as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(2 * digest.len());
    for b in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{b:02x}");
    }
    hex.truncate(length);
    hex
}

/// Applies `op` to one finding's text, appending the replacement to `out`.
pub(crate) fn apply(
    op: &Operator,
    entity: &str,
    value: &str,
    hash_key: Option<&[u8]>,
    pseudonyms: &mut Pseudonyms,
    out: &mut String,
) {
    // Writing to a String cannot fail, hence the ignored `write!` results.
    match op {
        Operator::Replace {
            new_value: Some(new_value),
        } => out.push_str(new_value),
        Operator::Replace { new_value: None } => {
            let _ = write!(out, "<{entity}>");
        }
        Operator::Mask {
            masking_char,
            chars_to_mask,
            from_end,
            keep_last,
        } => {
            let n = value.chars().count();
            let (from, to) = match (keep_last, chars_to_mask) {
                (Some(keep), _) => (0, n.saturating_sub(*keep)),
                (None, Some(count)) if *from_end => (n.saturating_sub(*count), n),
                (None, Some(count)) => (0, (*count).min(n)),
                (None, None) => (0, n),
            };
            out.extend(value.chars().enumerate().map(|(i, c)| {
                if (from..to).contains(&i) {
                    *masking_char
                } else {
                    c
                }
            }));
        }
        Operator::Remove => {}
        Operator::Hash { length } => match hash_key {
            Some(key) => {
                let _ = write!(
                    out,
                    "<{entity}#{}>",
                    keyed_hash(key, entity, value, *length)
                );
            }
            // Policies are checked before use (`Policy::check`), so this is unreachable in
            // practice; fall back to the safest operator rather than leak the value.
            None => {
                let _ = write!(out, "<{entity}>");
            }
        },
        Operator::Pseudonym => {
            let _ = write!(out, "<{entity}_{}>", pseudonyms.number(entity, value));
        }
        Operator::Keep => out.push_str(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(op: Operator, value: &str) -> String {
        run_with_key(op, value, b"k")
    }

    fn run_with_key(op: Operator, value: &str, key: &[u8]) -> String {
        let mut out = String::new();
        apply(
            &op,
            "CREDIT_CARD",
            value,
            Some(key),
            &mut Pseudonyms::default(),
            &mut out,
        );
        out
    }

    #[test]
    fn operator_table() {
        let card = "4111 1111 1111 1111";
        let mask = |chars_to_mask, from_end, keep_last| Operator::Mask {
            masking_char: '*',
            chars_to_mask,
            from_end,
            keep_last,
        };
        assert_eq!(run(Operator::default(), card), "<CREDIT_CARD>");
        assert_eq!(
            run(
                Operator::Replace {
                    new_value: Some("[card]".into())
                },
                card
            ),
            "[card]"
        );
        assert_eq!(run(mask(None, false, Some(4)), card), "***************1111");
        assert_eq!(run(mask(Some(4), true, None), card), "4111 1111 1111 ****");
        assert_eq!(run(mask(Some(4), false, None), card), "**** 1111 1111 1111");
        assert_eq!(run(mask(Some(99), false, None), "ab"), "**");
        assert_eq!(run(Operator::Remove, card), "");
        assert_eq!(run(Operator::Keep, card), card);
        let h = run(Operator::Hash { length: 12 }, card);
        assert_eq!(h.len(), "<CREDIT_CARD#>".len() + 12);
        assert_eq!(h, run(Operator::Hash { length: 12 }, "4111-1111-1111-1111"));
        assert_ne!(
            h,
            run_with_key(Operator::Hash { length: 12 }, card, b"other")
        );
        assert!(h.starts_with("<CREDIT_CARD#") && h.ends_with('>'), "{h}");
    }

    #[test]
    fn pseudonyms_are_stable_per_value() {
        let mut p = Pseudonyms::default();
        assert_eq!(p.number("PERSON", "John Smith"), 1);
        assert_eq!(p.number("PERSON", "Jane Doe"), 2);
        assert_eq!(p.number("PERSON", "john smith"), 1);
        assert_eq!(p.number("EMAIL_ADDRESS", "a@b.co"), 1);
        let mut out = String::new();
        apply(
            &Operator::Pseudonym,
            "PERSON",
            "JANE DOE",
            None,
            &mut p,
            &mut out,
        );
        assert_eq!(out, "<PERSON_2>");
    }

    #[test]
    fn operator_json_shape() {
        let op: Operator =
            serde_json::from_str(r##"{"type":"mask","keep_last":4,"masking_char":"#"}"##).unwrap();
        assert_eq!(
            op,
            Operator::Mask {
                masking_char: '#',
                chars_to_mask: None,
                from_end: false,
                keep_last: Some(4)
            }
        );
        assert!(serde_json::from_str::<Operator>(r#"{"type":"mask","bogus":1}"#).is_err());
        assert!(serde_json::from_str::<Operator>(r#"{"type":"explode"}"#).is_err());
    }
}
