//! The `redactor` library component called from a native wasmtime host through bindings generated
//! from `wit/sentio.wit`, checked against the native engine on the same inputs.

mod common;

use sentio_host::library::{
    EntityOperator, MaskOptions, Operator, Policy, RedactionError, RedactorComponent,
};

fn load() -> RedactorComponent {
    load_with(&sentio_host::runtime::library_engine().unwrap())
}

fn load_with(engine: &sentio_host::runtime::Engine) -> RedactorComponent {
    let cache = common::workspace_root().join("target/sentio-test-cache");
    RedactorComponent::load(engine, &common::component_path("redactor"), &cache).unwrap()
}

/// Under both engines a host may use: the library host's (no epoch interruption) and Spin's
/// (epoch interruption, under which the store's deadline must be set or the first check traps).
#[test]
fn component_matches_native_engine() {
    let engines = [
        sentio_host::runtime::library_engine().unwrap(),
        sentio_host::runtime::engine(&Default::default()).unwrap(),
    ];
    for engine in &engines {
        matches_native_engine(&load_with(engine));
    }
}

fn matches_native_engine(component: &RedactorComponent) {
    let mut instance = component.instantiate().unwrap();
    let native = sentio_redact::Engine::builtin().unwrap();
    let texts = [
        "Hi, my name is Maria Gonzalez, call +44 20 7946 0958",
        "card ４１１１ １１１１ １１１１ １１１１ and ip 192.168.1.20",
        "john dot smith at gmail dot com wrote: 😡 terrible!",
        "no personal data here at all",
        "",
    ];
    for text in texts {
        let got = instance.redact(text, &Policy::default()).unwrap().unwrap();
        let want = native.redact(text, &Default::default(), &mut Default::default());
        assert_eq!(got.redacted_text, want.redacted_text, "{text}");
        assert_eq!(got.findings.len(), want.findings.len());
        for (g, w) in got.findings.iter().zip(&want.findings) {
            assert_eq!(*g.entity_type, *w.entity_type);
            assert_eq!(
                g.input.utf16,
                (w.input.utf16[0] as u32, w.input.utf16[1] as u32)
            );
            assert_eq!(
                g.output.chars,
                (w.output.chars[0] as u32, w.output.chars[1] as u32)
            );
        }
    }
    let entities = instance.supported_entities().unwrap();
    assert_eq!(entities, native.supported_entities());
}

#[test]
fn component_policies_and_errors() {
    let component = load();
    let mut instance = component.instantiate().unwrap();
    let policy = Policy {
        operators: vec![EntityOperator {
            entity: "PHONE_NUMBER".into(),
            operator: Operator::Mask(MaskOptions {
                masking_char: '#',
                chars_to_mask: None,
                from_end: false,
                keep_last: Some(2),
            }),
        }],
        default_operator: Some(Operator::Pseudonym),
        ..Policy::default()
    };
    let texts = vec![
        "my name is Ann Lee, call 415-555-2671".to_string(),
        "Ann Lee called".to_string(),
    ];
    let results = instance.redact_batch(&texts, &policy).unwrap().unwrap();
    assert_eq!(
        results[0].redacted_text,
        "my name is <PERSON_1>, call ##########71"
    );
    assert_eq!(results[1].redacted_text, "<PERSON_1> called");

    let unknown = Policy {
        entities: Some(vec!["NOT_AN_ENTITY".into()]),
        ..Policy::default()
    };
    assert!(
        matches!(instance.redact("x", &unknown).unwrap(), Err(RedactionError::UnknownEntity(e)) if e == "NOT_AN_ENTITY")
    );
    let hash_without_key = Policy {
        default_operator: Some(Operator::Hash(16)),
        ..Policy::default()
    };
    assert!(matches!(
        instance.redact("x", &hash_without_key).unwrap(),
        Err(RedactionError::InvalidOperator(_))
    ));
    let bad_threshold = Policy {
        score_threshold: Some(3.0),
        ..Policy::default()
    };
    assert!(matches!(
        instance.redact("x", &bad_threshold).unwrap(),
        Err(RedactionError::InvalidThreshold(_))
    ));
}
