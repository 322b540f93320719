//! A small, faithful stand-in for Lambda's SQS event source mapping, for the local stack and the
//! tests (nothing local plays that part): receive up to `batch_size` messages (long polling), hand
//! them to the worker as one SQS event, then delete every message except those the worker reported
//! in `batchItemFailures`. As in AWS:
//!
//! * a handler error (the function failed or timed out) deletes nothing: the whole batch becomes
//!   visible again after the visibility timeout;
//! * a response naming a message that was not in the batch is treated as a failed batch;
//! * failed messages come back after the visibility timeout with a higher receive count and go to
//!   the dead-letter queue after `maxReceiveCount` (SQS's redrive policy, or the embedded queue's
//!   `max_receives`).
//!
//! When the queue itself is unreachable (SQS restarting), the poller backs off and keeps trying.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{Queue, QueueError, SqsBatchResponse, SqsEvent, SqsRecord};

#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// Most messages per event (the mapping's `BatchSize`; SQS receives at most 10 per call).
    pub batch_size: usize,
    /// Long-poll wait per receive.
    pub wait: Duration,
    /// Put in each record's `eventSourceARN`.
    pub queue_arn: String,
    pub region: String,
}

impl Default for PollerSettings {
    fn default() -> Self {
        Self {
            batch_size: 10,
            wait: Duration::from_secs(1),
            queue_arn: "arn:aws:sqs:local:000000000000:sentio-nearline".into(),
            region: "local".into(),
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollOutcome {
    pub received: usize,
    pub deleted: usize,
    pub failed: usize,
}

/// One receive → invoke → delete round.
pub async fn poll_once<F, Fut>(
    queue: &Queue,
    settings: &PollerSettings,
    handler: &F,
) -> Result<PollOutcome, QueueError>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = Result<SqsBatchResponse, String>>,
{
    let mut received = Vec::new();
    // SQS hands out at most 10 per receive; gather up to the batch size.
    while received.len() < settings.batch_size {
        let wait = if received.is_empty() {
            settings.wait
        } else {
            Duration::ZERO
        };
        let got = queue
            .receive((settings.batch_size - received.len()).min(10), wait)
            .await?;
        if got.is_empty() {
            break;
        }
        received.extend(got);
    }
    if received.is_empty() {
        return Ok(PollOutcome::default());
    }
    let event = SqsEvent {
        records: received
            .iter()
            .map(|m| SqsRecord::from_received(m, &settings.queue_arn, &settings.region))
            .collect(),
    };
    let failed_ids = match handler(event).await {
        Ok(response) => {
            let ids: Vec<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            if ids
                .iter()
                .any(|id| !received.iter().any(|m| &m.message_id == id))
            {
                tracing::warn!(
                    "worker reported a failure for a message not in the batch; retrying the batch"
                );
                None
            } else {
                Some(ids)
            }
        }
        Err(error) => {
            tracing::warn!(%error, messages = received.len(), "worker failed; the batch will be retried");
            None
        }
    };
    let Some(failed_ids) = failed_ids else {
        return Ok(PollOutcome {
            received: received.len(),
            deleted: 0,
            failed: received.len(),
        });
    };
    let done: Vec<String> = received
        .iter()
        .filter(|m| !failed_ids.contains(&m.message_id))
        .map(|m| m.receipt.clone())
        .collect();
    queue.delete(&done).await?;
    Ok(PollOutcome {
        received: received.len(),
        deleted: done.len(),
        failed: received.len() - done.len(),
    })
}

/// Polls until `shutdown` turns true.
pub async fn run<F, Fut>(
    queue: Arc<Queue>,
    settings: PollerSettings,
    handler: F,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = Result<SqsBatchResponse, String>>,
{
    let mut backoff = Duration::from_millis(100);
    while !*shutdown.borrow() {
        let round = poll_once(&queue, &settings, &handler);
        tokio::select! {
            result = round => match result {
                Ok(outcome) => {
                    backoff = Duration::from_millis(100);
                    if outcome.received > 0 {
                        tracing::debug!(?outcome, "poll");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "queue unreachable");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            },
            _ = shutdown.changed() => {}
        }
    }
}
