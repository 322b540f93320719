//! Span and redaction invariants over generated chat text mixing PII, words and arbitrary Unicode.

use proptest::prelude::*;
use sentio_redact::invariants::check_type_tag_redaction;
use sentio_redact::{Engine, Policy, RequestScope};

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
    "my name’s Bob O’Neil",
    "my husband Dave",
    "password: hunter2",
    "my pin is 4821",
    "postal code K1A 0B1",
    "jörg.müller@beispiel.de",
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn redaction_invariants(text in text_strategy()) {
        let engine = Engine::builtin().unwrap();
        let policy = Policy::default();
        let r = engine.redact(&text, &policy, &mut RequestScope::default());
        if let Err(broken) = check_type_tag_redaction(&engine, &text, &r) {
            panic!("{broken} in {text:?} -> {:?}", r.redacted_text);
        }
    }
}
