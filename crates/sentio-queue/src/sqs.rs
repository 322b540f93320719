//! Amazon SQS through `aws-sdk-sqs`, with a configurable endpoint so local runs and tests talk to
//! a real SQS-protocol server on 127.0.0.1 (moto).

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};

use crate::{Depth, QueueError, Received};

/// Where the queue is. `endpoint` is for SQS-compatible servers (moto); AWS needs none.
#[derive(Debug, Clone)]
pub struct SqsSettings {
    pub endpoint: Option<String>,
    pub region: String,
    pub queue_url: String,
    /// Read for `depth().dead`; the redrive policy itself lives on the queue.
    pub dlq_url: Option<String>,
}

pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dlq_url: Option<String>,
}

fn sqs_error(e: impl std::error::Error) -> QueueError {
    // `DisplayErrorContext` prints the whole chain (service code and message).
    QueueError::Sqs(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
}

/// The standard AWS configuration chain (environment, profile, Lambda's role), pointed at
/// `endpoint` when one is given. A local AWS-compatible server accepts any credentials, so with
/// an endpoint and no `AWS_ACCESS_KEY_ID` in the environment clients sign with fixed local ones
/// instead of searching for real ones. Every AWS client Sentio makes starts here.
pub async fn sdk_config(endpoint: Option<&str>, region: &str) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "sentio-local-endpoint",
            ));
        }
    }
    loader.load().await
}

/// An SQS client from [`sdk_config`].
pub async fn client(endpoint: Option<&str>, region: &str) -> Client {
    Client::new(&sdk_config(endpoint, region).await)
}

impl SqsQueue {
    pub async fn connect(settings: &SqsSettings) -> Self {
        Self {
            client: client(settings.endpoint.as_deref(), &settings.region).await,
            queue_url: settings.queue_url.clone(),
            dlq_url: settings.dlq_url.clone(),
        }
    }

    /// Creates `name` and `name-dlq` with a redrive policy (what `template.yaml` declares in AWS),
    /// returning both URLs. Idempotent, for local stacks and tests.
    pub async fn create_with_dlq(
        client: &Client,
        name: &str,
        visibility_timeout: Duration,
        max_receives: u32,
    ) -> Result<(String, String), QueueError> {
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .send()
            .await
            .map_err(sqs_error)?
            .queue_url
            .ok_or_else(|| QueueError::Sqs("CreateQueue returned no URL".into()))?;
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(sqs_error)?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| QueueError::Sqs("the DLQ has no ARN".into()))?;
        let redrive =
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receives}"}}"#);
        let queue_url = client
            .create_queue()
            .queue_name(name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout.as_secs().to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .map_err(sqs_error)?
            .queue_url
            .ok_or_else(|| QueueError::Sqs("CreateQueue returned no URL".into()))?;
        Ok((queue_url, dlq_url))
    }

    /// `SendMessageBatch` in tens; any entry SQS refuses fails the call (the caller has not
    /// acknowledged anything yet and may retry all: the worker is idempotent by item id).
    pub async fn send(&self, bodies: &[String]) -> Result<(), QueueError> {
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(sqs_error)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sqs_error)?;
            if let Some(failed) = out.failed.first() {
                return Err(QueueError::Sqs(format!(
                    "SQS refused {} of {} messages ({}: {})",
                    out.failed.len(),
                    chunk.len(),
                    failed.code,
                    failed.message.as_deref().unwrap_or("")
                )));
            }
        }
        Ok(())
    }

    /// `ReceiveMessage` with long polling (`wait` is rounded to whole seconds, at most 20).
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(sqs_error)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let attrs = m.attributes.unwrap_or_default();
                let attr = |name: MessageSystemAttributeName| {
                    attrs.get(&name).and_then(|v| v.parse::<u64>().ok())
                };
                Some(Received {
                    receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                        .unwrap_or(1) as u32,
                    sent_at_ms: attr(MessageSystemAttributeName::SentTimestamp).unwrap_or(0),
                    message_id: m.message_id?,
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                })
            })
            .collect())
    }

    pub async fn delete(&self, receipts: &[String]) -> Result<(), QueueError> {
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .build()
                        .map_err(sqs_error)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sqs_error)?;
            if !out.failed.is_empty() {
                // A receipt that expired (the message was received again) fails here; the new
                // holder will delete it. Nothing is lost, so this is worth a log line only.
                tracing::warn!(
                    failed = out.failed.len(),
                    "SQS did not delete some messages"
                );
            }
        }
        Ok(())
    }

    pub async fn depth(&self) -> Result<Depth, QueueError> {
        let attrs = |url: String| {
            let client = self.client.clone();
            async move {
                client
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                    .send()
                    .await
                    .map_err(sqs_error)
                    .map(|o| o.attributes.unwrap_or_default())
            }
        };
        let get = |m: &std::collections::HashMap<QueueAttributeName, String>, k| {
            m.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        let main = attrs(self.queue_url.clone()).await?;
        let dead = match &self.dlq_url {
            Some(url) => get(
                &attrs(url.clone()).await?,
                QueueAttributeName::ApproximateNumberOfMessages,
            ),
            None => 0,
        };
        Ok(Depth {
            visible: get(&main, QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(
                &main,
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            ),
            dead,
            oldest_sent_at_ms: None,
        })
    }

    /// Bodies waiting in the dead-letter queue (up to 10, made visible again right away).
    pub async fn peek_dead_letters(&self) -> Result<Vec<String>, QueueError> {
        let Some(dlq) = &self.dlq_url else {
            return Ok(Vec::new());
        };
        let out = self
            .client
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(sqs_error)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.body)
            .collect())
    }
}
