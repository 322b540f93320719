//! Reads the predictions out of the answers the tiers give, so metrics, the dashboard and the
//! audit trail see exactly what the caller saw. The answers are Sentio's own JSON (one set of
//! serde types in core), so this is a reader of a known schema, not a scraper.

pub use sentio_core::audit::{Observed, Prediction, observe};

/// Collects a response body as it streams by and hands out complete JSON documents: the whole
/// body for `application/json`, each line for NDJSON, each `data:` event for SSE.
#[derive(Debug)]
pub struct BodyReader {
    framing: Framing,
    pending: Vec<u8>,
    /// Gives up on bodies larger than this (the answer still goes out; it is just not observed).
    limit: usize,
    overflowed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Json,
    Lines,
    Events,
    Ignore,
}

impl Framing {
    pub fn from_content_type(content_type: &str) -> Self {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        match mime {
            "application/json" => Framing::Json,
            "application/x-ndjson" | "application/jsonl" => Framing::Lines,
            "text/event-stream" => Framing::Events,
            _ => Framing::Ignore,
        }
    }
}

impl BodyReader {
    pub fn new(framing: Framing, limit: usize) -> Self {
        Self {
            framing,
            pending: Vec::new(),
            limit,
            overflowed: false,
        }
    }

    /// Adds a chunk; returns the documents it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        if self.framing == Framing::Ignore || self.overflowed {
            return Vec::new();
        }
        self.pending.extend_from_slice(chunk);
        let mut documents = Vec::new();
        if self.framing != Framing::Json {
            while let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=newline).collect();
                let line = &line[..line.len() - 1];
                let document = match self.framing {
                    Framing::Events => line.strip_prefix(b"data: ").map(<[u8]>::to_vec),
                    _ => Some(line.to_vec()),
                };
                if let Some(d) = document.filter(|d| !d.is_empty()) {
                    documents.push(d);
                }
            }
        }
        if self.pending.len() > self.limit {
            self.overflowed = true;
            self.pending = Vec::new();
        }
        documents
    }

    /// The body ended: the JSON document, if that is the framing.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (self.framing == Framing::Json && !self.overflowed)
            .then(|| std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = r#""model": {"id": "sentiment-student", "version": "1", "engine": "tract", "precision": "int8", "sha256": "00"}"#;

    #[test]
    fn reads_every_answer_shape() {
        let one = format!(
            r#"{{"request_id": "req_1", "prediction_id": "req_1.0", "label": "negative", "confidence": 0.9,
                "scores": {{"negative": 0.9, "neutral": 0.05, "positive": 0.05}}, "redacted_text": "hi <PERSON>",
                "tier": "edge", {MODEL}, "metadata": {{"channel": "chat"}}}}"#
        );
        let o = observe(one.as_bytes());
        assert_eq!(o.request_id.as_deref(), Some("req_1"));
        assert_eq!(o.tier.as_deref(), Some("edge"));
        assert_eq!(o.model.as_deref(), Some("sentiment-student@1"));
        assert_eq!(o.predictions.len(), 1);
        assert_eq!(o.predictions[0].label, "negative");
        assert_eq!(o.metadata["channel"], "chat");

        let many = format!(
            r#"{{"results": [{{"label": "positive", "confidence": 0.5}}, {{"label": "neutral", "confidence": 0.4}}],
                "tier": "heavy", {MODEL}, "escalation": {{"status": "escalated"}}}}"#
        );
        let o = observe(many.as_bytes());
        assert_eq!(o.predictions.len(), 2);
        assert_eq!(o.escalation.as_deref(), Some("escalated"));

        let conversation = format!(
            r#"{{"turns": [{{"index": 0, "speaker": "customer", "label": "negative", "confidence": 0.8}}],
                "escalation": {{"escalate": true}}, "tier": "edge", {MODEL}}}"#
        );
        let o = observe(conversation.as_bytes());
        assert_eq!(o.predictions[0].label, "negative");
        assert_eq!(o.escalation.as_deref(), Some("escalate"));

        let error = br#"{"error": {"kind": "invalid_field", "message": "x"}}"#;
        assert!(observe(error).predictions.is_empty());
        assert!(observe(b"not json").predictions.is_empty());
    }

    #[test]
    fn splits_streams_into_documents() {
        let mut lines = BodyReader::new(Framing::Lines, 1 << 20);
        assert!(lines.push(b"{\"a\":").is_empty());
        assert_eq!(
            lines.push(b"1}\n{\"b\":2}\n{"),
            vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]
        );
        let mut events = BodyReader::new(Framing::Events, 1 << 20);
        assert_eq!(
            events.push(b"data: {\"a\":1}\n\n"),
            vec![b"{\"a\":1}".to_vec()]
        );
        let mut json = BodyReader::new(Framing::Json, 4);
        json.push(b"{}");
        assert_eq!(json.finish(), Some(b"{}".to_vec()));
        let mut big = BodyReader::new(Framing::Json, 4);
        big.push(b"{\"long\": 1}");
        assert_eq!(big.finish(), None);
        assert_eq!(
            Framing::from_content_type("application/json; charset=utf-8"),
            Framing::Json
        );
        assert_eq!(Framing::from_content_type("text/html"), Framing::Ignore);
    }
}
