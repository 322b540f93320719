//! The pipeline on the committed student model: chunking, sentences, empty input, batching.

use std::path::PathBuf;

use std::sync::{Arc, Mutex};

use sentio_model::{
    Backend, Classifier, ClassifyOptions, Label, ModelConfig, ModelError, Pipeline, TokenBatch,
    TractBackend, TractPipeline, WordPiece,
};

fn read(name: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/sentiment-student");
    std::fs::read(dir.join(name)).unwrap()
}

fn student() -> TractPipeline {
    TractPipeline::load(
        &read("model.onnx"),
        &read("tokenizer.json"),
        &read("config.json"),
    )
    .unwrap()
}

fn sum(s: &sentio_model::Scores) -> f32 {
    s.negative + s.neutral + s.positive
}

#[test]
fn results_are_calibrated_ordered_and_independent_of_batching() {
    let model = student();
    let texts = [
        "Thank you, this was wonderful help!",
        "This is the worst experience I have ever had.",
        "",
        "What time do you open tomorrow?",
    ];
    let options = ClassifyOptions::default();
    let batch = model.classify(&texts, &options).unwrap();
    assert_eq!(batch.len(), 4);
    assert_eq!(batch[0].label, Label::Positive);
    assert_eq!(batch[1].label, Label::Negative);
    assert_eq!(
        (batch[2].label, batch[2].tokens, batch[2].chunks),
        (Label::Neutral, 0, 0)
    );
    for (text, result) in texts.iter().zip(&batch) {
        assert!((sum(&result.scores) - 1.0).abs() < 1e-4);
        assert_eq!(result.confidence, result.scores.confidence());
        // The same text alone gets the same answer as inside a batch.
        let alone = model.classify(&[text], &options).unwrap().remove(0);
        let diff = (alone.scores.negative - result.scores.negative).abs()
            + (alone.scores.positive - result.scores.positive).abs();
        assert!(diff < 1e-4, "{text:?}: {alone:?} vs {result:?}");
    }
}

#[test]
fn long_texts_are_chunked_and_sentences_capped() {
    let model = student();
    let config = model.config().clone();
    let text = "The flight was delayed for hours and the staff were rude to everyone. ".repeat(40);
    let options = ClassifyOptions {
        sentences: true,
        max_sentences: 5,
        ..ClassifyOptions::default()
    };
    let result = model.classify(&[&text], &options).unwrap().remove(0);
    let window = config.max_tokens - 2 - config.chunk_overlap;
    assert!(result.tokens > config.max_tokens);
    assert_eq!(
        result.chunks,
        (result.tokens - config.chunk_overlap).div_ceil(window)
    );
    assert_eq!(result.sentences.len(), 5);
    assert!(result.sentences_truncated);
    assert_eq!(result.label, Label::Negative);
    for s in &result.sentences {
        assert_eq!(
            &text[s.range.clone()],
            "The flight was delayed for hours and the staff were rude to everyone."
        );
    }
}

/// Emoji reach the model by name (the vocabulary has none of these, and the training texts had
/// no emoji): before, every one of these messages was the same `[UNK]` and got the same answer.
#[test]
fn emoji_reach_the_model_by_name() {
    let model = student();
    let options = ClassifyOptions {
        sentences: false,
        max_sentences: 0,
        ..ClassifyOptions::default()
    };
    let cases = [
        ("😡", Label::Negative),
        ("😡😡😡", Label::Negative),
        ("👎", Label::Negative),
        ("😭", Label::Negative),
        ("💔", Label::Negative),
        ("😍", Label::Positive),
        ("🙂", Label::Positive),
        ("😊😊", Label::Positive),
        ("thanks 👍🏽", Label::Positive),
    ];
    let texts: Vec<&str> = cases.iter().map(|(text, _)| *text).collect();
    let results = model.classify(&texts, &options).unwrap();
    for ((text, want), got) in cases.iter().zip(&results) {
        assert_eq!(got.label, *want, "{text:?}: {:?}", got.scores);
    }
    // An emoji glued to a word no longer hides the word: "service👍" was one `[UNK]`.
    let glued = model.classify(&["great service👍"], &options).unwrap();
    let spaced = model.classify(&["great service 👍"], &options).unwrap();
    assert_eq!(glued[0].tokens, spaced[0].tokens);
    assert_eq!(glued[0].scores, spaced[0].scores);
}

/// The student's backend, recording the shape (rows, columns) of every batch it runs.
struct ShapeRecorder {
    inner: TractBackend,
    shapes: Shapes,
}

type Shapes = Arc<Mutex<Vec<(usize, usize)>>>;

impl Backend for ShapeRecorder {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }
    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }
    fn logits(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>, ModelError> {
        self.shapes.lock().unwrap().push((batch.rows, batch.cols));
        self.inner.logits(batch)
    }
}

/// The student on a [`ShapeRecorder`], and the shapes it records.
fn recorded_student() -> (Pipeline<ShapeRecorder>, Shapes) {
    let config = ModelConfig::from_json(&read("config.json")).unwrap();
    let shapes = Arc::new(Mutex::new(Vec::new()));
    let recorder = ShapeRecorder {
        inner: TractBackend::load(&read("model.onnx"), config.labels.len()).unwrap(),
        shapes: Arc::clone(&shapes),
    };
    let tokenizer = WordPiece::from_json(&read("tokenizer.json"), &config).unwrap();
    let model = Pipeline::new(recorder, tokenizer, config, String::new()).unwrap();
    (model, shapes)
}

#[test]
fn sentences_are_not_padded_to_the_whole_message() {
    let (model, shapes) = recorded_student();
    let text = "I have been on hold for two hours. Worst airline ever. The crew was rude.";
    let result = model
        .classify(&[text], &ClassifyOptions::default())
        .unwrap()
        .remove(0);
    assert_eq!(result.sentences.len(), 3);
    let shapes = shapes.lock().unwrap().clone();
    // The message (all 3 sentences' tokens) runs apart from its sentences, which batch together:
    // one batch padded every sentence to the message's length, 4 × the message's token slots.
    let message_columns = result.tokens + 2;
    assert!(shapes.contains(&(1, message_columns)), "{shapes:?}");
    let slots: usize = shapes.iter().map(|(rows, cols)| rows * cols).sum();
    assert!(slots < 3 * message_columns, "{shapes:?}");
    // And the answers are those of each sentence classified alone.
    let plain = student();
    for sentence in &result.sentences {
        let alone = plain
            .classify(
                &[&text[sentence.range.clone()]],
                &ClassifyOptions::default(),
            )
            .unwrap()
            .remove(0);
        assert_eq!(alone.label, sentence.label);
        assert!((alone.scores.negative - sentence.scores.negative).abs() < 1e-4);
    }
}

/// A call holding more tokens than `max_tokens` is refused before the model runs, with the count
/// the caller has to split; a call at the limit runs as if there were none.
#[test]
fn calls_over_the_token_limit_are_refused_before_the_model_runs() {
    let (model, shapes) = recorded_student();
    let texts = [
        "The parcel came a week late. Nobody answered my emails.",
        "",
        "Thanks for the quick refund!",
    ];
    let unlimited = model.classify(&texts, &ClassifyOptions::default()).unwrap();
    let total: usize = unlimited.iter().map(|r| r.tokens).sum();
    assert!(total > 10, "{total}");

    let at_limit = ClassifyOptions {
        max_tokens: total,
        ..ClassifyOptions::default()
    };
    assert_eq!(model.classify(&texts, &at_limit).unwrap(), unlimited);

    shapes.lock().unwrap().clear();
    let under = ClassifyOptions {
        max_tokens: total - 1,
        ..ClassifyOptions::default()
    };
    match model.classify(&texts, &under) {
        Err(ModelError::TooManyTokens { tokens, limit }) => {
            assert_eq!((tokens, limit), (total, total - 1));
        }
        other => panic!("expected TooManyTokens, got {other:?}"),
    }
    assert!(shapes.lock().unwrap().is_empty(), "the model ran");
}
