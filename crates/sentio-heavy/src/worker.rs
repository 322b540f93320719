//! The queue worker: scores one SQS event's items in model batches with the teacher and delivers
//! each result to its callback, signed. It answers with the items that failed
//! (`ReportBatchItemFailures`), so only those are retried and, after `maxReceiveCount`, end in the
//! dead-letter queue. The worker Lambda (`functions/queue-worker`) and `sentio serve`'s poller
//! call the same [`Worker::handle`].
//!
//! Idempotent by item id: a result is computed once and kept in a [`ResultStore`]; a redelivered
//! item is answered from it with the same bytes, and one already delivered is not sent again.
//! Scoring is deterministic too (same model, same text, same bits, whatever the batch), so a
//! worker that never saw the first delivery (another Lambda instance) produces the same body.
//! Receivers de-duplicate by `Sentio-Delivery-Id`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use sentio_core::envelope::{ENVELOPE_VERSION, Envelope, ScoredItem};
use sentio_core::sentiment_api::{Tier, redact_and_classify, sentiment_policy};
use sentio_model::{Classifier, ClassifyOptions};
use sentio_queue::webhook::{DELIVERY_ID_HEADER, SIGNATURE_HEADER, sign};
use sentio_queue::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use sentio_redact::{Engine, RequestScope};

use crate::HeavyConfig;
use sentio_core::audit::{PredictionRecord, scored_item_record};

/// One queued item's span while its batch runs.
struct ItemSpan {
    span: sentio_trace::OpenSpan,
    message_id: String,
    job_id: String,
}

impl ItemSpan {
    /// Ids and outcome only: the item id can hold a caller's own id, so it stays out.
    fn finish(self, outcome: &str, model: &str) -> sentio_trace::Span {
        self.span.finish(
            sentio_trace::SpanKind::Consumer,
            "nearline item".into(),
            vec![
                ("messaging.system", "aws_sqs".into()),
                ("messaging.message.id", self.message_id),
                ("sentio.job_id", self.job_id),
                ("sentio.tier", "nearline".into()),
                ("sentio.model", model.to_owned()),
                ("sentio.outcome", outcome.to_owned()),
            ],
            outcome == "retry",
        )
    }
}

/// What [`PredictionSink::record`] returns.
pub type SinkFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

/// Where the worker records what it scored before delivering it: the S3 audit store on AWS
/// ([`crate::S3Audit`]), the gateway's audit files under `sentio serve`.
pub trait PredictionSink: Send + Sync {
    fn record<'a>(&'a self, records: &'a [PredictionRecord]) -> SinkFuture<'a>;
}

/// Results by item id, and whether each was delivered. In memory, plus an append-only file when
/// given a directory (`sentio serve`), so a restart does not deliver twice.
pub struct ResultStore {
    entries: Mutex<HashMap<String, StoredResult>>,
    file: Option<Mutex<File>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredResult {
    item_id: String,
    body: String,
    delivered: bool,
}

impl ResultStore {
    pub fn in_memory() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            file: None,
        }
    }

    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("results.log");
        let mut entries = HashMap::new();
        if path.exists() {
            for line in BufReader::new(File::open(&path)?).lines() {
                if let Ok(r) = serde_json::from_str::<StoredResult>(&line?) {
                    entries.insert(r.item_id.clone(), r);
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self {
            entries: Mutex::new(entries),
            file: Some(Mutex::new(file)),
        })
    }

    fn get(&self, item_id: &str) -> Option<StoredResult> {
        self.lock().get(item_id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StoredResult>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put(&self, result: StoredResult) {
        if let Some(file) = &self.file {
            let mut line = serde_json::to_vec(&result).expect("plain data serializes");
            line.push(b'\n');
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            // Losing this line costs at most one repeated delivery of an identical body.
            if let Err(e) = file.write_all(&line).and_then(|()| file.sync_data()) {
                tracing::warn!(error = %e, "result store write failed");
            }
        }
        self.lock().insert(result.item_id.clone(), result);
    }

    /// Items whose result was delivered.
    pub fn delivered(&self) -> usize {
        self.lock().values().filter(|r| r.delivered).count()
    }
}

/// What one event did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub scored: usize,
    pub delivered: usize,
    pub already_delivered: usize,
    /// Second copies of an item within one batch (SQS may deliver a message twice at once).
    pub duplicates: usize,
    pub failed: usize,
}

/// One webhook delivery to make.
struct Delivery {
    message_id: String,
    item_id: String,
    body: String,
    url: String,
    traceparent: Option<String>,
}

pub struct Worker {
    engine: Engine,
    classifier: Arc<dyn Classifier>,
    config: HeavyConfig,
    secret: Vec<u8>,
    http: reqwest::Client,
    results: ResultStore,
    audit: Option<Arc<dyn PredictionSink>>,
    spans: Option<sentio_trace::SpanExporter>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("SENTIO_WEBHOOK_SECRET is required to sign deliveries")]
    NoSecret,
    #[error("webhook client: {0}")]
    Client(String),
}

impl Worker {
    pub fn new(
        engine: Engine,
        classifier: Arc<dyn Classifier>,
        config: HeavyConfig,
        results: ResultStore,
    ) -> Result<Self, WorkerError> {
        let secret = config.webhook_secret.clone().ok_or(WorkerError::NoSecret)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.webhook_timeout_ms))
            // A redirect could lead off the allow-list.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WorkerError::Client(e.to_string()))?;
        Ok(Self {
            engine,
            classifier,
            config,
            secret,
            http,
            results,
            audit: None,
            spans: None,
        })
    }

    /// Exports one consumer span per queued item to `spans`.
    pub fn with_spans(mut self, spans: Option<sentio_trace::SpanExporter>) -> Self {
        self.spans = spans;
        self
    }

    /// Sends the spans exported so far (a Lambda calls it before answering).
    pub async fn flush_spans(&self) {
        if let Some(spans) = &self.spans {
            spans.flush().await;
        }
    }

    /// Records every scored item in `audit` before it is delivered.
    pub fn with_audit(mut self, audit: Option<Arc<dyn PredictionSink>>) -> Self {
        self.audit = audit;
        self
    }

    pub fn results(&self) -> &ResultStore {
        &self.results
    }

    /// Scores and delivers one event's items; the response names the ones to retry.
    pub async fn handle(self: &Arc<Self>, event: SqsEvent) -> SqsBatchResponse {
        let (response, stats) = self.handle_with_stats(event).await;
        tracing::info!(?stats, "worker batch");
        response
    }

    pub async fn handle_with_stats(
        self: &Arc<Self>,
        event: SqsEvent,
    ) -> (SqsBatchResponse, WorkerStats) {
        let mut stats = WorkerStats::default();
        let mut failed: Vec<String> = Vec::new();
        // (message id, envelope, url) still to score, and the deliveries to make.
        let mut to_score: Vec<(String, Envelope, String)> = Vec::new();
        let mut to_deliver: Vec<Delivery> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut item_spans: Vec<ItemSpan> = Vec::new();
        let mut already_delivered = std::collections::HashSet::new();
        for record in event.records {
            let mut envelope = match Envelope::parse(record.body.as_bytes()) {
                Ok(e) => e,
                Err(e) => {
                    // A poison message: retried, then dead-lettered, never dropped silently.
                    tracing::warn!(message_id = %record.message_id, kind = e.kind(), field = e.field().unwrap_or(""), "unreadable envelope");
                    failed.push(record.message_id);
                    continue;
                }
            };
            if !seen.insert(envelope.item_id.clone()) {
                // Its first copy in this batch is scored and delivered (or retried) for both.
                stats.duplicates += 1;
                continue;
            }
            if self.spans.is_some() {
                // The item's span continues the context its envelope carries, and the delivery
                // (its `traceparent` header) continues the item's span.
                let span = sentio_trace::OpenSpan::start(envelope.traceparent.as_deref());
                envelope.traceparent = Some(span.traceparent());
                item_spans.push(ItemSpan {
                    span,
                    message_id: record.message_id.clone(),
                    job_id: envelope.job_id.clone(),
                });
            }
            let Some(url) = self.callback_for(&envelope) else {
                tracing::warn!(item_id = %envelope.item_id, "no allowed callback for item");
                failed.push(record.message_id);
                continue;
            };
            match self.results.get(&envelope.item_id) {
                Some(r) if r.delivered => {
                    stats.already_delivered += 1;
                    already_delivered.insert(record.message_id);
                }
                Some(r) => to_deliver.push(Delivery {
                    message_id: record.message_id,
                    item_id: r.item_id,
                    body: r.body,
                    url,
                    traceparent: envelope.traceparent,
                }),
                None => to_score.push((record.message_id, envelope, url)),
            }
        }

        if !to_score.is_empty() {
            match self.score(&to_score).await {
                Ok(bodies) => {
                    stats.scored += bodies.len();
                    for ((message_id, envelope, url), body) in to_score.into_iter().zip(bodies) {
                        self.results.put(StoredResult {
                            item_id: envelope.item_id.clone(),
                            body: body.clone(),
                            delivered: false,
                        });
                        to_deliver.push(Delivery {
                            message_id,
                            item_id: envelope.item_id,
                            body,
                            url,
                            traceparent: envelope.traceparent,
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, items = to_score.len(), "scoring failed");
                    failed.extend(to_score.into_iter().map(|(id, _, _)| id));
                }
            }
        }

        // Nothing goes out that the audit trail lacks. Writing a record again (a retry, a
        // redelivery) rewrites the same object, so this runs for every delivery.
        if let Some(audit) = &self.audit
            && !to_deliver.is_empty()
        {
            let at_ms = sentio_queue::now_ms();
            let records: Vec<PredictionRecord> = to_deliver
                .iter()
                .filter_map(|d| serde_json::from_str::<ScoredItem>(&d.body).ok())
                .map(|item| scored_item_record(&item, at_ms))
                .collect();
            if let Err(e) = audit.record(&records).await {
                // Retried with their results kept: they are not scored again.
                tracing::error!(error = %e, items = to_deliver.len(), "audit trail write failed");
                failed.extend(to_deliver.drain(..).map(|d| d.message_id));
            }
        }

        let deliveries = to_deliver.into_iter().map(|d| {
            let this = self.clone();
            tokio::spawn(async move {
                let ok = this.deliver(&d).await;
                if ok {
                    this.results.put(StoredResult {
                        item_id: d.item_id,
                        body: d.body,
                        delivered: true,
                    });
                }
                (d.message_id, ok)
            })
        });
        let deliveries: Vec<_> = deliveries.collect();
        for d in deliveries {
            match d.await {
                Ok((_, true)) => stats.delivered += 1,
                Ok((message_id, false)) => failed.push(message_id),
                Err(e) => tracing::error!(error = %e, "delivery task failed"),
            }
        }
        stats.failed = failed.len();
        if let Some(exporter) = &self.spans {
            let model = self.classifier.model();
            let model = format!("{}@{}", model.id, model.version);
            let retried: std::collections::HashSet<&String> = failed.iter().collect();
            for span in item_spans {
                let outcome = if retried.contains(&span.message_id) {
                    "retry"
                } else if already_delivered.contains(&span.message_id) {
                    "already_delivered"
                } else {
                    "delivered"
                };
                exporter.export(span.finish(outcome, &model));
            }
        }
        (
            SqsBatchResponse {
                batch_item_failures: failed
                    .into_iter()
                    .map(|item_identifier| BatchItemFailure { item_identifier })
                    .collect(),
            },
            stats,
        )
    }

    fn callback_for(&self, envelope: &Envelope) -> Option<String> {
        let url = envelope
            .callback_url
            .clone()
            .or_else(|| self.config.default_callback_url.clone())?;
        self.config.callback_allowed(&url).then_some(url)
    }

    /// One model call per `sentences` setting; returns the delivery body of each item, in order.
    async fn score(
        self: &Arc<Self>,
        items: &[(String, Envelope, String)],
    ) -> Result<Vec<String>, String> {
        let this = self.clone();
        let envelopes: Vec<Envelope> = items.iter().map(|(_, e, _)| e.clone()).collect();
        tokio::task::spawn_blocking(move || {
            let policy =
                sentiment_policy(&this.engine, &this.config.api).map_err(|e| e.to_string())?;
            let mut bodies = vec![String::new(); envelopes.len()];
            for sentences in [false, true] {
                let group: Vec<usize> = (0..envelopes.len())
                    .filter(|&i| envelopes[i].sentences == sentences)
                    .collect();
                if group.is_empty() {
                    continue;
                }
                // Redacted again: a workflow may have queued text that skipped the edge.
                let texts: Vec<&str> = group
                    .iter()
                    .map(|&i| envelopes[i].redacted_text.as_str())
                    .collect();
                let options = ClassifyOptions {
                    sentences,
                    max_sentences: this.config.api.max_sentences,
                    // No token limit: queued work has no request deadline, and the queue is
                    // where the synchronous endpoints send texts over theirs.
                    max_tokens: usize::MAX,
                };
                let mut scope = RequestScope::default();
                let (results, _) = redact_and_classify(
                    &this.engine,
                    &policy,
                    &mut scope,
                    this.classifier.as_ref(),
                    &texts,
                    "texts",
                    &options,
                )
                .map_err(|e| e.to_string())?;
                for (&i, mut result) in group.iter().zip(results) {
                    let e = &envelopes[i];
                    // The item id names the prediction in feedback and the audit trail.
                    result.prediction_id = Some(e.item_id.clone());
                    let item = ScoredItem {
                        version: ENVELOPE_VERSION,
                        job_id: e.job_id.clone(),
                        item_id: e.item_id.clone(),
                        source: e.source,
                        tier: Tier::Nearline,
                        model: this.classifier.model().clone(),
                        result,
                        metadata: e.metadata.clone(),
                        tenant: e.tenant.clone(),
                    };
                    bodies[i] = serde_json::to_string(&item).map_err(|e| e.to_string())?;
                }
            }
            Ok(bodies)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn deliver(&self, delivery: &Delivery) -> bool {
        let Delivery {
            item_id, url, body, ..
        } = delivery;
        let signature = sign(&self.secret, sentio_queue::now_ms() / 1000, body.as_bytes());
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_ID_HEADER, item_id);
        // The receiver continues the trace of the request that queued the item.
        if let Some(traceparent) = &delivery.traceparent {
            request = request.header("traceparent", traceparent);
        }
        let result = request.body(body.clone()).send().await;
        match result {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                tracing::warn!(%item_id, status = r.status().as_u16(), "webhook refused the delivery");
                false
            }
            Err(e) => {
                tracing::warn!(%item_id, error = %e, "webhook unreachable");
                false
            }
        }
    }
}
