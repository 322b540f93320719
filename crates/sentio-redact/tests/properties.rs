//! Span and redaction invariants over generated chat text mixing PII, words and arbitrary Unicode.

use proptest::prelude::*;
use sentio_redact::{Engine, Policy, RequestScope, Span};

const FRAGMENTS: &[&str] = &[
    "my email is jane.doe@example.com",
    "john dot smith at gmail dot com",
    "call +44 20 7946 0958",
    "phone (415) 555-2671",
    "my phone is 4155552671",
    "card 4111 1111 1111 1111",
    "４１１１ １１１１ １１１１ １１１１",
    "IBAN GB82 WEST 1234 5698 7654 32",
    "ssn 536-90-4399",
    "ip 192.168.10.24",
    "2001:db8::8a2e:370:7334",
    "https://example.com/a?b=c",
    "00:1A:2B:3C:4D:5E",
    "AKIAIOSFODNN7EXAMPLE",
    "born 14/03/1985",
    "my name is Maria Gonzalez",
    "order #4155552671",
    "the app keeps crashing",
    "I am so angry 😡",
    "merci beaucoup, très bien",
    "ありがとう",
    "\n",
    " ",
];

fn text_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
        1 => "[0-9 .\\-+()@]{0,16}",
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|v| v.join(" "))
}

fn check_span(text: &str, s: &Span) {
    let [b0, b1] = s.bytes;
    assert!(b0 < b1 && b1 <= text.len(), "span {s:?} out of bounds");
    assert!(text.is_char_boundary(b0) && text.is_char_boundary(b1));
    assert_eq!(text[..b0].chars().count(), s.chars[0]);
    assert_eq!(text[..b1].chars().count(), s.chars[1]);
    assert_eq!(text[..b0].encode_utf16().count(), s.utf16[0]);
    assert_eq!(text[..b1].encode_utf16().count(), s.utf16[1]);
}

fn contains_as_word(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(i, m)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + m.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn redaction_invariants(text in text_strategy()) {
        let engine = Engine::builtin().unwrap();
        let policy = Policy::default();
        let r = engine.redact(&text, &policy, &mut RequestScope::default());
        let mut last_end = 0;
        for f in &r.findings {
            check_span(&text, &f.input);
            assert!(f.input.bytes[0] >= last_end, "findings overlap or are unsorted");
            last_end = f.input.bytes[1];
            let [o0, o1] = f.output.bytes;
            assert_eq!(&r.redacted_text[o0..o1], format!("<{}>", f.entity_type));
            check_span(&r.redacted_text, &f.output);
            let value = &text[f.input.bytes[0]..f.input.bytes[1]];
            assert!(
                !contains_as_word(&r.redacted_text, value),
                "detected value {value:?} survives in {:?}", r.redacted_text
            );
        }
        // Idempotence: the redacted text holds nothing more to find.
        let again = engine.redact(&r.redacted_text, &policy, &mut RequestScope::default());
        assert!(again.findings.is_empty(), "second pass found {:?} in {:?}", again.findings, r.redacted_text);
        assert_eq!(again.redacted_text, r.redacted_text);
    }
}
