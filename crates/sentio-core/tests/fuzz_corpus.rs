//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same checks the
//! fuzzers run, on stable, in every CI run: an input that once crashed stays a regression test.

#[path = "../../../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} fails its check", path.display());
        inputs += 1;
    }
    assert!(inputs > 0, "{} holds no corpus", dir.display());
    println!("{target}: {inputs} inputs");
}

#[test]
fn redact_text_corpus() {
    replay("redact_text", harness::redact_text);
}

#[test]
fn tokenize_corpus() {
    replay("tokenize", harness::tokenize);
}

#[test]
fn redact_request_corpus() {
    replay("redact_request", harness::redact_request);
}

#[test]
fn sentiment_requests_corpus() {
    replay("sentiment_requests", harness::sentiment_request);
}

#[test]
fn queue_envelope_corpus() {
    replay("queue_envelope", harness::queue_envelope);
}
