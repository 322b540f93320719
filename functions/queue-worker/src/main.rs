//! The nearline worker on AWS Lambda: an SQS event source mapping with `ReportBatchItemFailures`
//! invokes it with up to `BatchSize` messages; it answers with the ones to retry. The teacher
//! model, recognizers, webhook client, S3 audit store and span exporter are built once per cold
//! start.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use sentio_queue::{SqsBatchResponse, SqsEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let get = |name: &str| std::env::var(name).ok();
    // Lambda instances share nothing, so results are remembered per instance only; scoring is
    // deterministic, so another instance produces the same body for a redelivered item.
    let worker =
        Arc::new(sentio_heavy::worker_from_env(get, sentio_heavy::ResultStore::in_memory()).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move {
            let started = std::time::Instant::now();
            let messages = event.payload.records.len();
            let (response, stats) = worker.handle_with_stats(event.payload).await;
            // The sandbox may be frozen as soon as this invocation answers.
            worker.flush_spans().await;
            // CloudWatch Embedded Metric Format: one record per batch.
            println!(
                "{}",
                sentio_heavy::emf::batch(
                    &stats,
                    messages,
                    started.elapsed().as_secs_f64() * 1000.0,
                    sentio_heavy::emf::now_ms(),
                )
            );
            Ok::<SqsBatchResponse, Error>(response)
        }
    }))
    .await
}
