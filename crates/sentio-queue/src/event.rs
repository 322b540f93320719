//! The SQS event a Lambda function receives from its event source mapping, and the partial batch
//! response (`ReportBatchItemFailures`) it answers with: field for field as AWS sends them (see
//! the fixture in `tests/fixtures/sqs-event.json`, AWS's documented example), so the worker
//! Lambda and the local poller speak the same JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Received;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SqsRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// `ApproximateReceiveCount`, `SentTimestamp`, ... (strings, as AWS sends them).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub message_attributes: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub md5_of_body: Option<String>,
    #[serde(default)]
    pub event_source: Option<String>,
    #[serde(default, rename = "eventSourceARN")]
    pub event_source_arn: Option<String>,
    #[serde(default)]
    pub aws_region: Option<String>,
}

impl SqsRecord {
    pub fn receive_count(&self) -> u32 {
        self.attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// The record the event source mapping would build for `message`.
    pub fn from_received(message: &Received, queue_arn: &str, region: &str) -> Self {
        Self {
            message_id: message.message_id.clone(),
            receipt_handle: message.receipt.clone(),
            body: message.body.clone(),
            attributes: [
                (
                    "ApproximateReceiveCount".to_owned(),
                    message.receive_count.to_string(),
                ),
                ("SentTimestamp".to_owned(), message.sent_at_ms.to_string()),
            ]
            .into(),
            message_attributes: BTreeMap::new(),
            md5_of_body: None,
            event_source: Some("aws:sqs".into()),
            event_source_arn: Some(queue_arn.to_owned()),
            aws_region: Some(region.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsBatchResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    /// The failed record's `messageId`.
    pub item_identifier: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_aws_example_event() {
        let json = include_str!("../tests/fixtures/sqs-event.json");
        let event: SqsEvent = serde_json::from_str(json).unwrap();
        assert_eq!(event.records.len(), 2);
        assert_eq!(
            event.records[0].message_id,
            "059f36b4-87a3-44ab-83d2-661975830a7d"
        );
        assert_eq!(event.records[0].receive_count(), 1);
        assert_eq!(event.records[1].body, "Test message.");
        let response = SqsBatchResponse {
            batch_item_failures: vec![BatchItemFailure {
                item_identifier: "id".into(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"batchItemFailures":[{"itemIdentifier":"id"}]}"#
        );
    }
}
