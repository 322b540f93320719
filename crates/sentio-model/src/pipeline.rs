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
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        Self {
            sentences: true,
            max_sentences: 32,
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

    /// Runs every segment, shortest first so each batch pads little; returns calibrated scores in
    /// segment order.
    fn score_segments(&self, segments: &[Segment]) -> Result<Vec<Scores>, ModelError> {
        let mut order: Vec<usize> = (0..segments.len()).collect();
        order.sort_by_key(|&i| segments[i].ids.len());
        let mut scores = vec![Scores::EMPTY_TEXT; segments.len()];
        // Full int8 models quantize activations per call with one scale for the whole batch, so a
        // text's answer would depend on its batch-mates; they run one sequence at a time.
        let max_batch = if self.config.precision == "int8" {
            1
        } else {
            self.backend.max_batch().max(1)
        };
        for group in order.chunks(max_batch) {
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
        for text in texts {
            if text.trim().is_empty() {
                plans.push(None);
                continue;
            }
            let first = segments.len();
            let tokens = self.push_segments(text, &mut segments)?;
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
