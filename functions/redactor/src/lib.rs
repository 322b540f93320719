//! The redaction engine as a library component (`world redactor`): a Spin app can add it as a
//! component dependency, any wasmtime host can call it directly. Conversions only; the logic is
//! `sentio-redact`.

// wit-bindgen's generated canonical-ABI glue and export macro need `unsafe`; nothing written by
// hand here does.
#![allow(unsafe_code)]

use std::sync::OnceLock;

use sentio_redact::{
    Engine, Operator, OperatorKind, Policy, PolicyError, PolicySpec, RequestScope, Validation,
};

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "sentio:edge/redactor",
        pub_export_macro: true,
        export_macro_name: "export_redactor",
    });
}

use bindings::exports::sentio::edge::redaction as wit;

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

fn engine() -> Result<&'static Engine, wit::RedactionError> {
    ENGINE
        .get_or_init(|| Engine::builtin().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| wit::RedactionError::InvalidOperator(format!("engine failed to build: {e}")))
}

fn operator(op: wit::Operator) -> Operator {
    match op {
        wit::Operator::Replace(new_value) => Operator::Replace { new_value },
        wit::Operator::Mask(m) => Operator::Mask {
            masking_char: m.masking_char,
            chars_to_mask: m.chars_to_mask.map(|n| n as usize),
            from_end: m.from_end,
            keep_last: m.keep_last.map(|n| n as usize),
        },
        wit::Operator::Remove => Operator::Remove,
        wit::Operator::Hash(length) => Operator::Hash {
            length: length as usize,
        },
        wit::Operator::Pseudonym => Operator::Pseudonym,
        wit::Operator::Keep => Operator::Keep,
    }
}

fn policy(engine: &Engine, p: wit::Policy) -> Result<Policy, wit::RedactionError> {
    let spec = PolicySpec {
        score_threshold: p.score_threshold,
        entities: p.entities,
        exclude_entities: p.exclude_entities,
        default_operator: p.default_operator.map(operator),
        operators: p
            .operators
            .into_iter()
            .map(|eo| (eo.entity, operator(eo.operator)))
            .collect(),
        hash_key: p.hash_key,
    };
    engine.policy(spec).map_err(|e| match e {
        PolicyError::UnknownEntity { entity, .. } => wit::RedactionError::UnknownEntity(entity),
        PolicyError::ThresholdOutOfRange { threshold } => {
            wit::RedactionError::InvalidThreshold(threshold)
        }
        other => wit::RedactionError::InvalidOperator(format!("{}: {other}", other.field())),
    })
}

fn pair(a: [usize; 2]) -> (u32, u32) {
    (a[0] as u32, a[1] as u32)
}

fn span(s: sentio_redact::Span) -> wit::Span {
    wit::Span {
        bytes: pair(s.bytes),
        chars: pair(s.chars),
        utf16: pair(s.utf16),
    }
}

fn operator_kind(kind: OperatorKind) -> wit::OperatorKind {
    match kind {
        OperatorKind::Replace => wit::OperatorKind::Replace,
        OperatorKind::Mask => wit::OperatorKind::Mask,
        OperatorKind::Remove => wit::OperatorKind::Remove,
        OperatorKind::Hash => wit::OperatorKind::Hash,
        OperatorKind::Pseudonym => wit::OperatorKind::Pseudonym,
        OperatorKind::Keep => wit::OperatorKind::Keep,
    }
}

fn validation(v: Validation) -> wit::Validation {
    match v {
        Validation::Valid => wit::Validation::Valid,
        Validation::ValidPrefix => wit::Validation::ValidPrefix,
        Validation::NotChecked => wit::Validation::NotChecked,
    }
}

/// Names are copied with `String::from(&*name)`: `Arc<str>::to_string` goes through the
/// formatting machinery, which showed in the batch's profile.
fn result(r: sentio_redact::Redaction) -> wit::RedactionResult {
    wit::RedactionResult {
        redacted_text: r.redacted_text,
        findings: r
            .findings
            .into_iter()
            .map(|f| wit::Finding {
                entity_type: String::from(&*f.entity_type),
                score: f.score,
                recognizer: String::from(&*f.recognizer),
                operator: operator_kind(f.operator),
                input: span(f.input),
                output: span(f.output),
                explanation: wit::Explanation {
                    pattern: String::from(&*f.explanation.pattern),
                    pattern_score: f.explanation.pattern_score,
                    validator: f.explanation.validator.map(str::to_owned),
                    validation: validation(f.explanation.validation),
                    context_words: f.explanation.context_words,
                    context_boost: f.explanation.context_boost,
                },
            })
            .collect(),
    }
}

struct Redactor;

impl bindings::Guest for Redactor {
    fn sentio_preinit() {
        if let Ok(engine) = engine() {
            engine.warm_up();
        }
    }
}

impl wit::Guest for Redactor {
    fn redact(text: String, p: wit::Policy) -> Result<wit::RedactionResult, wit::RedactionError> {
        let engine = engine()?;
        let policy = policy(engine, p)?;
        Ok(result(engine.redact(
            &text,
            &policy,
            &mut RequestScope::default(),
        )))
    }

    fn redact_batch(
        texts: Vec<String>,
        p: wit::Policy,
    ) -> Result<Vec<wit::RedactionResult>, wit::RedactionError> {
        let engine = engine()?;
        let policy = policy(engine, p)?;
        let mut scope = RequestScope::default();
        Ok(texts
            .iter()
            .map(|t| result(engine.redact(t, &policy, &mut scope)))
            .collect())
    }

    fn supported_entities() -> Vec<String> {
        engine().map(Engine::supported_entities).unwrap_or_default()
    }
}

bindings::export_redactor!(Redactor with_types_in bindings);
