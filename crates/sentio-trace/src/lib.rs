//! Distributed tracing: spans continued from the caller's W3C `traceparent` and handed on, exported
//! over OTLP/HTTP. `sentio serve`'s gateway makes one server span per request it admits (and
//! hands its context to the components, which pass it to the heavy tier, into queue envelopes and
//! onto webhooks); the heavy Lambda makes one per invocation; the worker one consumer span per
//! queued item, a child of the context its envelope carries.
//!
//! Configured by the standard variables: `OTEL_EXPORTER_OTLP_PROTOCOL` /
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` (`http/protobuf`, the OpenTelemetry default, `http/json`
//! or `grpc`), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (a full URL; for gRPC the collector's
//! address) or `OTEL_EXPORTER_OTLP_ENDPOINT` (over HTTP `/v1/traces` is appended),
//! `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`), `OTEL_SERVICE_NAME` (default `sentio`),
//! `OTEL_TRACES_EXPORTER` (`none` turns export off). Span attributes are route, status, tier,
//! model and the request id: never text, keys or customer ids.

mod protobuf;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sentio_core::context::random_id_hex;
use serde_json::{Value, json};

/// OTLP's span kinds that Sentio makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Answering a request.
    Server = 2,
    /// Processing a queued message.
    Consumer = 5,
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub kind: SpanKind,
    pub name: String,
    pub start_unix_nanos: u128,
    pub end_unix_nanos: u128,
    pub attributes: Vec<(&'static str, String)>,
    pub error: bool,
}

pub fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A span from its start until it is finished: a child of the caller's `traceparent` when it
/// sent a valid one, else the root of a new trace. The gateway, the heavy Lambda and the worker
/// each open one per request or item.
#[derive(Debug, Clone)]
pub struct OpenSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    start_unix_nanos: u128,
}

impl OpenSpan {
    pub fn start(incoming: Option<&str>) -> Self {
        let span_id = random_id_hex(8);
        let (trace_id, parent_span_id) =
            match incoming.and_then(sentio_core::context::parse_traceparent) {
                Some((trace, parent)) => (trace.to_owned(), Some(parent.to_owned())),
                None => (random_id_hex(16), None),
            };
        Self {
            trace_id,
            span_id,
            parent_span_id,
            start_unix_nanos: unix_nanos(),
        }
    }

    /// The `traceparent` that names this span as the parent of whatever comes next.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }

    /// The finished span, ending now.
    pub fn finish(
        self,
        kind: SpanKind,
        name: String,
        attributes: Vec<(&'static str, String)>,
        error: bool,
    ) -> Span {
        Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            kind,
            name,
            start_unix_nanos: self.start_unix_nanos,
            end_unix_nanos: unix_nanos(),
            attributes,
            error,
        }
    }
}

/// How spans are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `application/x-protobuf` (the OpenTelemetry default).
    HttpProtobuf,
    /// `application/json`.
    HttpJson,
    /// OTLP/gRPC: the `TraceService/Export` call over HTTP/2 (cleartext with prior knowledge for
    /// `http://`, ALPN for `https://`), one length-prefixed protobuf message.
    Grpc,
}

/// The gRPC method that takes spans.
const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// The full traces URL (for gRPC, the export method's).
    pub url: String,
    pub protocol: OtlpProtocol,
    pub headers: Vec<(String, String)>,
    pub service_name: String,
}

impl OtlpSettings {
    /// Reads the standard `OTEL_*` variables through `get`; `Ok(None)` when export is off.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        if get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none") {
            return Ok(None);
        }
        let protocol = match get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
            .map(str::trim)
        {
            None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
            Some("http/json") => OtlpProtocol::HttpJson,
            Some("grpc") => OtlpProtocol::Grpc,
            Some(other) => {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported: use http/protobuf, \
                     http/json or grpc"
                ));
            }
        };
        let url = match (
            protocol,
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            // A gRPC endpoint is the collector's address; the method names the path.
            (OtlpProtocol::Grpc, Some(endpoint), _)
            | (OtlpProtocol::Grpc, None, Some(endpoint)) => {
                format!(
                    "{}{GRPC_EXPORT_PATH}",
                    endpoint.trim().trim_end_matches('/')
                )
            }
            (_, Some(url), _) => url,
            (_, None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (_, None, None) => return Ok(None),
        };
        let headers = get("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|h| {
                h.split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Self {
            url,
            protocol,
            headers,
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "sentio".into()),
        }))
    }
}

/// The OTLP/JSON body for `spans` (trace and span ids as hex, as the JSON encoding asks).
pub fn export_body(service_name: &str, spans: &[Span]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": s.trace_id,
                "spanId": s.span_id,
                "name": s.name,
                "kind": s.kind as u8,
                "startTimeUnixNano": s.start_unix_nanos.to_string(),
                "endTimeUnixNano": s.end_unix_nanos.to_string(),
                "attributes": s.attributes.iter().map(|(k, v)| json!({"key": k, "value": {"stringValue": v}})).collect::<Vec<_>>(),
                "status": {"code": if s.error { 2 } else { 1 }},
            });
            if let Some(parent) = &s.parent_span_id {
                span["parentSpanId"] = json!(parent);
            }
            span
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service_name}}]},
            "scopeSpans": [{"scope": {"name": "sentio"}, "spans": spans}],
        }]
    })
}

enum Message {
    Span(Span),
    /// Send what is waiting now, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Sends spans in batches (up to 256, at least once a second) from a background task; drops
/// spans rather than blocking requests when the collector is slow or down. A Lambda calls
/// [`SpanExporter::flush`] before it answers, since it may be frozen right after.
#[derive(Clone)]
pub struct SpanExporter {
    tx: tokio::sync::mpsc::Sender<Message>,
}

async fn send(client: &reqwest::Client, settings: &OtlpSettings, batch: &[Span]) {
    let (content_type, body) = match settings.protocol {
        OtlpProtocol::HttpProtobuf => (
            "application/x-protobuf",
            protobuf::export_request(&settings.service_name, batch),
        ),
        OtlpProtocol::HttpJson => (
            "application/json",
            export_body(&settings.service_name, batch)
                .to_string()
                .into_bytes(),
        ),
        OtlpProtocol::Grpc => (
            "application/grpc",
            grpc_frame(&protobuf::export_request(&settings.service_name, batch)),
        ),
    };
    let mut request = client
        .post(&settings.url)
        .timeout(Duration::from_secs(10))
        .header("content-type", content_type)
        .body(body);
    if settings.protocol == OtlpProtocol::Grpc {
        request = request.header("te", "trailers");
    }
    for (k, v) in &settings.headers {
        request = request.header(k, v);
    }
    let refusal = async {
        let response = request.send().await?;
        Ok::<_, reqwest::Error>(match settings.protocol {
            OtlpProtocol::Grpc => grpc_refusal(response).await?,
            _ if response.status().is_success() => None,
            _ => Some(format!("HTTP {}", response.status().as_u16())),
        })
    };
    match refusal.await {
        Ok(None) => {}
        Ok(Some(status)) => tracing::warn!(
            %status,
            spans = batch.len(),
            "OTLP collector refused spans"
        ),
        Err(e) => tracing::warn!(error = %e, spans = batch.len(), "OTLP export failed"),
    }
}

/// One gRPC message: a zero compression flag, a 4-byte big-endian length, the message.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// Why a unary gRPC call failed, if it did: success is HTTP 200 with `grpc-status` 0, in the
/// trailers or in the headers of a trailers-only answer.
async fn grpc_refusal(response: reqwest::Response) -> Result<Option<String>, reqwest::Error> {
    let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let trailers = http_body_util::BodyExt::collect(body)
        .await?
        .trailers()
        .cloned();
    let grpc_status = |headers: &http::HeaderMap| {
        headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = trailers
        .as_ref()
        .and_then(grpc_status)
        .or_else(|| grpc_status(&parts.headers));
    Ok(
        (parts.status != http::StatusCode::OK || status.as_deref() != Some("0")).then(|| {
            format!(
                "HTTP {}, grpc-status {}",
                parts.status.as_u16(),
                status.as_deref().unwrap_or("none")
            )
        }),
    )
}

impl SpanExporter {
    /// Starts the export task on the current tokio runtime.
    pub fn start(settings: OtlpSettings) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(4096);
        tokio::spawn(async move {
            let client = if settings.protocol == OtlpProtocol::Grpc {
                reqwest::Client::builder().http2_prior_knowledge().build()
            } else {
                reqwest::Client::builder().build()
            }
            .unwrap_or_default();
            let mut batch = Vec::new();
            loop {
                let next = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await;
                let (closed, flushed) = match next {
                    Ok(Some(Message::Span(span))) => {
                        batch.push(span);
                        if batch.len() < 256 {
                            continue;
                        }
                        (false, None)
                    }
                    Ok(Some(Message::Flush(done))) => (false, Some(done)),
                    Ok(None) => (true, None),
                    Err(_) => (false, None),
                };
                if !batch.is_empty() {
                    send(&client, &settings, &batch).await;
                    batch.clear();
                }
                if let Some(done) = flushed {
                    let _ = done.send(());
                }
                if closed {
                    return;
                }
            }
        });
        Self { tx }
    }

    /// From the standard `OTEL_*` variables (see [`OtlpSettings::from_lookup`]); `Ok(None)` when
    /// export is off.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        Ok(OtlpSettings::from_lookup(get)?.map(|settings| {
            tracing::info!(url = %settings.url, protocol = ?settings.protocol, "exporting spans (OTLP)");
            Self::start(settings)
        }))
    }

    pub fn export(&self, span: Span) {
        let _ = self.tx.try_send(Message::Span(span));
    }

    /// Returns once every span exported before the call has been sent (or given up on).
    pub async fn flush(&self) {
        let (done, sent) = tokio::sync::oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = sent.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_continue_the_callers_trace() {
        let open = OpenSpan::start(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        let (trace, span) = (open.trace_id.clone(), open.span_id.clone());
        assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(open.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(span.len(), 16);
        assert_eq!(open.traceparent(), format!("00-{trace}-{span}-01"));
        let fresh = OpenSpan::start(Some("garbage"));
        assert_eq!((fresh.trace_id.len(), fresh.parent_span_id), (32, None));
    }

    #[test]
    fn settings_follow_the_otel_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(OtlpSettings::from_lookup(env(&[])), Ok(None));
        let s = OtlpSettings::from_lookup(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-team=ops, authorization=Basic abc",
            ),
            ("OTEL_SERVICE_NAME", "sentio-local"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(
            s.protocol,
            OtlpProtocol::HttpProtobuf,
            "the OpenTelemetry default"
        );
        assert_eq!(s.headers[1], ("authorization".into(), "Basic abc".into()));
        assert_eq!(s.service_name, "sentio-local");
        let off = OtlpSettings::from_lookup(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]));
        assert_eq!(off, Ok(None));
        let grpc = OtlpSettings::from_lookup(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]));
        assert_eq!(
            grpc.unwrap().unwrap().url,
            "http://127.0.0.1:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
        let thrift = OtlpSettings::from_lookup(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
        ]));
        assert!(
            thrift
                .unwrap_err()
                .contains("http/protobuf, http/json or grpc")
        );
        let json = OtlpSettings::from_lookup(env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://x/v1/traces"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ]));
        assert_eq!(json.unwrap().unwrap().protocol, OtlpProtocol::HttpJson);
    }

    #[test]
    fn export_body_is_otlp_json() {
        let span = Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
            parent_span_id: None,
            kind: SpanKind::Server,
            name: "POST /classify-sentiment".into(),
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: vec![("http.route", "/classify-sentiment".into())],
            error: false,
        };
        let body = export_body("sentio", &[span]);
        let s = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["startTimeUnixNano"], "1");
        assert!(s.get("parentSpanId").is_none());
        assert_eq!(s["kind"], 2);
        assert_eq!(
            s["attributes"][0]["value"]["stringValue"],
            "/classify-sentiment"
        );
        assert_eq!(
            body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "sentio"
        );
    }
}
