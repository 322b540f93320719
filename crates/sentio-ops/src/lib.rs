//! What `sentio serve` wraps around the tiers, as a [`sentio_host::Interceptor`]:
//!
//! - **access** ([`access`]): API keys per tenant, scopes per endpoint, rate limits (429 with
//!   `Retry-After`), the CORS allowlist; the authenticated tenant and a fresh request id travel
//!   to the components as headers (see `sentio_core::context`).
//! - **observation**: every answer of the sentiment endpoints is read as it goes out (streams
//!   line by line) into Prometheus metrics ([`metrics`]), the dashboard's rolling window
//!   ([`dashboard`]) and the audit trail ([`audit`]).
//! - **tracing** ([`trace`]): a server span per request, continued from the caller's
//!   `traceparent`, handed on to the components, exported as OTLP/HTTP JSON.
//! - **routes** ([`routes`]): `/metrics`, `/dashboard`, `/feedback`, `/audit/{id}`,
//!   `/openapi.json` and the widget's files under `/web/`.
//!
//! Nothing here logs or labels customer text: metrics carry bounded labels only, the audit
//! trail holds redacted text and keyed hashes.

pub mod access;
pub mod audit;
pub mod dashboard;
pub mod metrics;
pub mod observe;
pub mod routes;
pub use sentio_trace as trace;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use sentio_core::ApiError;
use sentio_core::context::{REQUEST_ID_HEADER, TENANT_HEADER, TRACEPARENT_HEADER, new_request_id};

use crate::access::{AccessControl, scope_for};
use crate::audit::AuditLog;
use crate::dashboard::Dashboard;
use crate::metrics::{Metrics, RequestSample};
use crate::observe::{BodyReader, Framing, Observed};
use sentio_core::audit::prediction_records;

/// Largest answer the gateway reads to observe it (bigger ones go out unobserved).
const MAX_OBSERVED_BODY: usize = 16 * 1024 * 1024;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub struct GatewayState {
    pub access: AccessControl,
    pub metrics: Metrics,
    pub dashboard: Dashboard,
    pub audit: Option<Arc<AuditLog>>,
    /// `None`: spans are not exported (trace context is still propagated).
    pub spans: Option<trace::SpanExporter>,
}

/// The interceptor `sentio serve` installs; cheap to clone.
#[derive(Clone)]
pub struct Gateway(pub Arc<GatewayState>);

/// Routes whose answers carry predictions the caller sees. The heavy tier's own answers are an
/// internal hop of an escalation (the edge's answer already counts them).
fn carries_predictions(route: &str) -> bool {
    matches!(
        route.trim_end_matches("/..."),
        "/classify-sentiment" | "/analyze-conversation" | "/stream-sentiment"
    )
}

/// Routes the dashboard charts: the API, not the operator pages or static files.
fn is_api(route: &str) -> bool {
    carries_predictions(route) || matches!(route, "/redact" | "/heavy" | "/feedback")
}

pub fn error_response(error: &ApiError) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(error.to_json()));
    *response.status_mut() =
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if let ApiError::RateLimited { retry_after_secs } = error {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(*retry_after_secs));
    }
    response
}

fn rejection_reason(error: &ApiError) -> &'static str {
    match error {
        ApiError::Unauthorized { .. } => "unauthorized",
        ApiError::RateLimited { .. } => "rate_limited",
        _ => "forbidden",
    }
}

fn add_cors(headers: &mut HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        headers.insert("access-control-allow-origin", v);
        headers.insert("vary", HeaderValue::from_static("Origin"));
        headers.insert(
            "access-control-expose-headers",
            HeaderValue::from_static("x-request-id, retry-after"),
        );
    }
}

impl sentio_host::Interceptor for Gateway {
    fn admit(
        &self,
        parts: &mut http::request::Parts,
        route: &str,
    ) -> Result<Box<dyn sentio_host::Exchange>, Box<Response<Bytes>>> {
        let state = &self.0;
        // Only the gateway says who is asking and which request this is.
        parts.headers.remove(REQUEST_ID_HEADER);
        parts.headers.remove(TENANT_HEADER);
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        // This request's span: a child of the caller's, the parent of everything downstream.
        let span = trace::OpenSpan::start(header(TRACEPARENT_HEADER));
        let origin = header("origin").map(str::to_owned);
        if let Some(origin) = &origin
            && !state
                .access
                .origin_allowed(origin, &format!("http://{}", header("host").unwrap_or("")))
        {
            state.metrics.record_rejection("cors");
            return Err(Box::new(error_response(&ApiError::Forbidden {
                detail: "this origin is not on the CORS allowlist".into(),
            })));
        }
        if parts.method == http::Method::OPTIONS
            && let Some(origin) = &origin
        {
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::NO_CONTENT;
            let headers = response.headers_mut();
            add_cors(headers, origin);
            headers.insert(
                "access-control-allow-methods",
                HeaderValue::from_static("GET, POST, OPTIONS"),
            );
            headers.insert(
                "access-control-allow-headers",
                HeaderValue::from_static("authorization, content-type, accept"),
            );
            headers.insert("access-control-max-age", HeaderValue::from_static("600"));
            return Err(Box::new(response));
        }
        let mut tenant = None;
        if let Some(scope) = scope_for(parts.uri.path()) {
            match state
                .access
                .authorize(header("authorization"), scope, Instant::now())
            {
                Ok(principal) => tenant = principal.tenant,
                Err(error) => {
                    state.metrics.record_rejection(rejection_reason(&error));
                    let mut response = error_response(&error);
                    if let Some(origin) = &origin {
                        add_cors(response.headers_mut(), origin);
                    }
                    return Err(Box::new(response));
                }
            }
            // The key stops here: components and handlers never see it.
            parts.headers.remove(http::header::AUTHORIZATION);
        }
        let request_id = new_request_id();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            parts.headers.insert(REQUEST_ID_HEADER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&span.traceparent()) {
            parts.headers.insert(TRACEPARENT_HEADER, v);
        }
        if let Some(t) = tenant
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            parts.headers.insert(TENANT_HEADER, t);
        }
        Ok(Box::new(GatewayExchange {
            state: self.0.clone(),
            route: route.to_owned(),
            request_id,
            tenant,
            origin,
            started: Instant::now(),
            head_seconds: 0.0,
            status: 0,
            reader: BodyReader::new(Framing::Ignore, MAX_OBSERVED_BODY),
            tier: None,
            model: None,
            span: Some(span),
            method: parts.method.clone(),
        }))
    }
}

struct GatewayExchange {
    state: Arc<GatewayState>,
    route: String,
    request_id: String,
    tenant: Option<String>,
    origin: Option<String>,
    started: Instant,
    head_seconds: f64,
    status: u16,
    reader: BodyReader,
    tier: Option<String>,
    model: Option<String>,
    /// Taken when the exchange finishes.
    span: Option<trace::OpenSpan>,
    method: http::Method,
}

impl GatewayExchange {
    fn observe_document(&mut self, document: &[u8]) {
        let observed: Observed = observe::observe(document);
        if self.tier.is_none() {
            self.tier.clone_from(&observed.tier);
            self.model.clone_from(&observed.model);
        }
        let tier = observed.tier.as_deref().unwrap_or("none");
        let model = observed.model.as_deref().unwrap_or("none");
        let now = now_ms();
        let state = &self.state;
        for p in &observed.predictions {
            state
                .metrics
                .record_prediction(&self.route, tier, model, &p.label, p.confidence);
            state
                .dashboard
                .record_prediction(now, &p.label, p.confidence);
        }
        if let Some(audit) = &state.audit {
            for record in prediction_records(&observed, &self.route, self.tenant.as_deref(), now) {
                audit.record(&record);
            }
        }
        if let Some(outcome) = &observed.escalation {
            state.metrics.record_escalation(&self.route, outcome);
            state
                .dashboard
                .record_escalated(now, observed.predictions.len() as u64);
        }
    }
}

impl sentio_host::Exchange for GatewayExchange {
    fn response_head(&mut self, status: StatusCode, headers: &mut HeaderMap) {
        self.head_seconds = self.started.elapsed().as_secs_f64();
        self.status = status.as_u16();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            headers.insert("x-request-id", v);
        }
        if let Some(origin) = &self.origin {
            add_cors(headers, origin);
        }
        if status.is_success() && carries_predictions(&self.route) {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            self.reader =
                BodyReader::new(Framing::from_content_type(content_type), MAX_OBSERVED_BODY);
        }
    }

    fn body_chunk(&mut self, chunk: &[u8]) {
        for document in self.reader.push(chunk) {
            self.observe_document(&document);
        }
    }

    fn finish(mut self: Box<Self>) {
        if let Some(document) = self.reader.finish() {
            self.observe_document(&document);
        }
        let tier = match (&self.tier, self.route.as_str()) {
            (Some(t), _) => t.clone(),
            (None, "/heavy") => "heavy".to_owned(),
            (None, _) => "none".to_owned(),
        };
        let model = self.model.as_deref().unwrap_or("none");
        self.state.metrics.record_request(&RequestSample {
            route: &self.route,
            status: self.status,
            tier: &tier,
            model,
            seconds: self.head_seconds,
        });
        if let (Some(spans), Some(span)) = (&self.state.spans, self.span.take()) {
            spans.export(span.finish(
                trace::SpanKind::Server,
                format!("{} {}", self.method, self.route),
                vec![
                    ("http.route", self.route.clone()),
                    ("http.response.status_code", self.status.to_string()),
                    ("sentio.tier", tier.clone()),
                    ("sentio.model", model.to_owned()),
                    ("sentio.request_id", self.request_id.clone()),
                ],
                self.status >= 500,
            ));
        }
        if is_api(&self.route) {
            self.state.dashboard.record_request(
                now_ms(),
                &self.route,
                &tier,
                self.head_seconds * 1000.0,
            );
        }
    }
}
