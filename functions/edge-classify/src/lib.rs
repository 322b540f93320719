//! The edge's sentiment endpoints as one Spin HTTP component:
//! `POST /classify-sentiment`, `POST /analyze-conversation`, `POST /stream-sentiment`.
//!
//! The student model and tokenizer are compiled into the component. Loading them (parsing
//! `tokenizer.json`, tract's optimization passes) takes tens of milliseconds, so `sentio preinit`
//! runs the `sentio-preinit` export once and snapshots the instance (Wizer): every request then
//! starts from memory where both are ready. The snapshot also freezes the hash seeds of the
//! tokenizer's and tract's tables; that is acceptable because those tables are built from the model
//! files only, never from request data, so their seeds protect nothing (see README).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::SinkExt as _;
use http_body_util::BodyExt as _;
use sentio_core::audit;
use sentio_core::routing::{self, EscalationOutcome, EscalationReason, EscalationStatus, Route};
use sentio_core::sentiment_api::{self, ClassifyResponse, LineBuffer, SentimentStream, Tier};
use sentio_core::{ApiError, AuditForwarding, EdgeConfig, RequestContext, RoutingConfig};
use sentio_model::TractPipeline;
use sentio_redact::Engine;
use spin_sdk::http::{IntoResponse, Method, Request, StatusCode};
use spin_sdk::http_service;

type Reply = http::Response<spin_sdk::http::BoxBody>;

// The `sentio-preinit` export (WIT world `sentio:edge/preinit`). wit-bindgen's generated ABI glue
// needs `unsafe`; nothing written by hand here does.
#[allow(unsafe_code)]
mod preinit {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "sentio:edge/preinit",
        pub_export_macro: true,
        export_macro_name: "export_preinit",
    });
}

struct Preinit;

impl preinit::Guest for Preinit {
    /// Loads the model and the recognizers and runs one classification, so the snapshot holds
    /// everything warmed: allocations made, automata built, lazy tables filled.
    fn sentio_preinit() {
        if let (Ok(engine), Ok(model)) = (builtin_engine(), student()) {
            engine.warm_up();
            model.warm_up();
        }
    }
}

#[allow(unsafe_code)]
mod preinit_export {
    use super::Preinit;
    crate::preinit::export_preinit!(Preinit with_types_in crate::preinit);
}

static BUILTIN_ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

fn student() -> Result<&'static TractPipeline, ApiError> {
    sentio_model::edge_student().map_err(|e| ApiError::Internal {
        detail: e.to_owned(),
    })
}

fn builtin_engine() -> Result<&'static Engine, ApiError> {
    BUILTIN_ENGINE
        .get_or_init(|| Engine::builtin().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ApiError::Internal { detail: e.clone() })
}

/// The built-in recognizers, or a copy extended with the team's own (`redact_custom_recognizers`).
fn engine_for(config: &EdgeConfig) -> Result<std::borrow::Cow<'static, Engine>, ApiError> {
    let builtin = builtin_engine()?;
    if config.custom_recognizers.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(builtin));
    }
    builtin
        .extend(&config.custom_recognizers)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| ApiError::Internal {
            detail: e.to_string(),
        })
}

async fn load_config() -> Result<EdgeConfig, ApiError> {
    let mut values = Vec::new();
    for &name in EdgeConfig::VARIABLES {
        match spin_sdk::variables::get(name).await {
            Ok(v) => values.push((name, v)),
            Err(spin_sdk::variables::Error::Undefined(_)) => {}
            Err(e) => {
                return Err(ApiError::Internal {
                    detail: format!("reading variable `{name}`: {e:?}"),
                });
            }
        }
    }
    EdgeConfig::from_lookup(|k| values.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .map_err(|e| ApiError::Internal {
            detail: e.to_string(),
        })
}

async fn read_body(req: Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit_bytes: limit };
    if declared_length(&req).is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    let mut body = req.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::MalformedJson {
            detail: format!("request body could not be read: {e:?}"),
        })?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(too_large);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

fn declared_length(req: &Request) -> Option<usize> {
    req.headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

enum Endpoint {
    Classify,
    Conversation,
    Stream,
}

impl Endpoint {
    /// As the audit trail names it.
    fn route(&self) -> &'static str {
        match self {
            Endpoint::Classify => "/classify-sentiment",
            Endpoint::Conversation => "/analyze-conversation",
            Endpoint::Stream => "/stream-sentiment",
        }
    }
}

fn endpoint(req: &Request) -> Result<Endpoint, ApiError> {
    let path = req.uri().path();
    match path.trim_end_matches('/').rsplit('/').next() {
        Some("classify-sentiment") => Ok(Endpoint::Classify),
        Some("analyze-conversation") => Ok(Endpoint::Conversation),
        Some("stream-sentiment") => Ok(Endpoint::Stream),
        _ => Err(ApiError::NotFound {
            path: path.chars().take(200).collect(),
        }),
    }
}

fn json_response(status: u16, body: Vec<u8>, allow: Option<&'static str>) -> Reply {
    let mut builder = http_response(status).header("content-type", "application/json");
    if let Some(allow) = allow {
        builder = builder.header("allow", allow);
    }
    builder
        .body(spin_sdk::http::box_body(http_body_util::Full::new(
            bytes::Bytes::from(body),
        )))
        .expect("static headers are valid")
}

fn http_response(status: u16) -> http::response::Builder {
    http::Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
}

fn error_response(e: ApiError) -> Reply {
    let allow = match &e {
        ApiError::MethodNotAllowed { allowed, .. } => Some(*allowed),
        _ => None,
    };
    json_response(e.status(), e.to_json(), allow)
}

async fn serve(req: Request) -> Result<Reply, ApiError> {
    let endpoint = endpoint(&req)?;
    if req.method() != Method::POST {
        return Err(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allowed: "POST",
        });
    }
    let ctx = RequestContext::from_headers(|name| header(&req, name));
    let config = load_config().await?.for_tenant(ctx.tenant.as_deref());
    if let Endpoint::Stream = endpoint {
        return stream(req, config, ctx).await;
    }
    sentio_core::http::check_json_content_type(header(&req, "content-type"))?;
    let body = read_body(req, config.max_body_bytes).await?;
    let engine = engine_for(&config)?;
    let model = student()?;
    let json = match endpoint {
        Endpoint::Classify => {
            let mut response =
                sentiment_api::classify(&engine, model, &config, &body, Tier::Edge, &ctx)?;
            route_onward(&mut response, &config.routing, &ctx).await;
            serde_json::to_vec(&response)
        }
        Endpoint::Conversation => serde_json::to_vec(&sentiment_api::analyze_conversation(
            &engine,
            model,
            &config,
            &body,
            Tier::Edge,
            &ctx,
        )?),
        Endpoint::Stream => unreachable!("answered above"),
    }
    .map_err(|e| ApiError::Internal {
        detail: e.to_string(),
    })?;
    forward_audit(&config.audit, &ctx, endpoint.route(), &json);
    Ok(json_response(200, json, None))
}

/// How long a forwarded audit write may take. It runs after the answer has gone out, so this
/// bounds only how long the instance lives on.
const AUDIT_FORWARD_LIMIT: Duration = Duration::from_secs(10);

/// Sends the records of the predictions in `answer` to `audit_url` (the heavy tier's
/// `POST /v1/audit`), when one is configured. The task is spawned, so it runs after the handler
/// has returned the answer: post-return work, which Spin and `sentio serve` (wasmtime's proxy
/// handler) let finish before they drop the instance. A failed write is reported on stderr with
/// its status and a count, never with text.
fn forward_audit(
    audit: &AuditForwarding,
    ctx: &RequestContext,
    route: &'static str,
    answer: &[u8],
) {
    let Some(url) = audit.url.clone() else {
        return;
    };
    let records = audit::prediction_records(
        &audit::observe(answer),
        route,
        ctx.tenant.as_deref(),
        unix_ms(),
    );
    if records.is_empty() {
        return;
    }
    let count = records.len();
    let Ok(body) = serde_json::to_vec(&audit::ForwardedRecords { records }) else {
        return;
    };
    let api_key = audit.api_key.clone();
    let ctx = ctx.clone();
    spin_sdk::wasip3::spawn(async move {
        let headers = [
            ("x-api-key", api_key.as_deref()),
            ("x-sentio-tenant", ctx.tenant.as_deref()),
            ("traceparent", ctx.traceparent.as_deref()),
        ];
        match post_within(&url, &headers, body, AUDIT_FORWARD_LIMIT).await {
            Ok((200 | 201, _)) => {}
            Ok((status, _)) => {
                eprintln!("audit forwarding: {count} records refused with status {status}")
            }
            Err(e) => eprintln!("audit forwarding: {count} records not sent: {e}"),
        }
    });
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Hands the texts on when routing says so (see `sentio_core::routing`): to the heavy tier within
/// three quarters of the budget, else to the overflow queue within what is left. The caller waits
/// at most `escalation_budget_ms` on top of the edge's own work, whatever the other tiers do.
async fn route_onward(
    response: &mut ClassifyResponse,
    config: &RoutingConfig,
    ctx: &RequestContext,
) {
    let started = Instant::now();
    let budget = Duration::from_millis(config.budget_ms);
    let (reason, detail) = match routing::route(
        response.output.results(),
        response.metadata.priority,
        config,
    ) {
        Route::Edge => return,
        Route::Defer(reason) => (reason, None),
        Route::Escalate(reason) => {
            let heavy_url = config.heavy_url.as_deref().unwrap_or_default();
            let body = routing::heavy_request_body(
                response.output.results(),
                response.sentences,
                &response.metadata,
            );
            let url = format!("{heavy_url}/v1/classify");
            let headers = [
                ("x-api-key", config.heavy_api_key.as_deref()),
                ("traceparent", ctx.traceparent.as_deref()),
            ];
            let answer = post_within(&url, &headers, body, budget * 3 / 4).await;
            let detail = match answer {
                Ok((200, body)) => {
                    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                    match routing::merge_heavy_answer(response, &body, reason, elapsed_ms) {
                        Ok(()) => return,
                        Err(detail) => detail,
                    }
                }
                Ok((status, _)) => format!("heavy tier answered {status}"),
                Err(detail) => format!("heavy tier: {detail}"),
            };
            (reason, Some(detail))
        }
    };
    let remaining = budget.saturating_sub(started.elapsed());
    let deferral = Deferral {
        reason,
        detail,
        started,
        remaining,
        ctx,
    };
    defer(response, config, deferral).await;
}

/// Why and within what time the texts are queued.
struct Deferral<'a> {
    reason: EscalationReason,
    detail: Option<String>,
    started: Instant,
    remaining: Duration,
    ctx: &'a RequestContext,
}

/// Queues every text of `response` for re-scoring, one envelope per `POST` to `overflow_url`.
async fn defer(response: &mut ClassifyResponse, config: &RoutingConfig, deferral: Deferral<'_>) {
    let Deferral {
        reason,
        detail,
        started,
        remaining,
        ctx,
    } = deferral;
    let mut random = [0u8; 16];
    let _ = getrandom::fill(&mut random);
    let job_id = sentio_core::envelope::job_id_from(random);
    let now_ms = unix_ms();
    let envelopes = routing::deferred_envelopes(
        response,
        &job_id,
        response.sentences,
        config.deferred_callback_url.as_deref(),
        now_ms,
        ctx,
    );
    let mut failure = None;
    match config.overflow_url.as_deref() {
        None => failure = Some("no overflow queue is configured".to_owned()),
        Some(url) => {
            let deadline = Instant::now() + remaining;
            for envelope in &envelopes {
                let left = deadline.saturating_duration_since(Instant::now());
                let headers = [
                    ("x-api-key", config.overflow_api_key.as_deref()),
                    ("traceparent", ctx.traceparent.as_deref()),
                ];
                match post_within(url, &headers, envelope.to_json(), left).await {
                    Ok((202 | 200, _)) => {}
                    Ok((status, _)) => {
                        failure = Some(format!("overflow queue answered {status}"));
                        break;
                    }
                    Err(e) => {
                        failure = Some(format!("overflow queue: {e}"));
                        break;
                    }
                }
            }
        }
    }
    let (status, detail) = match failure {
        None => (EscalationStatus::Deferred, detail),
        Some(f) => (
            EscalationStatus::Failed,
            Some(match detail {
                Some(d) => format!("{d}; {f}"),
                None => f,
            }),
        ),
    };
    let queued = status == EscalationStatus::Deferred;
    response.escalation = Some(EscalationOutcome {
        status,
        reason,
        edge: Vec::new(),
        job_id: queued.then_some(job_id),
        item_ids: if queued {
            envelopes.into_iter().map(|e| e.item_id).collect()
        } else {
            Vec::new()
        },
        detail,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    });
}

/// Largest answer read from another tier.
const MAX_ONWARD_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// `POST`s JSON to `url` and reads the answer, giving up after `limit`. The caller's
/// `traceparent` goes along, so the other tier's work joins this request's trace.
/// `headers` without a value are left out.
async fn post_within(
    url: &str,
    headers: &[(&str, Option<&str>)],
    body: Vec<u8>,
    limit: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let exchange = async {
        let mut request = http::Request::post(url).header("content-type", "application/json");
        for (name, value) in headers {
            if let Some(value) = value {
                request = request.header(*name, *value);
            }
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| format!("bad URL: {e}"))?;
        let response = spin_sdk::http::send(request)
            .await
            .map_err(|e| format!("unreachable ({e:?})"))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("answer broke off ({e:?})"))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > MAX_ONWARD_ANSWER_BYTES {
                    return Err("answer too large".to_owned());
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok((status, bytes))
    };
    let timeout = spin_sdk::time::sleep(limit);
    futures::pin_mut!(exchange, timeout);
    match futures::future::select(exchange, timeout).await {
        futures::future::Either::Left((result, _)) => result,
        futures::future::Either::Right(((), _)) => {
            Err(format!("no answer within {} ms", limit.as_millis()))
        }
    }
}

/// `/stream-sentiment`: NDJSON lines in (`{"text": ..., "id"?, "speaker"?, "metadata"?}`), one
/// result line out per input line as soon as it is scored. With `Accept: text/event-stream` the
/// results come as Server-Sent Events (`data: {...}`) instead.
async fn stream(req: Request, config: EdgeConfig, ctx: RequestContext) -> Result<Reply, ApiError> {
    let content_type = header(&req, "content-type").unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !matches!(
        mime.as_str(),
        "application/x-ndjson" | "application/jsonl" | "application/json"
    ) {
        return Err(ApiError::UnsupportedMediaType {
            found: if content_type.is_empty() {
                "no Content-Type".into()
            } else {
                content_type.chars().take(100).collect()
            },
        });
    }
    let sse = header(&req, "accept").is_some_and(|a| a.contains("text/event-stream"));
    let engine = engine_for(&config)?.into_owned_static();
    let model = student()?;
    // One line is one message: it may be as large as a whole request body elsewhere.
    let max_line = config.max_body_bytes;
    let (mut tx, body) = spin_sdk::http::body::stream::<Vec<u8>>();
    let mut incoming = req.into_body();
    spin_sdk::wasip3::spawn(async move {
        let Ok(mut session) = SentimentStream::new(engine, model, &config, ctx.clone()) else {
            return;
        };
        let mut lines = LineBuffer::new(max_line);
        let encode = |json: &[u8]| {
            let mut out = if sse { b"data: ".to_vec() } else { Vec::new() };
            out.extend_from_slice(json);
            out.extend_from_slice(if sse { b"\n\n" } else { b"\n" });
            out
        };
        loop {
            let (completed, done) = match incoming.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => (lines.push(&data), false),
                    Err(_) => (Vec::new(), false),
                },
                // A broken upload ends the stream; answered lines stay answered.
                Some(Err(_)) | None => (lines.finish().into_iter().collect(), true),
            };
            for line in completed {
                let result = match line {
                    Ok(line) => session.line(&line),
                    Err(length) => Some(session.too_long(length, max_line)),
                };
                let Some(result) = result else { continue };
                let json = serde_json::to_vec(&result).unwrap_or_default();
                if tx.send(encode(&json)).await.is_err() {
                    return; // the client went away
                }
                forward_audit(&config.audit, &ctx, Endpoint::Stream.route(), &json);
            }
            if done {
                return;
            }
        }
    });
    let content_type = if sse {
        "text/event-stream"
    } else {
        "application/x-ndjson"
    };
    Ok(http_response(200)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(spin_sdk::http::box_body(body))
        .expect("static headers are valid"))
}

/// Streams outlive the request handler, so they need the engine for `'static`: the built-in one
/// is a static already; an extended one is leaked once per stream (a stream is long-lived and
/// custom recognizers are rare; the instance is discarded after the request anyway).
trait IntoOwnedStatic {
    fn into_owned_static(self) -> &'static Engine;
}

impl IntoOwnedStatic for std::borrow::Cow<'static, Engine> {
    fn into_owned_static(self) -> &'static Engine {
        match self {
            std::borrow::Cow::Borrowed(e) => e,
            std::borrow::Cow::Owned(e) => Box::leak(Box::new(e)),
        }
    }
}

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    serve(req).await.unwrap_or_else(error_response)
}
