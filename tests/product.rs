//! The product surface of `sentio serve` against a real server: API keys, scopes, rate limits
//! and CORS; request and prediction ids; feedback and the audit trail (and their export); the
//! Prometheus metrics and the dashboard's numbers; every answer checked against the OpenAPI
//! document; and no PII in anything the server printed or stored outside its answers.

mod common;

use common::{Response, Server, otlp_receiver, span_named, spans_of_trace, temp_dir};
use serde_json::{Value, json};

const ACME_WIDGET: &str = "sk_test_acme_widget_0001";
const ACME_OPS: &str = "sk_test_acme_ops_0002";
const GLOBEX_WIDGET: &str = "sk_test_globex_widget_0003";
const SLOW_KEY: &str = "sk_test_rate_limited_0004";
const ALLOWED_ORIGIN: &str = "https://support.example.com";

/// PII the tests send; none of it may appear in logs, metrics or the audit trail.
const PII: &[&str] = &[
    "maria.gonzalez@example.com",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "Maria Gonzalez",
];

fn sha256_hex(key: &str) -> String {
    sentio_ops::access::hash_key(key)
}

fn access_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("access.toml");
    let text = format!(
        r#"
[cors]
origins = ["{ALLOWED_ORIGIN}"]

[[key]]
id = "acme-widget"
tenant = "acme"
sha256 = "{}"
scopes = ["classify", "redact", "feedback", "audit"]

[[key]]
id = "acme-ops"
tenant = "acme"
sha256 = "{}"
scopes = ["metrics", "dashboard", "audit"]

[[key]]
id = "globex-widget"
tenant = "globex"
sha256 = "{}"
scopes = ["classify", "feedback", "audit"]

[[key]]
id = "slow"
tenant = "acme"
sha256 = "{}"
scopes = ["classify"]
rate_per_second = 0.2
burst = 2
"#,
        sha256_hex(ACME_WIDGET),
        sha256_hex(ACME_OPS),
        sha256_hex(GLOBEX_WIDGET),
        sha256_hex(SLOW_KEY),
    );
    std::fs::write(&path, text).unwrap();
    path
}

struct Stack {
    server: Server,
    data_dir: std::path::PathBuf,
    openapi: Value,
    /// (what, schema, answer) to check against the OpenAPI document.
    answers: std::cell::RefCell<Vec<Value>>,
}

impl Stack {
    fn start() -> Stack {
        let dir = temp_dir("product");
        let access = access_file(&dir);
        let data_dir = dir.join("data");
        let server = Server::start_with(
            &[
                "--variable",
                "heavy_url=",
                "--variable",
                "overflow_url=",
                "--variable",
                "redact_hash_key=product-test-key-0123456789",
            ],
            &[
                ("SENTIO_ACCESS_FILE", access.to_str().unwrap()),
                ("SENTIO_DATA_DIR", data_dir.to_str().unwrap()),
            ],
        );
        let openapi = server.request("GET", "/openapi.json", &[], b"").json();
        Stack {
            server,
            data_dir,
            openapi,
            answers: std::cell::RefCell::new(Vec::new()),
        }
    }

    fn call(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> Response {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        self.server.request(method, path, &headers, body.as_bytes())
    }

    /// Keeps `value` to be validated against `#/components/schemas/{schema}`.
    fn check_schema(&self, schema: &str, value: &Value) {
        let what = format!("answer {}", self.answers.borrow().len());
        self.answers
            .borrow_mut()
            .push(json!({"what": what, "schema": schema, "value": value}));
    }

    /// Validates every kept answer, and the document itself (see [`common::check_openapi`]).
    fn validate_answers(&self) {
        common::check_openapi(&self.openapi, &self.answers.borrow());
    }
}

fn error_kind(r: &Response) -> String {
    r.json()["error"]["kind"].as_str().unwrap_or("").to_owned()
}

#[test]
fn product_surface() {
    let stack = Stack::start();

    // --- Access control -------------------------------------------------------------------
    let body = r#"{"text": "The refund never arrived and nobody answers."}"#;
    let none = stack.call("POST", "/classify-sentiment", None, body);
    assert_eq!(none.status, 401);
    assert_eq!(error_kind(&none), "unauthorized");
    stack.check_schema("Error", &none.json());
    let wrong = stack.call("POST", "/classify-sentiment", Some("sk_nope"), body);
    assert_eq!(wrong.status, 401);
    // With keys on, the in-process heavy tier is no back door: it has its own per-process key.
    let heavy = stack.call("POST", "/heavy/v1/classify", Some(ACME_WIDGET), body);
    assert_eq!(
        heavy.status,
        401,
        "{}",
        String::from_utf8_lossy(&heavy.body)
    );
    let scope = stack.call("GET", "/metrics", Some(ACME_WIDGET), "");
    assert_eq!(scope.status, 403);
    assert!(
        scope.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("metrics")
    );

    // CORS: a listed origin gets the headers, a foreign one is refused, preflight answers.
    let auth = format!("Bearer {ACME_WIDGET}");
    let from = |origin: &str| {
        stack.server.request(
            "POST",
            "/classify-sentiment",
            &[
                ("content-type", "application/json"),
                ("authorization", auth.as_str()),
                ("origin", origin),
            ],
            body.as_bytes(),
        )
    };
    let allowed = from(ALLOWED_ORIGIN);
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    let foreign = from("https://evil.example");
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    let preflight = stack.server.request(
        "OPTIONS",
        "/classify-sentiment",
        &[
            ("origin", ALLOWED_ORIGIN),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204);
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );

    // Rate limit: a burst of 2, then 429 with Retry-After.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let r = stack.call("POST", "/classify-sentiment", Some(SLOW_KEY), body);
        statuses.push(r.status);
        if r.status == 429 {
            retry_after = r.header("retry-after").map(str::to_owned);
            assert_eq!(error_kind(&r), "rate_limited");
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=5).contains(&wait), "Retry-After {wait}");

    // --- Predictions carry ids; answers match the OpenAPI document --------------------------
    let angry = format!(
        r#"{{"text": "I am Maria Gonzalez, this is a disgrace. Email {} or call {}; you charged card {} twice!",
            "metadata": {{"customer_id": "c-42", "channel": "chat"}}}}"#,
        PII[0], PII[1], PII[2]
    );
    let one = stack.call("POST", "/classify-sentiment", Some(ACME_WIDGET), &angry);
    assert_eq!(one.status, 200, "{}", String::from_utf8_lossy(&one.body));
    let one_json = one.json();
    stack.check_schema("ClassifyResponse", &one_json);
    // Canaries: an undocumented field and a missing required one must both be caught.
    let mut extra = one_json.clone();
    extra["undocumented"] = json!(1);
    let mut missing = one_json.clone();
    missing.as_object_mut().unwrap().remove("request_id");
    for wrong in [extra, missing] {
        stack.answers.borrow_mut().push(
            json!({"what": "canary", "schema": "ClassifyResponse", "value": wrong, "expect_error": true}),
        );
    }
    let request_id = one_json["request_id"].as_str().unwrap().to_owned();
    assert_eq!(one.header("x-request-id"), Some(request_id.as_str()));
    let prediction_id = one_json["prediction_id"].as_str().unwrap().to_owned();
    assert_eq!(prediction_id, format!("{request_id}.0"));
    let acme_hash = one_json["input_hash"].as_str().unwrap().to_owned();
    assert_eq!(one_json["label"], "negative");

    // The same text under another tenant: another keyed hash (tenant keys are distinct).
    let globex = stack
        .call("POST", "/classify-sentiment", Some(GLOBEX_WIDGET), &angry)
        .json();
    assert_ne!(globex["input_hash"].as_str().unwrap(), acme_hash);
    assert_ne!(globex["request_id"], one_json["request_id"]);

    let many = stack
        .call(
            "POST",
            "/classify-sentiment",
            Some(ACME_WIDGET),
            r#"{"texts": ["Thanks, that fixed it!", "Where is my parcel?"], "metadata": {"channel": "email"}}"#,
        )
        .json();
    stack.check_schema("ClassifyResponse", &many);
    assert!(
        many["results"][1]["prediction_id"]
            .as_str()
            .unwrap()
            .ends_with(".1")
    );

    let conversation = stack
        .call(
            "POST",
            "/analyze-conversation",
            Some(ACME_WIDGET),
            r#"{"turns": [
                {"speaker": "customer", "text": "My order is late again."},
                {"speaker": "agent", "text": "Sorry to hear that, let me check."},
                {"speaker": "customer", "text": "This is useless, I want a refund now!"}]}"#,
        )
        .json();
    stack.check_schema("ConversationResponse", &conversation);
    assert_eq!(conversation["escalation"]["escalate"], true);

    let redacted = stack
        .call(
            "POST",
            "/redact",
            Some(ACME_WIDGET),
            &format!(r#"{{"text": "mail {}"}}"#, PII[0]),
        )
        .json();
    stack.check_schema("RedactResponse", &redacted);

    let stream = stack.server.request(
        "POST",
        "/stream-sentiment",
        &[
            ("content-type", "application/x-ndjson"),
            ("authorization", auth.as_str()),
        ],
        b"{\"text\": \"hello there\", \"id\": \"m1\"}\n{\"text\": 5}\n",
    );
    assert_eq!(stream.status, 200);
    let lines: Vec<Value> = String::from_utf8(stream.body.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        stack.check_schema("StreamResult", line);
    }
    assert!(lines[0]["prediction_id"].as_str().unwrap().ends_with(".0"));
    assert_eq!(lines[1]["error"]["kind"], "invalid_field");

    let bad = stack.call(
        "POST",
        "/classify-sentiment",
        Some(ACME_WIDGET),
        r#"{"text": 7}"#,
    );
    assert_eq!(bad.status, 422);
    stack.check_schema("Error", &bad.json());

    // --- Feedback and the audit trail -------------------------------------------------------
    let feedback = stack.call(
        "POST",
        "/feedback",
        Some(ACME_WIDGET),
        &format!(r#"{{"prediction_id": "{prediction_id}", "corrected_label": "neutral", "reviewer": "agent-7"}}"#),
    );
    assert_eq!(
        feedback.status,
        201,
        "{}",
        String::from_utf8_lossy(&feedback.body)
    );
    stack.check_schema("FeedbackRecord", &feedback.json());
    assert_eq!(feedback.json()["original_label"], "negative");
    let cases = [
        (
            format!(
                r#"{{"prediction_id": "{prediction_id}", "corrected_label": "furious", "reviewer": "a"}}"#
            ),
            "corrected_label",
        ),
        (
            r#"{"prediction_id": "req_nope.0", "corrected_label": "neutral", "reviewer": "a"}"#
                .to_owned(),
            "prediction_id",
        ),
        (
            format!(
                r#"{{"prediction_id": "{prediction_id}", "corrected_label": "neutral", "reviewer": ""}}"#
            ),
            "reviewer",
        ),
    ];
    for (body, field) in cases {
        let r = stack.call("POST", "/feedback", Some(ACME_WIDGET), &body);
        assert_eq!(r.status, 422, "{body}");
        assert_eq!(r.json()["error"]["field"], field, "{body}");
    }
    // Another tenant can neither correct nor read acme's predictions.
    let foreign_fb = stack.call(
        "POST",
        "/feedback",
        Some(GLOBEX_WIDGET),
        &format!(r#"{{"prediction_id": "{prediction_id}", "corrected_label": "neutral", "reviewer": "x"}}"#),
    );
    assert_eq!(foreign_fb.status, 422);
    let path = format!("/audit/{prediction_id}");
    assert_eq!(
        stack.call("GET", &path, Some(GLOBEX_WIDGET), "").status,
        404
    );
    let audit = stack.call("GET", &path, Some(ACME_OPS), "");
    assert_eq!(audit.status, 200);
    let entry = audit.json();
    stack.check_schema("AuditEntry", &entry);
    assert_eq!(entry["input_hash"].as_str(), Some(acme_hash.as_str()));
    assert_eq!(entry["tenant"], "acme");
    assert_eq!(
        entry["model"].as_str().unwrap(),
        format!(
            "{}@{}",
            one_json["model"]["id"].as_str().unwrap(),
            one_json["model"]["version"].as_str().unwrap()
        )
    );
    assert_eq!(entry["feedback"][0]["corrected_label"], "neutral");
    assert!(
        entry["redacted_text"]
            .as_str()
            .unwrap()
            .contains("<EMAIL_ADDRESS>")
    );

    // --- Metrics and the dashboard ----------------------------------------------------------
    let metrics = stack.call("GET", "/metrics", Some(ACME_OPS), "");
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body.clone()).unwrap();
    for needle in [
        r#"sentio_requests_total{route="/classify-sentiment",status="200"}"#,
        r#"sentio_requests_total{route="/classify-sentiment",status="422"} 1"#,
        r#"sentio_rejected_total{reason="unauthorized"} 2"#,
        r#"sentio_rejected_total{reason="rate_limited"} 1"#,
        r#"sentio_rejected_total{reason="cors"} 1"#,
        r#"sentio_predictions_total{route="/classify-sentiment",tier="edge""#,
        r#"sentio_predictions_total{route="/stream-sentiment",tier="edge""#,
        r#"sentio_escalations_total{route="/analyze-conversation",outcome="escalate"} 1"#,
        "sentio_request_duration_seconds_bucket{",
        "sentio_prediction_confidence_bucket{",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    let summary = stack.call(
        "GET",
        "/dashboard/api/summary?span_s=60",
        Some(ACME_OPS),
        "",
    );
    assert_eq!(summary.status, 200);
    let summary = summary.json();
    stack.check_schema("DashboardSummary", &summary);
    // CORS 1 + rate-limited key 2 + one 1 + globex 1 + many 2 + 3 turns + 1 stream line
    assert_eq!(summary["current"]["predictions"], 11, "{summary:#}");
    assert!(
        summary["latency"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["route"] == "/classify-sentiment")
    );
    let bad_span = stack.call(
        "GET",
        "/dashboard/api/summary?span_s=abc",
        Some(ACME_OPS),
        "",
    );
    assert_eq!(bad_span.status, 422);
    assert_eq!(bad_span.json()["error"]["field"], "span_s");

    stack.validate_answers();

    // --- The export turns corrections into a training set -----------------------------------
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_sentio"))
        .args(["feedback", "export", "--data-dir"])
        .arg(&stack.data_dir)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let exported: Vec<Value> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0]["label"], "neutral");
    assert_eq!(exported[0]["original_label"], "negative");
    assert_eq!(exported[0]["channel"], "chat");

    // --- No PII anywhere but the answers ----------------------------------------------------
    let mut scanned = stack.server.logs();
    scanned.push_str(&text);
    for file in ["predictions.jsonl", "feedback.jsonl"] {
        scanned
            .push_str(&std::fs::read_to_string(stack.data_dir.join("audit").join(file)).unwrap());
    }
    assert!(scanned.len() > 1000, "nothing to scan?");
    for value in PII {
        assert!(
            !scanned.contains(value),
            "`{value}` leaked into logs, metrics or the audit trail"
        );
    }
    for key in [ACME_WIDGET, ACME_OPS, GLOBEX_WIDGET, SLOW_KEY] {
        assert!(!scanned.contains(key), "an API key leaked");
    }
    let _ = std::fs::remove_dir_all(stack.data_dir.parent().unwrap());
}

#[test]
fn open_mode_admits_and_keeps_cors_same_origin() {
    let server = Server::start(&[
        "--variable",
        "heavy_url=",
        "--variable",
        "overflow_url=",
        "--variable",
        "redact_hash_key=open-mode-test-key-0123456789",
    ]);
    let ok = server.post_json("/classify-sentiment", r#"{"text": "great service"}"#);
    assert_eq!(ok.status, 200);
    assert!(ok.json()["prediction_id"].is_string());
    let own = format!("http://{}", server.addr);
    let same = server.request(
        "POST",
        "/classify-sentiment",
        &[
            ("content-type", "application/json"),
            ("origin", own.as_str()),
        ],
        br#"{"text": "great service"}"#,
    );
    assert_eq!(same.status, 200);
    let foreign = server.request(
        "POST",
        "/classify-sentiment",
        &[
            ("content-type", "application/json"),
            ("origin", "http://localhost:9"),
        ],
        br#"{"text": "great service"}"#,
    );
    assert_eq!(foreign.status, 403);
    // A client cannot choose its tenant or request id: the gateway overwrites both.
    let spoofed = server.request(
        "POST",
        "/classify-sentiment",
        &[
            ("content-type", "application/json"),
            ("x-sentio-tenant", "acme"),
            ("x-sentio-request-id", "req_chosen"),
        ],
        br#"{"text": "great service"}"#,
    );
    let spoofed = spoofed.json();
    assert_ne!(spoofed["request_id"], "req_chosen");
    assert_eq!(
        spoofed["input_hash"],
        ok.json()["input_hash"],
        "a client-chosen tenant changed the key"
    );
    assert_eq!(server.request("GET", "/metrics", &[], b"").status, 200);
    let page = server.request("GET", "/dashboard", &[], b"");
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("<svg id=\"throughput\""));
    let widget = server.request("GET", "/web/widget.js", &[], b"");
    assert_eq!(
        widget.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        server.request("GET", "/web/../Cargo.toml", &[], b"").status,
        404
    );
}

/// `POST /classify-sentiment` as a caller whose span `caller_span` of `trace` made the request.
fn classify_in_trace(server: &Server, trace: &str, caller_span: &str, body: &str) -> Response {
    let parent = format!("00-{trace}-{caller_span}-01");
    server.request(
        "POST",
        "/classify-sentiment",
        &[
            ("content-type", "application/json"),
            ("traceparent", parent.as_str()),
        ],
        body.as_bytes(),
    )
}

#[test]
fn traces_cross_the_tiers_without_pii() {
    let (collector, received) = otlp_receiver();
    let endpoint = format!("http://{collector}");
    let server = Server::start_with(
        &["--variable", "escalation_budget_ms=5000"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "sentio-test"),
        ],
    );
    // The caller's trace; priority high escalates to the heavy tier within the same trace.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let r = classify_in_trace(
        &server,
        trace,
        caller_span,
        &format!(
            r#"{{"text": "Maria Gonzalez here, mail {} about my refund", "metadata": {{"priority": "high"}}}}"#,
            PII[0]
        ),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["tier"], "heavy", "{}", r.json());

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let spans = loop {
        let spans = spans_of_trace(&received, trace);
        if spans.len() >= 2 || std::time::Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let edge = span_named(&spans, "POST /classify-sentiment");
    assert_eq!(
        edge["parentSpanId"], caller_span,
        "the edge span continues the caller's"
    );
    let heavy = span_named(&spans, "POST /heavy");
    assert_eq!(
        heavy["parentSpanId"], edge["spanId"],
        "the heavy tier's span is the edge's child"
    );
    // OTLP's default encoding, decoded by the official bindings.
    assert!(
        received
            .lock()
            .unwrap()
            .iter()
            .all(|body| body["contentType"] == "application/x-protobuf")
    );
    let exported = serde_json::to_string(&*received.lock().unwrap()).unwrap();
    assert!(exported.contains("sentio-test"));
    for value in PII {
        assert!(!exported.contains(value), "`{value}` leaked into a span");
    }
}

#[test]
fn traces_export_over_otlp_grpc() {
    // OTEL_EXPORTER_OTLP_PROTOCOL=grpc: the spans reach a real gRPC collector (grpcio serving
    // OpenTelemetry's TraceService), continuing the caller's trace.
    let (_collector, address, received) = common::otlp_grpc_receiver();
    let endpoint = format!("http://{address}");
    let server = Server::start_with(
        &["--variable", "heavy_url=", "--variable", "overflow_url="],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "sentio-grpc"),
        ],
    );
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let r = classify_in_trace(
        &server,
        trace,
        caller_span,
        &format!(r#"{{"text": "mail {} about my refund"}}"#, PII[0]),
    );
    assert_eq!(r.status, 200);
    let arrived = common::eventually(std::time::Duration::from_secs(20), || {
        !spans_of_trace(&received, trace).is_empty()
    });
    assert!(
        arrived,
        "no span reached the gRPC collector\n{}",
        server.logs()
    );
    let spans = spans_of_trace(&received, trace);
    let edge = span_named(&spans, "POST /classify-sentiment");
    assert_eq!(edge["parentSpanId"], caller_span);
    let exported = serde_json::to_string(&*received.lock().unwrap()).unwrap();
    assert!(exported.contains("sentio-grpc"));
    assert!(!exported.contains(PII[0]), "PII leaked into a span");
}
