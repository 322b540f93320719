//! The tiers behind the edge components in `sentio serve`: the heavy tier in-process under
//! `/heavy`, the nearline queue (embedded and durable, or SQS when configured), and a poller that
//! plays SQS's event source mapping for the worker (in-process, or a real Lambda runtime through
//! its invoke URL).
//!
//! Environment (all optional):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SENTIO_DATA_DIR` | `.sentio-data` | embedded queue and worker results |
//! | `SENTIO_SQS_ENDPOINT` | – | an SQS-compatible server (moto) instead of the embedded queue |
//! | `SENTIO_SQS_QUEUE_URL`, `SENTIO_SQS_DLQ_URL` | created as `sentio-nearline(-dlq)` | the queue pair |
//! | `SENTIO_QUEUE_VISIBILITY_SECS` | 30 | visibility timeout |
//! | `SENTIO_QUEUE_MAX_RECEIVES` | 5 | receives before the dead-letter queue |
//! | `SENTIO_POLLER_BATCH_SIZE` | 10 | messages per worker invocation |
//! | `SENTIO_WORKER_INVOKE_URL` | – | invoke the worker Lambda there instead of in-process |
//! | `SENTIO_WEBHOOK_SECRET` | – | signs deliveries; without it no worker runs |
//! | `SENTIO_ACCESS_FILE` | – | API keys, scopes, rate limits, CORS origins (see `sentio_ops::access`); open without |
//! | `SENTIO_DRIFT_WINDOW_SECS` | 300 | the dashboard's recent window, compared with the hour before it |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` etc. | – | export spans over OTLP/HTTP, protobuf or JSON (see `sentio_trace`) |
//!
//! plus the heavy tier's `SENTIO_*` variables (see `sentio_heavy::HeavyConfig`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use sentio_heavy::{HeavyConfig, HeavyTier, ResultStore, Worker};
use sentio_queue::poller::{self, PollerSettings};
use sentio_queue::{EmbeddedQueue, EmbeddedSettings, Queue, SqsBatchResponse, SqsEvent};

/// Where the edge finds the local tiers.
pub const HEAVY_PREFIX: &str = "/heavy";

pub struct Stack {
    pub route: sentio_host::NativeRoute,
    /// What the heavy tier expects as `x-api-key` (the edge must send it).
    pub heavy_api_key: Option<String>,
    pub queue: Arc<Queue>,
    /// Stops the poller.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The audit trail in `SENTIO_DATA_DIR/audit`: the gateway records what it answers, the
    /// in-process worker what it delivers.
    pub audit: Arc<sentio_ops::audit::AuditLog>,
    /// Span export (`OTEL_*`), shared by the gateway and the in-process worker.
    pub spans: Option<sentio_trace::SpanExporter>,
}

/// The in-process worker's records go to the gateway's audit files.
struct LocalAudit(Arc<sentio_ops::audit::AuditLog>);

impl sentio_heavy::PredictionSink for LocalAudit {
    fn record<'a>(
        &'a self,
        records: &'a [sentio_core::audit::PredictionRecord],
    ) -> sentio_heavy::worker::SinkFuture<'a> {
        for record in records {
            self.0.record(record);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_number(name: &str, default: u64) -> Result<u64> {
    match env(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name} must be a whole number")),
    }
}

/// `SENTIO_DATA_DIR`: the embedded queue and the worker's results live below it.
fn data_dir() -> PathBuf {
    PathBuf::from(env("SENTIO_DATA_DIR").unwrap_or_else(|| ".sentio-data".into()))
}

async fn open_queue() -> Result<Queue> {
    let visibility = Duration::from_secs(env_number("SENTIO_QUEUE_VISIBILITY_SECS", 30)?);
    let max_receives = env_number("SENTIO_QUEUE_MAX_RECEIVES", 5)? as u32;
    if let Some(endpoint) = env("SENTIO_SQS_ENDPOINT") {
        let region = env("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
        let (queue_url, dlq_url) = match env("SENTIO_SQS_QUEUE_URL") {
            Some(url) => (url, env("SENTIO_SQS_DLQ_URL")),
            None => {
                let client = sentio_queue::sqs::client(Some(&endpoint), &region).await;
                let (q, d) = sentio_queue::SqsQueue::create_with_dlq(
                    &client,
                    "sentio-nearline",
                    visibility,
                    max_receives,
                )
                .await
                .with_context(|| format!("creating the queues on {endpoint}"))?;
                (q, Some(d))
            }
        };
        let settings = sentio_queue::SqsSettings {
            endpoint: Some(endpoint),
            region,
            queue_url,
            dlq_url,
        };
        return Ok(Queue::Sqs(sentio_queue::SqsQueue::connect(&settings).await));
    }
    let dir = data_dir();
    let queue = EmbeddedQueue::open(
        &dir.join("queue"),
        EmbeddedSettings {
            visibility_timeout: visibility,
            max_receives,
        },
    )
    .with_context(|| format!("opening the embedded queue in {}", dir.display()))?;
    Ok(Queue::Embedded(queue))
}

/// `bytes` random bytes in hex for a secret (an API key): unlike ids, no fallback without an
/// entropy source.
pub fn secret_hex(bytes: usize) -> Result<String> {
    let mut random = vec![0u8; bytes];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    Ok(sentio_core::context::hex(&random))
}

/// Builds the heavy tier, the queue and (with a webhook secret) the worker's poller.
pub async fn start() -> Result<Stack> {
    let mut config = HeavyConfig::from_lookup(env)?;
    if config.api_key.is_none() && env("SENTIO_ACCESS_FILE").is_some() {
        // With access control on, `/heavy` must not be the open back door: the heavy tier gets
        // a per-process key that only the edge (through its variables) is given.
        config.api_key = Some(secret_hex(24)?);
    }
    let queue = Arc::new(open_queue().await?);
    let audit = sentio_ops::audit::AuditLog::open(&data_dir().join("audit"))?;
    let spans = sentio_trace::SpanExporter::from_lookup(env).map_err(anyhow::Error::msg)?;
    let classifier = sentio_heavy::load_teacher().context("loading the teacher model")?;
    let heavy = Arc::new(HeavyTier {
        engine: sentio_heavy::build_engine(&config)?,
        classifier: classifier.clone(),
        config: config.clone(),
        queue: Some(queue.clone()),
        audit: None,
    });
    let max_body_bytes = config.max_job_body_bytes.max(config.api.max_body_bytes);
    let handler: sentio_host::NativeHandler = Arc::new(move |request| {
        let heavy = heavy.clone();
        Box::pin(heavy.handle(request))
    });
    let (shutdown, stop) = tokio::sync::watch::channel(false);
    let settings = PollerSettings {
        batch_size: env_number("SENTIO_POLLER_BATCH_SIZE", 10)? as usize,
        ..PollerSettings::default()
    };
    if settings.batch_size == 0 {
        bail!("SENTIO_POLLER_BATCH_SIZE must be at least 1");
    }
    if let Some(invoke_url) = env("SENTIO_WORKER_INVOKE_URL") {
        // The worker runs as a Lambda (e.g. under `cargo lambda watch`): invoke it as the event
        // source mapping would.
        let client = reqwest::Client::new();
        tokio::spawn(poller::run(
            queue.clone(),
            settings,
            move |event: SqsEvent| {
                let client = client.clone();
                let url = invoke_url.clone();
                async move { invoke_lambda(&client, &url, &event).await }
            },
            stop,
        ));
        tracing::info!("queue poller started; worker: Lambda invoke URL");
    } else if config.webhook_secret.is_some() {
        let results = ResultStore::open(&data_dir().join("worker"))?;
        let worker = Arc::new(
            Worker::new(
                sentio_heavy::build_engine(&config)?,
                classifier,
                config.clone(),
                results,
            )?
            .with_audit(Some(Arc::new(LocalAudit(audit.clone()))))
            .with_spans(spans.clone()),
        );
        tokio::spawn(poller::run(
            queue.clone(),
            settings,
            move |event: SqsEvent| {
                let worker = worker.clone();
                async move { Ok::<_, String>(worker.handle(event).await) }
            },
            stop,
        ));
        tracing::info!(
            queue = queue.kind(),
            "queue poller started; worker: in-process"
        );
    } else {
        tracing::warn!(
            "SENTIO_WEBHOOK_SECRET is not set: items are queued but no worker scores them"
        );
    }
    Ok(Stack {
        heavy_api_key: config.api_key.clone(),
        route: sentio_host::NativeRoute {
            prefix: HEAVY_PREFIX.into(),
            max_body_bytes,
            handler,
        },
        queue,
        shutdown,
        audit,
        spans,
    })
}

/// The gateway around every request: access rules, metrics, the dashboard's window, the audit
/// trail in `SENTIO_DATA_DIR/audit`. A task samples the queue's depth into the metrics.
pub fn gateway(stack: &Stack) -> Result<sentio_ops::Gateway> {
    let access = match env("SENTIO_ACCESS_FILE") {
        None => sentio_ops::access::AccessControl::open(),
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading SENTIO_ACCESS_FILE {path}"))?;
            sentio_ops::access::AccessControl::from_toml(&text)
                .with_context(|| format!("SENTIO_ACCESS_FILE {path}"))?
        }
    };
    let settings = sentio_ops::dashboard::WindowSettings {
        current_ms: env_number("SENTIO_DRIFT_WINDOW_SECS", 300)? * 1000,
        ..Default::default()
    };
    let audit = stack.audit.clone();
    let spans = stack.spans.clone();
    let gateway = sentio_ops::Gateway(Arc::new(sentio_ops::GatewayState {
        access,
        metrics: sentio_ops::metrics::Metrics::default(),
        dashboard: sentio_ops::dashboard::Dashboard::new(settings),
        audit: Some(audit),
        spans,
    }));
    let state = gateway.0.clone();
    let queue = stack.queue.clone();
    let mut stop = stack.shutdown.subscribe();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.changed() => return,
            }
            let Ok(depth) = queue.depth().await else {
                continue;
            };
            let now = sentio_ops::now_ms();
            let gauges = sentio_ops::metrics::QueueGauges {
                visible: depth.visible,
                in_flight: depth.in_flight,
                dead: depth.dead,
                oldest_age_seconds: depth
                    .oldest_sent_at_ms
                    .map(|at| now.saturating_sub(at) as f64 / 1000.0),
            };
            state.metrics.set_queue(gauges);
            state.dashboard.record_queue(now, gauges);
        }
    });
    Ok(gateway)
}

/// One synchronous Lambda invoke with the event; the function's error is a failed batch.
async fn invoke_lambda(
    client: &reqwest::Client,
    url: &str,
    event: &SqsEvent,
) -> Result<SqsBatchResponse, String> {
    let response = client
        .post(url)
        .json(event)
        .timeout(Duration::from_secs(900))
        .send()
        .await
        .map_err(|e| format!("invoke failed: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("function answered {status}"));
    }
    // A function error comes back as `{"errorType", "errorMessage"}`.
    serde_json::from_slice::<SqsBatchResponse>(&body)
        .map_err(|_| format!("function failed: {}", String::from_utf8_lossy(&body)))
}
