//! `POST /classify-sentiment`, `POST /analyze-conversation` and the lines of
//! `POST /stream-sentiment`: requests and responses on the wire, and the logic between them.
//!
//! Every text is redacted first; the model only ever sees the redacted text, and only redacted
//! text is echoed back.

use std::collections::BTreeMap;
use std::time::Instant;

use sentio_model::{
    Classification, Classifier, ClassifyOptions, Label, ModelError, ModelInfo, Scores,
};
use sentio_redact::{Engine, Policy, PolicySpec, RequestScope, Span};
use serde::{Deserialize, Serialize};

use crate::{ApiError, EdgeConfig, EscalationThresholds, Metadata, RequestContext, Texts};

/// Which tier produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The edge component's student model.
    Edge,
    /// The heavy tier's teacher model, answering at once.
    Heavy,
    /// The queue worker's teacher model, answering later by webhook.
    Nearline,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub texts: Option<Vec<String>>,
    /// Sentence-level results for multi-sentence texts (default true).
    #[serde(default = "default_true")]
    pub sentences: bool,
    #[serde(default)]
    pub metadata: Metadata,
}

fn default_true() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One sentence of a multi-sentence text, located in `redacted_text`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentenceSentiment {
    pub text: String,
    pub span: Span,
    pub label: Label,
    pub scores: Scores,
    pub confidence: f32,
}

/// The answer for one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSentiment {
    /// Names this prediction in feedback and the audit trail (`<request id>.<index>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_id: Option<String>,
    pub label: Label,
    pub scores: Scores,
    pub confidence: f32,
    /// `positive - negative`, in [-1, 1].
    pub polarity: f32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sentences: Vec<SentenceSentiment>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub sentences_truncated: bool,
    pub tokens: usize,
    pub chunks: usize,
    /// What the model saw: the text after redaction.
    pub redacted_text: String,
    /// Entity type to how many were redacted (never the values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pii: BTreeMap<String, usize>,
    /// Keyed hash of the raw text (see [`crate::context::input_hash`]); absent without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_hash: Option<String>,
}

/// Milliseconds spent, per stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    pub redact_ms: f64,
    pub classify_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ClassifyOutput {
    One(TextSentiment),
    Many { results: Vec<TextSentiment> },
}

impl ClassifyOutput {
    /// The results, one per text, whichever shape the request had.
    pub fn results(&self) -> &[TextSentiment] {
        match self {
            ClassifyOutput::One(one) => std::slice::from_ref(one),
            ClassifyOutput::Many { results } => results,
        }
    }

    pub fn results_mut(&mut self) -> &mut [TextSentiment] {
        match self {
            ClassifyOutput::One(one) => std::slice::from_mut(one),
            ClassifyOutput::Many { results } => results,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassifyResponse {
    pub request_id: String,
    #[serde(flatten)]
    pub output: ClassifyOutput,
    pub tier: Tier,
    pub model: ModelInfo,
    pub metadata: Metadata,
    pub timing: Timing,
    /// What routing did, when the edge handed the texts on (see [`crate::routing`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<crate::routing::EscalationOutcome>,
    /// The request asked for sentence-level results (routing passes it on).
    #[serde(skip)]
    pub sentences: bool,
}

/// Redaction policy of the sentiment endpoints: every entity replaced by its type tag, so the
/// model sees "<EMAIL_ADDRESS>" where the customer wrote an address.
pub fn sentiment_policy(engine: &Engine, config: &EdgeConfig) -> Result<Policy, ApiError> {
    engine
        .policy(PolicySpec {
            hash_key: config.hash_key.clone(),
            ..PolicySpec::default()
        })
        .map_err(|e| ApiError::Internal {
            detail: e.to_string(),
        })
}

/// Redacts `texts` in one scope (a conversation's pseudonyms stay consistent), classifies the
/// redacted texts, and joins both into wire results. `field` names the texts in the request, for
/// the error when they hold more tokens than `options.max_tokens`.
pub fn redact_and_classify(
    engine: &Engine,
    policy: &Policy,
    scope: &mut RequestScope,
    classifier: &dyn Classifier,
    texts: &[&str],
    field: &str,
    options: &ClassifyOptions,
) -> Result<(Vec<TextSentiment>, Timing), ApiError> {
    let started = Instant::now();
    let redactions: Vec<_> = texts
        .iter()
        .map(|t| engine.redact(t, policy, scope))
        .collect();
    let redact_ms = started.elapsed().as_secs_f64() * 1000.0;

    let started = Instant::now();
    let redacted: Vec<&str> = redactions
        .iter()
        .map(|r| r.redacted_text.as_str())
        .collect();
    let classifications = classifier
        .classify(&redacted, options)
        .map_err(|e| match e {
            ModelError::TooManyTokens { tokens, limit } => ApiError::invalid(
                field,
                format!(
                    "holds {tokens} model tokens; one request takes at most {limit} \
                     (`max_request_tokens`): split it over several requests, or queue it \
                     through the heavy tier's `/v1/jobs`"
                ),
            ),
            e => ApiError::Internal {
                detail: e.to_string(),
            },
        })?;
    let classify_ms = started.elapsed().as_secs_f64() * 1000.0;

    let results = redactions
        .into_iter()
        .zip(classifications)
        .map(|(redaction, classification)| {
            let mut pii = BTreeMap::new();
            for finding in &redaction.findings {
                *pii.entry(String::from(&*finding.entity_type)).or_insert(0) += 1;
            }
            text_sentiment(redaction.redacted_text, classification, pii)
        })
        .collect();
    Ok((
        results,
        Timing {
            redact_ms,
            classify_ms,
        },
    ))
}

fn text_sentiment(
    redacted_text: String,
    c: Classification,
    pii: BTreeMap<String, usize>,
) -> TextSentiment {
    let spans = sentio_redact::spans(
        &redacted_text,
        c.sentences.iter().map(|s| (s.range.start, s.range.end)),
    );
    let sentences = c
        .sentences
        .into_iter()
        .zip(spans)
        .map(|(s, span)| SentenceSentiment {
            text: redacted_text[s.range].to_owned(),
            span,
            label: s.label,
            scores: s.scores,
            confidence: s.confidence,
        })
        .collect();
    TextSentiment {
        prediction_id: None,
        label: c.label,
        polarity: c.scores.polarity(),
        scores: c.scores,
        confidence: c.confidence,
        sentences,
        sentences_truncated: c.sentences_truncated,
        tokens: c.tokens,
        chunks: c.chunks,
        redacted_text,
        pii,
        input_hash: None,
    }
}

/// Parses, checks and answers one `/classify-sentiment` body (`/v1/classify` on the heavy tier).
pub fn classify(
    engine: &Engine,
    classifier: &dyn Classifier,
    config: &EdgeConfig,
    body: &[u8],
    tier: Tier,
    ctx: &RequestContext,
) -> Result<ClassifyResponse, ApiError> {
    let request: ClassifyRequest = crate::http::parse_json(body)?;
    let (texts, one) =
        match Texts::from_request(request.text, request.texts, config.max_classify_texts)? {
            Texts::One(t) => (vec![t], true),
            Texts::Many(ts) => (ts, false),
        };
    request.metadata.check("metadata")?;
    let policy = sentiment_policy(engine, config)?;
    let options = ClassifyOptions {
        sentences: request.sentences,
        max_sentences: config.max_sentences,
        max_tokens: config.max_request_tokens,
    };
    let borrowed: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut scope = RequestScope::default();
    let field = if one { "text" } else { "texts" };
    let (mut results, timing) = redact_and_classify(
        engine, &policy, &mut scope, classifier, &borrowed, field, &options,
    )?;
    ctx.stamp(&mut results, &borrowed, 0, config.hash_key.as_deref());
    let output = if one {
        ClassifyOutput::One(results.remove(0))
    } else {
        ClassifyOutput::Many { results }
    };
    Ok(ClassifyResponse {
        request_id: ctx.request_id.clone(),
        output,
        tier,
        model: classifier.model().clone(),
        metadata: request.metadata,
        timing,
        escalation: None,
        sentences: request.sentences,
    })
}

// ---------------------------------------------------------------------------------------------
// Conversations

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    Customer,
    Agent,
    Bot,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    pub speaker: Speaker,
    pub text: String,
    #[serde(default)]
    pub timestamp: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationRequest {
    pub turns: Vec<Turn>,
    /// Overrides the configured escalation thresholds for this request.
    #[serde(default)]
    pub escalation: Option<EscalationThresholds>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Serialize)]
pub struct TurnSentiment {
    pub index: usize,
    pub speaker: Speaker,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(flatten)]
    pub sentiment: TextSentiment,
}

/// One speaker's path through the conversation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpeakerTrajectory {
    pub turns: usize,
    /// Polarity of each of the speaker's turns, in order.
    pub polarity: Vec<f32>,
    pub mean_polarity: f32,
}

/// The customer's sentiment over the conversation, recent turns weighing more.
#[derive(Debug, Clone, Serialize)]
pub struct OverallSentiment {
    pub label: Label,
    pub scores: Scores,
    pub polarity: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Escalation {
    pub escalate: bool,
    /// `negative_sentiment`, `sharp_drop`.
    pub reasons: Vec<&'static str>,
    /// Mean polarity of the customer's last `window` turns (absent before the first turn).
    pub recent_polarity: Option<f32>,
    /// How far that mean fell against the window before (absent until there is one).
    pub drop: Option<f32>,
    pub thresholds: EscalationThresholds,
}

/// Follows a conversation turn by turn: per-speaker trajectories, the customer's overall
/// sentiment and the escalation signal. `/analyze-conversation` feeds it all turns at once,
/// `/stream-sentiment` one message at a time.
#[derive(Debug, Clone)]
pub struct ConversationTracker {
    thresholds: EscalationThresholds,
    speakers: BTreeMap<Speaker, SpeakerTrajectory>,
    customer_scores: Vec<Scores>,
}

impl ConversationTracker {
    pub fn new(thresholds: EscalationThresholds) -> Self {
        Self {
            thresholds,
            speakers: BTreeMap::new(),
            customer_scores: Vec::new(),
        }
    }

    pub fn push(&mut self, speaker: Speaker, scores: Scores) {
        let track = self.speakers.entry(speaker).or_default();
        track.polarity.push(scores.polarity());
        track.turns = track.polarity.len();
        track.mean_polarity = track.polarity.iter().sum::<f32>() / track.turns as f32;
        if speaker == Speaker::Customer {
            self.customer_scores.push(scores);
        }
    }

    pub fn speakers(&self) -> &BTreeMap<Speaker, SpeakerTrajectory> {
        &self.speakers
    }

    /// Recency-weighted mean of the customer's turn probabilities: a turn `window` turns back
    /// counts half as much as the latest.
    pub fn customer_sentiment(&self) -> Option<OverallSentiment> {
        let n = self.customer_scores.len();
        if n == 0 {
            return None;
        }
        let half_life = self.thresholds.window as f32;
        let mut sum = [0.0f32; 3];
        let mut total = 0.0;
        for (i, s) in self.customer_scores.iter().enumerate() {
            let w = 0.5f32.powf((n - 1 - i) as f32 / half_life);
            sum[0] += w * s.negative;
            sum[1] += w * s.neutral;
            sum[2] += w * s.positive;
            total += w;
        }
        let scores = Scores {
            negative: sum[0] / total,
            neutral: sum[1] / total,
            positive: sum[2] / total,
        };
        Some(OverallSentiment {
            label: scores.label(),
            polarity: scores.polarity(),
            scores,
        })
    }

    pub fn escalation(&self) -> Escalation {
        let polarity = self
            .speakers
            .get(&Speaker::Customer)
            .map(|t| t.polarity.as_slice())
            .unwrap_or(&[]);
        let window = self.thresholds.window;
        let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
        let recent_start = polarity.len().saturating_sub(window);
        let recent = (!polarity.is_empty()).then(|| mean(&polarity[recent_start..]));
        let before = &polarity[recent_start.saturating_sub(window)..recent_start];
        let drop = recent
            .filter(|_| !before.is_empty())
            .map(|r| mean(before) - r);
        let mut reasons = Vec::new();
        if recent.is_some_and(|r| r <= self.thresholds.negative) {
            reasons.push("negative_sentiment");
        }
        if drop.is_some_and(|d| d >= self.thresholds.drop) {
            reasons.push("sharp_drop");
        }
        Escalation {
            escalate: !reasons.is_empty(),
            reasons,
            recent_polarity: recent,
            drop,
            thresholds: self.thresholds,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationResponse {
    pub request_id: String,
    pub turns: Vec<TurnSentiment>,
    pub speakers: BTreeMap<Speaker, SpeakerTrajectory>,
    /// Absent when the customer has not spoken.
    pub customer_sentiment: Option<OverallSentiment>,
    pub escalation: Escalation,
    pub tier: Tier,
    pub model: ModelInfo,
    pub metadata: Metadata,
    pub timing: Timing,
}

/// Parses, checks and answers one `/analyze-conversation` body.
pub fn analyze_conversation(
    engine: &Engine,
    classifier: &dyn Classifier,
    config: &EdgeConfig,
    body: &[u8],
    tier: Tier,
    ctx: &RequestContext,
) -> Result<ConversationResponse, ApiError> {
    let request: ConversationRequest = crate::http::parse_json(body)?;
    if request.turns.is_empty() {
        return Err(ApiError::invalid("turns", "must not be empty"));
    }
    if request.turns.len() > config.max_batch_texts {
        return Err(ApiError::invalid(
            "turns",
            format!("at most {} turns per request", config.max_batch_texts),
        ));
    }
    for (i, turn) in request.turns.iter().enumerate() {
        if turn
            .timestamp
            .as_deref()
            .is_some_and(|ts| !crate::metadata::is_rfc3339(ts))
        {
            return Err(ApiError::invalid(
                format!("turns[{i}].timestamp"),
                "must be an RFC 3339 date-time such as 2026-11-27T09:30:00Z",
            ));
        }
    }
    request.metadata.check("metadata")?;
    let thresholds = request.escalation.unwrap_or(config.escalation);
    thresholds
        .check()
        .map_err(|(field, message)| ApiError::invalid(format!("escalation.{field}"), message))?;

    let policy = sentiment_policy(engine, config)?;
    let texts: Vec<&str> = request.turns.iter().map(|t| t.text.as_str()).collect();
    let options = ClassifyOptions {
        sentences: false,
        max_sentences: 0,
        max_tokens: config.max_request_tokens,
    };
    let mut scope = RequestScope::default();
    let (mut results, timing) = redact_and_classify(
        engine, &policy, &mut scope, classifier, &texts, "turns", &options,
    )?;
    ctx.stamp(&mut results, &texts, 0, config.hash_key.as_deref());

    let mut tracker = ConversationTracker::new(thresholds);
    let turns = request
        .turns
        .into_iter()
        .zip(results)
        .enumerate()
        .map(|(index, (turn, sentiment))| {
            tracker.push(turn.speaker, sentiment.scores);
            TurnSentiment {
                index,
                speaker: turn.speaker,
                timestamp: turn.timestamp,
                sentiment,
            }
        })
        .collect();
    Ok(ConversationResponse {
        request_id: ctx.request_id.clone(),
        turns,
        speakers: tracker.speakers().clone(),
        customer_sentiment: tracker.customer_sentiment(),
        escalation: tracker.escalation(),
        tier,
        model: classifier.model().clone(),
        metadata: request.metadata,
        timing,
    })
}

// ---------------------------------------------------------------------------------------------
// Streams

/// One NDJSON line of `/stream-sentiment` input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamMessage {
    pub text: String,
    /// Echoed back so the caller can match answers to messages.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default = "default_speaker")]
    pub speaker: Speaker,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

fn default_speaker() -> Speaker {
    Speaker::Customer
}

/// One line of `/stream-sentiment` output: the message's result or its error, and the
/// conversation so far.
#[derive(Debug, Clone, Serialize)]
pub struct StreamResult {
    /// 0-based position of the input line.
    pub seq: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<Speaker>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<TextSentiment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_sentiment: Option<OverallSentiment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    pub tier: Tier,
    pub model: ModelInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// The state of one `/stream-sentiment` response: pseudonyms and the conversation carry over
/// from message to message. A bad line gets an error line; the stream goes on.
pub struct SentimentStream<'a> {
    engine: &'a Engine,
    classifier: &'a dyn Classifier,
    policy: Policy,
    scope: RequestScope,
    tracker: ConversationTracker,
    options: ClassifyOptions,
    seq: usize,
    ctx: RequestContext,
    hash_key: Option<Vec<u8>>,
}

impl<'a> SentimentStream<'a> {
    pub fn new(
        engine: &'a Engine,
        classifier: &'a dyn Classifier,
        config: &EdgeConfig,
        ctx: RequestContext,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            ctx,
            hash_key: config.hash_key.clone(),
            policy: sentiment_policy(engine, config)?,
            engine,
            classifier,
            scope: RequestScope::default(),
            tracker: ConversationTracker::new(config.escalation),
            options: ClassifyOptions {
                sentences: true,
                max_sentences: config.max_sentences,
                max_tokens: config.max_request_tokens,
            },
            seq: 0,
        })
    }

    /// The error line for an input line longer than the limit (its text is never looked at).
    pub fn too_long(&mut self, length: usize, limit: usize) -> StreamResult {
        let seq = self.seq;
        self.seq += 1;
        let error = ApiError::invalid(
            "text",
            format!("line of {length} bytes is over the {limit}-byte limit"),
        );
        StreamResult {
            error: serde_json::from_slice::<serde_json::Value>(&error.to_json())
                .ok()
                .and_then(|mut v| v.get_mut("error").map(serde_json::Value::take)),
            ..self.empty_result(seq)
        }
    }

    fn empty_result(&self, seq: usize) -> StreamResult {
        StreamResult {
            seq,
            id: None,
            speaker: None,
            sentiment: None,
            customer_sentiment: None,
            escalation: None,
            error: None,
            metadata: None,
            tier: Tier::Edge,
            model: self.classifier.model().clone(),
            timing: None,
        }
    }

    /// Answers one input line (without its newline). Blank lines are keep-alives: `None`.
    pub fn line(&mut self, line: &[u8]) -> Option<StreamResult> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let seq = self.seq;
        self.seq += 1;
        let mut result = self.empty_result(seq);
        match self.answer(line) {
            Ok((message, sentiment, timing)) => {
                self.tracker.push(message.speaker, sentiment.scores);
                result.id = message.id;
                result.speaker = Some(message.speaker);
                result.sentiment = Some(sentiment);
                result.customer_sentiment = self.tracker.customer_sentiment();
                result.escalation = Some(self.tracker.escalation());
                result.metadata = message.metadata;
                result.timing = Some(timing);
            }
            Err(e) => {
                result.error = serde_json::from_slice::<serde_json::Value>(&e.to_json())
                    .ok()
                    .and_then(|mut v| v.get_mut("error").map(serde_json::Value::take));
            }
        }
        Some(result)
    }

    fn answer(&mut self, line: &[u8]) -> Result<(StreamMessage, TextSentiment, Timing), ApiError> {
        let message: StreamMessage = crate::http::parse_json(line)?;
        if let Some(m) = &message.metadata {
            m.check("metadata")?;
        }
        let (mut results, timing) = redact_and_classify(
            self.engine,
            &self.policy,
            &mut self.scope,
            self.classifier,
            &[message.text.as_str()],
            "text",
            &self.options,
        )?;
        self.ctx.stamp(
            &mut results,
            &[message.text.as_str()],
            self.seq - 1,
            self.hash_key.as_deref(),
        );
        Ok((message, results.remove(0), timing))
    }
}

/// Splits a growing NDJSON buffer into complete lines; keeps the unfinished tail, but never more
/// than `max_line` bytes of it.
#[derive(Debug)]
pub struct LineBuffer {
    pending: Vec<u8>,
    /// Length of the current line when it outgrew `max_line` (its bytes are dropped).
    overflow: Option<usize>,
    max_line: usize,
}

impl LineBuffer {
    pub fn new(max_line: usize) -> Self {
        Self {
            pending: Vec::new(),
            overflow: None,
            max_line,
        }
    }

    /// Appends `data`; returns every line it completed (without `\n` or `\r\n`), or the length
    /// of a line that was too long.
    pub fn push(&mut self, data: &[u8]) -> Vec<Result<Vec<u8>, usize>> {
        let mut lines = Vec::new();
        for &b in data {
            if b == b'\n' {
                lines.push(self.take());
            } else if let Some(n) = self.overflow.as_mut() {
                *n += 1;
            } else if self.pending.len() == self.max_line {
                self.overflow = Some(self.pending.len() + 1);
                self.pending = Vec::new();
            } else {
                self.pending.push(b);
            }
        }
        lines
    }

    fn take(&mut self) -> Result<Vec<u8>, usize> {
        if let Some(n) = self.overflow.take() {
            return Err(n);
        }
        let mut line = std::mem::take(&mut self.pending);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    }

    /// The last line when the body ended without a newline.
    pub fn finish(&mut self) -> Option<Result<Vec<u8>, usize>> {
        (!self.pending.is_empty() || self.overflow.is_some()).then(|| self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(negative: f32, positive: f32) -> Scores {
        Scores {
            negative,
            neutral: 1.0 - negative - positive,
            positive,
        }
    }

    #[test]
    fn escalation_follows_the_customer_not_the_agent() {
        let thresholds = EscalationThresholds::default();
        // (turns as (speaker, negative, positive), escalate, reasons)
        type Case<'a> = (&'a [(Speaker, f32, f32)], bool, &'a [&'a str]);
        let cases: &[Case] = &[
            (&[], false, &[]),
            (&[(Speaker::Customer, 0.1, 0.8)], false, &[]),
            (
                &[(Speaker::Customer, 0.9, 0.05)],
                true,
                &["negative_sentiment"],
            ),
            // An angry agent (quoting the customer) does not escalate.
            (
                &[(Speaker::Agent, 0.95, 0.0), (Speaker::Customer, 0.2, 0.5)],
                false,
                &[],
            ),
            // Slowly souring: recent mean -0.4 is above -0.5, the drop 0.85 is over 0.8.
            (
                &[
                    (Speaker::Customer, 0.0, 0.5),
                    (Speaker::Customer, 0.05, 0.45),
                    (Speaker::Customer, 0.0, 0.4),
                    (Speaker::Customer, 0.5, 0.1),
                    (Speaker::Customer, 0.5, 0.1),
                    (Speaker::Customer, 0.5, 0.1),
                ],
                true,
                &["sharp_drop"],
            ),
            // Recovered: bad start, good last window.
            (
                &[
                    (Speaker::Customer, 0.9, 0.0),
                    (Speaker::Customer, 0.9, 0.0),
                    (Speaker::Customer, 0.9, 0.0),
                    (Speaker::Customer, 0.1, 0.8),
                    (Speaker::Customer, 0.1, 0.8),
                    (Speaker::Customer, 0.1, 0.8),
                ],
                false,
                &[],
            ),
        ];
        for (turns, escalate, reasons) in cases {
            let mut tracker = ConversationTracker::new(thresholds);
            for &(speaker, n, p) in *turns {
                tracker.push(speaker, scores(n, p));
            }
            let e = tracker.escalation();
            assert_eq!(e.escalate, *escalate, "{turns:?}: {e:?}");
            assert_eq!(e.reasons, *reasons, "{turns:?}");
        }
    }

    #[test]
    fn customer_sentiment_weighs_recent_turns_more() {
        let mut tracker = ConversationTracker::new(EscalationThresholds::default());
        assert!(tracker.customer_sentiment().is_none());
        tracker.push(Speaker::Customer, scores(0.0, 1.0));
        tracker.push(Speaker::Customer, scores(1.0, 0.0));
        let overall = tracker.customer_sentiment().unwrap();
        assert_eq!(overall.label, Label::Negative);
        assert!(overall.polarity < 0.0 && overall.polarity > -1.0);
        let sum = overall.scores.negative + overall.scores.neutral + overall.scores.positive;
        assert!((sum - 1.0).abs() < 1e-5);
        assert_eq!(tracker.speakers()[&Speaker::Customer].turns, 2);
    }

    #[test]
    fn line_buffer_splits_lines_and_bounds_long_ones() {
        let mut lines = LineBuffer::new(8);
        assert_eq!(
            lines.push(b"{\"a\"}\r\n{\"b"),
            vec![Ok(b"{\"a\"}".to_vec())]
        );
        assert_eq!(lines.push(b"\"}\n"), vec![Ok(b"{\"b\"}".to_vec())]);
        assert_eq!(
            lines.push(b"0123456789abc\nok\n"),
            vec![Err(13), Ok(b"ok".to_vec())]
        );
        assert_eq!(lines.push(b"tail"), vec![]);
        assert_eq!(lines.finish(), Some(Ok(b"tail".to_vec())));
        assert_eq!(lines.finish(), None);
    }
}
