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

use serde::Deserialize;

use sentio_core::ApiError;
pub use sentio_core::audit::{
    AuditEntry, FeedbackRecord, FeedbackRequest, PredictionRecord, TrainingExample,
};
use sentio_core::audit::{corrections_by_prediction, feedback_record, training_example};

const PREDICTIONS: &str = "predictions.jsonl";
const FEEDBACK: &str = "feedback.jsonl";
const SYNC_EVERY: Duration = Duration::from_millis(200);

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
    corrections_by_prediction(records.into_iter().map(|(_, r)| r))
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
        // Input first, then the lookup: a bad reviewer is the caller's error whatever the id.
        sentio_core::audit::check_reviewer(&request.reviewer)?;
        let entry = self.get(tenant, &request.prediction_id).ok_or_else(|| {
            ApiError::invalid("prediction_id", "no prediction with this id (for this key)")
        })?;
        let mut inner = self.lock();
        let n = inner.overrides.values().map(Vec::len).sum::<usize>() + 1;
        let record = feedback_record(
            &entry.prediction,
            request,
            format!("fb_{now_ms}_{n}"),
            tenant,
            now_ms,
        )?;
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
        let example = training_example(p, last);
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
