//! `sentio`: run the system locally, redact from the shell.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

mod batch;
mod bench;
mod bench_classify;
mod bench_gateway;
mod bench_heavy;
mod plot;
mod stack;

#[derive(Parser)]
#[command(
    name = "sentio",
    version,
    about = "Real-time customer sentiment analysis: redact PII, then classify.",
    long_about = "Sentio redacts personal data from customer text and scores its sentiment.\n\n\
        `sentio serve` runs the edge components of spin.toml on this machine exactly as Spin\n\
        would (a fresh WebAssembly instance per request). `sentio redact` runs the same\n\
        redaction engine natively on text from the shell."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP components of a Spin manifest on a local address.
    ///
    /// Build the components first (`cargo build --profile component --target wasm32-wasip2
    /// --workspace --exclude ...`, or simply `./run`). Prints `listening on http://ADDR` once ready.
    Serve {
        /// Address to listen on; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// The Spin manifest.
        #[arg(long, default_value = "spin.toml")]
        manifest: PathBuf,
        /// Set an application variable (repeatable): `--variable redact_hash_key=...`.
        #[arg(long = "variable", value_name = "NAME=VALUE", value_parser = parse_variable)]
        variables: Vec<(String, String)>,
        /// Seconds a request may take before it is answered 504.
        #[arg(long, default_value_t = 30)]
        request_timeout_secs: u64,
        /// Component instances alive at once; more requests wait their turn. Each concurrent
        /// classification holds ~25 MiB resident and two cores only run two at a time, so a small
        /// number caps memory at the same throughput (BENCHMARKS.md, Memory); every open
        /// `/stream-sentiment` holds one for its whole conversation.
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
        max_concurrent_requests: u32,
        /// Requests one `wasi:http/handler@0.3` instance serves before it is dropped, as Spin's
        /// flag of the same name (Spin reuses such instances; 1 = a fresh instance per request,
        /// the strictest isolation). Components on wasi:http 0.2 are never reused.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        max_instance_reuse_count: u32,
        /// Requests one reused instance serves at the same time (Spin's flag of the same name).
        /// They share the instance's one thread, so CPU-bound requests queue behind each other.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        max_instance_concurrent_reuse_count: u32,
        /// Milliseconds a reusable instance waits idle for its next request before it is dropped.
        #[arg(long, default_value_t = 1000)]
        idle_instance_timeout_ms: u64,
    },
    /// Redact PII from text: an argument, a file or stdin; plain lines, JSON lines or CSV in;
    /// JSON lines out (one /redact response per text, input fields under `input`).
    ///
    /// Examples:
    ///   sentio redact "call me at +44 20 7946 0958"
    ///   cat chats.txt | sentio redact --operators '{"DEFAULT": {"type": "mask", "keep_last": 2}}'
    ///   sentio redact --file tickets.jsonl --text-field body > redacted.jsonl
    Redact {
        /// The text; reads --file or stdin when absent.
        text: Option<String>,
        #[command(flatten)]
        input: batch::Input,
        /// Operators per entity type as JSON, as in the /redact API.
        #[arg(long)]
        operators: Option<String>,
        /// Minimum score for a finding (0-1).
        #[arg(long)]
        score_threshold: Option<f32>,
    },
    /// Benchmarks: `sentio bench redact` prints redaction throughput (native and in the
    /// component) and the host's per-request overhead as a table.
    Bench {
        #[command(subcommand)]
        what: BenchTarget,
    },
    /// Redact and classify texts natively: an argument, a file or stdin; plain lines, JSON
    /// lines or CSV in; JSON lines out (one per text, input fields under `input`).
    ///
    /// Examples:
    ///   sentio classify "the parcel never came"
    ///   sentio classify --file tickets.csv --text-field body > scored.jsonl
    ///   cat chats.jsonl | sentio classify --format jsonl --teacher
    ///
    /// Long files show a progress line (rate and ETA) on stderr when it is a terminal.
    Classify {
        /// The text; reads --file or stdin when absent.
        text: Option<String>,
        #[command(flatten)]
        input: batch::Input,
        #[command(flatten)]
        model: batch::ModelChoice,
        /// Show the progress line even when stderr is not a terminal.
        #[arg(long)]
        progress: bool,
    },
    /// Score a labeled file: accuracy, macro-F1, per-class precision/recall, the confusion
    /// matrix, and the same per segment (`--segment channel`), as tables and SVG plots.
    ///
    /// Gold labels are `negative`/`neutral`/`positive` or numbers (the sign decides).
    /// Example: sentio eval --file labeled.jsonl --segment channel --plots eval-plots/
    Eval {
        #[command(flatten)]
        input: batch::Input,
        /// The field (JSON lines) or column (CSV) with the gold label.
        #[arg(long, default_value = "label")]
        label_field: String,
        /// Break the scores down by this metadata field (repeatable).
        #[arg(long = "segment")]
        segments: Vec<String>,
        #[command(flatten)]
        model: batch::ModelChoice,
        /// Write confusion.svg and segments.svg here.
        #[arg(long)]
        plots: Option<PathBuf>,
        #[arg(long)]
        progress: bool,
    },
    /// The feedback loop: `sentio feedback export` writes every human correction as a
    /// training example (redacted text, corrected label, original prediction), JSON lines.
    Feedback {
        #[command(subcommand)]
        what: FeedbackCommand,
    },
    /// API keys for SENTIO_ACCESS_FILE.
    Keys {
        #[command(subcommand)]
        what: KeysCommand,
    },
    /// List the entity types the built-in engine knows.
    Entities,
    /// Pre-initialize a component (Wizer snapshot after its `sentio-preinit` export ran), so
    /// each fresh per-request instance starts with its start-up work done.
    Preinit {
        /// The component built by cargo.
        input: PathBuf,
        /// Where to write the pre-initialized component (what spin.toml's `source` names).
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum FeedbackCommand {
    /// Join the audit trail and the corrections into a training set (JSON lines: the redacted
    /// text, the last correction's label, the original prediction). From `sentio serve`'s data
    /// directory, or from the AWS tier's S3 audit store with `--s3-bucket`.
    Export {
        /// `sentio serve`'s data directory (its `audit/` holds the trail).
        #[arg(long, env = "SENTIO_DATA_DIR", default_value = ".sentio-data")]
        data_dir: PathBuf,
        /// Read the S3 audit store the Lambdas write instead (key prefix from
        /// SENTIO_AUDIT_PREFIX, an S3-compatible server from SENTIO_S3_ENDPOINT, AWS_REGION and
        /// the standard AWS credential chain).
        #[arg(long, env = "SENTIO_AUDIT_BUCKET")]
        s3_bucket: Option<String>,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new random key: prints the key once (give it to the client) and the entry for
    /// the access file (which stores only its SHA-256).
    New {
        #[arg(long)]
        tenant: String,
        /// Names the key in the file and in metrics.
        #[arg(long)]
        id: String,
        /// redact, classify, feedback, audit, metrics, dashboard (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[arg(long, default_value_t = 50.0)]
        rate_per_second: f64,
        #[arg(long, default_value_t = 100)]
        burst: u32,
    },
}

#[derive(Subcommand)]
enum BenchTarget {
    /// Redaction throughput on a generated chat corpus, native vs component, and host overhead.
    Redact {
        /// The redactor library component (pre-initialized).
        #[arg(
            long,
            default_value = "target/wasm32-wasip2/component/redactor.preinit.wasm"
        )]
        component: PathBuf,
        /// Minimum seconds per throughput measurement.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// Sentiment latency for 16/32/64/128-token inputs: native tract, inside the component via
    /// `sentio serve`, the `classifier` library component (when built), onnxruntime (Python, when
    /// models/.work/venv or SENTIO_BENCH_PYTHON has it).
    Classify {
        /// Model folder (model.onnx, tokenizer.json, config.json).
        #[arg(long, default_value = "models/sentiment-student")]
        model: PathBuf,
        /// More ONNX files to time natively on the same inputs (e.g. the fp32 export).
        #[arg(long)]
        compare: Vec<PathBuf>,
        /// Minimum seconds per cell.
        #[arg(long, default_value_t = 2)]
        seconds: u64,
        /// Time only the native pipeline and print its p50s as one JSON line (how the benchmark
        /// re-runs itself with tract limited to 128-bit kernels).
        #[arg(long, hide = true)]
        native_only: bool,
    },
    /// What `sentio serve`'s gateway (keys, rate limit, ids, metrics, dashboard, audit) adds
    /// per request, in-process, against one JSON parse of the same answer.
    Gateway {
        /// Minimum seconds per cell.
        #[arg(long, default_value_t = 2)]
        seconds: u64,
    },
    /// The heavy tier (teacher model) as its Lambda runs it: cold start, then latency and
    /// throughput of `/v1/classify` for batches of 1, 8 and 32 chat messages; the same texts
    /// through onnxruntime from Python (SENTIO_BENCH_PYTHON) and a Hugging Face `transformers`
    /// pipeline on PyTorch (SENTIO_BENCH_TORCH_PYTHON; both default to models/.work/venv).
    Heavy {
        /// Minimum seconds per batch size.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
}

fn parse_variable(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SENTIO_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            manifest,
            variables,
            request_timeout_secs,
            max_concurrent_requests,
            max_instance_reuse_count,
            max_instance_concurrent_reuse_count,
            idle_instance_timeout_ms,
        } => {
            init_logging();
            let mut options = sentio_host::HostOptions::new(manifest);
            options.variables = variables.into_iter().collect::<BTreeMap<_, _>>();
            options.request_timeout = Duration::from_secs(request_timeout_secs);
            options.limits.max_concurrent_requests = max_concurrent_requests;
            options.limits.max_instance_reuse_count = max_instance_reuse_count;
            options.limits.max_instance_concurrent_reuse_count =
                max_instance_concurrent_reuse_count;
            options.limits.idle_instance_timeout = Duration::from_millis(idle_instance_timeout_ms);
            serve(options, listen)
        }
        Command::Redact {
            text,
            input,
            operators,
            score_threshold,
        } => redact(text, &input, operators, score_threshold),
        Command::Bench {
            what: BenchTarget::Redact { component, seconds },
        } => bench::run(&component, seconds),
        Command::Bench {
            what:
                BenchTarget::Classify {
                    model,
                    seconds,
                    native_only,
                    ..
                },
        } if native_only => bench_classify::run_native_only(&model, seconds),
        Command::Bench {
            what:
                BenchTarget::Classify {
                    model,
                    compare,
                    seconds,
                    ..
                },
        } => bench_classify::run(&model, &compare, seconds),
        Command::Bench {
            what: BenchTarget::Heavy { seconds },
        } => bench_heavy::run(seconds),
        Command::Bench {
            what: BenchTarget::Gateway { seconds },
        } => bench_gateway::run(seconds),
        Command::Preinit { input, output } => {
            let wasm =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let snapshot = runtime.block_on(sentio_host::preinit::preinit(&wasm))?;
            std::fs::write(&output, &snapshot)
                .with_context(|| format!("writing {}", output.display()))?;
            println!(
                "pre-initialized {} -> {} ({} -> {} bytes)",
                input.display(),
                output.display(),
                wasm.len(),
                snapshot.len()
            );
            Ok(())
        }
        Command::Classify {
            text,
            input,
            model,
            progress,
        } => batch::classify(text, &input, &model, progress),
        Command::Eval {
            input,
            label_field,
            segments,
            model,
            plots,
            progress,
        } => batch::eval(
            &input,
            &label_field,
            &segments,
            &model,
            plots.as_deref(),
            progress,
        ),
        Command::Feedback {
            what:
                FeedbackCommand::Export {
                    data_dir,
                    s3_bucket,
                    out,
                },
        } => {
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            let written = match s3_bucket {
                Some(bucket) => {
                    let settings = sentio_heavy::S3Settings::from_lookup(|name| {
                        if name == "SENTIO_AUDIT_BUCKET" {
                            Some(bucket.clone())
                        } else {
                            std::env::var(name).ok()
                        }
                    })
                    .context("--s3-bucket must not be empty")?;
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async {
                        let audit =
                            std::sync::Arc::new(sentio_heavy::S3Audit::connect(&settings).await);
                        audit.export(&mut sink).await
                    })?
                }
                None => {
                    let dir = data_dir.join("audit");
                    if !dir.exists() {
                        bail!(
                            "no audit trail in {} (pass the data directory `sentio serve` used with --data-dir, or --s3-bucket)",
                            dir.display()
                        );
                    }
                    sentio_ops::audit::export_training_set(&dir, &mut sink)?
                }
            };
            sink.flush()?;
            eprintln!("exported {written} corrected predictions");
            Ok(())
        }
        Command::Keys {
            what:
                KeysCommand::New {
                    tenant,
                    id,
                    scopes,
                    rate_per_second,
                    burst,
                },
        } => {
            let mut random = [0u8; 24];
            getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let key: String = format!(
                "sk_{}",
                random
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            let entry = format!(
                "[[key]]\nid = {id:?}\ntenant = {tenant:?}\nsha256 = \"{}\"\nscopes = {scopes:?}\nrate_per_second = {rate_per_second}\nburst = {burst}\n",
                sentio_ops::access::hash_key(&key)
            );
            // Check the entry parses exactly as the server will read it.
            sentio_ops::access::AccessControl::from_toml(&entry)?;
            println!("# key (shown once): {key}\n{entry}");
            Ok(())
        }
        Command::Entities => {
            let engine = sentio_redact::Engine::builtin()?;
            for entity in engine.supported_entities() {
                println!("{entity}");
            }
            Ok(())
        }
    }
}

fn serve(mut options: sentio_host::HostOptions, listen: SocketAddr) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        let stack = stack::start().await?;
        // The edge escalates to the in-process heavy tier and defers to its queue unless the
        // manifest's variables point elsewhere.
        let heavy = format!("http://{addr}{}", stack::HEAVY_PREFIX);
        let key = stack.heavy_api_key.clone().unwrap_or_default();
        for (name, value) in [
            ("heavy_url", heavy.clone()),
            ("overflow_url", format!("{heavy}/v1/overflow")),
            ("heavy_origin", format!("http://{addr}")),
            ("heavy_api_key", key.clone()),
            ("overflow_api_key", key),
        ] {
            let from_env = format!("SPIN_VARIABLE_{}", name.to_uppercase());
            if !options.variables.contains_key(name) && !options.environment.contains_key(&from_env)
            {
                options.variables.insert(name.to_owned(), value);
            }
        }
        let gateway = stack::gateway(&stack)?;
        let mut native = sentio_ops::routes::native_routes(&gateway);
        native.push(stack.route.clone());
        let access = if gateway.0.access.is_open() {
            "open (no SENTIO_ACCESS_FILE: every request admitted, CORS same-origin only)"
        } else {
            "API keys from SENTIO_ACCESS_FILE"
        };
        let app = sentio_host::App::load_with(&options, native, Some(Arc::new(gateway)))?;
        for (route, component) in app.routes() {
            println!("route {route} -> {component}");
        }
        println!("route {}/... -> heavy tier (native)", stack::HEAVY_PREFIX);
        println!("queue {}", stack.queue.kind());
        println!("access {access}");
        println!("dashboard http://{addr}/dashboard  widget demo http://{addr}/web/demo.html");
        println!("listening on http://{addr}");
        std::io::stdout().flush()?;
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let served = app.serve(listener, shutdown).await;
        let _ = stack.shutdown.send(true);
        served
    })
}

fn redact(
    text: Option<String>,
    input: &batch::Input,
    operators: Option<String>,
    score_threshold: Option<f32>,
) -> Result<()> {
    let engine = sentio_redact::Engine::builtin()?;
    let config = batch::edge_config_from_env()?;
    let operators: serde_json::Value = match operators {
        Some(json) => serde_json::from_str(&json).context("--operators is not valid JSON")?,
        None => serde_json::json!({}),
    };
    let records = batch::records(text, input)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (n, record) in records.into_iter().enumerate() {
        let mut request = serde_json::json!({"text": record.text, "operators": operators});
        if let Some(s) = score_threshold {
            request["score_threshold"] = serde_json::json!(s);
        }
        let body = serde_json::to_vec(&request)?;
        let mut response = match sentio_core::redact_api::redact(&engine, &config, &body) {
            Ok(response) => serde_json::to_value(response)?,
            Err(e) => bail!("text {}: {} ({})", n + 1, e, e.field().unwrap_or("request")),
        };
        if !record.fields.is_empty()
            && let serde_json::Value::Object(map) = &mut response
        {
            map.insert("input".into(), serde_json::Value::Object(record.fields));
        }
        serde_json::to_writer(&mut out, &response)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
