//! The heavy tier on AWS Lambda. Everything expensive (the teacher model, the recognizers, the SQS
//! and S3 clients, the span exporter) is built once per cold start and borrowed into every invocation (the
//! `basic-shared-resource` pattern); the handler only converts between `lambda_http` and
//! `sentio-heavy`'s router. Configuration: the `SENTIO_*` variables in the README.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use lambda_http::{Body, Error, Request, Response, service_fn};
use sentio_heavy::HeavyTier;
use sentio_trace::{OpenSpan, SpanExporter, SpanKind};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let get = |name: &str| std::env::var(name).ok();
    let tier = Arc::new(sentio_heavy::heavy_tier_from_env(get).await?);
    let spans = SpanExporter::from_lookup(get)?;
    lambda_http::run(service_fn(move |request: Request| {
        let (tier, spans) = (tier.clone(), spans.clone());
        async move { Ok::<_, Error>(answer(tier, spans, request).await) }
    }))
    .await
}

async fn answer(
    tier: Arc<HeavyTier>,
    spans: Option<SpanExporter>,
    request: Request,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let (mut parts, body) = request.into_parts();
    let route = parts.uri.path().to_owned();
    // One server span per invocation, continuing the caller's context; the tier hands this
    // span's context on (into queue envelopes, to the worker).
    let span = spans.as_ref().map(|_| {
        OpenSpan::start(
            parts
                .headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok()),
        )
    });
    if let Some(span) = &span
        && let Ok(v) = HeaderValue::from_str(&span.traceparent())
    {
        parts.headers.insert("traceparent", v);
    }
    let method = parts.method.to_string();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    let response = tier.handle(http::Request::from_parts(parts, body)).await;
    let status = response.status().as_u16();
    if let (Some(spans), Some(span)) = (&spans, span) {
        spans.export(span.finish(
            SpanKind::Server,
            format!("{method} {route}"),
            vec![
                ("http.route", route.clone()),
                ("http.response.status_code", status.to_string()),
                ("sentio.tier", "heavy".into()),
            ],
            status >= 500,
        ));
        // The sandbox may be frozen as soon as this invocation answers.
        spans.flush().await;
    }
    // CloudWatch Embedded Metric Format: latency and count per route and status.
    println!(
        "{}",
        sentio_heavy::emf::request(
            &route,
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0,
            sentio_heavy::emf::now_ms(),
        )
    );
    // JSON is text: API Gateway passes it through without base64.
    response.map(|b| Body::Text(String::from_utf8_lossy(&b).into_owned()))
}
