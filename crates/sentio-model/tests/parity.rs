//! The committed models against their committed references: sha256 digests, and Rust
//! (tokenizers + tract) against onnxruntime's token ids and logits on the parity sentences.
//! `SENTIO_MODELS_DIR` points the test at another models folder (a fresh `models/` rebuild).
//! With the `ort` feature, the Rust onnxruntime backend is checked against Python onnxruntime run
//! on the same machine (`SENTIO_ORT_PARITY_DIR`, see `models/scripts/parity_here.py`).

use std::path::{Path, PathBuf};

use sentio_model::{Backend, ModelConfig, TokenBatch, TractBackend, WordPiece, sha256_hex};
use serde::Deserialize;

#[derive(Deserialize)]
struct Parity {
    model: String,
    model_sha256: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    input_ids: Vec<u32>,
    logits: Vec<f32>,
}

fn models_dir() -> PathBuf {
    std::env::var_os("SENTIO_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn committed_models_match_their_sha256sums() {
    let dir = models_dir();
    let sums = String::from_utf8(read(dir.join("SHA256SUMS"))).unwrap();
    let mut checked = 0;
    for line in sums.lines() {
        let (digest, path) = line.split_once("  ").expect("`<sha256>  <path>` lines");
        assert_eq!(
            sha256_hex(&read(dir.join(path))),
            digest,
            "{path} changed: rebuild with models/build.sh"
        );
        checked += 1;
    }
    assert!(
        checked >= 6,
        "SHA256SUMS lists {checked} files, expected both models' three files"
    );
}

/// Largest |tract - onnxruntime| difference allowed in a calibrated class probability. fp32 weights
/// and activations agree to float rounding. Full int8 quantizes activations per call, and tract
/// and onnxruntime round those slightly differently (logits move by up to ~0.1): labels must still
/// agree and no probability may move by more than 0.03.
fn tolerance(precision: &str) -> f32 {
    if precision == "int8" { 0.03 } else { 1e-4 }
}

fn probabilities(logits: &[f32], temperature: f32) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits
        .iter()
        .map(|l| ((l - max) / temperature).exp())
        .collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

fn check_parity(name: &str) {
    check_parity_with(
        name,
        "tract",
        &models_dir().join("parity"),
        |onnx, labels| Box::new(TractBackend::load(onnx, labels).unwrap()),
    );
}

/// Checks `name`'s model, loaded by `load` into `engine`, against the references in
/// `references/<name>.json`.
fn check_parity_with(
    name: &str,
    engine: &str,
    references: &Path,
    load: impl Fn(&[u8], usize) -> Box<dyn Backend>,
) {
    let dir = models_dir().join(format!("sentiment-{name}"));
    let config = ModelConfig::from_json(&read(dir.join("config.json"))).unwrap();
    let onnx = read(dir.join("model.onnx"));
    let parity: Parity =
        serde_json::from_slice(&read(references.join(format!("{name}.json")))).unwrap();
    assert_eq!(parity.model, config.id);
    assert_eq!(
        parity.model_sha256,
        sha256_hex(&onnx),
        "parity reference was made for another model file"
    );
    assert!(
        parity.cases.len() >= 50,
        "parity set has {} sentences",
        parity.cases.len()
    );

    let tokenizer = WordPiece::from_json(&read(dir.join("tokenizer.json")), &config).unwrap();
    let backend = load(&onnx, config.labels.len());
    let (mut worst, mut worst_logit) = (0.0f32, 0.0f32);
    for case in &parity.cases {
        let chunks = tokenizer.chunks(&tokenizer.token_ids(&case.text).unwrap());
        assert_eq!(
            chunks[0].ids, case.input_ids,
            "token ids differ for {:?}",
            case.text
        );
        let logits = backend
            .logits(&TokenBatch::pad(&[&chunks[0].ids], tokenizer.pad_id()))
            .unwrap();
        let max_diff = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        };
        worst_logit = worst_logit.max(max_diff(&logits[0], &case.logits));
        let t = config.temperature;
        worst = worst.max(max_diff(
            &probabilities(&logits[0], t),
            &probabilities(&case.logits, t),
        ));
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap();
        assert_eq!(
            argmax(&logits[0]),
            argmax(&case.logits),
            "label differs for {:?}",
            case.text
        );
    }
    eprintln!(
        "{name} ({}): worst |{engine} in Rust - onnxruntime in Python| difference over {} sentences: logit {worst_logit:.6}, probability {worst:.6}",
        config.precision,
        parity.cases.len()
    );
    // The same engine on the same file must agree to float rounding, whatever the precision.
    let tolerance = if engine == "onnxruntime" {
        1e-4
    } else {
        tolerance(&config.precision)
    };
    assert!(
        worst <= tolerance,
        "{name} on {engine}: probabilities differ by up to {worst}"
    );
}

/// With the `ort` feature, the Rust onnxruntime backend must reproduce Python onnxruntime on the
/// same machine: onnxruntime chooses its int8 kernels by CPU, so the committed references (made on
/// one CPU) can differ from it elsewhere by more than rounding. `ORT_DYLIB_PATH` names the wheel's
/// `libonnxruntime.so`; `SENTIO_ORT_PARITY_DIR` holds `parity_here.py`'s output (`scripts/test`
/// sets both).
#[cfg(feature = "ort")]
fn check_parity_on_ort(name: &str) {
    let references = std::env::var_os("SENTIO_ORT_PARITY_DIR").expect(
        "SENTIO_ORT_PARITY_DIR must name the output of models/scripts/parity_here.py when testing the `ort` feature",
    );
    check_parity_with(name, "onnxruntime", Path::new(&references), ort_loader());
}

#[cfg(feature = "ort")]
fn ort_loader() -> impl Fn(&[u8], usize) -> Box<dyn Backend> {
    let dylib = std::env::var("ORT_DYLIB_PATH")
        .expect("ORT_DYLIB_PATH must name libonnxruntime.so when testing the `ort` feature");
    move |onnx, labels| {
        Box::new(sentio_model::OrtBackend::load(onnx, labels, Path::new(&dylib), 1).unwrap())
    }
}

#[cfg(feature = "ort")]
#[test]
fn student_on_ort_matches_onnxruntime_python() {
    check_parity_on_ort("student");
}

#[cfg(feature = "ort")]
#[test]
fn teacher_on_ort_matches_onnxruntime_python() {
    check_parity_on_ort("teacher");
}

#[test]
fn student_matches_onnxruntime() {
    check_parity("student");
}

#[test]
fn teacher_matches_onnxruntime() {
    check_parity("teacher");
}
