//! The `classifier` library component (pre-initialized, as it ships) called from a native
//! wasmtime host through bindings generated from `wit/sentio.wit`, checked against the native
//! pipeline on the same model and texts.

mod common;

use sentio_host::library::{ClassifierComponent, ClassifyError, Label};
use sentio_model::{Classifier as _, ClassifyOptions, TractPipeline};

fn load() -> ClassifierComponent {
    let engine = sentio_host::runtime::library_engine().unwrap();
    let cache = common::workspace_root().join("target/sentio-test-cache");
    ClassifierComponent::load(
        &engine,
        &common::component_path("classifier.preinit"),
        &cache,
    )
    .unwrap()
}

fn native() -> TractPipeline {
    let dir = common::workspace_root().join("models/sentiment-student");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    TractPipeline::load(
        &read("model.onnx"),
        &read("tokenizer.json"),
        &read("config.json"),
    )
    .unwrap()
}

fn label(l: sentio_model::Label) -> Label {
    match l {
        sentio_model::Label::Negative => Label::Negative,
        sentio_model::Label::Neutral => Label::Neutral,
        sentio_model::Label::Positive => Label::Positive,
    }
}

#[test]
fn component_matches_native_pipeline() {
    let component = load();
    let native = native();
    let texts: Vec<String> = [
        "This is the third time my order was lost. I want a refund now.",
        "Thanks so much, the agent fixed it in two minutes!",
        "Can you tell me when the new plan becomes available?",
        // Emoji and accents before the second sentence: its UTF-16 offsets differ from its byte
        // and char offsets.
        "Le colis est arrivé 😡😡 en retard. But the support team was wonderful 👍.",
        "",
        "   ",
    ]
    .map(String::from)
    .to_vec();
    let got = component
        .instantiate()
        .unwrap()
        .classify(&texts)
        .unwrap()
        .unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = native.classify(&refs, &ClassifyOptions::default()).unwrap();
    assert_eq!(got.len(), texts.len());
    for ((text, g), w) in texts.iter().zip(&got).zip(&want) {
        assert_eq!(g.label, label(w.label), "{text}");
        // Same model and code; only the matrix kernels differ (wasm simd128 against the host's).
        for (a, b) in [
            (g.scores.negative, w.scores.negative),
            (g.scores.neutral, w.scores.neutral),
            (g.scores.positive, w.scores.positive),
        ] {
            assert!((a - b).abs() < 1e-3, "{text}: {a} vs {b}");
        }
        assert!((g.confidence - w.confidence).abs() < 1e-3);
        assert_eq!(g.model_id, native.model().id);
        assert_eq!(g.model_version, native.model().version);
        assert_eq!(g.sentences.len(), w.sentences.len(), "{text}");
        let utf16: Vec<u16> = text.encode_utf16().collect();
        for (gs, ws) in g.sentences.iter().zip(&w.sentences) {
            assert_eq!(gs.label, label(ws.label));
            let sentence =
                String::from_utf16(&utf16[gs.utf16_start as usize..gs.utf16_end as usize]).unwrap();
            assert_eq!(sentence, text[ws.range.clone()], "{text}");
        }
    }
    assert_eq!(got[0].label, Label::Negative);
    assert_eq!(got[1].label, Label::Positive);
    assert_eq!(got[3].sentences.len(), 2);
    // Nothing said: the defined answer for empty and blank text.
    for blank in &got[4..] {
        assert_eq!(blank.label, Label::Neutral);
        assert_eq!(blank.scores.neutral, 1.0);
    }
}

#[test]
fn component_errors_are_typed() {
    let component = load();
    let mut instance = component.instantiate().unwrap();
    assert!(matches!(
        instance.classify(&[]).unwrap(),
        Err(ClassifyError::EmptyInput)
    ));
    let limit = sentio_core::config::DEFAULT_MAX_BATCH_TEXTS;
    let texts = vec!["fine".to_owned(); limit + 1];
    assert!(matches!(
        instance.classify(&texts).unwrap(),
        Err(ClassifyError::TooManyTexts(n)) if n as usize == limit
    ));
    // The instance is still usable after a refused call.
    let ok = instance.classify(&texts[..2]).unwrap().unwrap();
    assert_eq!(ok.len(), 2);
}
