//! The operator-facing routes `sentio serve` mounts natively beside the components:
//!
//! | route | scope | what |
//! |---|---|---|
//! | `GET /metrics` | `metrics` | Prometheus exposition |
//! | `GET /dashboard` | public page | the operator dashboard (its data needs `dashboard`) |
//! | `GET /dashboard/api/summary?span_s=900` | `dashboard` | the dashboard's numbers |
//! | `POST /feedback` | `feedback` | a human correction of a prediction |
//! | `GET /audit/{prediction_id}` | `audit` | a prediction's audit record and corrections |
//! | `GET /openapi.json` | public | the OpenAPI 3.1 document of every endpoint |
//! | `GET /web/{file}` | public | the chat widget, its demo page |
//!
//! The web files are compiled in, so the `sentio` binary serves them from anywhere.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use sentio_core::ApiError;
use sentio_core::context::TENANT_HEADER;
use sentio_host::{NativeHandler, NativeRoute};

use crate::audit::FeedbackRequest;
use crate::{Gateway, GatewayState, error_response, now_ms};

/// The files under `/web/`, and the dashboard's.
const WEB_FILES: &[(&str, &str, &str)] = &[
    (
        "/widget.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/widget.js"),
    ),
    (
        "/demo.html",
        "text/html; charset=utf-8",
        include_str!("../../../web/demo.html"),
    ),
];
const DASHBOARD_HTML: &str = include_str!("../../../web/dashboard.html");
const DASHBOARD_JS: &str = include_str!("../../../web/dashboard.js");
/// The API's OpenAPI document (also checked against real answers by the tests).
pub const OPENAPI_JSON: &str = include_str!("../../../web/openapi.json");

const SMALL_BODY: usize = 64 * 1024;

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Bytes> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Bytes> {
    match serde_json::to_vec(value) {
        Ok(body) => respond(status, "application/json", body),
        Err(e) => error_response(&ApiError::Internal {
            detail: e.to_string(),
        }),
    }
}

fn method_not_allowed(method: &Method, allowed: &'static str) -> Response<Bytes> {
    let mut response = error_response(&ApiError::MethodNotAllowed {
        method: method.to_string(),
        allowed,
    });
    response
        .headers_mut()
        .insert("allow", HeaderValue::from_static(allowed));
    response
}

fn not_found(path: &str) -> Response<Bytes> {
    error_response(&ApiError::NotFound {
        path: path.chars().take(200).collect(),
    })
}

fn tenant(request: &Request<Bytes>) -> Option<String> {
    request
        .headers()
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn route(
    prefix: &str,
    max_body_bytes: usize,
    state: &Arc<GatewayState>,
    handle: fn(&GatewayState, Request<Bytes>) -> Response<Bytes>,
) -> NativeRoute {
    let state = state.clone();
    let handler: NativeHandler = Arc::new(move |request| {
        let state = state.clone();
        Box::pin(async move { handle(&state, request) })
    });
    NativeRoute {
        prefix: prefix.to_owned(),
        max_body_bytes,
        handler,
    }
}

/// Every operator route, bound to the gateway's state.
pub fn native_routes(gateway: &Gateway) -> Vec<NativeRoute> {
    let s = &gateway.0;
    vec![
        route("/metrics", SMALL_BODY, s, metrics),
        route("/dashboard", SMALL_BODY, s, dashboard),
        route("/feedback", SMALL_BODY, s, feedback),
        route("/audit", SMALL_BODY, s, audit),
        route("/openapi.json", SMALL_BODY, s, openapi),
        route("/web", SMALL_BODY, s, web),
    ]
}

fn metrics(state: &GatewayState, request: Request<Bytes>) -> Response<Bytes> {
    if request.method() != Method::GET {
        return method_not_allowed(request.method(), "GET");
    }
    respond(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        state.metrics.render(),
    )
}

fn query_number(request: &Request<Bytes>, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(query) = request.uri().query() else {
        return Ok(None);
    };
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return value
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(name, "must be a whole number"));
        }
    }
    Ok(None)
}

fn dashboard(state: &GatewayState, request: Request<Bytes>) -> Response<Bytes> {
    if request.method() != Method::GET {
        return method_not_allowed(request.method(), "GET");
    }
    match request.uri().path() {
        "/" | "" => respond(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD_HTML),
        "/dashboard.js" => respond(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            DASHBOARD_JS,
        ),
        "/api/summary" => {
            let span_s = match query_number(&request, "span_s") {
                Ok(v) => v.unwrap_or(900),
                Err(e) => return error_response(&e),
            };
            if !(10..=86_400).contains(&span_s) {
                return error_response(&ApiError::invalid(
                    "span_s",
                    "must be between 10 and 86400",
                ));
            }
            json(
                StatusCode::OK,
                &state.dashboard.summary(now_ms(), span_s * 1000),
            )
        }
        other => not_found(other),
    }
}

/// The audit store, or the 503 error that says there is none.
fn audit_store(state: &GatewayState) -> Result<&crate::audit::AuditLog, ApiError> {
    state.audit.as_deref().ok_or_else(|| ApiError::Unavailable {
        detail: "no audit store is configured".into(),
    })
}

fn feedback(state: &GatewayState, request: Request<Bytes>) -> Response<Bytes> {
    if request.method() != Method::POST {
        return method_not_allowed(request.method(), "POST");
    }
    let audit = match audit_store(state) {
        Ok(a) => a,
        Err(e) => return error_response(&e),
    };
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = sentio_core::http::check_json_content_type(content_type) {
        return error_response(&e);
    }
    let parsed: FeedbackRequest = match sentio_core::http::parse_json(request.body()) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    match audit.feedback(tenant(&request).as_deref(), parsed, now_ms()) {
        Ok(record) => json(StatusCode::CREATED, &record),
        Err(e) => error_response(&e),
    }
}

fn audit(state: &GatewayState, request: Request<Bytes>) -> Response<Bytes> {
    if request.method() != Method::GET {
        return method_not_allowed(request.method(), "GET");
    }
    let audit = match audit_store(state) {
        Ok(a) => a,
        Err(e) => return error_response(&e),
    };
    let path = request.uri().path();
    let id = path.trim_start_matches('/');
    if id.is_empty() || id.contains('/') {
        return not_found(path);
    }
    match audit.get(tenant(&request).as_deref(), id) {
        Some(entry) => json(StatusCode::OK, &entry),
        None => not_found(path),
    }
}

fn openapi(_: &GatewayState, request: Request<Bytes>) -> Response<Bytes> {
    if request.method() != Method::GET {
        return method_not_allowed(request.method(), "GET");
    }
    respond(StatusCode::OK, "application/json", OPENAPI_JSON)
}

fn web(_: &GatewayState, request: Request<Bytes>) -> Response<Bytes> {
    if request.method() != Method::GET {
        return method_not_allowed(request.method(), "GET");
    }
    let path = request.uri().path();
    let path = if path == "/" { "/demo.html" } else { path };
    match WEB_FILES.iter().find(|(name, _, _)| *name == path) {
        Some((_, content_type, body)) => respond(StatusCode::OK, content_type, *body),
        None => not_found(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_names_every_public_endpoint() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for path in [
            "/redact",
            "/classify-sentiment",
            "/analyze-conversation",
            "/stream-sentiment",
            "/feedback",
            "/audit/{prediction_id}",
            "/metrics",
            "/dashboard/api/summary",
            "/heavy/v1/classify",
            "/heavy/v1/analyze-conversation",
            "/heavy/v1/jobs",
            "/heavy/v1/overflow",
            "/heavy/v1/feedback",
            "/heavy/v1/audit/{prediction_id}",
            "/heavy/v1/healthz",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing");
        }
    }
}
