//! `sentio bench classify`: the edge student natively (tract), inside the component through
//! `sentio serve` (fresh instance per request), in the `classifier` library component (fresh
//! instance per call, no HTTP), and in onnxruntime (Python) on the same model and token inputs;
//! per-request host overhead. One thread everywhere; ratios from the same run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use sentio_host::library::ClassifierComponent;
use sentio_model::{
    Backend, Classifier, ClassifyOptions, ModelConfig, TokenBatch, TractBackend, TractPipeline,
    WordPiece,
};

/// Chat text the inputs are cut from (content tokens are taken from its start).
const SOURCE_TEXT: &str = "I have been waiting for my refund for three weeks now and every time I call your support line \
    I get sent to a different department, nobody reads my previous messages, the app still shows my order as \
    processing even though the courier says it was returned to your warehouse on Monday, and honestly I am \
    running out of patience because this is the third time this year that something like this has happened \
    with an order of mine, so please tell me today when exactly the money will be back on my card, otherwise \
    I will cancel my membership, leave a review everywhere and ask my bank to charge the payment back.";

/// Input sizes in tokens, special tokens included: what the issue's targets are stated for.
const LENGTHS: [usize; 4] = [16, 32, 64, 128];

struct Stats {
    p50: f64,
    p95: f64,
    p99: f64,
}

fn stats(mut ms: Vec<f64>) -> Stats {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
    }
}

/// Runs `f` for at least `min` (and 20 times), returning milliseconds per call.
fn sample(min: Duration, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..3 {
        f()?;
    }
    let start = Instant::now();
    let mut ms = Vec::new();
    while start.elapsed() < min || ms.len() < 20 {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(ms)
}

/// A text of exactly `tokens` model tokens ([CLS] and [SEP] included) cut from `SOURCE_TEXT`.
fn text_of_length(tokenizer: &WordPiece, tokens: usize) -> Result<String> {
    let mut text = String::new();
    for word in SOURCE_TEXT.split_whitespace() {
        let candidate = if text.is_empty() {
            word.to_owned()
        } else {
            format!("{text} {word}")
        };
        if tokenizer.token_ids(&candidate)?.len() + 2 > tokens {
            break;
        }
        text = candidate;
    }
    let got = tokenizer.token_ids(&text)?.len() + 2;
    // Word boundaries can land a token short; pad with "!" (one token each) to the exact size.
    Ok(format!("{text}{}", "!".repeat(tokens.saturating_sub(got))))
}

/// onnxruntime from Python on the same model and token ids, one thread. `None` when no Python
/// with onnxruntime is found (set SENTIO_BENCH_PYTHON, or build models/.work/venv).
fn onnxruntime_python(model: &Path, inputs: &[Vec<u32>], seconds: u64) -> Result<Option<Vec<f64>>> {
    let seconds = seconds.to_string();
    let Some(out) = crate::bench::run_bench_python(
        crate::bench::BenchPython::Baselines,
        "models/scripts/bench_ort.py",
        &[model.as_os_str(), seconds.as_ref()],
        &serde_json::to_vec(inputs)?,
    )?
    else {
        return Ok(None);
    };
    Ok(Some(
        serde_json::from_slice(&out).context("bench_ort.py output")?,
    ))
}

fn load_pipeline(dir: &Path) -> Result<TractPipeline> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).with_context(|| format!("reading {}/{name}", dir.display()))
    };
    Ok(TractPipeline::load(
        &read("model.onnx")?,
        &read("tokenizer.json")?,
        &read("config.json")?,
    )?)
}

/// The benchmark's texts (one per entry of `LENGTHS`) and their token ids.
fn texts_and_inputs(model_dir: &Path) -> Result<(Vec<String>, Vec<Vec<u32>>, WordPiece)> {
    let config = ModelConfig::from_json(&std::fs::read(model_dir.join("config.json"))?)?;
    let tokenizer =
        WordPiece::from_json(&std::fs::read(model_dir.join("tokenizer.json"))?, &config)?;
    let texts: Vec<String> = LENGTHS
        .iter()
        .map(|&n| text_of_length(&tokenizer, n))
        .collect::<Result<_>>()?;
    let inputs: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| Ok(tokenizer.chunks(&tokenizer.token_ids(t)?)[0].ids.clone()))
        .collect::<Result<_>>()?;
    for (ids, &n) in inputs.iter().zip(&LENGTHS) {
        anyhow::ensure!(ids.len() == n, "input of {} tokens, wanted {n}", ids.len());
    }
    Ok((texts, inputs, tokenizer))
}

/// Native tract: the whole pipeline (tokenize + infer + calibrate), as the component runs it.
fn time_native(pipeline: &TractPipeline, texts: &[String], min: Duration) -> Result<Vec<Stats>> {
    let options = ClassifyOptions {
        sentences: false,
        max_sentences: 0,
        ..ClassifyOptions::default()
    };
    texts
        .iter()
        .map(|text| {
            Ok(stats(sample(min, || {
                std::hint::black_box(pipeline.classify(&[text.as_str()], &options)?);
                Ok(())
            })?))
        })
        .collect()
}

/// The `classifier` library component as a host embeds it: a fresh pre-initialized instance per
/// call (as Spin instantiates a component dependency per request), instantiate + classify, no
/// HTTP. `None` when the component has not been built. `engine` is the library host's
/// (`runtime::library_engine`) or Spin's settings (`runtime::engine`, epoch interruption).
fn time_library_component(
    engine: &sentio_host::runtime::Engine,
    texts: &[String],
    min: Duration,
) -> Result<Option<Vec<Stats>>> {
    let path = Path::new("target/wasm32-wasip2/component/classifier.preinit.wasm");
    if !path.exists() {
        return Ok(None);
    }
    let cache = std::env::temp_dir().join("sentio-bench-cache");
    let component = ClassifierComponent::load(engine, path, &cache)
        .with_context(|| format!("loading {}", path.display()))?;
    let mut rows = Vec::new();
    for text in texts {
        let input = [text.clone()];
        rows.push(stats(sample(min, || {
            let results = component
                .instantiate()?
                .classify(&input)?
                .map_err(|e| anyhow::anyhow!("classifier component: {e:?}"))?;
            // Same work as the native row: one model input, no sentence results.
            anyhow::ensure!(
                results.len() == 1 && results[0].sentences.is_empty(),
                "the benchmark text was split into sentences"
            );
            Ok(())
        })?));
    }
    Ok(Some(rows))
}

/// `--native-only`: the native p50s as one JSON array, for [`native_with_128_bit_kernels`].
pub fn run_native_only(model_dir: &Path, seconds: u64) -> Result<()> {
    let pipeline = load_pipeline(model_dir)?;
    let (texts, _, _) = texts_and_inputs(model_dir)?;
    let native = time_native(&pipeline, &texts, Duration::from_secs(seconds))?;
    let p50s: Vec<f64> = native.iter().map(|s| s.p50).collect();
    println!("{}", serde_json::to_string(&p50s)?);
    Ok(())
}

/// x86-64 features tract drops under `TRACT_CPU_ISA` to leave only its SSE2 (128-bit) kernels:
/// the vector width wasm's `simd128` has, so the component can be compared ISA for ISA.
const WIDER_THAN_128_BIT: &str = "-avx,-avx2,-fma,-avx512f,-avx512vnni,-avx512fp16,-avxvnni";

/// Native p50s with tract limited to 128-bit kernels. tract reads its ISA knob once per process,
/// so this runs the benchmark binary again with the knob set. `None` off x86-64 (aarch64's NEON
/// is 128-bit already).
fn native_with_128_bit_kernels(model_dir: &Path, seconds: u64) -> Result<Option<Vec<f64>>> {
    if !cfg!(target_arch = "x86_64") {
        return Ok(None);
    }
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "classify", "--native-only", "--seconds"])
        .arg(seconds.to_string())
        .arg("--model")
        .arg(model_dir)
        .env("TRACT_CPU_ISA", WIDER_THAN_128_BIT)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("re-running the benchmark with 128-bit kernels")?;
    anyhow::ensure!(
        output.status.success(),
        "the 128-bit native run failed: {}",
        output.status
    );
    Ok(Some(
        serde_json::from_slice(&output.stdout).context("reading the 128-bit native run's p50s")?,
    ))
}

/// `--max-instance-reuse-count` for the reusing server: Spin's default for 0.3 components.
const REUSE: u32 = sentio_host::runtime::SPIN_MAX_INSTANCE_REUSE_COUNT;

/// `/classify-sentiment` per text: the component's own `timing.classify_ms`, and end to end.
fn time_http(
    server: &mut crate::bench::LocalServer,
    texts: &[String],
    min: Duration,
) -> Result<(Vec<Stats>, Vec<Stats>)> {
    let mut in_component = Vec::new();
    let mut end_to_end = Vec::new();
    for text in texts {
        let body = serde_json::json!({"text": text, "sentences": false}).to_string();
        let mut inside = Vec::new();
        let outside = sample(min, || {
            let response = server.post("/classify-sentiment", &body)?;
            let v: serde_json::Value = serde_json::from_slice(&response)?;
            inside.push(
                v["timing"]["classify_ms"]
                    .as_f64()
                    .context("timing.classify_ms")?,
            );
            Ok(())
        })?;
        in_component.push(stats(inside));
        end_to_end.push(stats(outside));
    }
    Ok((in_component, end_to_end))
}

pub fn run(model_dir: &Path, compare: &[PathBuf], seconds: u64) -> Result<()> {
    let min = Duration::from_secs(seconds);
    let pipeline = load_pipeline(model_dir)?;
    let (texts, inputs, tokenizer) = texts_and_inputs(model_dir)?;
    let native = time_native(&pipeline, &texts, min)?;
    let native_128 = native_with_128_bit_kernels(model_dir, seconds)?;

    // Other ONNX files on the same inputs (e.g. the fp32 export next to the shipped int8).
    let mut compared = Vec::new();
    for path in compare {
        let backend = TractBackend::load(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            3,
        )?;
        let mut row = Vec::new();
        for ids in &inputs {
            let batch = TokenBatch::pad(&[ids.as_slice()], tokenizer.pad_id());
            row.push(stats(sample(min, || {
                std::hint::black_box(backend.logits(&batch)?);
                Ok(())
            })?));
        }
        compared.push((path.clone(), row));
    }

    let library = time_library_component(&sentio_host::runtime::library_engine()?, &texts, min)?;
    let library_with_deadlines = time_library_component(
        &sentio_host::runtime::engine(&Default::default())?,
        &texts,
        min,
    )?;
    let ort = onnxruntime_python(&model_dir.join("model.onnx"), &inputs, seconds)?;
    // The heavy tier's teacher in onnxruntime on the same token ids (one vocabulary): the edge's
    // student in its component should beat it, or the edge tier would not pay for itself.
    let teacher = Path::new("models/sentiment-teacher/model.onnx");
    let ort_teacher = onnxruntime_python(teacher, &inputs, seconds)?;

    // Through the real host: component time from the response's own timing, and end to end;
    // then again with instances reused, as Spin reuses wasi:http 0.3 instances.
    let mut server = crate::bench::LocalServer::start(Path::new("spin.toml"), 1)?;
    let (in_component, end_to_end) = time_http(&mut server, &texts, min)?;
    let mut reusing = crate::bench::LocalServer::start(Path::new("spin.toml"), REUSE)?;
    let (_, end_to_end_reused) = time_http(&mut reusing, &texts, min)?;
    drop(reusing);
    // The cheapest request the component answers (405): instantiation + host round trip.
    let overhead = stats(sample(min, || {
        server.request_status("GET", "/classify-sentiment", "", 405)?;
        Ok(())
    })?);
    let redact_only = stats(sample(min, || {
        server.post("/redact", r#"{"text": "ok"}"#)?;
        Ok(())
    })?);
    drop(server);

    let info = pipeline.model();
    println!(
        "Sentiment benchmark: {} {} ({}, {}), one thread, batch 1, {seconds} s per cell",
        info.id, info.version, info.precision, info.sha256
    );
    println!();
    println!(
        "| tokens | native tract p50 / p95 / p99 ms | in component (classify_ms) p50 | component / native | onnxruntime (Python) p50 | native tract / onnxruntime | HTTP end to end p50 / p99 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (i, &n) in LENGTHS.iter().enumerate() {
        let (nat, comp, e2e) = (&native[i], &in_component[i], &end_to_end[i]);
        let (ort_cell, ratio_cell) = match &ort {
            Some(o) => (format!("{:.2}", o[i]), format!("{:.2}x", nat.p50 / o[i])),
            None => ("not measured".into(), "-".into()),
        };
        println!(
            "| {n} | {:.2} / {:.2} / {:.2} | {:.2} | {:.2}x | {ort_cell} | {ratio_cell} | {:.2} / {:.2} |",
            nat.p50,
            nat.p95,
            nat.p99,
            comp.p50,
            comp.p50 / nat.p50,
            e2e.p50,
            e2e.p99
        );
    }
    // Other rows' p50s, each as a multiple of the shipped model's native p50.
    let against_native = |what: String, rows: &[Stats], of: &str| {
        let cells: Vec<String> = rows
            .iter()
            .zip(&native)
            .map(|(s, nat)| format!("{:.2} ms ({:.2}x {of})", s.p50, s.p50 / nat.p50))
            .collect();
        println!("\n{what}, p50 for {LENGTHS:?} tokens: {}", cells.join(", "));
    };
    for (path, row) in &compared {
        against_native(
            format!("native tract, {} (model only)", path.display()),
            row,
            "of shipped",
        );
    }
    // Another engine's p50s, each with the component's time as a multiple of it.
    let against_component = |what: String, p50s: &[f64]| {
        let cells: Vec<String> = p50s
            .iter()
            .zip(&in_component)
            .map(|(p50, comp)| format!("{p50:.2} ms (component / it: {:.2}x)", comp.p50 / p50))
            .collect();
        println!("\n{what}, p50 for {LENGTHS:?} tokens: {}", cells.join(", "));
    };
    if let Some(t) = &ort_teacher {
        against_component(
            format!(
                "onnxruntime (Python) running the teacher ({})",
                teacher.display()
            ),
            t,
        );
    }
    match (&library, &library_with_deadlines) {
        (Some(rows), Some(rows_with_deadlines)) => {
            against_native(
                "classifier library component (fresh pre-initialized instance + classify, no HTTP)"
                    .into(),
                rows,
                "native tract",
            );
            against_native(
                "the same, compiled with epoch interruption as Spin compiles it".into(),
                rows_with_deadlines,
                "native tract",
            );
        }
        _ => println!(
            "\nclassifier library component: not measured (build the components first: ./scripts/run)"
        ),
    }
    let cells: Vec<String> = end_to_end_reused
        .iter()
        .zip(&end_to_end)
        .map(|(r, f)| {
            format!(
                "{:.2} / {:.2} ms (fresh instance: {:.2})",
                r.p50, r.p99, f.p50
            )
        })
        .collect();
    println!(
        "\nHTTP end to end with instance reuse (--max-instance-reuse-count {REUSE}), p50 / p99 for {LENGTHS:?} tokens: {}",
        cells.join(", ")
    );
    if let Some(n128) = &native_128 {
        against_component(
            format!(
                "native tract limited to 128-bit SSE2 kernels (TRACT_CPU_ISA={WIDER_THAN_128_BIT})"
            ),
            n128,
        );
    }
    println!(
        "\nper-request host overhead, GET /classify-sentiment answered 405 by a fresh instance: p50 {:.3} ms, p99 {:.3} ms",
        overhead.p50, overhead.p99
    );
    println!(
        "for comparison, POST /redact {{\"text\": \"ok\"}} (smaller component): p50 {:.3} ms, p99 {:.3} ms",
        redact_only.p50, redact_only.p99
    );
    Ok(())
}
