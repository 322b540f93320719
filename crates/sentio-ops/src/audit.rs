//! The audit trail and the feedback store (the MLOps loop), as two append-only JSON-lines files:
//!
//! - `predictions.jsonl`: every prediction the gateway saw go out: its id, the model version,
//!   the keyed hash of the input, the output (label, scores, confidence), the tier and the
//!   redacted text (never the raw text).
//! - `feedback.jsonl`: human corrections (`POST /feedback`), each naming a prediction.
//!
//! Feedback is fsynced before `POST /feedback` answers. Predictions are written as they go out
//! and fsynced at least every 200 ms by a background thread: a crash loses at most that much
//! audit trail, never an answer (group commit keeps the fsync off the request path).
//!
//! `sentio feedback export` joins the two into a training set.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use sentio_core::ApiError;

const PREDICTIONS: &str = "predictions.jsonl";
const FEEDBACK: &str = "feedback.jsonl";
const SYNC_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    pub prediction_id: String,
    #[serde(default)]
    pub request_id: Option<String>,
    pub at_ms: u64,
    #[serde(default)]
    pub tenant: Option<String>,
    pub route: String,
    pub tier: String,
    /// `id@version`.
    pub model: String,
    pub label: String,
    pub confidence: f64,
    pub scores: Value,
    #[serde(default)]
    pub input_hash: Option<String>,
    pub redacted_text: String,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub escalation: Option<String>,
}

/// `POST /feedback`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub prediction_id: String,
    pub corrected_label: sentio_model::Label,
    /// Who corrected it (an agent id, an email, a team name).
    pub reviewer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub feedback_id: String,
    pub prediction_id: String,
    pub corrected_label: String,
    pub original_label: String,
    pub reviewer: String,
    pub at_ms: u64,
    #[serde(default)]
    pub tenant: Option<String>,
}

/// One prediction with every correction made to it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    #[serde(flatten)]
    pub prediction: PredictionRecord,
    pub feedback: Vec<FeedbackRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

struct Inner {
    predictions: File,
    /// Where the next prediction line starts.
    end: u64,
    /// Prediction id → offset of its line.
    index: HashMap<String, u64>,
    feedback: File,
    overrides: HashMap<String, Vec<FeedbackRecord>>,
    unsynced: bool,
}

pub struct AuditLog {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a JSON-lines file: each complete line parsed, with its offset. A torn last line (a
/// crash mid-write) is cut off so the next append starts clean.
fn read_lines<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<(Vec<(u64, T)>, u64), AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io(path)(e)),
    };
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut offset = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io(path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        if let Ok(value) = serde_json::from_slice(&line) {
            out.push((offset, value));
        }
        offset += n as u64;
    }
    Ok((out, offset))
}

fn open_append(path: &Path, complete_len: u64) -> Result<File, AuditError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    file.set_len(complete_len).map_err(io(path))?;
    Ok(file)
}

fn overrides_from(records: Vec<(u64, FeedbackRecord)>) -> HashMap<String, Vec<FeedbackRecord>> {
    let mut overrides: HashMap<String, Vec<FeedbackRecord>> = HashMap::new();
    for (_, record) in records {
        overrides
            .entry(record.prediction_id.clone())
            .or_default()
            .push(record);
    }
    overrides
}

impl AuditLog {
    /// Opens (or creates) the store in `dir` and starts its sync thread.
    pub fn open(dir: &Path) -> Result<Arc<Self>, AuditError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let predictions_path = dir.join(PREDICTIONS);
        let (predictions, end) = read_lines::<PredictionRecord>(&predictions_path)?;
        let index = predictions
            .into_iter()
            .map(|(offset, p)| (p.prediction_id, offset))
            .collect();
        let feedback_path = dir.join(FEEDBACK);
        let (feedback, feedback_end) = read_lines::<FeedbackRecord>(&feedback_path)?;
        let log = Arc::new(Self {
            dir: dir.to_owned(),
            inner: Mutex::new(Inner {
                predictions: open_append(&predictions_path, end)?,
                end,
                index,
                feedback: open_append(&feedback_path, feedback_end)?,
                overrides: overrides_from(feedback),
                unsynced: false,
            }),
        });
        let weak: Weak<Self> = Arc::downgrade(&log);
        std::thread::Builder::new()
            .name("sentio-audit-sync".into())
            .spawn(move || {
                while let Some(log) = weak.upgrade() {
                    log.sync();
                    drop(log);
                    std::thread::sleep(SYNC_EVERY);
                }
            })
            .map_err(io(dir))?;
        Ok(log)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Flushes appended predictions to disk.
    pub fn sync(&self) {
        let mut inner = self.lock();
        if inner.unsynced {
            if let Err(e) = inner.predictions.sync_data() {
                tracing::error!(error = %e, "audit trail fsync failed");
            }
            inner.unsynced = false;
        }
    }

    pub fn record(&self, record: &PredictionRecord) {
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        let mut inner = self.lock();
        match inner.predictions.write_all(&line) {
            Ok(()) => {
                let offset = inner.end;
                inner.end += line.len() as u64;
                inner.index.insert(record.prediction_id.clone(), offset);
                inner.unsynced = true;
            }
            Err(e) => tracing::error!(error = %e, "audit trail write failed"),
        }
    }

    fn read_prediction(&self, offset: u64) -> Option<PredictionRecord> {
        let mut file = File::open(self.dir.join(PREDICTIONS)).ok()?;
        file.seek(SeekFrom::Start(offset)).ok()?;
        let mut line = Vec::new();
        BufReader::new(file.take(16 * 1024 * 1024))
            .read_until(b'\n', &mut line)
            .ok()?;
        serde_json::from_slice(&line).ok()
    }

    /// A prediction and its corrections, if it exists and belongs to `tenant` (in open mode,
    /// `tenant` is `None` and sees predictions made without one).
    pub fn get(&self, tenant: Option<&str>, prediction_id: &str) -> Option<AuditEntry> {
        let (offset, feedback) = {
            let inner = self.lock();
            let offset = *inner.index.get(prediction_id)?;
            let feedback = inner
                .overrides
                .get(prediction_id)
                .cloned()
                .unwrap_or_default();
            (offset, feedback)
        };
        let prediction = self.read_prediction(offset)?;
        (prediction.tenant.as_deref() == tenant).then_some(AuditEntry {
            prediction,
            feedback,
        })
    }

    /// Stores a correction durably (fsynced before returning).
    pub fn feedback(
        &self,
        tenant: Option<&str>,
        request: FeedbackRequest,
        now_ms: u64,
    ) -> Result<FeedbackRecord, ApiError> {
        let reviewer = request.reviewer.trim();
        if reviewer.is_empty() || reviewer.len() > 128 || reviewer.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "reviewer",
                "must be 1 to 128 bytes without control characters",
            ));
        }
        let entry = self.get(tenant, &request.prediction_id).ok_or_else(|| {
            ApiError::invalid("prediction_id", "no prediction with this id (for this key)")
        })?;
        let mut inner = self.lock();
        let n = inner.overrides.values().map(Vec::len).sum::<usize>() + 1;
        let record = FeedbackRecord {
            feedback_id: format!("fb_{now_ms}_{n}"),
            prediction_id: request.prediction_id,
            corrected_label: request.corrected_label.as_str().to_owned(),
            original_label: entry.prediction.label,
            reviewer: reviewer.to_owned(),
            at_ms: now_ms,
            tenant: tenant.map(str::to_owned),
        };
        let mut line = serde_json::to_vec(&record).map_err(|e| ApiError::Internal {
            detail: e.to_string(),
        })?;
        line.push(b'\n');
        let stored = inner
            .feedback
            .write_all(&line)
            .and_then(|()| inner.feedback.sync_data());
        if let Err(e) = stored {
            tracing::error!(error = %e, "feedback write failed");
            return Err(ApiError::Unavailable {
                detail: "the feedback store could not write; try again".into(),
            });
        }
        inner
            .overrides
            .entry(record.prediction_id.clone())
            .or_default()
            .push(record.clone());
        Ok(record)
    }
}

/// One line of the exported training set.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainingExample {
    /// The redacted text the model saw.
    pub text: String,
    /// The last human correction.
    pub label: String,
    pub original_label: String,
    pub model: String,
    pub tier: String,
    pub confidence: f64,
    pub scores: Value,
    pub prediction_id: String,
    pub reviewer: String,
    pub corrected_at_ms: u64,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
}

/// Writes every corrected prediction in `dir` as a JSON line (the last correction wins);
/// returns how many.
pub fn export_training_set(dir: &Path, out: &mut dyn std::io::Write) -> Result<usize, AuditError> {
    let (feedback, _) = read_lines::<FeedbackRecord>(&dir.join(FEEDBACK))?;
    let overrides = overrides_from(feedback);
    let (predictions, _) = read_lines::<PredictionRecord>(&dir.join(PREDICTIONS))?;
    let mut written = 0;
    let path = dir.join("export");
    for (_, p) in predictions {
        let Some(last) = overrides.get(&p.prediction_id).and_then(|v| v.last()) else {
            continue;
        };
        let example = TrainingExample {
            label: last.corrected_label.clone(),
            original_label: p.label,
            reviewer: last.reviewer.clone(),
            corrected_at_ms: last.at_ms,
            channel: p
                .metadata
                .get("channel")
                .and_then(Value::as_str)
                .map(str::to_owned),
            text: p.redacted_text,
            model: p.model,
            tier: p.tier,
            confidence: p.confidence,
            scores: p.scores,
            prediction_id: p.prediction_id,
            tenant: p.tenant,
        };
        let mut line = serde_json::to_vec(&example).unwrap_or_default();
        line.push(b'\n');
        out.write_all(&line).map_err(io(&path))?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, tenant: Option<&str>) -> PredictionRecord {
        PredictionRecord {
            prediction_id: id.into(),
            request_id: Some("req_1".into()),
            at_ms: 1,
            tenant: tenant.map(str::to_owned),
            route: "/classify-sentiment".into(),
            tier: "edge".into(),
            model: "sentiment-student@1".into(),
            label: "positive".into(),
            confidence: 0.55,
            scores: serde_json::json!({"negative": 0.2, "neutral": 0.25, "positive": 0.55}),
            input_hash: Some("ab".into()),
            redacted_text: "great, thanks <PERSON>".into(),
            metadata: serde_json::json!({"channel": "chat"}),
            escalation: None,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sentio-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn correction(id: &str, label: &str) -> FeedbackRequest {
        serde_json::from_value(serde_json::json!({
            "prediction_id": id, "corrected_label": label, "reviewer": "agent-7"
        }))
        .unwrap()
    }

    #[test]
    fn records_feedback_survives_restart_and_exports() {
        let dir = temp_dir("roundtrip");
        {
            let log = AuditLog::open(&dir).unwrap();
            log.record(&record("req_1.0", Some("acme")));
            log.record(&record("req_1.1", Some("acme")));
            log.record(&record("req_2.0", Some("globex")));
            assert_eq!(
                log.get(Some("acme"), "req_1.1").unwrap().prediction.label,
                "positive"
            );
            // Tenants see only their own predictions.
            assert!(log.get(Some("globex"), "req_1.1").is_none());
            assert!(log.get(None, "req_1.1").is_none());
            let fb = log
                .feedback(Some("acme"), correction("req_1.1", "negative"), 5)
                .unwrap();
            assert_eq!(fb.original_label, "positive");
            let err = log
                .feedback(Some("globex"), correction("req_1.1", "negative"), 6)
                .unwrap_err();
            assert_eq!(err.field(), Some("prediction_id"));
            let mut bad = correction("req_1.1", "neutral");
            bad.reviewer = " ".into();
            assert_eq!(
                log.feedback(Some("acme"), bad, 7).unwrap_err().field(),
                Some("reviewer")
            );
            log.feedback(Some("acme"), correction("req_1.1", "neutral"), 8)
                .unwrap();
            log.sync();
        }
        // A torn line at the end (a crash mid-append) is dropped on reopen.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(PREDICTIONS))
            .unwrap();
        f.write_all(b"{\"prediction_id\": \"req_3").unwrap();
        drop(f);
        let log = AuditLog::open(&dir).unwrap();
        let entry = log.get(Some("acme"), "req_1.1").unwrap();
        assert_eq!(entry.feedback.len(), 2);
        log.record(&record("req_4.0", None));
        assert!(
            log.get(None, "req_4.0").is_some(),
            "appends after the cut line parse"
        );
        drop(log);

        let mut out = Vec::new();
        assert_eq!(export_training_set(&dir, &mut out).unwrap(), 1);
        let example: TrainingExample = serde_json::from_slice(out.trim_ascii_end()).unwrap();
        assert_eq!(example.label, "neutral", "the last correction wins");
        assert_eq!(example.original_label, "positive");
        assert_eq!(example.text, "great, thanks <PERSON>");
        assert_eq!(example.channel.as_deref(), Some("chat"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_labels_and_fields_are_refused_by_the_parser() {
        let bad = [
            r#"{"prediction_id": "a", "corrected_label": "angry", "reviewer": "x"}"#,
            r#"{"prediction_id": "a", "corrected_label": "negative", "reviewer": "x", "text": "y"}"#,
        ];
        for body in bad {
            assert!(sentio_core::http::parse_json::<FeedbackRequest>(body.as_bytes()).is_err());
        }
    }
}
