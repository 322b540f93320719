//! Sentio's nearline queue.
//!
//! * [`Queue`]: one type over Amazon SQS ([`SqsQueue`], any SQS-protocol endpoint) and the
//!   embedded durable queue `sentio serve` uses without one ([`EmbeddedQueue`]).
//! * [`poller`]: what Lambda's SQS event source mapping does, for the local stack and tests:
//!   receive a batch, hand it to the worker as an SQS event, delete all but the reported failures.
//! * [`webhook`]: the signature scheme of result deliveries and its reference verifier.
//!
//! The message envelope itself is a wire type, so it lives in `sentio-core` (the edge builds
//! envelopes too, and the edge is wasm).

pub mod embedded;
pub mod event;
pub mod poller;
pub mod sqs;
pub mod webhook;

use std::time::Duration;

pub use embedded::{EmbeddedQueue, EmbeddedSettings};
pub use event::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsRecord};
pub use sqs::{SqsQueue, SqsSettings};

/// One received message.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub message_id: String,
    /// What deletes it; valid until it is received again.
    pub receipt: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
    pub sent_at_ms: u64,
}

/// How much is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    pub dead: u64,
    /// When the oldest queued message was sent (Unix ms), where the backend knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_sent_at_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("SQS: {0}")]
    Sqs(String),
    #[error("queue storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("queue storage is corrupt: {0}")]
    Corrupt(String),
    #[error("receipt `{0}` is not one this queue issued")]
    InvalidReceipt(String),
}

/// The queue Sentio sends to and the poller receives from.
pub enum Queue {
    Sqs(SqsQueue),
    Embedded(EmbeddedQueue),
}

impl Queue {
    /// Sends `bodies`; when this returns `Ok`, every one of them is durably queued.
    pub async fn send(&self, bodies: &[String]) -> Result<(), QueueError> {
        match self {
            Queue::Sqs(q) => q.send(bodies).await,
            Queue::Embedded(q) => q.send(bodies),
        }
    }

    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        match self {
            Queue::Sqs(q) => q.receive(max, wait).await,
            Queue::Embedded(q) => q.receive(max, wait).await,
        }
    }

    pub async fn delete(&self, receipts: &[String]) -> Result<(), QueueError> {
        match self {
            Queue::Sqs(q) => q.delete(receipts).await,
            Queue::Embedded(q) => q.delete(receipts),
        }
    }

    pub async fn depth(&self) -> Result<Depth, QueueError> {
        match self {
            Queue::Sqs(q) => q.depth().await,
            Queue::Embedded(q) => Ok(q.depth()),
        }
    }

    /// `sqs` or `embedded`, for logs and `/healthz`.
    pub fn kind(&self) -> &'static str {
        match self {
            Queue::Sqs(_) => "sqs",
            Queue::Embedded(_) => "embedded",
        }
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
