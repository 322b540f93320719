use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::{Backend, ModelConfig, ModelError, ModelInfo, TokenBatch, WordPiece, split_sentences};

/// The three classes, in the models' logit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Negative,
    Neutral,
    Positive,
}

impl Label {
    pub const ALL: [Label; 3] = [Label::Negative, Label::Neutral, Label::Positive];

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Negative => "negative",
            Label::Neutral => "neutral",
            Label::Positive => "positive",
        }
    }
}

/// Calibrated class probabilities; they sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub negative: f32,
    pub neutral: f32,
    pub positive: f32,
}

impl Scores {
    /// What an empty text gets: nothing was said, so nothing positive or negative was said.
    pub const EMPTY_TEXT: Scores = Scores {
        negative: 0.0,
        neutral: 1.0,
        positive: 0.0,
    };

    fn from_probabilities(p: &[f32]) -> Self {
        Self {
            negative: p[0],
            neutral: p[1],
            positive: p[2],
        }
    }

    fn as_array(&self) -> [f32; 3] {
        [self.negative, self.neutral, self.positive]
    }

    /// The most probable class (ties go to the earlier label: negative, then neutral).
    pub fn label(&self) -> Label {
        let p = self.as_array();
        let mut best = 0;
        for i in 1..3 {
            if p[i] > p[best] {
                best = i;
            }
        }
        Label::ALL[best]
    }

    /// Probability of the chosen label.
    pub fn confidence(&self) -> f32 {
        self.as_array()[self.label() as usize]
    }

    /// `positive - negative`, in [-1, 1]: the number trends and escalation rules follow.
    pub fn polarity(&self) -> f32 {
        self.positive - self.negative
    }
}

/// One sentence of a multi-sentence text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentenceResult {
    /// Byte range into the classified text.
    #[serde(skip)]
    pub range: Range<usize>,
    pub label: Label,
    pub scores: Scores,
    pub confidence: f32,
}

/// The answer for one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub label: Label,
    pub scores: Scores,
    pub confidence: f32,
    /// Content tokens of the whole text (without special tokens).
    pub tokens: usize,
    /// Model inputs the text was cut into (0 for an empty text, >1 beyond `max_tokens`).
    pub chunks: usize,
    /// Per-sentence results when the text has two or more sentences and they were asked for.
    pub sentences: Vec<SentenceResult>,
    /// True when the text had more sentences than `max_sentences`.
    pub sentences_truncated: bool,
}

impl Classification {
    fn from_scores(scores: Scores, tokens: usize, chunks: usize) -> Self {
        Self {
            label: scores.label(),
            confidence: scores.confidence(),
            scores,
            tokens,
            chunks,
            sentences: Vec::new(),
            sentences_truncated: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifyOptions {
    /// Also classify each sentence of multi-sentence texts.
    pub sentences: bool,
    /// At most this many sentence results per text (the message result always covers all of it).
    pub max_sentences: usize,
    /// At most this many content tokens in one call, every text's `tokens` together; beyond it
    /// the call is [`ModelError::TooManyTokens`] and the model does not run. Model time grows
    /// with tokens, so this is what bounds a request's work against its deadline.
    pub max_tokens: usize,
}

impl Default for ClassifyOptions {
    /// Sentence results on, 32 at most; no token limit.
    fn default() -> Self {
        Self {
            sentences: true,
            max_sentences: 32,
            max_tokens: usize::MAX,
        }
    }
}

/// What every tier's classifier offers: the edge's tract student, the heavy tier's teacher on
/// tract or onnxruntime.
pub trait Classifier: Send + Sync {
    fn model(&self) -> &ModelInfo;
    fn classify(
        &self,
        texts: &[&str],
        options: &ClassifyOptions,
    ) -> Result<Vec<Classification>, ModelError>;
}

/// Tokenizer + backend + calibration: a [`Classifier`] for any [`Backend`].
pub struct Pipeline<B: Backend> {
    backend: B,
    tokenizer: WordPiece,
    config: ModelConfig,
    info: ModelInfo,
}

struct Segment {
    ids: Vec<u32>,
    weight: f32,
}

impl<B: Backend> Pipeline<B> {
    pub fn new(
        backend: B,
        tokenizer: WordPiece,
        config: ModelConfig,
        sha256: String,
    ) -> Result<Self, ModelError> {
        let info = ModelInfo {
            id: config.id.clone(),
            version: config.version.clone(),
            engine: backend.engine().to_owned(),
            precision: config.precision.clone(),
            sha256: sha256.chars().take(16).collect(),
        };
        Ok(Self {
            backend,
            tokenizer,
            config,
            info,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Runs one classification so the backend's plan buffers and the tokenizer's caches exist
    /// before the first real request. Worth doing before a pre-initialization snapshot: every
    /// fresh instance then starts warm.
    pub fn warm_up(&self) {
        let _ = std::hint::black_box(self.classify(
            &["Warm-up: the parcel arrived late. Thanks anyway!"],
            &ClassifyOptions::default(),
        ));
    }

    /// Calibrated probabilities for raw logits.
    pub fn calibrate(&self, logits: &[f32]) -> Scores {
        let t = self.config.temperature;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| ((l - max) / t).exp()).collect();
        let sum: f32 = exp.iter().sum();
        Scores::from_probabilities(&exp.iter().map(|e| e / sum).collect::<Vec<_>>())
    }

    /// Tokenizes `text` (emoji spelled out) into model inputs appended to `out`; returns its
    /// content token count.
    fn push_segments(&self, text: &str, out: &mut Vec<Segment>) -> Result<usize, ModelError> {
        let tokens = self.tokenizer.token_ids(&self.tokenizer.model_text(text))?;
        for chunk in self.tokenizer.chunks(&tokens) {
            out.push(Segment {
                weight: chunk.content_tokens.max(1) as f32,
                ids: chunk.ids,
            });
        }
        Ok(tokens.len())
    }

    /// Runs every segment, sorted by length and cut into batches by [`batch_bounds`]; returns
    /// calibrated scores in segment order.
    fn score_segments(&self, segments: &[Segment]) -> Result<Vec<Scores>, ModelError> {
        let mut order: Vec<usize> = (0..segments.len()).collect();
        order.sort_by_key(|&i| segments[i].ids.len());
        let lengths: Vec<usize> = order.iter().map(|&i| segments[i].ids.len()).collect();
        let mut scores = vec![Scores::EMPTY_TEXT; segments.len()];
        // Full int8 models quantize activations per call with one scale for the whole batch, so a
        // text's answer would depend on its batch-mates; they run one sequence at a time.
        let max_batch = if self.config.precision == "int8" {
            1
        } else {
            self.backend.max_batch().max(1)
        };
        for bounds in batch_bounds(&lengths, max_batch) {
            let group = &order[bounds];
            let sequences: Vec<&[u32]> =
                group.iter().map(|&i| segments[i].ids.as_slice()).collect();
            let batch = TokenBatch::pad(&sequences, self.tokenizer.pad_id());
            let logits = self.backend.logits(&batch)?;
            for (&i, row) in group.iter().zip(&logits) {
                scores[i] = self.calibrate(row);
            }
        }
        Ok(scores)
    }
}

/// What one more model call costs, in padded token slots. Measured on the shipped student with
/// native tract (2026-12-06): about 1.7 ms a call and 0.2 ms a token slot, so 8 slots.
const CALL_COST_IN_TOKEN_SLOTS: usize = 8;

/// Cuts segments sorted by length (`lengths`, ascending) into consecutive batches of at most
/// `max_batch` that cost least: calls × [`CALL_COST_IN_TOKEN_SLOTS`] plus the padded token slots
/// (rows × longest row). One batch for everything padded a text's sentences to the length of the
/// message that holds them all, which made sentence results cost about four times the message.
fn batch_bounds(lengths: &[usize], max_batch: usize) -> Vec<Range<usize>> {
    debug_assert!(lengths.is_sorted());
    let n = lengths.len();
    // cheapest[i]: least cost of the first i segments; cut[i]: where its last batch starts.
    let mut cheapest = vec![0usize; n + 1];
    let mut cut = vec![0usize; n + 1];
    for end in 1..=n {
        let (start, cost) = (end.saturating_sub(max_batch.max(1))..end)
            .map(|start| {
                let slots = (end - start) * lengths[end - 1];
                (start, cheapest[start] + CALL_COST_IN_TOKEN_SLOTS + slots)
            })
            .min_by_key(|&(start, cost)| (cost, start))
            .unwrap_or((0, 0));
        cheapest[end] = cost;
        cut[end] = start;
    }
    let mut bounds = Vec::new();
    let mut end = n;
    while end > 0 {
        bounds.push(cut[end]..end);
        end = cut[end];
    }
    bounds.reverse();
    bounds
}

/// Token-weighted mean of chunk probabilities.
fn aggregate(parts: impl Iterator<Item = (f32, Scores)>) -> Scores {
    let mut sum = [0.0f32; 3];
    let mut total = 0.0;
    for (weight, scores) in parts {
        for (s, p) in sum.iter_mut().zip(scores.as_array()) {
            *s += weight * p;
        }
        total += weight;
    }
    if total == 0.0 {
        return Scores::EMPTY_TEXT;
    }
    Scores::from_probabilities(&sum.map(|s| s / total))
}

/// One text's plan: which segments make up the message and each sentence.
struct TextPlan {
    tokens: usize,
    message: Range<usize>,
    sentences: Vec<(Range<usize>, Range<usize>)>,
    sentences_truncated: bool,
}

impl<B: Backend> Classifier for Pipeline<B> {
    fn model(&self) -> &ModelInfo {
        &self.info
    }

    fn classify(
        &self,
        texts: &[&str],
        options: &ClassifyOptions,
    ) -> Result<Vec<Classification>, ModelError> {
        let mut segments = Vec::new();
        let mut plans = Vec::with_capacity(texts.len());
        let mut total_tokens = 0usize;
        for text in texts {
            if text.trim().is_empty() {
                plans.push(None);
                continue;
            }
            let first = segments.len();
            let tokens = self.push_segments(text, &mut segments)?;
            total_tokens += tokens;
            let message = first..segments.len();
            let mut ranges = if options.sentences {
                split_sentences(text)
            } else {
                Vec::new()
            };
            if ranges.len() < 2 {
                ranges.clear();
            }
            let sentences_truncated = ranges.len() > options.max_sentences;
            ranges.truncate(options.max_sentences);
            let mut sentences = Vec::with_capacity(ranges.len());
            for range in ranges {
                let first = segments.len();
                self.push_segments(&text[range.clone()], &mut segments)?;
                sentences.push((range, first..segments.len()));
            }
            plans.push(Some(TextPlan {
                tokens,
                message,
                sentences,
                sentences_truncated,
            }));
        }
        // Counted to the end (tokenizing is cheap next to the model) so the error says how
        // much the caller has to split.
        if total_tokens > options.max_tokens {
            return Err(ModelError::TooManyTokens {
                tokens: total_tokens,
                limit: options.max_tokens,
            });
        }

        let scores = self.score_segments(&segments)?;
        let collect = |r: &Range<usize>| {
            aggregate(
                segments[r.clone()]
                    .iter()
                    .zip(&scores[r.clone()])
                    .map(|(seg, s)| (seg.weight, *s)),
            )
        };

        Ok(plans
            .into_iter()
            .map(|plan| {
                let Some(plan) = plan else {
                    return Classification::from_scores(Scores::EMPTY_TEXT, 0, 0);
                };
                let mut result = Classification::from_scores(
                    collect(&plan.message),
                    plan.tokens,
                    plan.message.len(),
                );
                result.sentences = plan
                    .sentences
                    .into_iter()
                    .map(|(range, segs)| {
                        let scores = collect(&segs);
                        SentenceResult {
                            range,
                            label: scores.label(),
                            confidence: scores.confidence(),
                            scores,
                        }
                    })
                    .collect();
                result.sentences_truncated = plan.sentences_truncated;
                result
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn batches_cut_where_padding_costs_more_than_a_call() {
        // Sorted segment lengths, the most a batch takes, the batches as (start, end).
        type Case = (&'static [usize], usize, &'static [(usize, usize)]);
        let cases: &[Case] = &[
            (&[], 8, &[]),
            (&[25], 8, &[(0, 1)]),
            // A message of 25 tokens and its three sentences: the sentences batch together, the
            // message runs alone (3 × 12 + 25 + 2 calls, not 4 × 25 + 1 call).
            (&[6, 11, 12, 25], 8, &[(0, 3), (3, 4)]),
            // Equal lengths pad nothing: one batch, up to `max_batch`.
            (&[20; 5], 8, &[(0, 5)]),
            (&[20; 10], 8, &[(0, 2), (2, 10)]),
            // Full int8 models: one sequence a call.
            (&[3, 4, 5], 1, &[(0, 1), (1, 2), (2, 3)]),
            // Short sequences of a similar length share a call even with a little padding.
            (&[5, 6, 7], 8, &[(0, 3)]),
        ];
        for (lengths, max_batch, want) in cases {
            let got: Vec<(usize, usize)> = batch_bounds(lengths, *max_batch)
                .into_iter()
                .map(|b| (b.start, b.end))
                .collect();
            assert_eq!(got, *want, "{lengths:?} max {max_batch}");
        }
    }

    proptest! {
        #[test]
        fn batches_cover_every_segment_once_and_cost_no_more_than_one_call_each(
            mut lengths in proptest::collection::vec(1usize..130, 0..80),
            max_batch in 1usize..12,
        ) {
            lengths.sort_unstable();
            let bounds = batch_bounds(&lengths, max_batch);
            let mut next = 0;
            let mut cost = 0;
            for b in &bounds {
                prop_assert_eq!(b.start, next);
                prop_assert!(!b.is_empty() && b.len() <= max_batch);
                cost += CALL_COST_IN_TOKEN_SLOTS + b.len() * lengths[b.end - 1];
                next = b.end;
            }
            prop_assert_eq!(next, lengths.len());
            let one_each: usize = lengths.iter().map(|l| CALL_COST_IN_TOKEN_SLOTS + l).sum();
            prop_assert!(cost <= one_each);
        }
    }
}
