//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`, grown and minimized by
//! `fuzz/run`) and the inputs that once crashed (`fuzz/regressions/<target>/`, kept apart so
//! minimizing never drops them) through the same checks the fuzzers run, on stable, in every CI
//! run.

#[path = "../../../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = 0;
    for dir in [
        fuzz.join("corpus").join(target),
        fuzz.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            inputs += 1;
        }
    }
    assert!(
        inputs > 0,
        "no corpus for {target} under {}",
        fuzz.display()
    );
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

#[test]
fn audit_records_corpus() {
    replay("audit_records", harness::audit_records);
}
