//! `sentio bench redact`: redaction throughput natively and inside the component on a realistic
//! chat corpus, and the host's per-request overhead. Prints one table; ratios come from the same
//! run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use sentio_host::library::{Policy, RedactorComponent};
use sentio_redact::{Engine, RequestScope};

/// A deterministic corpus of customer-support chat turns: mostly plain complaints, questions and
/// thanks, about one in four carrying PII the way customers type it.
pub fn chat_corpus(n: usize, seed: u64) -> Vec<String> {
    const PLAIN: &[&str] = &[
        "The app keeps crashing every time I open the settings page since the last update.",
        "I've been waiting for my refund for two weeks now and nobody answers my emails.",
        "Thanks so much, that fixed it! Really appreciate the quick help.",
        "Why was I charged twice this month? This is unacceptable.",
        "Can you tell me when the new plan becomes available in my region?",
        "Honestly the delivery was late again and the box was damaged. Very disappointed.",
        "ok thanks",
        "Where can I download the invoice for order 5531? I can't find it anywhere.",
        "Your agent was super helpful yesterday, please pass on my thanks.",
        "The password reset link expired before I could use it, can you send another one?",
        "I want to cancel my subscription effective today.",
        "Love the new dashboard, it's much faster than before 😍",
        "still not working... third time I'm writing about this 😡",
        "Is there a student discount? My friend said there was one last year.",
    ];
    const PII: &[&str] = &[
        "You can reach me at {email} or on {phone}.",
        "My card ending {card} was charged twice, please refund it.",
        "Hi, my name is {name} and my order never arrived.",
        "Please wire the refund to {iban}, thanks.",
        "my number is {phone} call me after 5pm",
        "it's {obf_email} if you need to email me",
        "Login fails from {ip}, tried three times.",
        "This is {name}, I spoke with your agent about {email} yesterday.",
    ];
    const EMAILS: &[&str] = &[
        "maria.g@example.com",
        "j.smith+shop@mail.co.uk",
        "tom_b@example.org",
    ];
    const PHONES: &[&str] = &[
        "+44 20 7946 0958",
        "(415) 555-2671",
        "+1 415 555 2600",
        "07700 900123",
    ];
    const CARDS: &[&str] = &[
        "4111 1111 1111 1111",
        "5500-0055-5555-5559",
        "3782 822463 10005",
    ];
    const NAMES: &[&str] = &["Maria Gonzalez", "Tom Baker", "Aisha Khan", "Jean Dupont"];
    const IBANS: &[&str] = &["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"];
    const OBF: &[&str] = &["john dot smith at gmail dot com", "anna(at)example(dot)org"];
    const IPS: &[&str] = &["192.168.10.24", "2001:db8::8a2e:370:7334"];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |m: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % m
    };
    (0..n)
        .map(|_| {
            if next(4) == 0 {
                let template = PII[next(PII.len())];
                template
                    .replace("{email}", EMAILS[next(EMAILS.len())])
                    .replace("{phone}", PHONES[next(PHONES.len())])
                    .replace("{card}", CARDS[next(CARDS.len())])
                    .replace("{name}", NAMES[next(NAMES.len())])
                    .replace("{iban}", IBANS[next(IBANS.len())])
                    .replace("{obf_email}", OBF[next(OBF.len())])
                    .replace("{ip}", IPS[next(IPS.len())])
            } else {
                PLAIN[next(PLAIN.len())].to_owned()
            }
        })
        .collect()
}

/// Text that the throughput rows can count: one text or a batch of them.
trait Bytes {
    fn bytes(&self) -> usize;
}

impl Bytes for String {
    fn bytes(&self) -> usize {
        self.len()
    }
}

impl Bytes for Vec<String> {
    fn bytes(&self) -> usize {
        self.iter().map(String::len).sum()
    }
}

/// Runs `f` over every item (a text, or a batch of texts) repeatedly for at least `min` and
/// returns MB/s.
fn throughput<T: Bytes>(
    items: &[T],
    min: Duration,
    mut f: impl FnMut(&T) -> Result<()>,
) -> Result<f64> {
    let bytes: usize = items.iter().map(Bytes::bytes).sum();
    let start = Instant::now();
    let mut rounds = 0usize;
    while start.elapsed() < min || rounds == 0 {
        for item in items {
            f(item)?;
        }
        rounds += 1;
    }
    Ok((bytes * rounds) as f64 / start.elapsed().as_secs_f64() / 1e6)
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.50), at(0.99))
}

/// `sentio serve` in this process (the real host, `spin.toml`) and one keep-alive client
/// connection to it.
pub struct LocalServer {
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
    addr: std::net::SocketAddr,
}

impl LocalServer {
    /// `max_instance_reuse_count`: 1 for a fresh instance per request (the default of
    /// `sentio serve`), more to reuse instances as Spin does.
    pub fn start(manifest: &Path, max_instance_reuse_count: u32) -> Result<Self> {
        Self::start_with(manifest, max_instance_reuse_count, Vec::new())
    }

    /// [`LocalServer::start`] with native routes beside the components.
    pub fn start_with(
        manifest: &Path,
        max_instance_reuse_count: u32,
        native: Vec<sentio_host::NativeRoute>,
    ) -> Result<Self> {
        let mut options = sentio_host::HostOptions::new(manifest);
        options.limits.max_instance_reuse_count = max_instance_reuse_count;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (addr, stop) = runtime.block_on(async {
            let app = sentio_host::App::load_with(&options, native, None)?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(app.serve(listener, async {
                let _ = stopped.await;
            }));
            anyhow::Ok((addr, stop))
        })?;
        let stream = std::net::TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Self {
            runtime: Some(runtime),
            stop: Some(stop),
            reader: std::io::BufReader::new(stream.try_clone()?),
            writer: stream,
            addr,
        })
    }

    /// POSTs JSON and returns the 200 response's body.
    pub fn post(&mut self, path: &str, body: &str) -> Result<Vec<u8>> {
        self.exchange("POST", path, body, 200)
    }

    pub fn request_status(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
        status: u16,
    ) -> Result<Vec<u8>> {
        self.exchange(method, path, body, status)
    }

    fn exchange(&mut self, method: &str, path: &str, body: &str, status: u16) -> Result<Vec<u8>> {
        use std::io::{BufRead as _, Read as _, Write as _};
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.writer.write_all(request.as_bytes())?;
        let reader = &mut self.reader;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        anyhow::ensure!(
            line.starts_with(&format!("HTTP/1.1 {status}")),
            "unexpected response: {line}"
        );
        let (mut chunked, mut length) = (false, 0usize);
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let lower = line.to_ascii_lowercase();
            if lower == "\r\n" {
                break;
            }
            chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse()?;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16)?;
                let mut chunk = vec![0u8; size + 2];
                reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            body.resize(length, 0);
            reader.read_exact(&mut body)?;
        }
        Ok(body)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Texts per batch in the batch rows.
const BATCH: usize = 64;

/// The redaction engine's own time inside the `edge-redact` component: every batch POSTed to
/// `/redact` as `texts[]` through the real host, which reuses an instance for up to
/// `max_instance_reuse_count` requests (Spin reuses wasi:http 0.3 instances 128 times; each new
/// one starts from the pre-initialized snapshot, so its first pass over the corpus faults in
/// the snapshot's pages and learns the lazy-DFA states the snapshot lacks, at about half speed);
/// MB/s over the sum of the `timing.redact_ms` the component measured. The host's HTTP and
/// instantiation costs are outside that time, as `classify_ms` leaves them out of the classify
/// benchmark.
fn in_component_redact_throughput(
    manifest: &Path,
    batches: &[Vec<String>],
    min: Duration,
    max_instance_reuse_count: u32,
) -> Result<f64> {
    let server = LocalServer::start(manifest, max_instance_reuse_count)?;
    engine_time_throughput(server, "/redact", batches, min)
}

/// The native engine behind the same host, as a native route at `/native/redact` running
/// `/redact`'s code (`sentio_core::redact_api`): the same requests, HTTP handling and client
/// between batches, so the CPU caches start each request as cold as the component's do.
fn native_in_host_redact_throughput(
    manifest: &Path,
    batches: &[Vec<String>],
    min: Duration,
) -> Result<f64> {
    let engine = std::sync::Arc::new(Engine::builtin()?);
    engine.warm_up();
    let config = std::sync::Arc::new(sentio_core::EdgeConfig::default());
    let handler: sentio_host::NativeHandler = std::sync::Arc::new(move |request| {
        let (engine, config) = (engine.clone(), config.clone());
        Box::pin(async move {
            // Answered as `edge-redact` answers: the body, or the error table's status and JSON.
            match sentio_core::redact_api::redact(&engine, &config, request.body()).and_then(
                |response| {
                    serde_json::to_vec(&response).map_err(|e| sentio_core::ApiError::Internal {
                        detail: e.to_string(),
                    })
                },
            ) {
                Ok(body) => http::Response::new(bytes::Bytes::from(body)),
                Err(e) => sentio_ops::error_response(&e),
            }
        })
    });
    let route = sentio_host::NativeRoute {
        prefix: "/native".into(),
        max_body_bytes: 1 << 20,
        handler,
    };
    let server = LocalServer::start_with(manifest, 1, vec![route])?;
    engine_time_throughput(server, "/native/redact", batches, min)
}

/// MB/s over the sum of the `timing.redact_ms` each response reports, every batch POSTed to
/// `path` as `texts[]`, the first pass over the batches left out (it warms up).
fn engine_time_throughput(
    mut server: LocalServer,
    path: &str,
    batches: &[Vec<String>],
    min: Duration,
) -> Result<f64> {
    let bodies: Vec<String> = batches
        .iter()
        .map(|b| serde_json::json!({ "texts": b }).to_string())
        .collect();
    let bytes: usize = batches.iter().map(Bytes::bytes).sum();
    let mut redact_ms = 0.0;
    let mut rounds = 0usize;
    let start = Instant::now();
    while start.elapsed() < min || rounds < 2 {
        for body in &bodies {
            let response: serde_json::Value = serde_json::from_slice(&server.post(path, body)?)?;
            let ms = response["timing"]["redact_ms"]
                .as_f64()
                .context("a /redact response without timing.redact_ms")?;
            // The first round warms the instance's caches, as the native engine was warmed.
            if rounds > 0 {
                redact_ms += ms;
            }
        }
        rounds += 1;
    }
    Ok((bytes * (rounds - 1)) as f64 / (redact_ms / 1e3) / 1e6)
}

/// `/redact` through the real host, one client: p50 and p99 ms.
fn serve_latency(manifest: &Path, requests: usize) -> Result<(f64, f64)> {
    let mut server = LocalServer::start(manifest, 1)?;
    let body = r#"{"text": "Hi, my name is Maria Gonzalez. The app crashed again, call me on +44 20 7946 0958!"}"#;
    for _ in 0..50 {
        server.post("/redact", body)?; // warm-up
    }
    let mut latencies = Vec::with_capacity(requests);
    for _ in 0..requests {
        let start = Instant::now();
        server.post("/redact", body)?;
        latencies.push(start.elapsed());
    }
    Ok(percentiles(latencies))
}

pub fn run(component_path: &Path, seconds: u64) -> Result<()> {
    let min = Duration::from_secs(seconds);
    let corpus = chat_corpus(2000, 7);
    let bytes: usize = corpus.iter().map(String::len).sum();
    let engine = Engine::builtin()?;
    let policy = sentio_redact::Policy::default();
    let (pii, clean): (Vec<String>, Vec<String>) = corpus
        .iter()
        .cloned()
        .partition(|t| !engine.analyze(t, &policy.analyze).is_empty());

    // The library host's engine: `sentio serve`'s settings (pooling allocator) without epoch
    // interruption, since a direct call has no deadline. The batch row is measured once more
    // under Spin's settings, whose deadline checks the guest pays for.
    let wasm_engine = sentio_host::runtime::library_engine()?;
    let cache = std::env::temp_dir().join("sentio-bench-cache");
    let component = RedactorComponent::load(&wasm_engine, component_path, &cache)
        .with_context(|| format!("loading {}", component_path.display()))?;
    let spin_engine = sentio_host::runtime::engine(&Default::default())?;
    let component_with_deadlines = RedactorComponent::load(&spin_engine, component_path, &cache)
        .with_context(|| format!("loading {}", component_path.display()))?;
    let mut instance = component.instantiate()?;
    let wit_policy = Policy::default();
    // (label, native MB/s, component MB/s, fresh instance MB/s): the whole corpus, then its two
    // kinds of turn.
    let mut rows = Vec::new();
    for (label, texts) in [
        ("all turns", &corpus),
        ("turns without PII", &clean),
        ("turns with PII", &pii),
    ] {
        let native = throughput(texts, min, |t| {
            std::hint::black_box(engine.redact(t, &policy, &mut RequestScope::default()));
            Ok(())
        })?;
        let in_component = throughput(texts, min, |t| {
            instance.redact(t, &wit_policy)??;
            Ok(())
        })?;
        // Spin's default for an HTTP component: a fresh instance per request, started from the
        // snapshot, so whatever the regex automata learn about a text is learnt again each time.
        let fresh_instance = throughput(texts, min, |t| {
            component.instantiate()?.redact(t, &wit_policy)??;
            Ok(())
        })?;
        rows.push((label, native, in_component, fresh_instance));
    }

    // Batches as `/redact` takes `texts[]`: one scope per request, so a value found in one text
    // is also redacted where it recurs in the others (more work per text than one at a time).
    let batches: Vec<Vec<String>> = corpus.chunks(BATCH).map(<[String]>::to_vec).collect();
    let native_batch = throughput(&batches, min, |b| {
        let mut scope = RequestScope::default();
        for t in b {
            std::hint::black_box(engine.redact(t, &policy, &mut scope));
        }
        Ok(())
    })?;
    let in_component_batch = throughput(&batches, min, |b| {
        instance.redact_batch(b, &wit_policy)??;
        Ok(())
    })?;
    let mut instance_with_deadlines = component_with_deadlines.instantiate()?;
    // One pass first: `instance` was warmed by the rows before.
    for b in &batches {
        instance_with_deadlines.redact_batch(b, &wit_policy)??;
    }
    let in_component_batch_with_deadlines = throughput(&batches, min, |b| {
        instance_with_deadlines.redact_batch(b, &wit_policy)??;
        Ok(())
    })?;
    let in_http_component = in_component_redact_throughput(
        Path::new("spin.toml"),
        &batches,
        min,
        sentio_host::runtime::SPIN_MAX_INSTANCE_REUSE_COUNT,
    )?;
    // The same with one instance for the whole run: the engine's steady speed inside the HTTP
    // component, without the passes new instances spend warming up.
    let in_http_component_one_instance =
        in_component_redact_throughput(Path::new("spin.toml"), &batches, min, u32::MAX)?;
    let native_in_host = native_in_host_redact_throughput(Path::new("spin.toml"), &batches, min)?;

    // The fixed cost of one call into a warm instance: lowering the arguments, lifting the result.
    let calls = 20_000;
    let start = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(instance.redact("", &wit_policy)??);
    }
    let call_us = start.elapsed().as_secs_f64() * 1e6 / calls as f64;
    let start = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(engine.redact("", &policy, &mut RequestScope::default()));
    }
    let native_call_us = start.elapsed().as_secs_f64() * 1e6 / calls as f64;

    // Host overhead: what a fresh instance per request costs the host, as Spin runs it.
    let iterations = 2000;
    let mut instantiate = Vec::with_capacity(iterations);
    let mut instantiate_call = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t0 = Instant::now();
        let mut fresh = component.instantiate()?;
        let t1 = Instant::now();
        std::hint::black_box(fresh.redact("", &wit_policy)??);
        let t2 = Instant::now();
        instantiate.push(t1 - t0);
        instantiate_call.push(t2 - t0);
    }
    let (inst_p50, inst_p99) = percentiles(instantiate);
    let (call_p50, call_p99) = percentiles(instantiate_call);

    let (http_p50, http_p99) = serve_latency(Path::new("spin.toml"), 2000)?;

    println!(
        "Redaction benchmark ({} messages, {:.1} KiB, {} with PII; single thread)",
        corpus.len(),
        bytes as f64 / 1024.0,
        pii.len()
    );
    println!("component: {}", component_path.display());
    println!();
    println!("| measure | value | vs native |");
    println!("|---|---:|---:|");
    for (label, native, in_component, fresh_instance) in &rows {
        println!("| native redact, {label}, MB/s | {native:.1} | 1.00x |");
        println!(
            "| component redact (1 text/call), {label}, MB/s | {in_component:.1} | {:.2}x slower |",
            native / in_component
        );
        println!(
            "| component redact, a fresh instance per text (instantiate + call), {label}, MB/s | {fresh_instance:.2} | {:.0}x slower |",
            native / fresh_instance
        );
    }
    println!(
        "| native redact, {BATCH} texts sharing a scope (a `/redact` `texts[]`), all turns, MB/s | {native_batch:.1} | 1.00x |"
    );
    println!(
        "| component redact_batch ({BATCH} texts/call), all turns, MB/s | {in_component_batch:.1} | {:.2}x slower |",
        native_batch / in_component_batch
    );
    println!(
        "| component redact_batch, compiled with epoch interruption as Spin compiles it, all turns, MB/s | {in_component_batch_with_deadlines:.1} | {:.2}x slower |",
        native_batch / in_component_batch_with_deadlines
    );
    println!(
        "| edge-redact component, engine time inside it (`timing.redact_ms`, {BATCH} texts/request, an instance reused for {} requests), all turns, MB/s | {in_http_component:.1} | {:.2}x slower |",
        sentio_host::runtime::SPIN_MAX_INSTANCE_REUSE_COUNT,
        native_batch / in_http_component
    );
    println!(
        "| edge-redact component, engine time inside it, the same requests with one instance for the whole run, all turns, MB/s | {in_http_component_one_instance:.1} | {:.2}x slower |",
        native_batch / in_http_component_one_instance
    );
    println!(
        "| native engine behind the same host (a native route running `/redact`'s code), engine time, the same requests, all turns, MB/s | {native_in_host:.1} | edge-redact one instance: {:.2}x slower |",
        native_in_host / in_http_component_one_instance
    );
    println!(
        "| redact of an empty text, warm instance, us per call | {call_us:.2} | {:.2} us native |",
        native_call_us
    );
    println!("| host: new store + instantiate, p50 / p99 ms | {inst_p50:.3} / {inst_p99:.3} | |");
    println!(
        "| host: instantiate + call (empty text), p50 / p99 ms | {call_p50:.3} / {call_p99:.3} | |"
    );
    println!(
        "| POST /redact via sentio serve (HTTP, fresh instance), p50 / p99 ms | {http_p50:.3} / {http_p99:.3} | |"
    );
    Ok(())
}

/// Which Python runs a baseline: the benchmark environment (onnxruntime, tokenizers) or one with
/// PyTorch and `transformers` (the models' build environment, several GB).
#[derive(Clone, Copy)]
pub enum BenchPython {
    /// `SENTIO_BENCH_PYTHON`, or models/.work/venv.
    Baselines,
    /// `SENTIO_BENCH_TORCH_PYTHON`, or models/.work/venv.
    Torch,
}

/// Runs a benchmark script of `models/scripts/` under `python` with `input` on stdin; its
/// stdout, or `None` when there is no such Python.
pub fn run_bench_python(
    python: BenchPython,
    script: &str,
    args: &[&std::ffi::OsStr],
    input: &[u8],
) -> Result<Option<Vec<u8>>> {
    let variable = match python {
        BenchPython::Baselines => "SENTIO_BENCH_PYTHON",
        BenchPython::Torch => "SENTIO_BENCH_TORCH_PYTHON",
    };
    let python = std::env::var_os(variable)
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("models/.work/venv/bin/python")).filter(|p| p.exists()));
    let Some(python) = python else {
        return Ok(None);
    };
    let mut child = Command::new(&python)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    child.stdin.take().expect("piped").write_all(input)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{script} failed ({})", out.status);
    }
    Ok(Some(out.stdout))
}
