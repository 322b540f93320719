//! The heavy tier on AWS Lambda. Everything expensive (the teacher model, the recognizers, the SQS
//! client) is built once per cold start and borrowed into every invocation (the
//! `basic-shared-resource` pattern); the handler only converts between `lambda_http` and
//! `sentio-heavy`'s router. Configuration: the `SENTIO_*` variables in the README.

use std::sync::Arc;

use bytes::Bytes;
use lambda_http::{Body, Error, Request, Response, service_fn};
use sentio_heavy::HeavyTier;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let get = |name: &str| std::env::var(name).ok();
    let tier = Arc::new(sentio_heavy::heavy_tier_from_env(get).await?);
    lambda_http::run(service_fn(move |request: Request| {
        let tier = tier.clone();
        async move { Ok::<_, Error>(answer(tier, request).await) }
    }))
    .await
}

async fn answer(tier: Arc<HeavyTier>, request: Request) -> Response<Body> {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let route = parts.uri.path().to_owned();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    let response = tier.handle(http::Request::from_parts(parts, body)).await;
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
