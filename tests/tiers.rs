//! The heavy tier, escalation and the nearline queue end to end, against real servers on
//! 127.0.0.1: `sentio serve` (edge components + in-process heavy tier + queue + poller), moto's SQS
//! server, cargo-lambda's runtime API emulator running the Lambda binaries, and a webhook receiver
//! that verifies signatures.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::tiers::{LambdaFunction, Moto, WEBHOOK_SECRET, WebhookReceiver};
use common::{Server, eventually, span_named, spans_of_trace, temp_dir};
use serde_json::{Value, json};

const ANGRY: &str = "This is the third time my order is late and nobody answers. I'm furious.";
const HAPPY: &str = "Thank you so much, the agent fixed it in two minutes. Great service!";
const WITH_PII: &str = "Refund it to my card 4111 1111 1111 1111 or email jane.doe@example.com";

fn worker_env(receiver: &WebhookReceiver) -> Vec<(&'static str, String)> {
    vec![
        ("SENTIO_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("SENTIO_DEFAULT_CALLBACK_URL", receiver.url.clone()),
        ("SENTIO_QUEUE_VISIBILITY_SECS", "1".to_owned()),
    ]
}

fn start(args: &[&str], envs: &[(&str, String)]) -> Server {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(args, &envs)
}

fn submit_job(server: &Server, texts: &[&str], callback: &str) -> Value {
    let items: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": format!("m{i}"), "text": t, "metadata": {"channel": "chat"}}))
        .collect();
    let body = json!({"items": items, "callback_url": callback}).to_string();
    let response = server.post_json("/heavy/v1/jobs", &body);
    assert_eq!(
        response.status,
        202,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

fn assert_delivered(receiver: &WebhookReceiver, item_ids: &[String], within: Duration) {
    let all = eventually(within, || {
        let got = receiver.by_id();
        item_ids.iter().all(|id| got.contains_key(id))
    });
    assert!(
        all,
        "not every item was delivered: wanted {item_ids:?}, got {:?}",
        receiver.by_id().keys().collect::<Vec<_>>()
    );
}

fn item_ids(accepted: &Value) -> Vec<String> {
    accepted["item_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn jobs_are_scored_once_per_item_and_survive_a_failing_webhook() {
    // The receiver refuses the first three deliveries: those items are retried after the
    // visibility timeout and still arrive, each with one result.
    let receiver = WebhookReceiver::start(3);
    let (collector, spans) = common::otlp_receiver();
    let mut env = worker_env(&receiver);
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")));
    let server = start(&[], &env);
    let accepted = submit_job(&server, &[ANGRY, HAPPY, WITH_PII], &receiver.url);
    let ids = item_ids(&accepted);
    assert_eq!(accepted["queued"], 3);
    common::check_openapi(
        &common::openapi_document(),
        &[json!({"what": "jobs", "schema": "JobAccepted", "value": accepted})],
    );
    assert_eq!(
        ids[0],
        format!("{}:m0", accepted["job_id"].as_str().unwrap())
    );
    assert_delivered(&receiver, &ids, Duration::from_secs(60));

    let got = receiver.by_id();
    for id in &ids {
        let d = &got[id];
        assert!(d.signature_ok, "signature of {id} does not verify");
        assert_eq!(d.body["tier"], "nearline");
        assert_eq!(d.body["model"]["id"], "sentio-sentiment-teacher");
        assert_eq!(d.body["metadata"]["channel"], "chat");
    }
    assert_eq!(got[&ids[0]].body["result"]["label"], "negative");
    assert_eq!(got[&ids[1]].body["result"]["label"], "positive");
    let redacted = got[&ids[2]].body["result"]["redacted_text"]
        .as_str()
        .unwrap();
    assert!(redacted.contains("<CREDIT_CARD>") && redacted.contains("<EMAIL_ADDRESS>"));
    assert!(receiver.attempts.load(std::sync::atomic::Ordering::SeqCst) >= 6);
    // The in-process worker's span for each item: its delivery's `traceparent` names it, and it
    // ended `delivered` (the refused attempts ended `retry` in spans of their own).
    let item_span = |delivery: &common::tiers::Delivery| {
        let traceparent = delivery.traceparent.clone().expect("a traceparent header");
        let mut parts = traceparent.split('-').skip(1);
        let (trace, span) = (parts.next().unwrap(), parts.next().unwrap().to_owned());
        let found = eventually(Duration::from_secs(10), || {
            spans_of_trace(&spans, trace)
                .iter()
                .any(|s| s["spanId"] == span)
        });
        assert!(found, "no span {span} in trace {trace}");
        spans_of_trace(&spans, trace)
            .into_iter()
            .find(|s| s["spanId"] == span)
            .unwrap()
    };
    let mut traces = std::collections::BTreeSet::new();
    for id in &ids {
        let span = item_span(&got[id]);
        assert_eq!(
            (span["name"].as_str(), span["kind"].as_i64()),
            (Some("nearline item"), Some(5))
        );
        assert!(
            span["attributes"]
                .to_string()
                .contains(r#"{"stringValue":"delivered"}"#),
            "{span}"
        );
        traces.insert(span["traceId"].as_str().unwrap().to_owned());
    }
    let retried = traces
        .iter()
        .flat_map(|trace| spans_of_trace(&spans, trace))
        .filter(|s| {
            s["name"] == "nearline item"
                && s["attributes"]
                    .to_string()
                    .contains(r#"{"stringValue":"retry"}"#)
        })
        .count();
    assert!(
        retried >= 3,
        "the three refused deliveries ended in `retry` spans ({retried})"
    );
    // A nearline result is a prediction like any other: its item id names it in the audit
    // trail, and it can be corrected.
    assert_eq!(
        got[&ids[0]].body["result"]["prediction_id"],
        ids[0].as_str()
    );
    let correction =
        json!({"prediction_id": ids[0], "corrected_label": "neutral", "reviewer": "qa"});
    let r = server.post_json("/feedback", &correction.to_string());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let entry = server
        .request("GET", &format!("/audit/{}", ids[0]), &[], b"")
        .json();
    assert_eq!(
        (entry["tier"].as_str(), entry["route"].as_str()),
        (Some("nearline"), Some("queue"))
    );
    assert_eq!(entry["feedback"][0]["original_label"], "negative");
    // Raw PII never reached the queue, the results or the logs.
    let logs = server.logs();
    for secret in ["4111 1111 1111 1111", "jane.doe@example.com", "furious"] {
        assert!(!logs.contains(secret), "`{secret}` leaked into the log");
        for d in got.values() {
            assert!(!d.raw.contains(secret) || secret == "furious");
        }
    }
}

#[test]
fn jobs_are_checked_before_anything_is_queued() {
    let server = start(&[], &[]);
    let cases = [
        (json!({"items": []}), 422, "items"),
        (
            json!({"items": [{"text": "x"}], "callback_url": "http://10.1.2.3/hook"}),
            422,
            "callback_url",
        ),
        (
            json!({"items": [{"text": "x"}], "callback_url": "http://127.0.0.1:1/h\r\nx: y"}),
            422,
            "callback_url",
        ),
        (
            json!({"items": [{"text": "x", "id": "a b"}], "callback_url": "http://127.0.0.1:1/h"}),
            422,
            "items[0].id",
        ),
        (json!({"items": [{"text": 5}]}), 422, "items[0].text"),
    ];
    for (body, status, field) in cases {
        let r = server.post_json("/heavy/v1/jobs", &body.to_string());
        assert_eq!(
            r.status,
            status,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["error"]["field"], field, "{body}");
    }
    let r = server.request("GET", "/heavy/v1/jobs", &[], b"");
    assert_eq!(r.status, 405);
    let r = server.request("GET", "/heavy/v1/healthz", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["queue"], "embedded");
}

#[test]
fn low_confidence_and_priority_escalate_to_the_heavy_tier() {
    // A generous budget: this test is about routing, and CI runs tests side by side on 2 cores.
    let server = start(&["--variable=escalation_budget_ms=10000"], &[]);
    let body = json!({"text": "ok so the package came", "metadata": {"priority": "high"}});
    let r = server.post_json("/classify-sentiment", &body.to_string());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["tier"], "heavy", "{v}");
    assert_eq!(v["model"]["id"], "sentio-sentiment-teacher");
    assert_eq!(v["escalation"]["status"], "escalated");
    assert_eq!(v["escalation"]["reason"], "priority");
    assert_eq!(
        v["escalation"]["edge"][0]["model"]["id"],
        "sentio-sentiment-student"
    );

    // A confident edge answer at normal priority stays at the edge.
    let r = server.post_json("/classify-sentiment", &json!({"text": HAPPY}).to_string());
    let v = r.json();
    assert_eq!(v["tier"], "edge", "{v}");
    assert!(v.get("escalation").is_none());

    // Confidence threshold 1.0: every answer is "unsure", so it escalates.
    let server = start(
        &[
            "--variable=escalation_confidence_threshold=1",
            "--variable=escalation_budget_ms=10000",
        ],
        &[],
    );
    let r = server.post_json(
        "/classify-sentiment",
        &json!({"texts": [HAPPY, ANGRY]}).to_string(),
    );
    let v = r.json();
    assert_eq!(v["tier"], "heavy", "{v}");
    assert_eq!(v["escalation"]["reason"], "low_confidence");
    assert_eq!(v["results"][1]["label"], "negative");
}

#[test]
fn a_hanging_heavy_tier_costs_the_caller_the_budget_only_and_the_text_is_rescored_later() {
    // A heavy tier that accepts connections and never answers.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging_addr = hanging.local_addr().unwrap();
    let receiver = WebhookReceiver::start(0);
    let env = worker_env(&receiver);
    let heavy_url = format!("--variable=heavy_url=http://{hanging_addr}");
    let origin = format!("--variable=heavy_origin=http://{hanging_addr}");
    // The heavy tier gets three quarters of the budget (1125 ms), queueing the rest; generous
    // because CI runs tests side by side on 2 cores.
    let budget = "--variable=escalation_budget_ms=1500";
    let server = start(&[&heavy_url, &origin, budget], &env);
    let body = json!({"text": WITH_PII, "metadata": {"priority": "high", "customer_id": "c-42"}});
    let r = server.post_json("/classify-sentiment", &body.to_string());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["tier"], "edge", "{v}");
    let escalation = &v["escalation"];
    // The overflow URL is on another origin than heavy_origin here, so queueing is refused by
    // allowed_outbound_hosts: the answer says so and nothing waits.
    assert_eq!(escalation["status"], "failed", "{v}");
    assert!(
        escalation["detail"]
            .as_str()
            .unwrap()
            .contains("no answer within 1125 ms"),
        "{v}"
    );
    let elapsed = escalation["elapsed_ms"].as_f64().unwrap();
    assert!((1125.0..1500.0 + 500.0).contains(&elapsed), "{v}");
    drop(server);

    // With the hanging heavy tier on the allowed origin too, the text is queued instead.
    let server = start(
        &[
            &heavy_url,
            "--variable=heavy_origin=http://127.0.0.1:*",
            budget,
        ],
        &env,
    );
    let r = server.post_json("/classify-sentiment", &body.to_string());
    let v = r.json();
    let escalation = &v["escalation"];
    assert_eq!(escalation["status"], "deferred", "{v}");
    assert_eq!(escalation["reason"], "priority");
    let elapsed = escalation["elapsed_ms"].as_f64().unwrap();
    assert!((1125.0..1500.0 + 500.0).contains(&elapsed), "{v}");
    let item = escalation["item_ids"][0].as_str().unwrap().to_owned();
    assert_eq!(
        item,
        format!("{}:0", escalation["job_id"].as_str().unwrap())
    );
    assert_delivered(
        &receiver,
        std::slice::from_ref(&item),
        Duration::from_secs(60),
    );
    let delivered = &receiver.by_id()[&item];
    assert!(delivered.signature_ok);
    assert_eq!(delivered.body["source"], "deferred_escalation");
    assert_eq!(delivered.body["tier"], "nearline");
    assert_eq!(delivered.body["metadata"]["customer_id"], "c-42");
    assert!(!delivered.raw.contains("4111"), "raw PII reached the queue");
    drop(hanging);
}

#[test]
fn the_embedded_queue_keeps_accepted_items_across_kill_9() {
    let receiver = WebhookReceiver::start(0);
    let data = temp_dir("restart");
    let data_env = ("SENTIO_DATA_DIR", data.to_string_lossy().into_owned());
    // No webhook secret: no worker runs, items wait in the queue.
    let mut first = start(&[], std::slice::from_ref(&data_env));
    let accepted = submit_job(&first, &[ANGRY, HAPPY], &receiver.url);
    first.kill();

    let mut env = worker_env(&receiver);
    env.push(data_env);
    let second = start(&[], &env);
    let ids = item_ids(&accepted);
    assert_delivered(&receiver, &ids, Duration::from_secs(60));
    assert_eq!(receiver.by_id().len(), 2);
    drop(second);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn sqs_partial_failures_retry_and_poison_messages_end_in_the_dlq() {
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(sentio_queue::sqs::client(Some(&moto.endpoint), "us-east-1"));
    let (queue_url, dlq_url) = rt
        .block_on(sentio_queue::SqsQueue::create_with_dlq(
            &client,
            "tiers-test",
            Duration::from_secs(1),
            3,
        ))
        .unwrap();
    let receiver = WebhookReceiver::start(2);
    let mut env = worker_env(&receiver);
    env.extend(moto.env());
    env.push(("SENTIO_SQS_QUEUE_URL", queue_url.clone()));
    env.push(("SENTIO_SQS_DLQ_URL", dlq_url.clone()));
    let server = start(&[], &env);
    let r = server.request("GET", "/heavy/v1/healthz", &[], b"");
    assert_eq!(r.json()["queue"], "sqs");

    let accepted = submit_job(&server, &[ANGRY, HAPPY, WITH_PII], &receiver.url);
    // A message no worker can read, sent straight to the queue by a misbehaving producer.
    let queue = rt.block_on(sentio_queue::SqsQueue::connect(
        &sentio_queue::SqsSettings {
            endpoint: Some(moto.endpoint.clone()),
            region: "us-east-1".into(),
            queue_url: queue_url.clone(),
            dlq_url: Some(dlq_url.clone()),
        },
    ));
    rt.block_on(queue.send(&["{not an envelope".to_owned()]))
        .unwrap();

    assert_delivered(&receiver, &item_ids(&accepted), Duration::from_secs(60));
    let dead = eventually(Duration::from_secs(30), || {
        rt.block_on(queue.depth()).unwrap().dead == 1
    });
    assert!(
        dead,
        "the poison message did not reach the DLQ: {:?}",
        rt.block_on(queue.depth())
    );
    assert_eq!(
        rt.block_on(queue.peek_dead_letters()).unwrap(),
        ["{not an envelope"]
    );
    let depth = rt.block_on(queue.depth()).unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 0), "{depth:?}");
    assert_eq!(receiver.by_id().len(), 3);
}

#[test]
fn the_worker_lambda_scores_sqs_batches_under_the_runtime_emulator() {
    let moto = Moto::start();
    let receiver = WebhookReceiver::start(0);
    let mut worker_env = worker_env(&receiver);
    worker_env.push(("SENTIO_WEBHOOK_TIMEOUT_MS", "5000".to_owned()));
    let worker = LambdaFunction::start("queue-worker", &worker_env);
    let mut env = moto.env();
    env.push(("SENTIO_WORKER_INVOKE_URL", worker.invoke_url()));
    env.push(("SENTIO_QUEUE_VISIBILITY_SECS", "2".to_owned()));
    let server = start(&[], &env);
    let accepted = submit_job(&server, &[ANGRY, HAPPY], &receiver.url);
    let ids = item_ids(&accepted);
    assert_delivered(&receiver, &ids, Duration::from_secs(90));

    // Duplicate delivery: the same envelope queued again (an SQS at-least-once redelivery) must
    // not produce a second, different result.
    let envelope = json!({
        "version": 1, "job_id": "job_dup", "item_id": "job_dup:0", "source": "workflow",
        "redacted_text": "The replacement part never arrived.", "enqueued_at_ms": 1,
        "callback_url": receiver.url,
    })
    .to_string();
    let overflow = || {
        let r = server.request(
            "POST",
            "/heavy/v1/overflow",
            &[("content-type", "application/json")],
            envelope.as_bytes(),
        );
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    };
    overflow();
    assert_delivered(
        &receiver,
        &["job_dup:0".to_owned()],
        Duration::from_secs(60),
    );
    overflow();
    // Both copies are consumed; `by_id` panics if they had produced different bodies. The
    // worker's CloudWatch EMF record for the batch counts the copy as already delivered.
    assert!(
        eventually(Duration::from_secs(30), || worker
            .logs()
            .contains(r#""ItemsAlreadyDelivered":1.0"#)),
        "the second copy was not recognised: {}",
        worker.logs()
    );
    assert_eq!(
        receiver.by_id()["job_dup:0"].body["result"]["label"],
        "negative"
    );
}

#[test]
fn the_heavy_lambda_answers_api_gateway_events_under_the_runtime_emulator() {
    let heavy = LambdaFunction::start(
        "heavy-classify",
        &[("SENTIO_HEAVY_API_KEY", "k-123".to_owned())],
    );
    let event = |key: &str| {
        let mut event: Value =
            serde_json::from_str(include_str!("fixtures/apigw-v2-classify.json")).unwrap();
        event["headers"]["x-api-key"] = json!(key);
        event.to_string()
    };
    let invoke = |body: String| {
        common::http_request(
            &heavy.addr(),
            "POST",
            "/2015-03-31/functions/_/invocations",
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
    };
    let r = invoke(event("k-123"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let response = r.json();
    assert_eq!(response["statusCode"], 200, "{response}");
    let answer: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["tier"], "heavy");
    assert_eq!(answer["results"][0]["label"], "negative");
    assert_eq!(answer["results"][1]["label"], "positive");
    assert!(
        answer["results"][0]["redacted_text"]
            .as_str()
            .unwrap()
            .contains("<EMAIL_ADDRESS>")
    );

    let r = invoke(event("wrong"));
    let response = r.json();
    assert_eq!(response["statusCode"], 401, "{response}");
    let heavy_logs = heavy.logs();
    assert!(
        !heavy_logs.contains("angry.customer@example.com"),
        "PII in the Lambda log"
    );
}

/// An API Gateway HTTP API (v2) event for the heavy Lambda, from the committed fixture.
fn apigw_event(method: &str, path: &str, body: &str) -> String {
    let mut event: Value =
        serde_json::from_str(include_str!("fixtures/apigw-v2-classify.json")).unwrap();
    event["routeKey"] = json!(format!("{method} {path}"));
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["requestContext"]["routeKey"] = json!(format!("{method} {path}"));
    event["headers"]["x-api-key"] = json!("k-123");
    event["body"] = json!(body);
    event.to_string()
}

/// Invokes a Lambda synchronously; returns the function's answer.
fn invoke(lambda: &LambdaFunction, event: &str) -> Value {
    let r = common::http_request(
        &lambda.addr(),
        "POST",
        "/2015-03-31/functions/_/invocations",
        &[("content-type", "application/json")],
        event.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Invokes the worker Lambda with an SQS event of one message holding `envelope`; it must answer
/// with no item to retry.
fn invoke_worker_with(worker: &LambdaFunction, message_id: &str, envelope: &Value) {
    let event = json!({"Records": [{
        "messageId": message_id, "receiptHandle": format!("r-{message_id}"),
        "body": envelope.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs",
    }]});
    let response = invoke(worker, &event.to_string());
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
}

/// Invokes the heavy Lambda with an API Gateway event: (status, parsed body).
fn call_heavy(heavy: &LambdaFunction, method: &str, path: &str, body: &str) -> (u64, Value) {
    let response = invoke(heavy, &apigw_event(method, path, body));
    let status = response["statusCode"].as_u64().unwrap();
    let body = response["body"].as_str().unwrap_or("null");
    (status, serde_json::from_str(body).unwrap())
}

#[test]
fn the_lambdas_keep_the_audit_trail_and_feedback_in_s3_and_export_it() {
    const BUCKET: &str = "sentio-audit";
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let mut env = moto.env();
    env.push(("SENTIO_AUDIT_BUCKET", BUCKET.to_owned()));
    env.push(("SENTIO_AUDIT_PREFIX", "prod".to_owned()));
    env.push(("SENTIO_HEAVY_API_KEY", "k-123".to_owned()));
    let heavy = LambdaFunction::start("heavy-classify", &env);

    // A heavy-tier prediction is recorded before the answer goes out.
    let classify = json!({"texts": [WITH_PII, HAPPY], "metadata": {"channel": "chat"}});
    let (status, answer) = call_heavy(&heavy, "POST", "/v1/classify", &classify.to_string());
    assert_eq!(status, 200, "{answer}");
    // The heavy API's answers, checked against the OpenAPI document at the end.
    let mut cases =
        vec![json!({"what": "classify", "schema": "ClassifyResponse", "value": answer})];
    let mut wrong = answer.clone();
    wrong["results"][0]["label"] = json!("angry");
    cases.push(json!({"what": "canary", "schema": "ClassifyResponse", "value": wrong, "expect_error": true}));
    let pii_id = answer["results"][0]["prediction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let happy_id = answer["results"][1]["prediction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys = moto.list_keys(BUCKET, "prod/predictions/");
    for id in [&pii_id, &happy_id] {
        assert!(
            keys.contains(&format!("prod/predictions/{id}.json")),
            "{id} not recorded: {keys:?}"
        );
    }

    // Corrections: typed errors first, then one that is stored.
    let feedback = |id: &str, label: &str| {
        json!({"prediction_id": id, "corrected_label": label, "reviewer": "agent-7"}).to_string()
    };
    let refused = [
        (feedback("req_nope.0", "neutral"), "prediction_id"),
        (feedback("../predictions/x", "neutral"), "prediction_id"),
        (feedback(&pii_id, "furious"), "corrected_label"),
        (
            json!({"prediction_id": pii_id, "corrected_label": "neutral", "reviewer": " "})
                .to_string(),
            "reviewer",
        ),
    ];
    for (body, field) in refused {
        let (status, error) = call_heavy(&heavy, "POST", "/v1/feedback", &body);
        cases.push(json!({"what": format!("refused {field}"), "schema": "Error", "value": error}));
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}: {error}"
        );
    }
    let (status, stored) = call_heavy(
        &heavy,
        "POST",
        "/v1/feedback",
        &feedback(&pii_id, "neutral"),
    );
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["original_label"], answer["results"][0]["label"]);
    cases.push(json!({"what": "feedback", "schema": "FeedbackRecord", "value": stored}));

    // The audit entry: the redacted text, never the raw one, and the correction.
    let (status, entry) = call_heavy(&heavy, "GET", &format!("/v1/audit/{pii_id}"), "");
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["tier"], "heavy");
    assert_eq!(entry["feedback"][0]["corrected_label"], "neutral");
    cases.push(json!({"what": "audit", "schema": "AuditEntry", "value": entry}));
    let (status, health) = call_heavy(&heavy, "GET", "/v1/healthz", "");
    assert_eq!(status, 200, "{health}");
    cases.push(json!({"what": "healthz", "schema": "Health", "value": health}));
    let text = entry["redacted_text"].as_str().unwrap();
    assert!(
        text.contains("<EMAIL_ADDRESS>") && !text.contains("jane.doe"),
        "{text}"
    );
    let (status, _) = call_heavy(&heavy, "GET", "/v1/audit/req_nope.0", "");
    assert_eq!(status, 404);

    // A nearline prediction: the worker records it before delivering it, under its item id,
    // which the delivery carries so the receiver can correct it too.
    let receiver = WebhookReceiver::start(0);
    let mut worker_env = worker_env(&receiver);
    worker_env.extend(env.iter().cloned());
    let worker = LambdaFunction::start("queue-worker", &worker_env);
    let envelope = json!({
        "version": 1, "job_id": "job_s3", "item_id": "job_s3:0", "source": "workflow",
        "redacted_text": "The replacement part never arrived and nobody calls back.",
        "enqueued_at_ms": 1, "metadata": {"channel": "email"},
    });
    invoke_worker_with(&worker, "m-1", &envelope);
    assert_delivered(&receiver, &["job_s3:0".to_owned()], Duration::from_secs(30));
    let delivered = &receiver.by_id()["job_s3:0"].body;
    assert_eq!(delivered["result"]["prediction_id"], "job_s3:0");
    let (status, stored) = call_heavy(
        &heavy,
        "POST",
        "/v1/feedback",
        &feedback("job_s3:0", "neutral"),
    );
    assert_eq!(status, 201, "{stored}");
    let (_, entry) = call_heavy(&heavy, "GET", "/v1/audit/job_s3:0", "");
    assert_eq!(
        (entry["tier"].as_str(), entry["route"].as_str()),
        (Some("nearline"), Some("queue"))
    );
    cases.push(json!({"what": "nearline audit", "schema": "AuditEntry", "value": entry}));

    // The edge on Spin keeps no store: after answering, it sends its predictions' records to
    // the heavy tier's `POST /v1/audit` (here the Lambda, through cargo-lambda's function URL).
    let edge = start(
        &[
            &format!(
                "--variable=audit_url=http://{}/lambda-url/_/v1/audit",
                heavy.addr()
            ),
            "--variable=audit_api_key=k-123",
            "--variable=heavy_origin=http://127.0.0.1:*",
            // Answered at the edge, so the records are the edge's.
            "--variable=heavy_url=",
            "--variable=overflow_url=",
        ],
        &[],
    );
    let classified = edge
        .post_json(
            "/classify-sentiment",
            &json!({"text": WITH_PII, "metadata": {"channel": "chat"}}).to_string(),
        )
        .json();
    let conversation = edge
        .post_json(
            "/analyze-conversation",
            &json!({"turns": [{"speaker": "customer", "text": ANGRY},
                              {"speaker": "agent", "text": "Sorry, let me check."}]})
            .to_string(),
        )
        .json();
    let streamed = edge.request(
        "POST",
        "/stream-sentiment",
        &[("content-type", "application/x-ndjson")],
        format!("{}\n", json!({"text": HAPPY, "id": "m1"})).as_bytes(),
    );
    let streamed: Value =
        serde_json::from_slice(streamed.body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let edge_ids: Vec<String> = [
        &classified["prediction_id"],
        &conversation["turns"][0]["prediction_id"],
        &conversation["turns"][1]["prediction_id"],
        &streamed["prediction_id"],
    ]
    .iter()
    .map(|id| {
        id.as_str()
            .unwrap_or_else(|| panic!("no prediction id: {classified} {conversation} {streamed}"))
            .to_owned()
    })
    .collect();
    let recorded = common::eventually(Duration::from_secs(20), || {
        let keys = moto.list_keys(BUCKET, "prod/predictions/");
        edge_ids
            .iter()
            .all(|id| keys.contains(&format!("prod/predictions/{id}.json")))
    });
    assert!(
        recorded,
        "the edge's records did not arrive: {edge_ids:?}\n{}",
        edge.logs()
    );
    let (_, entry) = call_heavy(&heavy, "GET", &format!("/v1/audit/{}", edge_ids[0]), "");
    assert_eq!(
        (
            entry["tier"].as_str(),
            entry["route"].as_str(),
            &entry["label"]
        ),
        (
            Some("edge"),
            Some("/classify-sentiment"),
            &classified["label"]
        ),
        "{entry}"
    );
    assert!(
        entry["redacted_text"]
            .as_str()
            .unwrap()
            .contains("<CREDIT_CARD>"),
        "{entry}"
    );
    let (_, entry) = call_heavy(&heavy, "GET", &format!("/v1/audit/{}", edge_ids[3]), "");
    assert_eq!(entry["route"], "/stream-sentiment", "{entry}");
    let (status, _) = call_heavy(
        &heavy,
        "POST",
        "/v1/feedback",
        &feedback(&edge_ids[0], "negative"),
    );
    assert_eq!(status, 201);

    // The route itself: typed errors name the record and field; a good batch is stored.
    let mut record = entry.clone();
    record.as_object_mut().unwrap().remove("feedback");
    record["prediction_id"] = json!("req_forwarded.0");
    for (body, field) in [
        (json!({"records": []}), "records"),
        (
            json!({"records": [record.clone(), {"prediction_id": "x"}]}),
            "records[1].at_ms",
        ),
    ] {
        let (status, error) = call_heavy(&heavy, "POST", "/v1/audit", &body.to_string());
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some(field)),
            "{error}"
        );
    }
    let batch = json!({"records": [record]});
    let (status, recorded) = call_heavy(&heavy, "POST", "/v1/audit", &batch.to_string());
    assert_eq!(
        (status, &recorded["recorded"]),
        (201, &json!(1)),
        "{recorded}"
    );
    cases.push(json!({"what": "forwarded records", "schema": "ForwardedRecords", "value": batch}));
    cases.push(json!({"what": "recorded", "schema": "Recorded", "value": recorded}));
    common::check_openapi(&common::openapi_document(), &cases);

    // The training set, exported from the bucket by the CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentio"))
        .args(["feedback", "export", "--s3-bucket", BUCKET])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut ids: Vec<&str> = lines
        .iter()
        .map(|l| l["prediction_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want = vec![pii_id.as_str(), "job_s3:0", edge_ids[0].as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "{lines:?}");
    let labels: Vec<&str> = lines.iter().map(|l| l["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels.iter().filter(|l| **l == "neutral").count(),
        2,
        "{lines:?}"
    );
    println!(
        "S3 audit: {} prediction objects, {} feedback objects, {} exported",
        moto.list_keys(BUCKET, "prod/predictions/").len(),
        moto.list_keys(BUCKET, "prod/feedback/").len(),
        lines.len()
    );

    for logs in [heavy.logs(), worker.logs(), edge.logs()] {
        assert!(!logs.contains("jane.doe"), "PII in a log");
    }
}

#[test]
fn the_lambdas_export_spans_that_continue_the_callers_trace() {
    let (collector, received) = common::otlp_receiver();
    let otel = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
        ("OTEL_SERVICE_NAME", "sentio-lambda-test".to_owned()),
        ("SENTIO_HEAVY_API_KEY", "k-123".to_owned()),
    ];
    let heavy = LambdaFunction::start("heavy-classify", &otel);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut event: Value = serde_json::from_str(&apigw_event(
        "POST",
        "/v1/classify",
        &json!({"text": WITH_PII}).to_string(),
    ))
    .unwrap();
    event["headers"]["traceparent"] = json!(format!("00-{trace}-{caller_span}-01"));
    let response = invoke(&heavy, &event.to_string());
    assert_eq!(response["statusCode"], 200, "{response}");
    // Flushed before the invocation answered: the span is there now, not in a second.
    let spans = spans_of_trace(&received, trace);
    let server = span_named(&spans, "POST /v1/classify");
    assert_eq!(server["parentSpanId"], caller_span);
    assert_eq!(server["kind"], 2);

    // The worker: one consumer span per item, a child of the envelope's context, whose own
    // context goes on with the delivery.
    // This one exports OTLP JSON; the heavy Lambda above used the protobuf default.
    let receiver = WebhookReceiver::start(0);
    let mut env = worker_env(&receiver);
    env.extend(otel.iter().cloned());
    env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()));
    let worker = LambdaFunction::start("queue-worker", &env);
    let queued_by = "b7ad6b7169203331";
    let envelope = json!({
        "version": 1, "job_id": "job_tr", "item_id": "job_tr:0", "source": "workflow",
        "redacted_text": "Still waiting for my refund.", "enqueued_at_ms": 1,
        "traceparent": format!("00-{trace}-{queued_by}-01"),
    });
    invoke_worker_with(&worker, "m-tr", &envelope);
    let spans = spans_of_trace(&received, trace);
    let item = span_named(&spans, "nearline item");
    assert_eq!(item["parentSpanId"], queued_by);
    assert_eq!(item["kind"], 5);
    let attribute = |key: &str| {
        item["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"]["stringValue"].clone())
    };
    assert_eq!(attribute("sentio.outcome"), Some(json!("delivered")));
    let delivery = &receiver.by_id()["job_tr:0"];
    assert_eq!(
        delivery.traceparent.as_deref(),
        Some(format!("00-{trace}-{}-01", item["spanId"].as_str().unwrap()).as_str())
    );
    let content_types: std::collections::BTreeSet<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|body| body["contentType"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        content_types.into_iter().collect::<Vec<_>>(),
        ["application/json", "application/x-protobuf"]
    );
    let exported = serde_json::to_string(&*received.lock().unwrap()).unwrap();
    assert!(exported.contains("sentio-lambda-test"));
    for secret in [
        "jane.doe@example.com",
        "4111 1111 1111 1111",
        "Still waiting",
    ] {
        assert!(!exported.contains(secret), "`{secret}` in a span");
    }
}

#[test]
fn a_tenants_deferred_text_stays_that_tenants_prediction_through_the_queue() {
    // With keys on, a text the edge defers to the nearline tier comes back as the tenant's own
    // prediction: the envelope, the delivery and the audit record carry the tenant, so the
    // tenant's key can correct it and another tenant's cannot see it.
    const ACME: &str = "sk_test_acme_nearline_0001";
    const GLOBEX: &str = "sk_test_globex_nearline_0002";
    let dir = temp_dir("tenant-nearline");
    let access = dir.join("access.toml");
    let key = |id: &str, secret: &str| {
        format!(
            "[[key]]\nid = \"{id}\"\ntenant = \"{id}\"\nsha256 = \"{}\"\nscopes = [\"classify\", \"feedback\", \"audit\"]\n",
            sentio_ops::access::hash_key(secret)
        )
    };
    std::fs::write(&access, key("acme", ACME) + &key("globex", GLOBEX)).unwrap();
    let receiver = WebhookReceiver::start(0);
    let mut env = worker_env(&receiver);
    env.push(("SENTIO_ACCESS_FILE", access.to_str().unwrap().to_owned()));
    // Every text is "low confidence", and priority low sends it straight to the queue.
    let server = start(&["--variable=escalation_confidence_threshold=1"], &env);
    let call = |path: &str, secret: &str, body: &Value| {
        let auth = format!("Bearer {secret}");
        server.request(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            body.to_string().as_bytes(),
        )
    };
    let classify = json!({"text": ANGRY, "metadata": {"priority": "low", "channel": "chat"}});
    let answer = call("/classify-sentiment", ACME, &classify).json();
    assert_eq!(answer["escalation"]["status"], "deferred", "{answer}");
    let item = answer["escalation"]["item_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert_delivered(
        &receiver,
        std::slice::from_ref(&item),
        Duration::from_secs(60),
    );
    let delivered = &receiver.by_id()[&item].body;
    assert_eq!(delivered["tenant"], "acme", "{delivered}");

    let correction =
        json!({"prediction_id": item, "corrected_label": "neutral", "reviewer": "agent-7"});
    let other = call("/feedback", GLOBEX, &correction);
    assert_eq!(
        other.status, 422,
        "another tenant corrected acme's prediction"
    );
    let own = call("/feedback", ACME, &correction);
    assert_eq!(own.status, 201, "{}", String::from_utf8_lossy(&own.body));
    let audit = server.request(
        "GET",
        &format!("/audit/{item}"),
        &[("authorization", &format!("Bearer {ACME}"))],
        b"",
    );
    let entry = audit.json();
    assert_eq!(
        (
            entry["tenant"].as_str(),
            entry["tier"].as_str(),
            entry["feedback"][0]["corrected_label"].as_str()
        ),
        (Some("acme"), Some("nearline"), Some("neutral")),
        "{entry}"
    );
}
