//! What each fuzz target checks, shared by the libFuzzer targets (`fuzz_targets/*.rs`) and the
//! stable replay of the committed corpora (`crates/sentio-core/tests/fuzz_corpus.rs`), so both
//! assert the same thing. Every function panics on a broken promise and nowhere else.

// Each target uses only its own entry point.
#![allow(dead_code)]

use std::sync::OnceLock;

use sentio_core::audit::{ForwardedRecords, MAX_FORWARDED_RECORDS};
use sentio_core::context::RequestContext;
use sentio_core::envelope::{Envelope, check_callback_url, check_id};
use sentio_core::sentiment_api::{self, LineBuffer, SentimentStream};
use sentio_core::{ApiError, EdgeConfig, Tier, redact_api};
use sentio_model::{
    Classification, Classifier, ClassifyOptions, ModelConfig, ModelError, ModelInfo, Scores,
    WordPiece,
};
use sentio_redact::invariants::{check_span, check_type_tag_redaction};
use sentio_redact::{Engine, Operator, Policy, PolicySpec, RequestScope};

const STUDENT_TOKENIZER: &[u8] = include_bytes!("../models/sentiment-student/tokenizer.json");
const STUDENT_CONFIG: &[u8] = include_bytes!("../models/sentiment-student/config.json");

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::builtin().expect("built-in recognizers compile"))
}

fn config() -> &'static EdgeConfig {
    static CONFIG: OnceLock<EdgeConfig> = OnceLock::new();
    CONFIG.get_or_init(|| EdgeConfig {
        hash_key: Some(b"fuzzing-hash-key-0123456789".to_vec()),
        ..EdgeConfig::default()
    })
}

/// A bad request is a typed 4xx with a JSON body; anything else is a bug.
fn check_rejection(error: &ApiError) {
    let status = error.status();
    assert!(
        (400..500).contains(&status),
        "a request was answered {status}: {error:?}"
    );
    let body: serde_json::Value =
        serde_json::from_slice(&error.to_json()).expect("error bodies are JSON");
    assert_eq!(body["error"]["kind"], error.kind());
}

/// Arbitrary text through the redaction engine: the type-tag invariants, and in-bounds spans under
/// every other operator.
pub fn redact_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let engine = engine();
    let tagged = engine.redact(text, &Policy::default(), &mut RequestScope::default());
    if let Err(broken) = check_type_tag_redaction(engine, text, &tagged) {
        panic!("{broken}");
    }
    static MIXED: OnceLock<Policy> = OnceLock::new();
    let mixed = MIXED.get_or_init(|| {
        engine
            .policy(PolicySpec {
                default_operator: Some(Operator::Pseudonym),
                operators: vec![
                    (
                        "CREDIT_CARD".into(),
                        Operator::Mask {
                            masking_char: '*',
                            chars_to_mask: None,
                            from_end: false,
                            keep_last: Some(4),
                        },
                    ),
                    ("EMAIL_ADDRESS".into(), Operator::Hash { length: 16 }),
                    ("PHONE_NUMBER".into(), Operator::Remove),
                ],
                hash_key: config().hash_key.clone(),
                ..PolicySpec::default()
            })
            .expect("the mixed policy is valid")
    });
    let other = engine.redact(text, mixed, &mut RequestScope::default());
    for finding in &other.findings {
        check_span(text, &finding.input).unwrap_or_else(|e| panic!("input {e}"));
        if finding.output.bytes[0] != finding.output.bytes[1] {
            check_span(&other.redacted_text, &finding.output)
                .unwrap_or_else(|e| panic!("output {e}"));
        }
    }
}

/// Arbitrary text through what the pipeline does before the model: emoji spelled out (idempotent:
/// the names are plain words), the student's WordPiece tokenizer and the chunker.
pub fn tokenize(data: &[u8]) {
    static TOKENIZER: OnceLock<(WordPiece, ModelConfig)> = OnceLock::new();
    let (tokenizer, config) = TOKENIZER.get_or_init(|| {
        let config = ModelConfig::from_json(STUDENT_CONFIG).expect("student config parses");
        let tokenizer = WordPiece::from_json(STUDENT_TOKENIZER, &config).expect("tokenizer loads");
        (tokenizer, config)
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let model_text = tokenizer.model_text(text);
    assert_eq!(
        tokenizer.model_text(&model_text),
        model_text.as_ref(),
        "spelling out emoji twice changed the text"
    );
    let ids = tokenizer
        .token_ids(&model_text)
        .expect("any UTF-8 text tokenizes");
    let chunks = tokenizer.chunks(&ids);
    assert!(!chunks.is_empty());
    let mut covered = 0;
    for chunk in &chunks {
        assert!(
            chunk.ids.len() <= config.max_tokens,
            "chunk over max_tokens"
        );
        assert_eq!(chunk.ids.len(), chunk.content_tokens + 2);
        covered = covered.max(chunk.content_tokens);
    }
    assert!(ids.is_empty() || covered > 0);
    for range in sentio_model::split_sentences(text) {
        assert!(range.start < range.end && range.end <= text.len());
        assert!(text.is_char_boundary(range.start) && text.is_char_boundary(range.end));
    }
}

/// Arbitrary bytes as a `/redact` body: an answer or a typed 4xx.
pub fn redact_request(data: &[u8]) {
    match redact_api::redact(engine(), config(), data) {
        Ok(response) => {
            serde_json::to_vec(&response).expect("answers serialize");
        }
        Err(error) => check_rejection(&error),
    }
}

/// A deterministic classifier that costs nothing, so the fuzzer spends its time in request
/// parsing, limits, redaction and conversation tracking; the model path has its own target
/// (`tokenize`) and the parity tests.
struct CheapClassifier(ModelInfo);

impl Classifier for CheapClassifier {
    fn model(&self) -> &ModelInfo {
        &self.0
    }
    fn classify(
        &self,
        texts: &[&str],
        _options: &ClassifyOptions,
    ) -> Result<Vec<Classification>, ModelError> {
        Ok(texts
            .iter()
            .map(|text| {
                let negative = (text.len() % 7) as f32 / 10.0;
                let scores = Scores {
                    negative,
                    neutral: 0.3,
                    positive: 0.7 - negative,
                };
                Classification {
                    label: scores.label(),
                    confidence: scores.confidence(),
                    scores,
                    tokens: text.split_whitespace().count(),
                    chunks: 1,
                    sentences: Vec::new(),
                    sentences_truncated: false,
                }
            })
            .collect())
    }
}

fn classifier() -> &'static CheapClassifier {
    static CLASSIFIER: OnceLock<CheapClassifier> = OnceLock::new();
    CLASSIFIER.get_or_init(|| {
        CheapClassifier(ModelInfo {
            id: "fuzz".into(),
            version: "0".into(),
            engine: "none".into(),
            precision: "none".into(),
            sha256: "0".into(),
        })
    })
}

/// Arbitrary bytes to the sentiment endpoints; the first byte picks which one.
pub fn sentiment_request(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let ctx = RequestContext {
        request_id: "req_fuzz".into(),
        tenant: None,
        traceparent: None,
    };
    let (engine, classifier, config) = (engine(), classifier(), config());
    match selector % 3 {
        0 => match sentiment_api::classify(engine, classifier, config, body, Tier::Edge, &ctx) {
            Ok(response) => {
                serde_json::to_vec(&response).expect("answers serialize");
            }
            Err(error) => check_rejection(&error),
        },
        1 => match sentiment_api::analyze_conversation(
            engine,
            classifier,
            config,
            body,
            Tier::Edge,
            &ctx,
        ) {
            Ok(response) => {
                serde_json::to_vec(&response).expect("answers serialize");
            }
            Err(error) => check_rejection(&error),
        },
        _ => {
            // NDJSON in arbitrary pieces, as a chunked body arrives.
            let mut stream = SentimentStream::new(engine, classifier, config, ctx)
                .expect("the stream policy builds");
            let mut lines = LineBuffer::new(256);
            let cut = body.len() / 2;
            let mut answered = Vec::new();
            for piece in [&body[..cut], &body[cut..]] {
                answered.extend(lines.push(piece));
            }
            answered.extend(lines.finish());
            for line in answered {
                let result = match line {
                    Ok(line) => stream.line(&line),
                    Err(length) => Some(stream.too_long(length, 256)),
                };
                if let Some(result) = result {
                    serde_json::to_vec(&result).expect("stream results serialize");
                }
            }
        }
    }
}

/// Arbitrary bytes as a queue message: a checked envelope that round-trips, or a typed 4xx.
pub fn queue_envelope(data: &[u8]) {
    match Envelope::parse(data) {
        Ok(envelope) => {
            let again =
                Envelope::parse(&envelope.to_json()).expect("a written envelope reads back");
            assert_eq!(again, envelope);
            if let Some(url) = &envelope.callback_url {
                assert!(
                    !url.chars().any(|c| c.is_control() || c.is_whitespace()),
                    "a callback URL that could inject a header passed the check"
                );
                check_callback_url("callback_url", url).expect("checked once, checked again");
            }
        }
        Err(error) => check_rejection(&error),
    }
}

/// Arbitrary bytes as a `POST /v1/audit` body (other tiers' prediction records): checked records
/// that all carry the request's tenant and round-trip, or a typed 4xx.
pub fn audit_records(data: &[u8]) {
    match ForwardedRecords::parse(data, Some("tenant-fuzz")) {
        Ok(records) => {
            assert!(!records.is_empty() && records.len() <= MAX_FORWARDED_RECORDS);
            for record in &records {
                assert_eq!(record.tenant.as_deref(), Some("tenant-fuzz"));
                check_id("prediction_id", &record.prediction_id)
                    .expect("checked once, checked again");
            }
            let body = serde_json::to_vec(&ForwardedRecords {
                records: records.clone(),
            })
            .expect("records serialize");
            let again = ForwardedRecords::parse(&body, Some("tenant-fuzz"))
                .expect("written records read back");
            assert_eq!(again, records);
        }
        Err(error) => check_rejection(&error),
    }
}
