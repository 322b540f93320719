//! Sentio's PII redaction engine, in the design of Microsoft Presidio.
//!
//! * [`spec`]: recognizers are data (patterns with scores, context words, validators), loaded from a
//!   compiled-in TOML file and extendable with a team's own.
//! * [`validators`]: checksums and structure rules (Luhn, mod-97, ABA, NHS mod 11, base58check, ...).
//! * [`Engine::analyze`]: runs recognizers, boosts by context, resolves overlaps explicitly.
//! * [`operators`]: replace, mask, remove, keyed hash, pseudonym, keep, chosen per entity type.
//! * [`Engine::redact`]: analysis + operators, with every finding's offsets in bytes, Unicode
//!   scalars and UTF-16 code units, in both the input and the redacted output.
//!
//! Pure Rust: compiles for native targets and `wasm32-wasip2` alike.

pub mod engine;
pub mod invariants;
pub mod operators;
pub mod spec;
pub mod validators;
mod warm_up;

use engine::{Candidate, KnownValue};
use serde::Serialize;
use std::sync::Arc;

pub use engine::{
    AnalyzeOptions, DEFAULT_SCORE_THRESHOLD, Detection, Engine, Explanation, Validation,
};
pub use operators::{Operator, OperatorKind, OperatorPolicy, Pseudonyms};
pub use spec::{PatternSpec, RecognizerFile, RecognizerSpec};

/// Errors building an engine.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RedactError {
    #[error("recognizer `{recognizer}` pattern `{pattern}` does not compile: {reason}")]
    BadPattern {
        recognizer: String,
        pattern: String,
        reason: String,
    },
    #[error("recognizer `{recognizer}` is invalid: {reason}")]
    InvalidRecognizer { recognizer: String, reason: String },
    #[error("two recognizers are named `{0}`")]
    DuplicateRecognizer(String),
}

/// Everything a redaction call needs besides the text. Build it with [`Engine::policy`], which
/// checks it; `Policy::default()` is valid as it is.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub analyze: AnalyzeOptions,
    pub operators: OperatorPolicy,
    /// Key for the hash operator (a tenant's secret).
    pub hash_key: Option<Vec<u8>>,
}

/// A policy as a caller states it, before [`Engine::policy`] checks it.
#[derive(Debug, Clone, Default)]
pub struct PolicySpec {
    pub score_threshold: Option<f32>,
    pub entities: Option<Vec<String>>,
    pub exclude_entities: Vec<String>,
    pub default_operator: Option<Operator>,
    /// (entity type, operator) pairs.
    pub operators: Vec<(String, Operator)>,
    pub hash_key: Option<Vec<u8>>,
}

/// The name under which the default operator's errors are reported (`operators.DEFAULT.type`).
pub const DEFAULT_OPERATOR_KEY: &str = "DEFAULT";

/// Why a policy was refused. `field()` names the part in the JSON API's terms: `entities[0]`,
/// `score_threshold`, `operators.EMAIL_ADDRESS.length`.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("unknown entity type `{entity}`; supported: {supported}")]
    UnknownEntity {
        field: String,
        entity: String,
        supported: String,
    },
    #[error("must be between 0 and 1")]
    ThresholdOutOfRange { threshold: f32 },
    #[error("{reason}")]
    BadOperator { field: String, reason: String },
    #[error("the hash operator needs a tenant key, and none is configured")]
    MissingHashKey { field: String },
}

impl PolicyError {
    pub fn field(&self) -> &str {
        match self {
            Self::UnknownEntity { field, .. }
            | Self::BadOperator { field, .. }
            | Self::MissingHashKey { field } => field,
            Self::ThresholdOutOfRange { .. } => "score_threshold",
        }
    }
}

impl Engine {
    /// Checks `spec` against this engine's entity types and builds the policy.
    pub fn policy(&self, spec: PolicySpec) -> Result<Policy, PolicyError> {
        let known = |field: String, entity: &str| {
            if self.supports_entity(entity) {
                Ok(())
            } else {
                Err(PolicyError::UnknownEntity {
                    field,
                    entity: entity.chars().take(64).collect(),
                    supported: self.supported_entities().join(", "),
                })
            }
        };
        for (i, e) in spec.entities.iter().flatten().enumerate() {
            known(format!("entities[{i}]"), e)?;
        }
        for (i, e) in spec.exclude_entities.iter().enumerate() {
            known(format!("exclude_entities[{i}]"), e)?;
        }
        let score_threshold = spec.score_threshold.unwrap_or(DEFAULT_SCORE_THRESHOLD);
        if !(0.0..=1.0).contains(&score_threshold) {
            return Err(PolicyError::ThresholdOutOfRange {
                threshold: score_threshold,
            });
        }
        let mut operators = OperatorPolicy::default();
        let default = spec
            .default_operator
            .map(|op| (DEFAULT_OPERATOR_KEY.to_owned(), op));
        for (entity, op) in default.into_iter().chain(spec.operators) {
            let field = format!("operators.{entity}");
            if let Err((param, reason)) = op.check() {
                return Err(PolicyError::BadOperator {
                    field: format!("{field}.{param}"),
                    reason,
                });
            }
            if matches!(op, Operator::Hash { .. }) && spec.hash_key.is_none() {
                return Err(PolicyError::MissingHashKey {
                    field: format!("{field}.type"),
                });
            }
            if entity == DEFAULT_OPERATOR_KEY {
                operators.default = op;
            } else {
                known(field, &entity)?;
                operators.per_entity.insert(entity, op);
            }
        }
        Ok(Policy {
            analyze: AnalyzeOptions {
                score_threshold,
                entities: spec.entities,
                exclude_entities: spec.exclude_entities,
            },
            operators,
            hash_key: spec.hash_key,
        })
    }
}

/// State shared by the texts of one request or conversation: `<PERSON_1>` stays the same person,
/// a value found in one text is redacted wherever it recurs in the others, and the end of one
/// text is context for the start of the next.
#[derive(Debug, Default, Clone)]
pub struct RequestScope {
    pseudonyms: Pseudonyms,
    known: Vec<KnownValue>,
    /// The end of the previous text, redacted: an agent's "Can you confirm your date of birth?"
    /// is the context of the customer's "14/03/1985".
    carried_context: CarriedContext,
}

/// How much of the end of one text of a conversation counts as context for the next.
const CARRIED_CONTEXT_BYTES: usize = 64;

/// The last [`CARRIED_CONTEXT_BYTES`] bytes of a text, whole words only, kept inline: a scope per
/// text (one `/redact` `text`) then costs no allocation, and cutting by bytes instead of counting
/// words keeps the per-text cost to a copy (counting words back through the text took 15 % of
/// the engine's instructions on short chat turns).
#[derive(Debug, Clone)]
struct CarriedContext {
    bytes: [u8; CARRIED_CONTEXT_BYTES],
    len: usize,
}

impl Default for CarriedContext {
    fn default() -> Self {
        Self {
            bytes: [0; CARRIED_CONTEXT_BYTES],
            len: 0,
        }
    }
}

impl CarriedContext {
    fn keep_end_of(&mut self, text: &str) {
        let mut start = text.len().saturating_sub(CARRIED_CONTEXT_BYTES);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        // Cut inside a word: leave out its rest, so no part of a word counts as one.
        if start > 0 && !text[..start].ends_with(char::is_whitespace) {
            start = text[start..]
                .find(char::is_whitespace)
                .map_or(text.len(), |i| start + i);
        }
        let tail = &text.as_bytes()[start..];
        self.bytes[..tail.len()].copy_from_slice(tail);
        self.len = tail.len();
    }

    fn as_str(&self) -> &str {
        // Always whole characters of a `str`, so never the empty fallback.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// A `[start, end)` range in the three encodings clients index strings by: UTF-8 bytes (Rust,
/// Go), Unicode scalar values (Python), UTF-16 code units (JavaScript, Java, C#).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Span {
    pub bytes: [usize; 2],
    pub chars: [usize; 2],
    pub utf16: [usize; 2],
}

/// One redacted entity, as reported to callers. It carries no raw value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    #[serde(serialize_with = "serialize_shared_str")]
    pub entity_type: Arc<str>,
    pub score: f32,
    #[serde(serialize_with = "serialize_shared_str")]
    pub recognizer: Arc<str>,
    pub operator: OperatorKind,
    /// Where the entity was in the input.
    pub input: Span,
    /// Where its replacement is in `redacted_text`.
    pub output: Span,
    pub explanation: Explanation,
}

/// Names the engine shares between its findings (`Arc<str>`: a clone per finding allocates
/// nothing) are written as plain strings.
fn serialize_shared_str<S: serde::Serializer>(s: &Arc<str>, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_str(s)
}

/// A redacted text and what was found in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Redaction {
    pub redacted_text: String,
    pub findings: Vec<Finding>,
}

impl Engine {
    /// Finds entities in `text` and replaces each as the policy says; `scope` carries what the earlier texts of the same request or conversation taught.
    pub fn redact(&self, text: &str, policy: &Policy, scope: &mut RequestScope) -> Redaction {
        let detections = self.settled_detections(text, policy, scope);
        let pseudonyms = &mut scope.pseudonyms;
        let mut redacted = String::with_capacity(text.len());
        let mut output_ranges = Vec::with_capacity(detections.len());
        let mut cursor = 0;
        for d in &detections {
            redacted.push_str(&text[cursor..d.start]);
            let op = policy.operators.for_entity(&d.entity_type);
            let out_start = redacted.len();
            operators::apply(
                op,
                &d.entity_type,
                &text[d.start..d.end],
                policy.hash_key.as_deref(),
                pseudonyms,
                &mut redacted,
            );
            output_ranges.push((out_start, redacted.len()));
            cursor = d.end;
        }
        redacted.push_str(&text[cursor..]);
        scope.carried_context.keep_end_of(&redacted);

        for d in &detections {
            let value = &text[d.start..d.end];
            if !scope
                .known
                .iter()
                .any(|k| k.value == value && self.entity_of(&k.found_as) == &*d.entity_type)
            {
                scope.known.push(KnownValue::new(
                    value.to_owned(),
                    Candidate::from_detection(d),
                ));
            }
        }
        let (mut input_at, mut output_at) =
            (OffsetCounter::new(text), OffsetCounter::new(&redacted));
        let findings = detections
            .into_iter()
            .zip(output_ranges)
            .map(|(d, (out_start, out_end))| Finding {
                operator: policy.operators.for_entity(&d.entity_type).kind(),
                input: input_at.span(d.start, d.end),
                output: output_at.span(out_start, out_end),
                entity_type: d.entity_type,
                score: d.score,
                recognizer: d.recognizer,
                explanation: d.explanation,
            })
            .collect();
        Redaction {
            redacted_text: redacted,
            findings,
        }
    }
}

/// Most extra analysis passes over the type-tagged text before redaction gives up settling.
const MAX_SETTLE_PASSES: usize = 3;

impl Engine {
    /// The detections of `text`, plus whatever only becomes visible once the detected values are
    /// gone. Replacing a value changes its neighbours' context: in `1b8::34DDD@DDDD-DDDDe.com` the
    /// e-mail wins, and `1b8::` in front of `<EMAIL_ADDRESS>` is then a well-formed IPv6 address
    /// that a second redaction would find (a fuzzer showed it). So the text is analysed again with
    /// type tags in place, and new findings outside the tags are mapped back to the input and
    /// added, until nothing new appears. This keeps redaction idempotent — redacting redacted text
    /// finds nothing — at the cost of one more analysis for texts that had findings.
    fn settled_detections(
        &self,
        text: &str,
        policy: &Policy,
        scope: &RequestScope,
    ) -> Vec<Detection> {
        let mut detections = self.analyze_with_known(
            text,
            &policy.analyze,
            &scope.known,
            scope.carried_context.as_str(),
        );
        for _ in 0..MAX_SETTLE_PASSES {
            if detections.is_empty() {
                break;
            }
            // The type-tagged text, and for each tag its range there and the input bytes it took.
            let mut tagged = String::with_capacity(text.len());
            let mut tags = Vec::with_capacity(detections.len());
            let mut cursor = 0;
            for d in &detections {
                tagged.push_str(&text[cursor..d.start]);
                let start = tagged.len();
                tagged.push('<');
                tagged.push_str(&d.entity_type);
                tagged.push('>');
                tags.push((start, tagged.len(), d.end - d.start));
                cursor = d.end;
            }
            tagged.push_str(&text[cursor..]);
            let mut found_more = false;
            let extras = self.analyze_with_known(
                &tagged,
                &policy.analyze,
                &scope.known,
                scope.carried_context.as_str(),
            );
            for mut extra in extras {
                let touches_tag = tags
                    .iter()
                    .any(|&(start, end, _)| extra.start < end && start < extra.end);
                if touches_tag {
                    continue;
                }
                // Outside the tags the tagged text is the input, shifted by the tags before.
                let shift = |at: usize| -> usize {
                    tags.iter()
                        .filter(|&&(_, end, _)| end <= at)
                        .fold(at as isize, |p, &(start, end, taken)| {
                            p - (end - start) as isize + taken as isize
                        }) as usize
                };
                extra.start = shift(extra.start);
                extra.end = shift(extra.end);
                detections.push(extra);
                found_more = true;
            }
            if !found_more {
                break;
            }
            detections.sort_by_key(|d| d.start);
        }
        detections
    }
}

/// Converts byte ranges of `text` (on char boundaries) into [`Span`]s. Ranges in order (findings,
/// sentences) take one pass over the text; a range before the last one starts the count again.
pub fn spans(text: &str, ranges: impl Iterator<Item = (usize, usize)>) -> Vec<Span> {
    let mut counter = OffsetCounter::new(text);
    ranges.map(|(s, e)| counter.span(s, e)).collect()
}

/// Counts Unicode scalars and UTF-16 code units up to byte offsets asked for in order.
struct OffsetCounter<'t> {
    text: &'t [u8],
    /// Counted up to this byte offset.
    at: usize,
    chars: usize,
    utf16: usize,
}

impl<'t> OffsetCounter<'t> {
    fn new(text: &'t str) -> Self {
        Self {
            text: text.as_bytes(),
            at: 0,
            chars: 0,
            utf16: 0,
        }
    }

    /// `[bytes, chars, utf16]` at byte offset `p` (a char boundary). Counted over bytes, which
    /// vectorizes: every scalar has one byte that is not a continuation byte (`10xxxxxx`), and
    /// the scalars of four UTF-8 bytes (lead byte `11110xxx`) take two UTF-16 units.
    fn at(&mut self, p: usize) -> [usize; 3] {
        if p < self.at {
            (self.at, self.chars, self.utf16) = (0, 0, 0);
        }
        let (mut chars, mut astral) = (0, 0);
        // Byte counters over chunks that cannot overflow them: 32 bytes an instruction.
        for chunk in self.text[self.at..p].chunks(255) {
            let (mut chunk_chars, mut chunk_astral) = (0u8, 0u8);
            for &b in chunk {
                chunk_chars += u8::from((b as i8) >= -0x40);
                chunk_astral += u8::from(b >= 0xF0);
            }
            chars += usize::from(chunk_chars);
            astral += usize::from(chunk_astral);
        }
        self.at = p;
        self.chars += chars;
        self.utf16 += chars + astral;
        [p, self.chars, self.utf16]
    }

    /// The span of bytes `start..end`.
    fn span(&mut self, start: usize, end: usize) -> Span {
        let (s, e) = (self.at(start), self.at(end));
        Span {
            bytes: [s[0], e[0]],
            chars: [s[1], e[1]],
            utf16: [s[2], e[2]],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_in_json_names_its_entity_recognizer_and_pattern_as_strings() {
        let engine = Engine::builtin().unwrap();
        let r = engine.redact(
            "mail me at maria.g@example.com",
            &Policy::default(),
            &mut RequestScope::default(),
        );
        let json = serde_json::to_value(&r.findings[0]).unwrap();
        assert_eq!(json["entity_type"], "EMAIL_ADDRESS");
        assert_eq!(json["recognizer"], "email");
        assert_eq!(json["explanation"]["pattern"], "email");
        assert_eq!(json["input"]["utf16"], serde_json::json!([11, 30]));
    }

    #[test]
    fn the_end_of_one_text_is_context_for_the_start_of_the_next() {
        let engine = Engine::builtin().unwrap();
        let policy = Policy::default();
        let answer = |question: &str, reply: &str| {
            let mut scope = RequestScope::default();
            engine.redact(question, &policy, &mut scope);
            engine.redact(reply, &policy, &mut scope).redacted_text
        };
        // A date or a bare number means nothing alone; after the agent's question it is PII.
        assert_eq!(
            answer(
                "Can you confirm your date of birth?",
                "Sure, it's 14/03/1985"
            ),
            "Sure, it's <DATE_OF_BIRTH>"
        );
        assert_eq!(
            answer("What is your account number?", "12345678"),
            "<US_BANK_NUMBER>"
        );
        // A name given as the whole answer, with or without a speaker's label; a spoken e-mail.
        assert_eq!(
            answer("Agent: And your first name?", "Customer: Anna"),
            "Customer: <PERSON>"
        );
        assert_eq!(
            answer("Who am I speaking with?", "Michael Brown."),
            "<PERSON>."
        );
        assert_eq!(answer("What's your name?", "Sure"), "Sure");
        assert_eq!(
            answer("What's your email?", "anna.kowalski at gmail"),
            "<EMAIL_ADDRESS>"
        );
        let alone = |reply: &str| {
            engine
                .redact(reply, &policy, &mut RequestScope::default())
                .redacted_text
        };
        assert_eq!(alone("Sure, it's 14/03/1985"), "Sure, it's 14/03/1985");
        assert_eq!(alone("12345678"), "12345678");
        assert_eq!(alone("Customer: Anna"), "Customer: Anna");
        assert_eq!(alone("I work at Yahoo"), "I work at Yahoo");
        // Only a window that reaches back to the start of the reply.
        let far = "I booked it in the app last week and it charged me on 14/03/2024";
        assert_eq!(answer("Can you confirm your date of birth?", far), far);
    }

    #[test]
    fn a_value_found_in_one_text_is_redacted_where_it_recurs_in_the_scope() {
        let engine = Engine::builtin().unwrap();
        let policy = Policy::default();
        let mut scope = RequestScope::default();
        // Found through its context word, then typed again without one (and far enough from it
        // that the first text's end carries no context word into the second).
        let first = engine.redact(
            "my account number is 12345678901 and I was charged twice this week for nothing",
            &policy,
            &mut scope,
        );
        assert_eq!(
            first.redacted_text,
            "my account number is <US_BANK_NUMBER> and I was charged twice this week for nothing"
        );
        let again = engine.redact("yes 12345678901, and 12345678901x", &policy, &mut scope);
        assert_eq!(
            again.redacted_text,
            "yes <US_BANK_NUMBER>, and 12345678901x"
        );
        assert_eq!(
            &*again.findings[0].explanation.pattern,
            "bank_digits (repeat)"
        );
        assert_eq!(again.findings[0].score, first.findings[0].score);
        // A new scope knows nothing; a policy that leaves the entity out does not propagate it.
        let fresh = engine.redact("yes 12345678901", &policy, &mut RequestScope::default());
        assert!(fresh.findings.is_empty());
        let no_bank = engine
            .policy(PolicySpec {
                exclude_entities: vec!["US_BANK_NUMBER".into()],
                ..Default::default()
            })
            .unwrap();
        assert!(
            engine
                .redact("yes 12345678901", &no_bank, &mut scope)
                .findings
                .is_empty()
        );
        // Each distinct value is kept once however often it recurs.
        engine.redact("12345678901 12345678901", &policy, &mut scope);
        assert_eq!(scope.known.len(), 1);
    }

    #[test]
    fn policy_errors_name_their_field() {
        let engine = Engine::builtin().unwrap();
        let field = |spec: PolicySpec| engine.policy(spec).unwrap_err().field().to_owned();
        let bad_entities = PolicySpec {
            entities: Some(vec!["EMAIL_ADDRESS".into(), "NOPE".into()]),
            ..Default::default()
        };
        assert_eq!(field(bad_entities), "entities[1]");
        let bad_threshold = PolicySpec {
            score_threshold: Some(1.5),
            ..Default::default()
        };
        assert_eq!(field(bad_threshold), "score_threshold");
        let hash_without_key = PolicySpec {
            default_operator: Some(Operator::Hash { length: 16 }),
            ..Default::default()
        };
        assert_eq!(field(hash_without_key), "operators.DEFAULT.type");
        let short_hash = PolicySpec {
            operators: vec![("PHONE_NUMBER".into(), Operator::Hash { length: 2 })],
            hash_key: Some(b"k".to_vec()),
            ..Default::default()
        };
        assert_eq!(field(short_hash), "operators.PHONE_NUMBER.length");
        let ok = engine
            .policy(PolicySpec {
                operators: vec![("PERSON".into(), Operator::Pseudonym)],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ok.operators.for_entity("PERSON"), &Operator::Pseudonym);
    }

    #[test]
    fn spans_in_any_order_count_from_the_start() {
        let text = "a😀béc😀";
        // In order, touching, repeated, backwards, the whole text, then empty ranges at both
        // ends (the first asked for after the counter reached the end).
        let ranges = [
            (0, 1),
            (1, 5),
            (5, 6),
            (1, 5),
            (6, 8),
            (0, 13),
            (0, 0),
            (13, 13),
        ];
        let s = spans(text, ranges.into_iter());
        for (span, range) in s[..6].iter().zip(&ranges) {
            assert_eq!(span.bytes, [range.0, range.1]);
            crate::invariants::check_span(text, span).unwrap();
        }
        let at = |bytes, chars, utf16| Span {
            bytes: [bytes, bytes],
            chars: [chars, chars],
            utf16: [utf16, utf16],
        };
        assert_eq!(s[6], at(0, 0, 0));
        assert_eq!(s[7], at(13, 6, 8));
    }

    #[test]
    fn spans_in_three_encodings() {
        // "é" is 2 bytes / 1 char / 1 unit; "😀" is 4 bytes / 1 char / 2 units.
        let text = "é😀ab";
        let s = spans(text, [(6, 7)].into_iter());
        assert_eq!(
            s[0],
            Span {
                bytes: [6, 7],
                chars: [2, 3],
                utf16: [3, 4]
            }
        );
    }
}
