//! The audit trail's records and the feedback loop's types, shared by every store: the local
//! gateway's JSON-lines files (`sentio-ops`) and the AWS tier's S3 objects (`sentio-heavy`).
//!
//! A prediction is recorded as the caller saw it: [`observe`] reads the predictions out of
//! Sentio's own JSON answers, and [`prediction_records`] turns them into [`PredictionRecord`]s.
//! Raw text never appears in a record: the redacted text and a keyed hash of the input do.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ApiError;

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

/// Checks a reviewer name and returns it trimmed.
pub fn check_reviewer(reviewer: &str) -> Result<&str, ApiError> {
    let reviewer = reviewer.trim();
    if reviewer.is_empty() || reviewer.len() > 128 || reviewer.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "reviewer",
            "must be 1 to 128 bytes without control characters",
        ));
    }
    Ok(reviewer)
}

/// The correction of `prediction` that `request` asks for.
pub fn feedback_record(
    prediction: &PredictionRecord,
    request: FeedbackRequest,
    feedback_id: String,
    tenant: Option<&str>,
    now_ms: u64,
) -> Result<FeedbackRecord, ApiError> {
    let reviewer = check_reviewer(&request.reviewer)?.to_owned();
    Ok(FeedbackRecord {
        feedback_id,
        prediction_id: request.prediction_id,
        corrected_label: request.corrected_label.as_str().to_owned(),
        original_label: prediction.label.clone(),
        reviewer,
        at_ms: now_ms,
        tenant: tenant.map(str::to_owned),
    })
}

/// Corrections grouped by prediction id, in the order given.
pub fn corrections_by_prediction(
    records: impl IntoIterator<Item = FeedbackRecord>,
) -> HashMap<String, Vec<FeedbackRecord>> {
    let mut by_prediction: HashMap<String, Vec<FeedbackRecord>> = HashMap::new();
    for record in records {
        by_prediction
            .entry(record.prediction_id.clone())
            .or_default()
            .push(record);
    }
    by_prediction
}

/// A corrected prediction as a training example: the last correction wins.
pub fn training_example(prediction: PredictionRecord, last: &FeedbackRecord) -> TrainingExample {
    TrainingExample {
        label: last.corrected_label.clone(),
        original_label: prediction.label,
        reviewer: last.reviewer.clone(),
        corrected_at_ms: last.at_ms,
        channel: prediction
            .metadata
            .get("channel")
            .and_then(Value::as_str)
            .map(str::to_owned),
        text: prediction.redacted_text,
        model: prediction.model,
        tier: prediction.tier,
        confidence: prediction.confidence,
        scores: prediction.scores,
        prediction_id: prediction.prediction_id,
        tenant: prediction.tenant,
    }
}

/// The record of one item the nearline worker scored: its item id is its prediction id.
pub fn scored_item_record(item: &crate::envelope::ScoredItem, at_ms: u64) -> PredictionRecord {
    let result = &item.result;
    PredictionRecord {
        prediction_id: item.item_id.clone(),
        request_id: Some(item.job_id.clone()),
        at_ms,
        tenant: item.tenant.clone(),
        route: "queue".into(),
        tier: serde_json::to_value(item.tier)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        model: format!("{}@{}", item.model.id, item.model.version),
        label: result.label.as_str().to_owned(),
        confidence: f64::from(result.confidence),
        scores: serde_json::to_value(result.scores).unwrap_or(Value::Null),
        input_hash: result.input_hash.clone(),
        redacted_text: result.redacted_text.clone(),
        metadata: serde_json::to_value(&item.metadata).unwrap_or(Value::Null),
        escalation: None,
    }
}

/// The records of one answer's predictions (those without an id are not recorded: nothing
/// could refer to them).
pub fn prediction_records(
    observed: &Observed,
    route: &str,
    tenant: Option<&str>,
    at_ms: u64,
) -> Vec<PredictionRecord> {
    observed
        .predictions
        .iter()
        .filter_map(|p| {
            Some(PredictionRecord {
                prediction_id: p.prediction_id.clone()?,
                request_id: observed.request_id.clone(),
                at_ms,
                tenant: tenant.map(str::to_owned),
                route: route.to_owned(),
                tier: observed.tier.clone().unwrap_or_else(|| "none".into()),
                model: observed.model.clone().unwrap_or_else(|| "none".into()),
                label: p.label.clone(),
                confidence: p.confidence,
                scores: p.scores.clone(),
                input_hash: p.input_hash.clone(),
                redacted_text: p.redacted_text.clone(),
                metadata: observed.metadata.clone(),
                escalation: observed.escalation.clone(),
            })
        })
        .collect()
}

/// Most records in one `POST /v1/audit`.
pub const MAX_FORWARDED_RECORDS: usize = 1024;

/// The body of the heavy tier's `POST /v1/audit`: the records of predictions answered elsewhere
/// (the edge components on Spin, which keep no store of their own).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedRecords {
    pub records: Vec<PredictionRecord>,
}

impl ForwardedRecords {
    /// Parses and checks a batch. The records take the request's tenant (`x-sentio-tenant`, set
    /// by the gateway), whatever the body says, as every other route does.
    pub fn parse(body: &[u8], tenant: Option<&str>) -> Result<Vec<PredictionRecord>, ApiError> {
        let Self { mut records } = crate::http::parse_json(body)?;
        if records.is_empty() || records.len() > MAX_FORWARDED_RECORDS {
            return Err(ApiError::invalid(
                "records",
                format!("must hold 1 to {MAX_FORWARDED_RECORDS} records"),
            ));
        }
        for (i, record) in records.iter_mut().enumerate() {
            crate::envelope::check_id(
                &format!("records[{i}].prediction_id"),
                &record.prediction_id,
            )?;
            if !["edge", "heavy", "nearline"].contains(&record.tier.as_str()) {
                return Err(ApiError::invalid(
                    format!("records[{i}].tier"),
                    "must be edge, heavy or nearline",
                ));
            }
            record.tenant = tenant.map(str::to_owned);
        }
        Ok(records)
    }
}

/// One prediction as the caller received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub prediction_id: Option<String>,
    pub label: String,
    pub confidence: f64,
    pub scores: Value,
    pub redacted_text: String,
    pub input_hash: Option<String>,
}

/// What one answer (a JSON body, or one line of a stream) said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub request_id: Option<String>,
    pub tier: Option<String>,
    /// `id@version`.
    pub model: Option<String>,
    pub predictions: Vec<Prediction>,
    /// `escalated`, `deferred`, `failed` (classify) or `escalate` (a conversation's signal).
    pub escalation: Option<String>,
    pub metadata: Value,
}

#[derive(Deserialize)]
struct ModelRef {
    id: String,
    version: String,
}

fn prediction(v: &Value) -> Option<Prediction> {
    let label = v.get("label")?.as_str()?.to_owned();
    Some(Prediction {
        prediction_id: v
            .get("prediction_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        label,
        confidence: v.get("confidence").and_then(Value::as_f64).unwrap_or(0.0),
        scores: v.get("scores").cloned().unwrap_or(Value::Null),
        redacted_text: v
            .get("redacted_text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        input_hash: v
            .get("input_hash")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// Reads one JSON answer of the sentiment endpoints (classify one/many, conversation, a stream
/// line). Anything else (errors, `/redact`) yields no predictions.
pub fn observe(body: &[u8]) -> Observed {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Observed::default();
    };
    let mut observed = Observed {
        request_id: value
            .get("request_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        tier: value.get("tier").and_then(Value::as_str).map(str::to_owned),
        model: value
            .get("model")
            .and_then(|m| serde_json::from_value::<ModelRef>(m.clone()).ok())
            .map(|m| format!("{}@{}", m.id, m.version)),
        metadata: value.get("metadata").cloned().unwrap_or(Value::Null),
        ..Observed::default()
    };
    if value.get("error").is_some_and(|e| !e.is_null()) {
        return observed;
    }
    if let Some(turns) = value.get("turns").and_then(Value::as_array) {
        // A conversation's turns carry their sentiment's fields flattened in.
        observed.predictions = turns.iter().filter_map(prediction).collect();
    } else if let Some(results) = value.get("results").and_then(Value::as_array) {
        observed.predictions = results.iter().filter_map(prediction).collect();
    } else if let Some(one) = prediction(&value) {
        observed.predictions = vec![one];
    }
    observed.escalation = match value.get("escalation") {
        Some(e) if e.get("status").is_some() => {
            e.get("status").and_then(Value::as_str).map(str::to_owned)
        }
        Some(e) if e.get("escalate").and_then(Value::as_bool) == Some(true) => {
            Some("escalate".to_owned())
        }
        _ => None,
    };
    observed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_what_the_caller_saw_and_skip_predictions_without_ids() {
        let answer = br#"{"request_id": "req_1", "tier": "heavy",
            "model": {"id": "teacher", "version": "1"}, "metadata": {"channel": "chat"},
            "results": [
              {"prediction_id": "req_1.0", "label": "negative", "confidence": 0.9,
               "scores": {"negative": 0.9, "neutral": 0.05, "positive": 0.05},
               "redacted_text": "mail <EMAIL_ADDRESS>", "input_hash": "h1"},
              {"label": "positive", "confidence": 0.8, "redacted_text": "thanks"}]}"#;
        let records = prediction_records(&observe(answer), "/v1/classify", Some("acme"), 7);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(
            (r.prediction_id.as_str(), r.tier.as_str(), r.model.as_str()),
            ("req_1.0", "heavy", "teacher@1")
        );
        assert_eq!((r.tenant.as_deref(), r.at_ms), (Some("acme"), 7));
        assert_eq!(r.redacted_text, "mail <EMAIL_ADDRESS>");
        assert_eq!(r.metadata["channel"], "chat");
        assert!(
            prediction_records(&observe(br#"{"error": {"kind": "x"}}"#), "/", None, 0).is_empty()
        );
    }

    #[test]
    fn forwarded_records_take_the_requests_tenant_and_name_the_bad_field() {
        let record = |id: &str, tier: &str| {
            serde_json::json!({"prediction_id": id, "at_ms": 1, "tenant": "mallory", "route": "/r",
                "tier": tier, "model": "m@1", "label": "neutral", "confidence": 0.5,
                "scores": null, "redacted_text": "ok"})
        };
        let body = |records: Vec<Value>| serde_json::json!({ "records": records }).to_string();
        let records = ForwardedRecords::parse(
            body(vec![record("req_1.0", "edge")]).as_bytes(),
            Some("acme"),
        )
        .unwrap();
        assert_eq!(records[0].tenant.as_deref(), Some("acme"));
        let cases = [
            (body(vec![]), "records"),
            (
                body(vec![record("req_1.0", "edge"), record("../x", "edge")]),
                "records[1].prediction_id",
            ),
            (body(vec![record("req_1.0", "gpu")]), "records[0].tier"),
            (r#"{"records": [], "extra": 1}"#.to_owned(), "extra"),
        ];
        for (body, field) in cases {
            let err = ForwardedRecords::parse(body.as_bytes(), None).unwrap_err();
            assert_eq!(err.field(), Some(field), "{body}");
        }
    }

    #[test]
    fn the_last_correction_is_the_training_label() {
        let prediction = PredictionRecord {
            prediction_id: "p".into(),
            request_id: None,
            at_ms: 1,
            tenant: None,
            route: "queue".into(),
            tier: "nearline".into(),
            model: "m@1".into(),
            label: "negative".into(),
            confidence: 0.6,
            scores: Value::Null,
            input_hash: None,
            redacted_text: "late again".into(),
            metadata: serde_json::json!({"channel": "email"}),
            escalation: None,
        };
        let correct = |label: &str, at_ms: u64| {
            let request: FeedbackRequest = serde_json::from_value(serde_json::json!({
                "prediction_id": "p", "corrected_label": label, "reviewer": " agent-7 "
            }))
            .unwrap();
            feedback_record(&prediction, request, format!("fb_{at_ms}"), None, at_ms).unwrap()
        };
        let all = corrections_by_prediction([correct("neutral", 2), correct("positive", 3)]);
        let example = training_example(prediction.clone(), all["p"].last().unwrap());
        assert_eq!(
            (example.label.as_str(), example.original_label.as_str()),
            ("positive", "negative")
        );
        assert_eq!(
            (example.reviewer.as_str(), example.channel.as_deref()),
            ("agent-7", Some("email"))
        );
        let blank: FeedbackRequest = serde_json::from_value(serde_json::json!({
            "prediction_id": "p", "corrected_label": "neutral", "reviewer": "\t"
        }))
        .unwrap();
        let err = feedback_record(&prediction, blank, "fb".into(), None, 1).unwrap_err();
        assert_eq!(err.field(), Some("reviewer"));
    }
}
