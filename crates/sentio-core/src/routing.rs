//! Routing between tiers, as pure decisions: which texts the edge hands on, what it sends the
//! heavy tier, how it folds the heavy tier's answer into its own, and what it queues when the heavy
//! tier cannot answer within the budget. The shells do the HTTP; this module decides.
//!
//! * `priority: high`, or edge confidence under the threshold at normal priority → ask the heavy
//!   tier now (`escalation.status: "escalated"` when it answers in budget).
//! * Low confidence at `priority: low` → straight to the queue: the heavy tier's low-latency
//!   capacity stays free for priority flows (`"deferred"`).
//! * Heavy tier timed out, throttled (429) or failed (5xx) → the edge's own answer, and the texts
//!   are queued for re-scoring (`"deferred"`); if even queueing fails, `"failed"` says so.

use serde::{Deserialize, Serialize};

use crate::envelope::{ENVELOPE_VERSION, Envelope, EnvelopeSource};
use crate::sentiment_api::{ClassifyResponse, TextSentiment, Tier};
use crate::{Metadata, Priority, RequestContext, RoutingConfig};
use sentio_model::{Label, ModelInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// The request said `priority: high`.
    Priority,
    /// The edge model's confidence in at least one text was under the threshold.
    LowConfidence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationStatus {
    /// The heavy tier answered within the budget; its answer is the response.
    Escalated,
    /// The edge answered; the texts are queued and their re-scored results go to the webhook.
    Deferred,
    /// The edge answered; neither the heavy tier nor the queue took the texts.
    Failed,
}

/// What routing did for one response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationOutcome {
    pub status: EscalationStatus,
    pub reason: EscalationReason,
    /// The edge's own verdict, per text, when another tier's answer replaced it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edge: Vec<EdgeVerdict>,
    /// The queued job and items, when deferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub item_ids: Vec<String>,
    /// Why the heavy tier did not answer (timeout, status), when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Milliseconds spent on escalation and queueing.
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeVerdict {
    pub label: Label,
    pub confidence: f32,
    pub model: ModelInfo,
}

/// Where a classified request goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The edge's answer stands.
    Edge,
    /// Ask the heavy tier within the budget.
    Escalate(EscalationReason),
    /// Answer from the edge and queue for re-scoring without asking the heavy tier.
    Defer(EscalationReason),
}

pub fn route(results: &[TextSentiment], priority: Priority, config: &RoutingConfig) -> Route {
    let reason = if priority == Priority::High {
        Some(EscalationReason::Priority)
    } else if results
        .iter()
        .any(|r| r.confidence < config.confidence_threshold)
    {
        Some(EscalationReason::LowConfidence)
    } else {
        None
    };
    match (reason, priority) {
        (None, _) => Route::Edge,
        (Some(reason), Priority::Low) if config.overflow_url.is_some() => Route::Defer(reason),
        (Some(reason), _) if config.heavy_url.is_some() => Route::Escalate(reason),
        (Some(reason), _) if config.overflow_url.is_some() => Route::Defer(reason),
        (Some(_), _) => Route::Edge,
    }
}

/// The heavy tier's `/v1/classify` body: the redacted texts (the raw ones never leave the edge).
pub fn heavy_request_body(
    results: &[TextSentiment],
    sentences: bool,
    metadata: &Metadata,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct HeavyRequest<'a> {
        texts: Vec<&'a str>,
        sentences: bool,
        metadata: &'a Metadata,
    }
    serde_json::to_vec(&HeavyRequest {
        texts: results.iter().map(|r| r.redacted_text.as_str()).collect(),
        sentences,
        metadata,
    })
    .expect("plain data serializes")
}

/// The parts of the heavy tier's `/v1/classify` answer the edge reads.
#[derive(Debug, Deserialize)]
struct HeavyAnswer {
    results: Vec<TextSentiment>,
    model: ModelInfo,
}

/// Replaces the edge's verdicts in `response` with the heavy tier's answer (`body`). Fails, and
/// leaves `response` untouched, when the answer does not fit: another count of results, or texts
/// that are not the ones the edge sent.
pub fn merge_heavy_answer(
    response: &mut ClassifyResponse,
    body: &[u8],
    reason: EscalationReason,
    elapsed_ms: f64,
) -> Result<(), String> {
    let answer: HeavyAnswer = serde_json::from_slice(body)
        .map_err(|e| format!("heavy tier answer is not a classify response: {e}"))?;
    let edge_results = response.output.results_mut();
    if answer.results.len() != edge_results.len() {
        return Err(format!(
            "heavy tier answered {} results for {} texts",
            answer.results.len(),
            edge_results.len()
        ));
    }
    if answer
        .results
        .iter()
        .zip(edge_results.iter())
        .any(|(h, e)| h.redacted_text != e.redacted_text)
    {
        return Err("heavy tier answered for other texts".into());
    }
    let mut edge = Vec::with_capacity(edge_results.len());
    for (mine, theirs) in edge_results.iter_mut().zip(answer.results) {
        edge.push(EdgeVerdict {
            label: mine.label,
            confidence: mine.confidence,
            model: response.model.clone(),
        });
        // The edge's redaction counts, prediction id and input hash stay: the heavy tier only
        // saw tags where PII was, and feedback names the prediction the caller received.
        *mine = TextSentiment {
            pii: std::mem::take(&mut mine.pii),
            prediction_id: mine.prediction_id.take(),
            input_hash: mine.input_hash.take(),
            ..theirs
        };
    }
    response.tier = Tier::Heavy;
    response.model = answer.model;
    response.escalation = Some(EscalationOutcome {
        status: EscalationStatus::Escalated,
        reason,
        edge,
        job_id: None,
        item_ids: Vec::new(),
        detail: None,
        elapsed_ms,
    });
    Ok(())
}

/// One envelope per text of `response`, for re-scoring in the nearline tier.
pub fn deferred_envelopes(
    response: &ClassifyResponse,
    job_id: &str,
    sentences: bool,
    callback_url: Option<&str>,
    now_ms: u64,
    ctx: &RequestContext,
) -> Vec<Envelope> {
    response
        .output
        .results()
        .iter()
        .enumerate()
        .map(|(i, r)| Envelope {
            version: ENVELOPE_VERSION,
            job_id: job_id.to_owned(),
            item_id: format!("{job_id}:{i}"),
            source: EnvelopeSource::DeferredEscalation,
            redacted_text: r.redacted_text.clone(),
            metadata: response.metadata.clone(),
            sentences,
            callback_url: callback_url.map(str::to_owned),
            enqueued_at_ms: now_ms,
            traceparent: ctx.traceparent.clone(),
            tenant: ctx.tenant.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentiment_api::ClassifyOutput;
    use sentio_model::Scores;

    fn result(confidence: f32) -> TextSentiment {
        TextSentiment {
            prediction_id: Some("req_1.0".into()),
            label: Label::Neutral,
            scores: Scores::EMPTY_TEXT,
            confidence,
            polarity: 0.0,
            sentences: Vec::new(),
            sentences_truncated: false,
            tokens: 3,
            chunks: 1,
            redacted_text: "hi <EMAIL_ADDRESS>".into(),
            pii: [("EMAIL_ADDRESS".to_owned(), 1)].into(),
            input_hash: None,
        }
    }

    #[test]
    fn routing_table() {
        let both = RoutingConfig {
            heavy_url: Some("http://h".into()),
            overflow_url: Some("http://q".into()),
            ..RoutingConfig::default()
        };
        let heavy_only = RoutingConfig {
            overflow_url: None,
            ..both.clone()
        };
        let queue_only = RoutingConfig {
            heavy_url: None,
            ..both.clone()
        };
        let none = RoutingConfig::default();
        let sure = [result(0.9)];
        let unsure = [result(0.9), result(0.4)];
        use crate::Priority::{High, Low, Normal};
        use EscalationReason::{LowConfidence, Priority as PriorityReason};
        let table = [
            (&both, &sure[..], Normal, Route::Edge),
            (&both, &sure[..], High, Route::Escalate(PriorityReason)),
            (&both, &unsure[..], Normal, Route::Escalate(LowConfidence)),
            (&both, &unsure[..], Low, Route::Defer(LowConfidence)),
            (&both, &sure[..], Low, Route::Edge),
            (
                &heavy_only,
                &unsure[..],
                Low,
                Route::Escalate(LowConfidence),
            ),
            (
                &queue_only,
                &unsure[..],
                Normal,
                Route::Defer(LowConfidence),
            ),
            (&none, &unsure[..], High, Route::Edge),
        ];
        for (config, results, priority, want) in table {
            assert_eq!(route(results, priority, config), want, "{priority:?}");
        }
    }

    fn response() -> ClassifyResponse {
        ClassifyResponse {
            request_id: "req_1".into(),
            output: ClassifyOutput::Many {
                results: vec![result(0.4)],
            },
            tier: Tier::Edge,
            model: ModelInfo {
                id: "student".into(),
                version: "1".into(),
                engine: "tract".into(),
                precision: "int8".into(),
                sha256: "00".into(),
            },
            metadata: Metadata::default(),
            timing: crate::sentiment_api::Timing {
                redact_ms: 0.0,
                classify_ms: 0.0,
            },
            escalation: None,
            sentences: false,
        }
    }

    #[test]
    fn merges_a_fitting_heavy_answer_and_refuses_others() {
        let mut heavy = result(0.95);
        heavy.label = Label::Negative;
        heavy.pii.clear();
        heavy.prediction_id = Some("req_heavy.0".into());
        let teacher = ModelInfo {
            id: "teacher".into(),
            ..response().model
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "results": [heavy], "model": teacher, "tier": "heavy"
        }))
        .unwrap();
        let mut r = response();
        merge_heavy_answer(&mut r, &body, EscalationReason::LowConfidence, 5.0).unwrap();
        assert_eq!(r.tier, Tier::Heavy);
        assert_eq!(r.model.id, "teacher");
        let ClassifyOutput::Many { results } = &r.output else {
            panic!()
        };
        assert_eq!(results[0].label, Label::Negative);
        assert_eq!(results[0].pii["EMAIL_ADDRESS"], 1, "edge pii counts kept");
        assert_eq!(results[0].prediction_id.as_deref(), Some("req_1.0"));
        let outcome = r.escalation.unwrap();
        assert_eq!(outcome.status, EscalationStatus::Escalated);
        assert_eq!(outcome.edge[0].model.id, "student");

        let mut other = result(0.95);
        other.redacted_text = "something else".into();
        let body = serde_json::to_vec(&serde_json::json!({
            "results": [other], "model": teacher
        }))
        .unwrap();
        let mut r = response();
        assert!(merge_heavy_answer(&mut r, &body, EscalationReason::Priority, 1.0).is_err());
        assert_eq!(r.tier, Tier::Edge, "untouched on failure");
        assert!(merge_heavy_answer(&mut r, b"{}", EscalationReason::Priority, 1.0).is_err());
    }

    #[test]
    fn deferred_envelopes_carry_redacted_text_only() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let envelopes = deferred_envelopes(
            &response(),
            "job_x",
            true,
            Some("http://cb/"),
            7,
            &RequestContext {
                request_id: "req_1".into(),
                tenant: Some("acme".into()),
                traceparent: Some(parent.into()),
            },
        );
        assert_eq!(envelopes[0].traceparent.as_deref(), Some(parent));
        assert_eq!(envelopes[0].tenant.as_deref(), Some("acme"));
        assert_eq!(envelopes.len(), 1);
        assert_eq!(envelopes[0].item_id, "job_x:0");
        assert_eq!(envelopes[0].redacted_text, "hi <EMAIL_ADDRESS>");
        envelopes[0].check().unwrap();
    }
}
