//! `sentio bench heavy`: what the heavy-tier Lambda costs on this machine, per engine this build
//! has (tract; onnxruntime too when built with `--features ort` and `ORT_DYLIB_PATH` set). Cold
//! start (teacher loaded and optimized, recognizers built, first answer) and per-batch latency
//! and throughput of `/v1/classify` through the same router the Lambda runs, for batches of 1, 8
//! and 32 chat messages (the edge escalates one text; workflows send batches). One thread for
//! the model everywhere; ratios are against tract in the same run. With SENTIO_BENCH_PYTHON
//! (a Python with onnxruntime, tokenizers and numpy: `bench/requirements.txt`) the same texts
//! also go through onnxruntime from Python (tokenize, run, softmax; no redaction, no JSON).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use sentio_heavy::{HeavyConfig, HeavyTier, TeacherEngine};

const BATCHES: [usize; 3] = [1, 8, 32];

/// One line of `models/scripts/bench_ort_batch.py`'s (or `bench_transformers_batch.py`'s) answer.
#[derive(serde::Deserialize)]
struct PythonRow {
    batch: usize,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    texts_per_s: f64,
}

pub fn run(seconds: u64) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let corpus = crate::bench::chat_corpus(64, 7);
        let request = |n: usize| {
            let texts: Vec<&String> = corpus.iter().cycle().take(n).collect();
            let body = serde_json::json!({ "texts": texts, "sentences": false }).to_string();
            http::Request::post("/v1/classify")
                .header("content-type", "application/json")
                .body(Bytes::from(body))
                .expect("static request")
        };
        println!("heavy tier: teacher model, /v1/classify through the Lambda's router, 1 model thread");
        println!();
        println!("| engine | cold start ms (load / first answer) | batch | p50 ms | p95 ms | p99 ms | texts/s | vs tract |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|");
        let mut tract_rate = [0.0f64; BATCHES.len()];
        for engine in TeacherEngine::available() {
            let started = Instant::now();
            let config = HeavyConfig::from_lookup(|_| None)?;
            let tier = Arc::new(HeavyTier {
                engine: sentio_heavy::build_engine(&config)?,
                classifier: sentio_heavy::load_teacher_on(engine)?,
                config,
                queue: None,
                audit: None,
            });
            let loaded = started.elapsed();
            let first = tier.clone().handle(request(1)).await;
            if first.status() != 200 {
                bail!("classify answered {}", first.status());
            }
            let cold = format!(
                "{:.0} / {:.0}",
                loaded.as_secs_f64() * 1e3,
                started.elapsed().as_secs_f64() * 1e3
            );
            let name = tier.classifier.model().engine.clone();
            for (i, n) in BATCHES.into_iter().enumerate() {
                let mut ms = Vec::new();
                let begin = Instant::now();
                while begin.elapsed() < Duration::from_secs(seconds) || ms.len() < 10 {
                    let t = Instant::now();
                    let response = tier.clone().handle(request(n)).await;
                    if response.status() != 200 {
                        bail!("classify answered {}", response.status());
                    }
                    ms.push(t.elapsed().as_secs_f64() * 1e3);
                }
                ms.sort_by(f64::total_cmp);
                let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
                let mean = ms.iter().sum::<f64>() / ms.len() as f64;
                let rate = n as f64 * 1e3 / mean;
                if engine == TeacherEngine::Tract {
                    tract_rate[i] = rate;
                }
                println!(
                    "| {name} | {} | {n} | {:.2} | {:.2} | {:.2} | {rate:.0} | {:.2}× |",
                    if i == 0 { cold.as_str() } else { "" },
                    at(0.5),
                    at(0.95),
                    at(0.99),
                    rate / tract_rate[i]
                );
            }
        }
        let request = serde_json::json!({"texts": corpus, "batches": BATCHES, "max_tokens": 128});
        let seconds = seconds.to_string();
        let python = crate::bench::run_bench_python(
            crate::bench::BenchPython::Baselines,
            "models/scripts/bench_ort_batch.py",
            &[
                "models/sentiment-teacher/model.onnx".as_ref(),
                "models/sentiment-teacher/tokenizer.json".as_ref(),
                seconds.as_ref(),
            ],
            &serde_json::to_vec(&request)?,
        )?;
        let print_rows = |label: &str, out: Option<Vec<u8>>, unset: &str| -> Result<()> {
            let Some(out) = out else {
                println!("\n({label} not measured: set {unset})");
                return Ok(());
            };
            let rows: Vec<PythonRow> =
                serde_json::from_slice(&out).with_context(|| format!("{label} output"))?;
            for (i, row) in rows.iter().enumerate() {
                println!(
                    "| {label} |  | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2}× |",
                    row.batch,
                    row.p50_ms,
                    row.p95_ms,
                    row.p99_ms,
                    row.texts_per_s,
                    row.texts_per_s / tract_rate[i]
                );
            }
            Ok(())
        };
        print_rows(
            "onnxruntime (Python, model only)",
            python,
            "SENTIO_BENCH_PYTHON",
        )?;
        // The same texts through a Hugging Face pipeline on PyTorch (the teacher's architecture;
        // see the script for why not its weights).
        let transformers = crate::bench::run_bench_python(
            crate::bench::BenchPython::Torch,
            "models/scripts/bench_transformers_batch.py",
            &[seconds.as_ref()],
            &serde_json::to_vec(&request)?,
        )?;
        print_rows(
            "transformers pipeline (Python, PyTorch fp32, teacher's architecture)",
            transformers,
            "SENTIO_BENCH_TORCH_PYTHON",
        )?;
        Ok(())
    })
}
