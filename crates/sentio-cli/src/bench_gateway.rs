//! `sentio bench gateway`: what `sentio serve`'s gateway adds to each request, in-process: admit
//! (keys, scope, rate limit, CORS, ids, trace context), then observe a classify answer as it goes
//! out (metrics, dashboard window, audit append). The baseline, timed in the same run, is one
//! `serde_json` parse of the same answer: the least any observer of the answer must spend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use http::StatusCode;
use sentio_host::Interceptor as _;
use sentio_ops::{Gateway, GatewayState};

const KEY: &str = "sk_bench_gateway_key_000000000001";

/// A classify answer with `n` results, shaped as the edge writes it.
fn answer(n: usize) -> Vec<u8> {
    let result = |i: usize| {
        serde_json::json!({
            "prediction_id": format!("req_0123456789abcdef01234567.{i}"),
            "label": "negative", "confidence": 0.91, "polarity": -0.85,
            "scores": {"negative": 0.91, "neutral": 0.06, "positive": 0.03},
            "tokens": 24, "chunks": 1,
            "redacted_text": "My parcel never arrived and <PERSON> at <EMAIL_ADDRESS> will not answer.",
            "pii": {"PERSON": 1, "EMAIL_ADDRESS": 1},
            "input_hash": "6f1ed002ab5595859014ebf0951522d9",
        })
    };
    let mut body = if n == 1 {
        result(0)
    } else {
        serde_json::json!({"results": (0..n).map(result).collect::<Vec<_>>()})
    };
    let extra = serde_json::json!({
        "request_id": "req_0123456789abcdef01234567", "tier": "edge",
        "model": {"id": "sentio-sentiment-student", "version": "2026.11.27", "engine": "tract", "precision": "int8", "sha256": "00"},
        "metadata": {"channel": "chat", "customer_id": "c-42"},
        "timing": {"redact_ms": 0.2, "classify_ms": 8.1},
    });
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    serde_json::to_vec(&body).expect("JSON")
}

fn gateway(with_keys: bool, audit_dir: Option<&std::path::Path>) -> Result<Gateway> {
    let access = if with_keys {
        sentio_ops::access::AccessControl::from_toml(&format!(
            "[[key]]\nid = \"bench\"\ntenant = \"acme\"\nsha256 = \"{}\"\nscopes = [\"classify\"]\nrate_per_second = 1e12\nburst = 4000000000\n",
            sentio_ops::access::hash_key(KEY)
        ))?
    } else {
        sentio_ops::access::AccessControl::open()
    };
    Ok(Gateway(Arc::new(GatewayState {
        access,
        metrics: sentio_ops::metrics::Metrics::default(),
        dashboard: sentio_ops::dashboard::Dashboard::new(Default::default()),
        audit: audit_dir
            .map(sentio_ops::audit::AuditLog::open)
            .transpose()?,
        spans: None,
    })))
}

/// Median and p99 of `f`'s time, in microseconds, over at least `seconds`.
fn time(seconds: f64, mut f: impl FnMut()) -> (f64, f64) {
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs_f64(seconds) || samples.len() < 200 {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

pub fn run(seconds: u64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("sentio-bench-gateway-{}", std::process::id()));
    let seconds = seconds as f64;
    println!(
        "gateway cost per request, in-process (µs); baseline: one serde_json parse of the answer"
    );
    println!();
    println!(
        "| answer | baseline parse p50 | open, no audit p50 / p99 | keys + audit p50 / p99 | keys + audit vs parse |"
    );
    println!("|---|---:|---:|---:|---:|");
    for n in [1usize, 64] {
        let body = answer(n);
        let (parse, _) = time(seconds, || {
            std::hint::black_box(serde_json::from_slice::<serde_json::Value>(&body).ok());
        });
        let mut cells = Vec::new();
        for (with_keys, audit) in [(false, None), (true, Some(dir.join(format!("audit-{n}"))))] {
            let gateway = gateway(with_keys, audit.as_deref())?;
            let auth = format!("Bearer {KEY}");
            let (p50, p99) = time(seconds, || {
                let (mut parts, ()) = http::Request::post("/classify-sentiment")
                    .header("host", "127.0.0.1:3000")
                    .header("authorization", auth.as_str())
                    .header("content-type", "application/json")
                    .body(())
                    .expect("static request")
                    .into_parts();
                let Ok(mut exchange) = gateway.admit(&mut parts, "/classify-sentiment") else {
                    panic!("the bench key was refused");
                };
                let mut headers = http::HeaderMap::new();
                headers.insert(
                    "content-type",
                    http::HeaderValue::from_static("application/json"),
                );
                exchange.response_head(StatusCode::OK, &mut headers);
                exchange.body_chunk(&body);
                exchange.finish();
            });
            cells.push((p50, p99));
        }
        println!(
            "| classify, {n} result{} ({} bytes) | {parse:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.2}× |",
            if n == 1 { "" } else { "s" },
            body.len(),
            cells[0].0,
            cells[0].1,
            cells[1].0,
            cells[1].1,
            cells[1].0 / parse
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
