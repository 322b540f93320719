//! The audit trail and the feedback store on AWS: S3 objects, one per record. The Lambdas are
//! stateless and many, so they need a store where every write stands alone and is durable when
//! it is acknowledged; `sentio serve` keeps the same records in local files (`sentio-ops`).
//!
//! Layout under `s3://{bucket}/{prefix}`:
//!
//! | key | object |
//! |---|---|
//! | `predictions/{prediction_id}.json` | a [`PredictionRecord`] (heavy tier and worker) |
//! | `feedback/{prediction_id}/{feedback_id}.json` | a [`FeedbackRecord`] (`POST /v1/feedback`) |
//!
//! One object per prediction makes the lookups `POST /v1/feedback` and `GET /v1/audit/{id}` need
//! a single GET, and the same objects read as a JSON table in Athena for queries across them.
//! A correction is written only after its prediction is found, so it can answer a typed 422 for
//! an unknown id; S3 has acknowledged the object before the 201 goes out.

use std::io::Write;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;

use sentio_core::ApiError;
use sentio_core::audit::{
    AuditEntry, FeedbackRecord, FeedbackRequest, PredictionRecord, check_reviewer,
    corrections_by_prediction, feedback_record, training_example,
};
use sentio_core::envelope::check_id;

/// How many S3 requests one call keeps in flight.
const IN_FLIGHT: usize = 32;

#[derive(Debug, Clone)]
pub struct S3Settings {
    /// An S3-compatible server's URL (tests, local stacks); AWS's own endpoint when `None`.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Prepended to every key; empty or ending in `/`.
    pub prefix: String,
}

impl S3Settings {
    /// `SENTIO_AUDIT_BUCKET` (required), `SENTIO_AUDIT_PREFIX`, `SENTIO_S3_ENDPOINT`,
    /// `AWS_REGION`; `None` when no bucket is set.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let bucket = get("SENTIO_AUDIT_BUCKET").filter(|v| !v.is_empty())?;
        let mut prefix = get("SENTIO_AUDIT_PREFIX").unwrap_or_default();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Some(Self {
            endpoint: get("SENTIO_S3_ENDPOINT").filter(|v| !v.is_empty()),
            region: get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
            bucket,
            prefix,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditStoreError {
    #[error("S3 {operation} {key}: {detail}")]
    S3 {
        operation: &'static str,
        key: String,
        detail: String,
    },
    #[error("S3 object {key} is not a valid record: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("writing the export: {0}")]
    Export(#[from] std::io::Error),
}

impl From<AuditStoreError> for ApiError {
    fn from(e: AuditStoreError) -> Self {
        tracing::error!(error = %e, "audit store");
        ApiError::Unavailable {
            detail: "the audit store could not be reached; try again".into(),
        }
    }
}

fn s3_error<
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
>(
    operation: &'static str,
    key: &str,
) -> impl FnOnce(aws_sdk_s3::error::SdkError<E, R>) -> AuditStoreError {
    let key = key.to_owned();
    move |e| AuditStoreError::S3 {
        operation,
        key,
        detail: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

/// Runs `task` on every item, [`IN_FLIGHT`] at a time, and collects the answers (in the order they
/// finish); the first failure ends it.
async fn in_flight<I, T, F>(
    items: Vec<I>,
    operation: &'static str,
    task: impl Fn(I) -> F,
) -> Result<Vec<T>, AuditStoreError>
where
    F: std::future::Future<Output = Result<T, AuditStoreError>> + Send + 'static,
    T: Send + 'static,
{
    let mut out = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let mut running = JoinSet::new();
        for item in items.by_ref().take(IN_FLIGHT) {
            running.spawn(task(item));
        }
        while let Some(done) = running.join_next().await {
            out.push(done.map_err(|e| AuditStoreError::S3 {
                operation,
                key: String::new(),
                detail: e.to_string(),
            })??);
        }
    }
    Ok(out)
}

/// Cheap to clone: the client shares its connections.
#[derive(Clone)]
pub struct S3Audit {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Audit {
    pub async fn connect(settings: &S3Settings) -> Self {
        let shared =
            sentio_queue::sqs::sdk_config(settings.endpoint.as_deref(), &settings.region).await;
        // S3-compatible servers on 127.0.0.1 have no per-bucket host names.
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.endpoint.is_some())
            .build();
        Self {
            client: Client::from_conf(config),
            bucket: settings.bucket.clone(),
            prefix: settings.prefix.clone(),
        }
    }

    /// Creates the bucket if it is missing (what `template.yaml` declares in AWS), for local
    /// stacks and tests.
    pub async fn create_bucket(&self) -> Result<(), AuditStoreError> {
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(s3_error("CreateBucket", &self.bucket)(e)),
        }
    }

    fn prediction_key(&self, prediction_id: &str) -> String {
        format!("{}predictions/{prediction_id}.json", self.prefix)
    }

    fn feedback_prefix(&self, prediction_id: &str) -> String {
        format!("{}feedback/{prediction_id}/", self.prefix)
    }

    async fn put(&self, key: String, body: Vec<u8>) -> Result<(), AuditStoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(s3_error("PutObject", &key))?;
        Ok(())
    }

    /// The object at `key` as a record, `None` when there is none.
    async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AuditStoreError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(s3_error("GetObject", key)(e)),
        };
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| AuditStoreError::S3 {
                operation: "GetObject",
                key: key.to_owned(),
                detail: e.to_string(),
            })?
            .into_bytes();
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AuditStoreError::Corrupt {
                key: key.to_owned(),
                detail: e.to_string(),
            })
    }

    /// Every key under `prefix`, following S3's pages.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, AuditStoreError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(s3_error("ListObjectsV2", prefix))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(keys),
            }
        }
    }

    /// Reads the records at `keys`, [`IN_FLIGHT`] at a time; missing objects are skipped.
    async fn get_all<T: DeserializeOwned + Send + 'static>(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<T>, AuditStoreError> {
        let read = in_flight(keys, "GetObject", |key| {
            let this = self.clone();
            async move { this.get::<T>(&key).await }
        })
        .await?;
        Ok(read.into_iter().flatten().collect())
    }

    /// Writes one answer's predictions, [`IN_FLIGHT`] at a time. Records without a valid id are
    /// skipped (nothing could look them up).
    pub async fn record(&self, records: &[PredictionRecord]) -> Result<(), AuditStoreError> {
        let valid = records
            .iter()
            .filter(|r| check_id("prediction_id", &r.prediction_id).is_ok());
        let writes: Vec<(String, Vec<u8>)> = valid
            .map(|r| {
                let body = serde_json::to_vec(r).expect("records always serialize");
                (self.prediction_key(&r.prediction_id), body)
            })
            .collect();
        in_flight(writes, "PutObject", |(key, body)| {
            let this = self.clone();
            async move { this.put(key, body).await }
        })
        .await?;
        Ok(())
    }

    /// A prediction and its corrections (oldest first), if it exists and belongs to `tenant`.
    pub async fn entry(
        &self,
        tenant: Option<&str>,
        prediction_id: &str,
    ) -> Result<Option<AuditEntry>, AuditStoreError> {
        if check_id("prediction_id", prediction_id).is_err() {
            return Ok(None);
        }
        let Some(prediction) = self
            .get::<PredictionRecord>(&self.prediction_key(prediction_id))
            .await?
            .filter(|p| p.tenant.as_deref() == tenant)
        else {
            return Ok(None);
        };
        let keys = self.list(&self.feedback_prefix(prediction_id)).await?;
        let mut feedback: Vec<FeedbackRecord> = self.get_all(keys).await?;
        feedback.sort_by(|a, b| (a.at_ms, &a.feedback_id).cmp(&(b.at_ms, &b.feedback_id)));
        Ok(Some(AuditEntry {
            prediction,
            feedback,
        }))
    }

    /// Stores a correction of a recorded prediction; the answer goes out after S3 has it.
    pub async fn feedback(
        &self,
        tenant: Option<&str>,
        request: FeedbackRequest,
        now_ms: u64,
        random: [u8; 16],
    ) -> Result<FeedbackRecord, ApiError> {
        check_reviewer(&request.reviewer)?;
        let unknown =
            || ApiError::invalid("prediction_id", "no prediction with this id (for this key)");
        // Checked before it becomes part of a key.
        check_id("prediction_id", &request.prediction_id).map_err(|_| unknown())?;
        let Some(prediction) = self
            .get::<PredictionRecord>(&self.prediction_key(&request.prediction_id))
            .await?
            .filter(|p| p.tenant.as_deref() == tenant)
        else {
            return Err(unknown());
        };
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let record = feedback_record(
            &prediction,
            request,
            format!("fb_{now_ms}_{suffix}"),
            tenant,
            now_ms,
        )?;
        let key = format!(
            "{}{}.json",
            self.feedback_prefix(&record.prediction_id),
            record.feedback_id
        );
        self.put(
            key,
            serde_json::to_vec(&record).expect("records always serialize"),
        )
        .await?;
        Ok(record)
    }

    /// Writes every corrected prediction as a training example (the last correction wins), in
    /// prediction id order; returns how many. The same lines `sentio feedback export` writes
    /// from a local store.
    pub async fn export(&self, out: &mut dyn Write) -> Result<usize, AuditStoreError> {
        let keys = self.list(&format!("{}feedback/", self.prefix)).await?;
        let mut by_prediction: Vec<(String, Vec<FeedbackRecord>)> =
            corrections_by_prediction(self.get_all::<FeedbackRecord>(keys).await?)
                .into_iter()
                .collect();
        by_prediction.sort_by(|a, b| a.0.cmp(&b.0));
        let prediction_keys = by_prediction
            .iter()
            .map(|(id, _)| self.prediction_key(id))
            .collect();
        let predictions = self.get_all::<PredictionRecord>(prediction_keys).await?;
        let mut predictions: std::collections::HashMap<String, PredictionRecord> = predictions
            .into_iter()
            .map(|p| (p.prediction_id.clone(), p))
            .collect();
        let mut written = 0;
        for (id, mut corrections) in by_prediction {
            let Some(prediction) = predictions.remove(&id) else {
                continue;
            };
            corrections.sort_by(|a, b| (a.at_ms, &a.feedback_id).cmp(&(b.at_ms, &b.feedback_id)));
            let Some(last) = corrections.last() else {
                continue;
            };
            let mut line = serde_json::to_vec(&training_example(prediction, last))
                .expect("examples always serialize");
            line.push(b'\n');
            out.write_all(&line)?;
            written += 1;
        }
        Ok(written)
    }
}

impl crate::worker::PredictionSink for S3Audit {
    fn record<'a>(&'a self, records: &'a [PredictionRecord]) -> crate::worker::SinkFuture<'a> {
        Box::pin(async move {
            S3Audit::record(self, records)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
