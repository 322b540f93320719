"""Writes web/openapi.json: the OpenAPI 3.1 document of every endpoint `sentio serve` answers,
the heavy tier's included (under /heavy; the AWS HTTP API serves the same routes at /v1/...).

The schemas mirror the serde types in crates/sentio-core (one set of wire types); the
integration tests validate real answers against this document, so a drift fails CI.
Run: python3 web/tools/openapi.py
"""
import json, pathlib

root = pathlib.Path(__file__).resolve().parents[2]

def ref(name): return {"$ref": f"#/components/schemas/{name}"}
def obj(props, required=(), extra=False):
    """An object schema; closed unless `extra` (then left open, not `additionalProperties: true`,
    which would count every field as evaluated and defeat `unevaluatedProperties: false`)."""
    schema = {"type": "object", "properties": props, "required": list(required)}
    if not extra:
        schema["additionalProperties"] = False
    return schema
num = {"type": "number"}; integer = {"type": "integer", "minimum": 0}; string = {"type": "string"}
def arr(items, **kw): return {"type": "array", "items": items, **kw}
span = arr(integer, minItems=2, maxItems=2)
label = {"type": "string", "enum": ["negative", "neutral", "positive"]}
tier = {"type": "string", "enum": ["edge", "heavy", "nearline"]}

# What the audit trail keeps per prediction (sentio_core::audit::PredictionRecord).
PREDICTION_RECORD = {"prediction_id": string, "request_id": {"type": ["string", "null"]}, "at_ms": integer,
    "tenant": {"type": ["string", "null"]}, "route": string, "tier": tier, "model": string, "label": label,
    "confidence": num, "scores": ref("Scores"), "input_hash": {"type": ["string", "null"]}, "redacted_text": string,
    "metadata": {}, "escalation": {"type": ["string", "null"]}}
PREDICTION_RECORD_REQUIRED = ["prediction_id", "at_ms", "route", "tier", "model", "label", "confidence", "scores",
                              "redacted_text"]

schemas = {
  "Error": obj({"error": obj({"kind": string, "message": string, "field": string}, ["kind", "message"])}, ["error"]),
  "Metadata": obj({
      "customer_id": {"type": "string", "maxLength": 256}, "channel": {"type": "string", "maxLength": 256},
      "timestamp": {"type": "string", "format": "date-time"},
      "priority": {"type": "string", "enum": ["low", "normal", "high"]},
      "conversation_id": {"type": "string", "maxLength": 256},
      "attributes": {"type": "object", "additionalProperties": string, "maxProperties": 32}}),
  "Scores": obj({"negative": num, "neutral": num, "positive": num}, ["negative", "neutral", "positive"]),
  "ModelInfo": obj({"id": string, "version": string, "engine": string, "precision": string, "sha256": string},
                   ["id", "version", "engine", "precision", "sha256"]),
  "Span": obj({"bytes": span, "chars": span, "utf16": span}, ["bytes", "chars", "utf16"]),
  "Explanation": obj({"pattern": string, "pattern_score": num, "validator": string, "validation": string,
                      "context_words": arr(string), "context_boost": num},
                     ["pattern", "pattern_score", "validation", "context_words", "context_boost"]),
  "Finding": obj({"entity_type": string, "score": num, "recognizer": string, "operator": string,
                  "input": ref("Span"), "output": ref("Span"), "explanation": ref("Explanation")},
                 ["entity_type", "score", "recognizer", "operator", "input", "output", "explanation"]),
  # Open objects where they are combined with others; the combinations close them again with
  # `unevaluatedProperties: false`, so a field missing from this document still fails the tests.
  "Redaction": obj({"redacted_text": string, "findings": arr(ref("Finding"))}, ["redacted_text", "findings"], extra=True),
  "Operator": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string",
      "enum": ["replace", "mask", "remove", "hash", "pseudonym", "keep"]}}},
  "RedactRequest": obj({"text": string, "texts": arr(string, minItems=1),
      "operators": {"type": "object", "additionalProperties": ref("Operator")},
      "score_threshold": {"type": "number", "minimum": 0, "maximum": 1},
      "entities": arr(string), "exclude_entities": arr(string), "metadata": ref("Metadata")}),
  "RedactResponse": {"allOf": [
      {"oneOf": [{"$ref": "#/components/schemas/Redaction"},
                 obj({"results": arr(ref("Redaction"))}, ["results"], extra=True)]},
      {"type": "object", "required": ["metadata", "timing"],
       "properties": {"metadata": ref("Metadata"), "timing": obj({"redact_ms": num}, ["redact_ms"])}}],
      "unevaluatedProperties": False},
  "SentenceSentiment": obj({"text": string, "span": ref("Span"), "label": label, "scores": ref("Scores"), "confidence": num},
                           ["text", "span", "label", "scores", "confidence"]),
  "TextSentiment": obj({
      "prediction_id": {"type": "string", "description": "`<request_id>.<index>`: names the prediction in /feedback and /audit"},
      "label": label, "scores": ref("Scores"), "confidence": num,
      "polarity": {"type": "number", "minimum": -1, "maximum": 1},
      "sentences": arr(ref("SentenceSentiment")), "sentences_truncated": {"type": "boolean"},
      "tokens": integer, "chunks": integer, "redacted_text": string,
      "pii": {"type": "object", "additionalProperties": integer},
      "input_hash": {"type": "string", "description": "HMAC-SHA256 of the raw text under the tenant's key (128 bits, hex)"}},
      ["label", "scores", "confidence", "polarity", "tokens", "chunks", "redacted_text"], extra=True),
  "Timing": obj({"redact_ms": num, "classify_ms": num}, ["redact_ms", "classify_ms"]),
  "EscalationOutcome": obj({"status": {"type": "string", "enum": ["escalated", "deferred", "failed"]},
      "reason": {"type": "string", "enum": ["priority", "low_confidence"]},
      "edge": arr(obj({"label": label, "confidence": num, "model": ref("ModelInfo")}, ["label", "confidence", "model"])),
      "job_id": string, "item_ids": arr(string), "detail": string, "elapsed_ms": num}, ["status", "reason", "elapsed_ms"]),
  "ClassifyRequest": obj({"text": string, "texts": arr(string, minItems=1, maxItems=64),
                          "sentences": {"type": "boolean", "default": True}, "metadata": ref("Metadata")}),
  "ClassifyResponse": {"allOf": [
      {"oneOf": [{"$ref": "#/components/schemas/TextSentiment"},
                 obj({"results": arr(ref("TextSentiment"))}, ["results"], extra=True)]},
      {"type": "object", "required": ["request_id", "tier", "model", "metadata", "timing"],
       "properties": {"request_id": string, "tier": tier, "model": ref("ModelInfo"), "metadata": ref("Metadata"),
                      "timing": ref("Timing"), "escalation": ref("EscalationOutcome")}}],
      "unevaluatedProperties": False},
  "Thresholds": obj({"negative": num, "drop": num, "window": {"type": "integer", "minimum": 1, "maximum": 50}},
                    ["negative", "drop", "window"]),
  "ConversationRequest": obj({"turns": arr(obj({"speaker": {"type": "string", "enum": ["customer", "agent", "bot"]},
                                                "text": string, "timestamp": {"type": "string", "format": "date-time"}},
                                               ["speaker", "text"]), minItems=1),
                              "escalation": ref("Thresholds"), "metadata": ref("Metadata")}, ["turns"]),
  "ConversationResponse": obj({"request_id": string,
      "turns": arr({"allOf": [{"$ref": "#/components/schemas/TextSentiment"},
                              {"type": "object", "required": ["index", "speaker"],
                               "properties": {"index": integer, "speaker": string, "timestamp": string}}],
                    "unevaluatedProperties": False}),
      "speakers": {"type": "object", "additionalProperties": obj({"turns": integer, "polarity": arr(num), "mean_polarity": num},
                                                                 ["turns", "polarity", "mean_polarity"])},
      "customer_sentiment": {"oneOf": [{"type": "null"}, obj({"label": label, "scores": ref("Scores"), "polarity": num},
                                                             ["label", "scores", "polarity"])]},
      "escalation": ref("ConversationEscalation"), "tier": tier, "model": ref("ModelInfo"),
      "metadata": ref("Metadata"), "timing": ref("Timing")},
      ["request_id", "turns", "speakers", "customer_sentiment", "escalation", "tier", "model", "metadata", "timing"]),
  "ConversationEscalation": obj({"escalate": {"type": "boolean"},
      "reasons": arr({"type": "string", "enum": ["negative_sentiment", "sharp_drop"]}),
      "recent_polarity": {"type": ["number", "null"]}, "drop": {"type": ["number", "null"]},
      "thresholds": ref("Thresholds")}, ["escalate", "reasons", "thresholds"]),
  "StreamMessage": obj({"text": string, "id": string, "speaker": {"type": "string", "enum": ["customer", "agent", "bot"]},
                        "metadata": ref("Metadata")}, ["text"]),
  "StreamResult": {"type": "object", "required": ["seq", "tier", "model"],
      "description": "One NDJSON line (or SSE `data:` event): the message's TextSentiment fields flattened in, or `error`.",
      "properties": {"seq": integer, "id": string, "speaker": string, 
                     "customer_sentiment": {"type": "object"}, "escalation": ref("ConversationEscalation"),
                     "tier": tier, "model": ref("ModelInfo"), "timing": ref("Timing"), "metadata": ref("Metadata"),
                     "prediction_id": string, "label": label, "scores": ref("Scores"), "confidence": num}},
  "FeedbackRequest": obj({"prediction_id": string, "corrected_label": label,
                          "reviewer": {"type": "string", "minLength": 1, "maxLength": 128}},
                         ["prediction_id", "corrected_label", "reviewer"]),
  "FeedbackRecord": obj({"feedback_id": string, "prediction_id": string, "corrected_label": label,
                         "original_label": label, "reviewer": string, "at_ms": integer, "tenant": {"type": ["string", "null"]}},
                        ["feedback_id", "prediction_id", "corrected_label", "original_label", "reviewer", "at_ms"]),
  "PredictionRecord": obj(PREDICTION_RECORD, PREDICTION_RECORD_REQUIRED),
  "AuditEntry": obj({**PREDICTION_RECORD, "feedback": arr(ref("FeedbackRecord"))}, [*PREDICTION_RECORD_REQUIRED, "feedback"]),
  "ForwardedRecords": obj({"records": arr(ref("PredictionRecord"), minItems=1, maxItems=1024)}, ["records"]),
  "Recorded": obj({"recorded": integer}, ["recorded"]),
  "DashboardSummary": {"type": "object",
      "required": ["now_ms", "bucket_ms", "series", "latency", "confidence_histogram", "current", "drift"],
      "properties": {"now_ms": integer, "bucket_ms": integer, "series": arr({"type": "object", "required": ["t_ms", "requests_per_second", "labels"]}),
                     "latency": arr(obj({"route": string, "tier": string, "count": integer, "p50_ms": num, "p95_ms": num, "p99_ms": num},
                                        ["route", "tier", "count", "p50_ms", "p95_ms", "p99_ms"])),
                     "confidence_histogram": obj({"bins": arr(num), "counts": arr(integer)}, ["bins", "counts"]),
                     "current": {"type": "object"},
                     "drift": obj({"baseline_predictions": integer, "current_predictions": integer,
                                   "label_psi": {"type": ["number", "null"]}, "confidence_psi": {"type": ["number", "null"]},
                                   "level": {"type": "string", "enum": ["stable", "moderate", "significant", "insufficient data"]}},
                                  ["baseline_predictions", "current_predictions", "level"]),
                     "queue": {"type": ["object", "null"]}}},
  # The heavy tier (crates/sentio-heavy/src/api.rs).
  "HeavyClassifyRequest": obj({"text": string, "texts": arr(string, minItems=1, maxItems=256),
                               "sentences": {"type": "boolean", "default": True}, "metadata": ref("Metadata")}),
  "JobRequest": obj({"items": arr(obj({"id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
                                       "text": string, "metadata": ref("Metadata")}, ["text"]), minItems=1),
                     "callback_url": string, "sentences": {"type": "boolean", "default": False},
                     "metadata": ref("Metadata")}, ["items"]),
  "JobAccepted": obj({"job_id": string, "queued": integer, "item_ids": arr(string),
                      "queue": {"type": "string", "enum": ["sqs", "embedded"]}}, ["job_id", "queued", "item_ids", "queue"]),
  # The queue's message schema, as committed for producers that write to SQS directly.
  "Envelope": {k: v for k, v in json.loads((root / "wit/queue-envelope.schema.json").read_text()).items()
               if k not in ("$schema", "$id")},
  "Queued": obj({"job_id": string, "item_id": string}, ["job_id", "item_id"]),
  "Health": obj({"status": {"const": "ok"}, "tier": tier, "model": ref("ModelInfo"),
                 "queue": {"type": ["string", "null"], "enum": ["sqs", "embedded", None]}},
                ["status", "tier", "model", "queue"]),
}
# Error's inner object, referenced by stream lines.
schemas["StreamResult"]["properties"]["error"] = schemas["Error"]["properties"]["error"]

def errors(*codes):
    names = {400: "Malformed JSON or bad request", 401: "Missing or wrong API key", 403: "Key lacks the scope, or origin not allowed",
             404: "Not found", 405: "Method not allowed", 413: "Body over the limit", 415: "Wrong content type",
             422: "A field is invalid (`error.field` names it)", 429: "Rate limit reached (see Retry-After)",
             503: "A store or queue this needs is not configured or not reachable"}
    return {str(c): {"description": names[c], "content": {"application/json": {"schema": ref("Error")}}} for c in codes}

GATEWAY_ERRORS = (400, 401, 403, 413, 415, 422, 429)
HEAVY_ERRORS = (400, 401, 413, 415, 422)
def post(summary, scope, req, res, status="200", extra_errors=(), req_type="application/json", res_type="application/json",
         security=None):
    codes = HEAVY_ERRORS if security else GATEWAY_ERRORS
    return {"post": {"summary": summary, "security": security or [{"bearer": [scope]}],
                     "requestBody": {"required": True, "content": {req_type: {"schema": ref(req)}}},
                     "responses": {status: {"description": "OK", "content": {res_type: {"schema": ref(res)}}},
                                   **errors(*codes, *extra_errors)}}}

# The heavy tier: under `sentio serve` at /heavy (for the edge; open only without an access file),
# in AWS the HTTP API's /v1/... routes. Its key is SENTIO_HEAVY_API_KEY in `x-api-key`.
heavy = [{"heavyKey": []}]
def heavy_get(summary, res, params=(), extra_errors=()):
    return {"get": {"summary": summary, "security": heavy, "parameters": list(params),
                    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref(res)}}},
                                  **errors(401, *extra_errors)}}}
heavy_paths = {
    "/heavy/v1/classify": post("Heavy tier: redact, then classify with the teacher (one text or up to 256)", None,
                               "HeavyClassifyRequest", "ClassifyResponse", security=heavy),
    "/heavy/v1/analyze-conversation": post("Heavy tier: conversation analysis with the teacher", None,
                                           "ConversationRequest", "ConversationResponse", security=heavy),
    "/heavy/v1/jobs": post("Queue a batch for the nearline worker (texts redacted here; results by signed webhook)", None,
                           "JobRequest", "JobAccepted", status="202", extra_errors=(503,), security=heavy),
    "/heavy/v1/overflow": post("Queue one envelope as it is (the edge's deferred escalations)", None,
                               "Envelope", "Queued", status="202", extra_errors=(503,), security=heavy),
    "/heavy/v1/feedback": post("Correct a prediction's label in the S3 audit store (AWS; 503 without one)", None,
                               "FeedbackRequest", "FeedbackRecord", status="201", extra_errors=(503,), security=heavy),
    "/heavy/v1/audit": post("Record predictions answered elsewhere (the edge components on Spin send theirs after answering); "
                            "they take the request's tenant", None, "ForwardedRecords", "Recorded", status="201",
                            extra_errors=(503,), security=heavy),
    "/heavy/v1/audit/{prediction_id}": heavy_get("A prediction's audit record and its corrections, from the S3 audit store",
        "AuditEntry", params=[{"name": "prediction_id", "in": "path", "required": True, "schema": string}],
        extra_errors=(404, 503)),
    "/heavy/v1/healthz": heavy_get("The heavy tier's model and queue", "Health"),
}

doc = {
  "openapi": "3.1.0",
  "info": {"title": "Sentio", "version": "0.1.0",
           "description": "Real-time customer sentiment: redact PII, then classify. Every text is redacted before it is scored, stored or logged."},
  "servers": [{"url": "http://127.0.0.1:3000", "description": "sentio serve"}],
  "components": {"schemas": schemas,
                 "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                     "description": "An API key from SENTIO_ACCESS_FILE; each endpoint needs a scope. Open when the server has no access file."},
                                     "heavyKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                     "description": "The heavy tier's SENTIO_HEAVY_API_KEY. Open when it is not set."}}},
  "paths": {
    "/redact": post("Redact PII from one text or a batch", "redact", "RedactRequest", "RedactResponse"),
    "/classify-sentiment": post("Redact, then classify one text or up to 64", "classify", "ClassifyRequest", "ClassifyResponse"),
    "/analyze-conversation": post("Per-turn sentiment, trajectories and the escalation signal", "classify", "ConversationRequest", "ConversationResponse"),
    "/stream-sentiment": post("NDJSON messages in, one result line each as soon as it is scored (SSE with Accept: text/event-stream)",
                              "classify", "StreamMessage", "StreamResult", req_type="application/x-ndjson", res_type="application/x-ndjson"),
    "/feedback": post("Correct a prediction's label", "feedback", "FeedbackRequest", "FeedbackRecord", status="201"),
    "/audit/{prediction_id}": {"get": {"summary": "A prediction's audit record and its corrections", "security": [{"bearer": ["audit"]}],
        "parameters": [{"name": "prediction_id", "in": "path", "required": True, "schema": string}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref("AuditEntry")}}}, **errors(401, 403, 404, 429)}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "security": [{"bearer": ["metrics"]}],
        "responses": {"200": {"description": "Exposition format 0.0.4", "content": {"text/plain": {"schema": string}}}, **errors(401, 403, 429)}}},
    "/dashboard/api/summary": {"get": {"summary": "The operator dashboard's numbers", "security": [{"bearer": ["dashboard"]}],
        "parameters": [{"name": "span_s", "in": "query", "schema": {"type": "integer", "minimum": 10, "maximum": 86400, "default": 900}}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref("DashboardSummary")}}}, **errors(401, 403, 422, 429)}}},
    "/openapi.json": {"get": {"summary": "This document", "security": [],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    **heavy_paths,
  },
}
out = root / "web/openapi.json"
out.write_text(json.dumps(doc, indent=1) + "\n")
print(f"wrote {out}")
