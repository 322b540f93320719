//! What every redaction guarantees, as one checkable function: the property tests and the
//! fuzzers assert exactly this, so the promise is written down once.

use crate::{Engine, Policy, Redaction, RequestScope, Span};

/// Checks `redaction` of `text` under a type-tag policy (`Policy::default()`): every span is in
/// bounds, on char boundaries and agrees in bytes, chars and UTF-16; findings are sorted and
/// disjoint; each replacement is `<TYPE>` where the output span says; no detected value survives
/// as a word in the output; redacting the output again finds nothing. Returns what broke.
pub fn check_type_tag_redaction(
    engine: &Engine,
    text: &str,
    redaction: &Redaction,
) -> Result<(), String> {
    let mut last_end = 0;
    for f in &redaction.findings {
        check_span(text, &f.input).map_err(|e| format!("input {e}"))?;
        if f.input.bytes[0] < last_end {
            return Err(format!("findings overlap or are unsorted at {:?}", f.input));
        }
        last_end = f.input.bytes[1];
        check_span(&redaction.redacted_text, &f.output).map_err(|e| format!("output {e}"))?;
        let [o0, o1] = f.output.bytes;
        if redaction.redacted_text[o0..o1] != format!("<{}>", f.entity_type) {
            return Err(format!("output span {:?} is not the type tag", f.output));
        }
        let value = &text[f.input.bytes[0]..f.input.bytes[1]];
        if contains_as_word(&redaction.redacted_text, value) {
            return Err(format!("a detected {} value survives", f.entity_type));
        }
    }
    let again = engine.redact(
        &redaction.redacted_text,
        &Policy::default(),
        &mut RequestScope::default(),
    );
    if !again.findings.is_empty() {
        let types: Vec<_> = again.findings.iter().map(|f| &f.entity_type).collect();
        return Err(format!("a second pass found {types:?}"));
    }
    if again.redacted_text != redaction.redacted_text {
        return Err("a second pass changed the text".into());
    }
    Ok(())
}

/// A span is in bounds, non-empty, on char boundaries, and its three encodings agree.
pub fn check_span(text: &str, s: &Span) -> Result<(), String> {
    let [b0, b1] = s.bytes;
    if !(b0 < b1 && b1 <= text.len()) {
        return Err(format!("span {s:?} out of bounds of {} bytes", text.len()));
    }
    if !(text.is_char_boundary(b0) && text.is_char_boundary(b1)) {
        return Err(format!("span {s:?} not on char boundaries"));
    }
    let expected = Span {
        bytes: s.bytes,
        chars: [text[..b0].chars().count(), text[..b1].chars().count()],
        utf16: [
            text[..b0].encode_utf16().count(),
            text[..b1].encode_utf16().count(),
        ],
    };
    if *s != expected {
        return Err(format!("span {s:?} disagrees with {expected:?}"));
    }
    Ok(())
}

/// `needle` occurs in `haystack` with no letter or digit right before or after it.
fn contains_as_word(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(i, m)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + m.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}
