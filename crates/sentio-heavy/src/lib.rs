//! Sentio's heavy tier and nearline worker as plain async Rust, shared by the Lambda shells
//! (`functions/heavy-classify`, `functions/queue-worker`) and `sentio serve`, which runs both
//! in-process.
//!
//! Both use the teacher model (`models/sentiment-teacher`), compiled into the binary and loaded
//! once per process ([`load_teacher`]): a Lambda builds it at cold start and borrows it into every
//! invocation.

pub mod api;
pub mod audit_s3;
pub mod config;
pub mod emf;
pub mod worker;

use std::sync::Arc;

pub use api::HeavyTier;
pub use audit_s3::{S3Audit, S3Settings};
pub use config::{HeavyConfig, HeavyConfigError};
pub use worker::{PredictionSink, ResultStore, Worker, WorkerStats};

use sentio_model::{Classifier, ModelError, TractPipeline};

const TEACHER_ONNX: &[u8] = include_bytes!("../../../models/sentiment-teacher/model.onnx");
const TEACHER_TOKENIZER: &[u8] = include_bytes!("../../../models/sentiment-teacher/tokenizer.json");
const TEACHER_CONFIG: &[u8] = include_bytes!("../../../models/sentiment-teacher/config.json");

/// The engines the teacher can run on in this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeacherEngine {
    Tract,
    /// onnxruntime, loaded from `ORT_DYLIB_PATH` (feature `ort`).
    #[cfg(feature = "ort")]
    Onnxruntime,
}

impl TeacherEngine {
    /// What this build serves with: onnxruntime when built with the `ort` feature (measured
    /// faster on x86-64, see README), tract otherwise (no native library to ship: the default for
    /// the arm64 Lambdas).
    pub const SERVING: TeacherEngine = {
        #[cfg(feature = "ort")]
        {
            TeacherEngine::Onnxruntime
        }
        #[cfg(not(feature = "ort"))]
        {
            TeacherEngine::Tract
        }
    };

    /// Every engine this build has, for benchmarks.
    pub fn available() -> Vec<TeacherEngine> {
        vec![
            TeacherEngine::Tract,
            #[cfg(feature = "ort")]
            TeacherEngine::Onnxruntime,
        ]
    }
}

/// The heavy tier's classifier: the teacher on [`TeacherEngine::SERVING`].
pub fn load_teacher() -> Result<Arc<dyn Classifier>, ModelError> {
    load_teacher_on(TeacherEngine::SERVING)
}

pub fn load_teacher_on(engine: TeacherEngine) -> Result<Arc<dyn Classifier>, ModelError> {
    match engine {
        TeacherEngine::Tract => Ok(Arc::new(TractPipeline::load(
            TEACHER_ONNX,
            TEACHER_TOKENIZER,
            TEACHER_CONFIG,
        )?)),
        #[cfg(feature = "ort")]
        TeacherEngine::Onnxruntime => {
            use sentio_model::{ModelConfig, OrtBackend, Pipeline, WordPiece, sha256_hex};
            let dylib = std::env::var("ORT_DYLIB_PATH").map_err(|_| {
                ModelError::ModelLoad(
                    "ORT_DYLIB_PATH must name libonnxruntime.so (built with the `ort` feature)"
                        .into(),
                )
            })?;
            let threads = std::env::var("SENTIO_ORT_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let config = ModelConfig::from_json(TEACHER_CONFIG)?;
            let backend = OrtBackend::load(
                TEACHER_ONNX,
                config.labels.len(),
                std::path::Path::new(&dylib),
                threads,
            )?;
            let tokenizer = WordPiece::from_json(TEACHER_TOKENIZER, &config)?;
            Ok(Arc::new(Pipeline::new(
                backend,
                tokenizer,
                config,
                sha256_hex(TEACHER_ONNX),
            )?))
        }
    }
}

/// The recognizers: the built-in set, extended with `SENTIO_REDACT_CUSTOM_RECOGNIZERS`.
pub fn build_engine(config: &HeavyConfig) -> Result<sentio_redact::Engine, SetupError> {
    let engine = sentio_redact::Engine::builtin().map_err(|e| SetupError(e.to_string()))?;
    if config.api.custom_recognizers.is_empty() {
        return Ok(engine);
    }
    engine
        .extend(&config.api.custom_recognizers)
        .map_err(|e| SetupError(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

impl From<HeavyConfigError> for SetupError {
    fn from(e: HeavyConfigError) -> Self {
        SetupError(e.to_string())
    }
}

/// SQS from `SENTIO_SQS_QUEUE_URL` (and `SENTIO_SQS_DLQ_URL`, `SENTIO_SQS_ENDPOINT` for an
/// SQS-compatible server, `AWS_REGION`); `None` when no queue URL is set.
pub async fn sqs_from_env(get: impl Fn(&str) -> Option<String>) -> Option<sentio_queue::Queue> {
    let queue_url = get("SENTIO_SQS_QUEUE_URL").filter(|v| !v.is_empty())?;
    let settings = sentio_queue::SqsSettings {
        endpoint: get("SENTIO_SQS_ENDPOINT").filter(|v| !v.is_empty()),
        region: get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        queue_url,
        dlq_url: get("SENTIO_SQS_DLQ_URL").filter(|v| !v.is_empty()),
    };
    Some(sentio_queue::Queue::Sqs(
        sentio_queue::SqsQueue::connect(&settings).await,
    ))
}

/// The S3 audit store from `SENTIO_AUDIT_BUCKET` (see [`S3Settings::from_lookup`]); `None` when
/// no bucket is set.
pub async fn audit_from_env(get: impl Fn(&str) -> Option<String>) -> Option<S3Audit> {
    let settings = S3Settings::from_lookup(get)?;
    Some(S3Audit::connect(&settings).await)
}

/// The heavy tier as the Lambda builds it: teacher, recognizers, SQS and the S3 audit store when
/// configured.
pub async fn heavy_tier_from_env(
    get: impl Fn(&str) -> Option<String>,
) -> Result<HeavyTier, SetupError> {
    let config = HeavyConfig::from_lookup(&get)?;
    Ok(HeavyTier {
        engine: build_engine(&config)?,
        classifier: load_teacher().map_err(|e| SetupError(e.to_string()))?,
        queue: sqs_from_env(&get).await.map(Arc::new),
        audit: audit_from_env(&get).await,
        config,
    })
}

/// The worker as the Lambda builds it, recording into the S3 audit store and exporting spans
/// (`OTEL_*`) when configured.
pub async fn worker_from_env(
    get: impl Fn(&str) -> Option<String>,
    results: ResultStore,
) -> Result<Worker, SetupError> {
    let config = HeavyConfig::from_lookup(&get)?;
    let engine = build_engine(&config)?;
    let classifier = load_teacher().map_err(|e| SetupError(e.to_string()))?;
    let spans = sentio_trace::SpanExporter::from_lookup(&get).map_err(SetupError)?;
    Ok(Worker::new(engine, classifier, config, results)
        .map_err(|e| SetupError(e.to_string()))?
        .with_spans(spans)
        .with_audit(
            audit_from_env(&get)
                .await
                .map(|a| Arc::new(a) as Arc<dyn worker::PredictionSink>),
        ))
}
