//! `POST /redact`: the request and response on the wire, and the logic between them.

use std::collections::BTreeMap;
use std::time::Instant;

use sentio_redact::{
    DEFAULT_OPERATOR_KEY, Engine, Operator, Policy, PolicyError, PolicySpec, Redaction,
    RequestScope,
};
use serde::{Deserialize, Serialize};

use crate::{ApiError, EdgeConfig, Metadata, Texts};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactRequest {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub texts: Option<Vec<String>>,
    /// Entity type (or `DEFAULT`) to operator.
    #[serde(default)]
    pub operators: BTreeMap<String, Operator>,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    /// Only these entity types.
    #[serde(default)]
    pub entities: Option<Vec<String>>,
    #[serde(default)]
    pub exclude_entities: Vec<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

/// Time spent, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub redact_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedactResponse {
    #[serde(flatten)]
    pub output: RedactOutput,
    pub metadata: Metadata,
    pub timing: Timing,
}

/// One result for `text`, `results[]` for `texts[]`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RedactOutput {
    One(Redaction),
    Many { results: Vec<Redaction> },
}

impl RedactRequest {
    /// Checks the request against the engine and configuration, and builds its policy.
    pub fn into_parts(
        self,
        engine: &Engine,
        config: &EdgeConfig,
    ) -> Result<(Texts, Policy, Metadata), ApiError> {
        let texts = Texts::from_request(self.text, self.texts, config.max_batch_texts)?;
        self.metadata.check("metadata")?;
        let mut spec = PolicySpec {
            score_threshold: self.score_threshold,
            entities: self.entities,
            exclude_entities: self.exclude_entities,
            default_operator: None,
            operators: Vec::new(),
            hash_key: config.hash_key.clone(),
        };
        for (entity, op) in self.operators {
            if entity == DEFAULT_OPERATOR_KEY {
                spec.default_operator = Some(op);
            } else {
                spec.operators.push((entity, op));
            }
        }
        let policy = engine.policy(spec).map_err(|e| match e {
            PolicyError::MissingHashKey { field } => ApiError::invalid(
                field,
                "the hash operator needs a key: set the `redact_hash_key` variable",
            ),
            other => ApiError::invalid(other.field(), other.to_string()),
        })?;
        Ok((texts, policy, self.metadata))
    }
}

/// Parses, checks and answers one `/redact` body.
pub fn redact(
    engine: &Engine,
    config: &EdgeConfig,
    body: &[u8],
) -> Result<RedactResponse, ApiError> {
    let request: RedactRequest = crate::http::parse_json(body)?;
    let (texts, policy, metadata) = request.into_parts(engine, config)?;
    let started = Instant::now();
    // One scope per request: `<PERSON_1>` is the same person in every text of it.
    let mut scope = RequestScope::default();
    let output = match texts {
        Texts::One(t) => RedactOutput::One(engine.redact(&t, &policy, &mut scope)),
        Texts::Many(ts) => RedactOutput::Many {
            results: ts
                .iter()
                .map(|t| engine.redact(t, &policy, &mut scope))
                .collect(),
        },
    };
    Ok(RedactResponse {
        output,
        metadata,
        timing: Timing {
            redact_ms: started.elapsed().as_secs_f64() * 1000.0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str) -> Result<serde_json::Value, ApiError> {
        let engine = Engine::builtin().unwrap();
        let config = EdgeConfig::default();
        redact(&engine, &config, body.as_bytes()).map(|r| serde_json::to_value(r).unwrap())
    }

    #[test]
    fn one_and_many() {
        let one = run(r#"{"text": "mail jane@example.com", "metadata": {"customer_id": "c1", "channel": "chat"}}"#).unwrap();
        assert_eq!(one["redacted_text"], "mail <EMAIL_ADDRESS>");
        assert_eq!(
            one["findings"][0]["input"]["utf16"],
            serde_json::json!([5, 21])
        );
        assert_eq!(one["metadata"]["customer_id"], "c1");
        assert_eq!(one["metadata"]["priority"], "normal");
        let many = run(r#"{"texts": ["my name is Ann Lee", "Ann Lee again, my name is Bo Park"], "operators": {"PERSON": {"type": "pseudonym"}}}"#).unwrap();
        assert_eq!(many["results"][0]["redacted_text"], "my name is <PERSON_1>");
        assert_eq!(
            many["results"][1]["redacted_text"],
            "<PERSON_1> again, my name is <PERSON_2>"
        );
    }

    #[test]
    fn typed_errors() {
        let field = |body: &str| run(body).unwrap_err().field().map(str::to_owned);
        assert_eq!(field(r#"{}"#).as_deref(), Some("text"));
        assert_eq!(
            field(r#"{"text": "a", "texts": ["b"]}"#).as_deref(),
            Some("texts")
        );
        assert_eq!(field(r#"{"texts": []}"#).as_deref(), Some("texts"));
        assert_eq!(
            field(r#"{"text": "a", "score_threshold": 2}"#).as_deref(),
            Some("score_threshold")
        );
        assert_eq!(
            field(r#"{"text": "a", "entities": ["NOPE"]}"#).as_deref(),
            Some("entities[0]")
        );
        assert_eq!(
            field(r#"{"text": "a", "operators": {"EMAIL_ADDRESS": {"type": "hash"}}}"#).as_deref(),
            Some("operators.EMAIL_ADDRESS.type")
        );
        assert_eq!(
            field(r#"{"text": "a", "operators": {"EMAIL_ADDRESS": {"type": "melt"}}}"#).as_deref(),
            Some("operators.EMAIL_ADDRESS.type")
        );
        assert_eq!(
            field(r#"{"text": "a", "metadata": {"priority": "urgent"}}"#).as_deref(),
            Some("metadata.priority")
        );
        assert_eq!(
            field(r#"{"text": "a", "metadata": {"timestamp": "noon"}}"#).as_deref(),
            Some("metadata.timestamp")
        );
        assert_eq!(field(r#"{"text": 7}"#).as_deref(), Some("text"));
    }
}
