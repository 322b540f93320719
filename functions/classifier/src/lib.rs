//! The edge's sentiment model as a library component (`world classifier`): a Spin app can add it
//! as a component dependency, any wasmtime host can call it directly. It classifies texts that
//! are already redacted (compose it with the `redactor` component); the work is `sentio-model`'s,
//! the same pipeline `/classify-sentiment` runs. Conversions only.

// wit-bindgen's generated canonical-ABI glue and export macro need `unsafe`; nothing written by
// hand here does.
#![allow(unsafe_code)]

use sentio_core::config::DEFAULT_MAX_BATCH_TEXTS;
use sentio_model::{Classification, Classifier, ClassifyOptions, Label, Scores, TractPipeline};

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "sentio:edge/classifier",
        pub_export_macro: true,
        export_macro_name: "export_classifier",
    });
}

use bindings::exports::sentio::edge::sentiment as wit;

fn student() -> Result<&'static TractPipeline, wit::ClassifyError> {
    sentio_model::edge_student().map_err(|e| wit::ClassifyError::Model(e.to_owned()))
}

fn label(l: Label) -> wit::Label {
    match l {
        Label::Negative => wit::Label::Negative,
        Label::Neutral => wit::Label::Neutral,
        Label::Positive => wit::Label::Positive,
    }
}

fn scores(s: Scores) -> wit::Scores {
    wit::Scores {
        negative: s.negative,
        neutral: s.neutral,
        positive: s.positive,
    }
}

fn classification(
    text: &str,
    c: Classification,
    model: &sentio_model::ModelInfo,
) -> wit::Classification {
    // Sentence offsets in UTF-16 code units, as the JavaScript widget counts them.
    let spans = sentio_redact::spans(
        text,
        c.sentences.iter().map(|s| (s.range.start, s.range.end)),
    );
    wit::Classification {
        label: label(c.label),
        scores: scores(c.scores),
        confidence: c.confidence,
        sentences: c
            .sentences
            .iter()
            .zip(spans)
            .map(|(s, span)| wit::SentenceResult {
                utf16_start: span.utf16[0] as u32,
                utf16_end: span.utf16[1] as u32,
                label: label(s.label),
                scores: scores(s.scores),
            })
            .collect(),
        model_id: model.id.clone(),
        model_version: model.version.clone(),
    }
}

struct Component;

impl bindings::Guest for Component {
    /// Loads the model and runs one classification, so the snapshot holds it ready and warmed.
    fn sentio_preinit() {
        if let Ok(model) = student() {
            model.warm_up();
        }
    }
}

impl wit::Guest for Component {
    fn classify(texts: Vec<String>) -> Result<Vec<wit::Classification>, wit::ClassifyError> {
        if texts.is_empty() {
            return Err(wit::ClassifyError::EmptyInput);
        }
        if texts.len() > DEFAULT_MAX_BATCH_TEXTS {
            return Err(wit::ClassifyError::TooManyTexts(
                DEFAULT_MAX_BATCH_TEXTS as u32,
            ));
        }
        let model = student()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let results = model
            .classify(&refs, &ClassifyOptions::default())
            .map_err(|e| wit::ClassifyError::Model(e.to_string()))?;
        Ok(texts
            .iter()
            .zip(results)
            .map(|(text, c)| classification(text, c, model.model()))
            .collect())
    }
}

bindings::export_classifier!(Component with_types_in bindings);
