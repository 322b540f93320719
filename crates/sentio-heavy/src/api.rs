//! The heavy tier's HTTP API, transport-free: the Lambda shell (`functions/heavy-classify`) and
//! `sentio serve` (under `/heavy`) both hand it an `http::Request<Bytes>`.
//!
//! * `POST /v1/classify`: like the edge's `/classify-sentiment` with the teacher model, up to 256
//!   texts per batch (the pipeline batches by length).
//! * `POST /v1/analyze-conversation`: the edge's conversation analysis with the teacher model.
//! * `POST /v1/jobs`: large batches for the queue; the texts are redacted here, one envelope per
//!   item is queued, and the answer is `202` with the job and item ids. Results arrive by signed
//!   webhook from the worker.
//! * `POST /v1/overflow`: one envelope, already redacted by the edge, queued as it is (the
//!   edge's deferred escalations; in AWS this route is an API Gateway → SQS integration).
//! * `POST /v1/feedback`: a human correction of a recorded prediction (as `sentio serve`'s
//!   `/feedback`), stored in the S3 audit store.
//! * `POST /v1/audit`: the records of predictions answered elsewhere (the edge components on
//!   Spin send theirs here after answering), stored with the tier's own.
//! * `GET /v1/audit/{prediction_id}`: a prediction's audit record and its corrections.
//! * `GET /v1/healthz`: model and queue.
//!
//! With an audit store (`SENTIO_AUDIT_BUCKET`), every prediction the tier answers is recorded
//! there before the answer goes out (a Lambda may be frozen the moment it answers); without
//! one, the feedback and audit routes answer 503.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use sentio_core::audit::{FeedbackRequest, ForwardedRecords, prediction_records};
use sentio_core::envelope::{
    ENVELOPE_VERSION, Envelope, EnvelopeSource, check_callback_url, check_id, job_id_from,
};
use sentio_core::sentiment_api::{self, Tier, sentiment_policy};
use sentio_core::{ApiError, EdgeConfig, Metadata, RequestContext};
use sentio_model::{Classifier, ModelInfo};
use sentio_queue::{Queue, now_ms};
use sentio_redact::{Engine, RequestScope};

use crate::HeavyConfig;
use crate::audit_s3::S3Audit;

/// `sentiment_api::classify` and `sentiment_api::analyze_conversation`.
type Endpoint<T> =
    fn(&Engine, &dyn Classifier, &EdgeConfig, &[u8], Tier, &RequestContext) -> Result<T, ApiError>;

/// Built once per cold start (or per `sentio serve`) and shared by every request.
pub struct HeavyTier {
    pub engine: Engine,
    pub classifier: Arc<dyn Classifier>,
    pub config: HeavyConfig,
    /// Where `/v1/jobs` and `/v1/overflow` put items; without one they answer 503.
    pub queue: Option<Arc<Queue>>,
    /// Where predictions and corrections are recorded (AWS); `sentio serve` records at its
    /// gateway instead and leaves this `None`.
    pub audit: Option<S3Audit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobRequest {
    items: Vec<JobItem>,
    #[serde(default)]
    callback_url: Option<String>,
    #[serde(default)]
    sentences: bool,
    /// Applies to every item without its own.
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobItem {
    /// The caller's id for the item; echoed in the item id (`{job_id}:{id}`).
    #[serde(default)]
    id: Option<String>,
    text: String,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Debug, Serialize)]
struct JobAccepted {
    job_id: String,
    queued: usize,
    item_ids: Vec<String>,
    queue: &'static str,
}

#[derive(Debug, Serialize)]
struct Health<'a> {
    status: &'static str,
    tier: Tier,
    model: &'a ModelInfo,
    queue: Option<&'static str>,
}

impl HeavyTier {
    /// Answers one request. Never panics on input; every failure is a typed JSON error.
    pub async fn handle(self: Arc<Self>, request: Request<Bytes>) -> Response<Bytes> {
        match self.route(request).await {
            Ok((status, body)) => json(status, body),
            Err(e) => {
                let mut response = json(e.status(), e.to_json());
                if let ApiError::MethodNotAllowed { allowed, .. } = e {
                    response
                        .headers_mut()
                        .insert(http::header::ALLOW, http::HeaderValue::from_static(allowed));
                }
                response
            }
        }
    }

    async fn route(self: Arc<Self>, request: Request<Bytes>) -> Result<(u16, Vec<u8>), ApiError> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().trim_end_matches('/').to_owned();
        let allowed = match path.as_str() {
            "/v1/healthz" => "GET",
            "/v1/classify"
            | "/v1/analyze-conversation"
            | "/v1/jobs"
            | "/v1/overflow"
            | "/v1/feedback"
            | "/v1/audit" => "POST",
            p if p.starts_with("/v1/audit/") => "GET",
            _ => {
                return Err(ApiError::NotFound {
                    path: path.chars().take(200).collect(),
                });
            }
        };
        if parts.method.as_str() != allowed {
            return Err(ApiError::MethodNotAllowed {
                method: parts.method.to_string(),
                allowed,
            });
        }
        self.authorize(&parts.headers)?;
        let ctx = RequestContext::from_headers(|name| {
            parts.headers.get(name).and_then(|v| v.to_str().ok())
        });
        if let Some(id) = path.strip_prefix("/v1/audit/") {
            let entry = self.audit()?.entry(ctx.tenant.as_deref(), id).await?;
            let entry = entry.ok_or_else(|| ApiError::NotFound {
                path: path.chars().take(200).collect(),
            })?;
            return Ok((200, to_json(&entry)?));
        }
        if parts.method == Method::GET {
            let health = Health {
                status: "ok",
                tier: Tier::Heavy,
                model: self.classifier.model(),
                queue: self.queue.as_ref().map(|q| q.kind()),
            };
            return Ok((200, to_json(&health)?));
        }
        sentio_core::http::check_json_content_type(
            parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
        )?;
        // Batches (of texts, or of other tiers' records) may be larger than one request.
        let limit = if path == "/v1/jobs" || path == "/v1/audit" {
            self.config.max_job_body_bytes
        } else {
            self.config.api.max_body_bytes
        };
        if body.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit_bytes: limit });
        }
        match path.as_str() {
            "/v1/classify" => self.answer(ctx, &path, body, sentiment_api::classify).await,
            "/v1/analyze-conversation" => {
                self.answer(ctx, &path, body, sentiment_api::analyze_conversation)
                    .await
            }
            "/v1/jobs" => self.submit_job(&body, ctx).await,
            "/v1/feedback" => {
                let request: FeedbackRequest = sentio_core::http::parse_json(&body)?;
                let record = self
                    .audit()?
                    .feedback(ctx.tenant.as_deref(), request, now_ms(), random_bytes())
                    .await?;
                Ok((201, to_json(&record)?))
            }
            "/v1/audit" => {
                let records = ForwardedRecords::parse(&body, ctx.tenant.as_deref())?;
                self.audit()?.record(&records).await?;
                Ok((
                    201,
                    to_json(&serde_json::json!({"recorded": records.len()}))?,
                ))
            }
            _ => self.accept_overflow(&body).await,
        }
    }

    /// Runs one of core's endpoint functions with the teacher, off the async threads, and
    /// records its predictions when there is an audit store.
    async fn answer<T: Serialize + Send + 'static>(
        self: Arc<Self>,
        ctx: RequestContext,
        route: &str,
        body: Bytes,
        endpoint: Endpoint<T>,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let tenant = ctx.tenant.clone();
        let audit = self.audit.clone();
        let answer = blocking(move || {
            let config = self.config.api.clone().for_tenant(ctx.tenant.as_deref());
            endpoint(
                &self.engine,
                self.classifier.as_ref(),
                &config,
                &body,
                Tier::Heavy,
                &ctx,
            )
        })
        .await?;
        let body = to_json(&answer)?;
        if let Some(audit) = audit {
            let observed = sentio_core::audit::observe(&body);
            let records = prediction_records(&observed, route, tenant.as_deref(), now_ms());
            // A failed audit write does not fail an answer already computed: it is logged
            // (counts only, no text) and the caller gets the answer.
            if let Err(e) = audit.record(&records).await {
                tracing::error!(error = %e, predictions = records.len(), "audit trail write failed");
            }
        }
        Ok((200, body))
    }

    fn audit(&self) -> Result<&S3Audit, ApiError> {
        self.audit.as_ref().ok_or_else(|| ApiError::Unavailable {
            detail: "no audit store is configured for this tier (SENTIO_AUDIT_BUCKET)".into(),
        })
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.config.api_key else {
            return Ok(());
        };
        let given = headers
            .get("x-api-key")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, expected.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized {
                header: "x-api-key",
            })
        }
    }

    fn queue(&self) -> Result<&Queue, ApiError> {
        self.queue.as_deref().ok_or_else(|| ApiError::Unavailable {
            detail: "no queue is configured for this tier".into(),
        })
    }

    async fn submit_job(
        self: Arc<Self>,
        body: &[u8],
        ctx: RequestContext,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let request: JobRequest = sentio_core::http::parse_json(body)?;
        if request.items.is_empty() {
            return Err(ApiError::invalid("items", "must not be empty"));
        }
        if request.items.len() > self.config.max_job_items {
            return Err(ApiError::invalid(
                "items",
                format!("at most {} items per job", self.config.max_job_items),
            ));
        }
        request.metadata.check("metadata")?;
        if let Some(url) = &request.callback_url {
            check_callback_url("callback_url", url)?;
            if !self.config.callback_allowed(url) {
                return Err(ApiError::invalid(
                    "callback_url",
                    "host is not in SENTIO_CALLBACK_ALLOWED_HOSTS",
                ));
            }
        } else if self.config.default_callback_url.is_none() {
            return Err(ApiError::invalid(
                "callback_url",
                "required: no default callback is configured",
            ));
        }
        let job_id = job_id_from(random_bytes());
        let mut item_ids = Vec::with_capacity(request.items.len());
        for (i, item) in request.items.iter().enumerate() {
            if let Some(id) = &item.id {
                check_id(&format!("items[{i}].id"), id)?;
            }
            if let Some(m) = &item.metadata {
                m.check(&format!("items[{i}].metadata"))?;
            }
            let item_id = format!(
                "{job_id}:{}",
                item.id.clone().unwrap_or_else(|| i.to_string())
            );
            if item_ids.contains(&item_id) {
                return Err(ApiError::invalid(
                    format!("items[{i}].id"),
                    "duplicates an earlier item id",
                ));
            }
            item_ids.push(item_id);
        }
        // Redact here: raw customer text never enters the queue.
        let this = self.clone();
        let texts: Vec<String> = request.items.iter().map(|i| i.text.clone()).collect();
        let redacted = blocking(move || {
            let policy = sentiment_policy(&this.engine, &this.config.api)?;
            let mut scope = RequestScope::default();
            Ok(texts
                .iter()
                .map(|t| this.engine.redact(t, &policy, &mut scope).redacted_text)
                .collect::<Vec<_>>())
        })
        .await?;
        let now = now_ms();
        let mut bodies = Vec::with_capacity(redacted.len());
        for (i, ((item, redacted_text), item_id)) in request
            .items
            .into_iter()
            .zip(redacted)
            .zip(&item_ids)
            .enumerate()
        {
            let envelope = Envelope {
                version: ENVELOPE_VERSION,
                job_id: job_id.clone(),
                item_id: item_id.clone(),
                source: EnvelopeSource::Job,
                redacted_text,
                metadata: item.metadata.unwrap_or_else(|| request.metadata.clone()),
                sentences: request.sentences,
                callback_url: request.callback_url.clone(),
                enqueued_at_ms: now,
                traceparent: ctx.traceparent.clone(),
                tenant: ctx.tenant.clone(),
            };
            envelope.check().map_err(|e| match e {
                ApiError::InvalidField { field, message } => ApiError::invalid(
                    format!("items[{i}].{}", field.replace("redacted_text", "text")),
                    message,
                ),
                other => other,
            })?;
            bodies.push(String::from_utf8(envelope.to_json()).expect("JSON is UTF-8"));
        }
        let queue = self.queue()?;
        queue.send(&bodies).await.map_err(|e| {
            tracing::error!(error = %e, "queueing a job failed");
            ApiError::Unavailable {
                detail: "the queue did not accept the job; nothing was queued, retry".into(),
            }
        })?;
        tracing::info!(%job_id, items = bodies.len(), "job queued");
        let accepted = JobAccepted {
            job_id,
            queued: bodies.len(),
            item_ids,
            queue: queue.kind(),
        };
        Ok((202, to_json(&accepted)?))
    }

    async fn accept_overflow(&self, body: &[u8]) -> Result<(u16, Vec<u8>), ApiError> {
        let envelope = Envelope::parse(body)?;
        if let Some(url) = &envelope.callback_url
            && !self.config.callback_allowed(url)
        {
            return Err(ApiError::invalid(
                "callback_url",
                "host is not in SENTIO_CALLBACK_ALLOWED_HOSTS",
            ));
        }
        let body = String::from_utf8(envelope.to_json()).expect("JSON is UTF-8");
        self.queue()?.send(&[body]).await.map_err(|e| {
            tracing::error!(error = %e, "queueing an overflow item failed");
            ApiError::Unavailable {
                detail: "the queue did not accept the item; retry".into(),
            }
        })?;
        #[derive(Serialize)]
        struct Queued<'a> {
            job_id: &'a str,
            item_id: &'a str,
        }
        Ok((
            202,
            to_json(&Queued {
                job_id: &envelope.job_id,
                item_id: &envelope.item_id,
            })?,
        ))
    }
}

/// Runs CPU-bound model work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal {
            detail: format!("classification task failed: {e}"),
        })?
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::Internal {
        detail: e.to_string(),
    })
}

fn json(status: u16, body: Vec<u8>) -> Response<Bytes> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Bytes::from(body))
        .expect("static headers are valid")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 16 bytes from the OS for job ids.
pub fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // The OS generator does not fail on the platforms Sentio runs on; if it did, a time-based id
    // is still unique enough for a job id (never used as a secret).
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&now_ms().to_le_bytes());
    }
    bytes
}
