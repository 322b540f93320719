//! Faults, each against real servers on 127.0.0.1: the worker killed mid-batch, the SQS server
//! stopped and restarted, a webhook receiver failing for a while, the heavy tier down during an
//! escalation. The promise checked each time: every accepted item is scored and delivered, and a
//! receiver that de-duplicates by `Sentio-Delivery-Id` sees each item exactly once (a repeated id
//! always carries the same body). Each test prints its counts.
//! (`sentio serve` restarted with items waiting in its embedded queue is in `tiers.rs`.)

mod common;

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::tiers::{Moto, WEBHOOK_SECRET, WebhookReceiver};
use common::{Server, eventually, temp_dir};
use serde_json::{Value, json};

fn start(envs: &[(&str, String)], args: &[&str]) -> Server {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(args, &envs)
}

fn worker_env(receiver: &WebhookReceiver) -> Vec<(&'static str, String)> {
    vec![
        ("SENTIO_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("SENTIO_DEFAULT_CALLBACK_URL", receiver.url.clone()),
        ("SENTIO_QUEUE_VISIBILITY_SECS", "2".to_owned()),
    ]
}

fn job_body(texts: &[String], callback: &str) -> String {
    let items: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": format!("m{i}"), "text": t}))
        .collect();
    json!({"items": items, "callback_url": callback}).to_string()
}

fn submit(server: &Server, texts: &[String], callback: &str) -> Vec<String> {
    let r = server.post_json("/heavy/v1/jobs", &job_body(texts, callback));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.json()["item_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn texts(n: usize, salt: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("{salt} message {i}: the delivery was late again and I am not happy"))
        .collect()
}

/// Waits until every id arrived; returns (attempts, deliveries, distinct ids) for the record.
fn await_all(
    receiver: &WebhookReceiver,
    ids: &[String],
    within: Duration,
) -> (usize, usize, usize) {
    let all = eventually(within, || {
        let got = receiver.by_id();
        ids.iter().all(|id| got.contains_key(id))
    });
    let by_id = receiver.by_id(); // panics if one id came with two different bodies
    assert!(
        all,
        "{} of {} items delivered",
        ids.iter().filter(|id| by_id.contains_key(*id)).count(),
        ids.len()
    );
    assert!(by_id.values().all(|d| d.signature_ok));
    (
        receiver.attempts.load(Ordering::SeqCst),
        receiver.deliveries().len(),
        by_id.len(),
    )
}

#[test]
fn the_worker_killed_mid_batch_loses_nothing() {
    // A slow receiver keeps a batch in flight; `sentio serve` (queue, poller and worker in one
    // process) is killed -9 after the first deliveries and started again on the same data.
    let receiver = WebhookReceiver::start_slow(0, Duration::from_millis(300));
    let data = temp_dir("kill-mid-batch");
    let mut env = worker_env(&receiver);
    env.push(("SENTIO_DATA_DIR", data.to_string_lossy().into_owned()));
    let mut first = start(&env, &[]);
    let ids = submit(&first, &texts(12, "kill"), &receiver.url);
    let started = eventually(Duration::from_secs(60), || receiver.deliveries().len() >= 2);
    assert!(started, "no delivery began");
    first.kill();
    let before_kill = receiver.by_id().len();
    assert!(before_kill < ids.len(), "the kill came after the whole job");

    let second = start(&env, &[]);
    let (attempts, deliveries, distinct) = await_all(&receiver, &ids, Duration::from_secs(120));
    assert_eq!(distinct, ids.len());
    println!(
        "kill -9 mid-batch: accepted {}, delivered before the kill {before_kill}, \
         attempts {attempts}, deliveries {deliveries}, distinct ids {distinct}, \
         repeated ids {}",
        ids.len(),
        deliveries - distinct
    );
    drop(second);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn an_sqs_outage_refuses_new_jobs_and_the_worker_resumes_after_it() {
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let create = |endpoint: String| {
        rt.block_on(async {
            let client = sentio_queue::sqs::client(Some(&endpoint), "us-east-1").await;
            sentio_queue::SqsQueue::create_with_dlq(&client, "faults", Duration::from_secs(2), 5)
                .await
                .unwrap()
        })
    };
    let (queue_url, dlq_url) = create(moto.endpoint.clone());
    let receiver = WebhookReceiver::start(0);
    let mut env = worker_env(&receiver);
    env.extend(moto.env());
    env.push(("SENTIO_SQS_QUEUE_URL", queue_url.clone()));
    env.push(("SENTIO_SQS_DLQ_URL", dlq_url.clone()));
    let server = start(&env, &[]);
    let before = submit(&server, &texts(3, "before"), &receiver.url);
    await_all(&receiver, &before, Duration::from_secs(60));

    // The SQS server goes away: a job is refused as a typed 503 (so nothing is accepted that
    // could be lost) and the poller keeps trying.
    let port = moto.port();
    drop(moto);
    let refused = server.post_json(
        "/heavy/v1/jobs",
        &job_body(&texts(2, "during"), &receiver.url),
    );
    assert_eq!(
        refused.status,
        503,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert_eq!(refused.json()["error"]["kind"], "unavailable");
    std::thread::sleep(Duration::from_secs(3));

    // It comes back on the same address (empty: moto keeps nothing across a restart, so the
    // queues are created again, as an operator's stack would).
    let moto = Moto::start_on(port);
    let (again, _) = create(moto.endpoint.clone());
    assert_eq!(again, queue_url);
    let after = submit(&server, &texts(3, "after"), &receiver.url);
    let (attempts, deliveries, distinct) = await_all(&receiver, &after, Duration::from_secs(90));
    println!(
        "SQS outage: accepted {} before and {} after, 1 job refused during; attempts {attempts}, \
         deliveries {deliveries}, distinct ids {distinct}",
        before.len(),
        after.len()
    );
    assert_eq!(distinct, before.len() + after.len());
    let health = server.request("GET", "/heavy/v1/healthz", &[], b"");
    assert_eq!(health.status, 200);
}

#[test]
fn a_webhook_failing_for_a_while_gets_every_item_once() {
    // The first 8 attempts fail with 500: the items come back after the visibility timeout.
    let receiver = WebhookReceiver::start(8);
    let server = start(&worker_env(&receiver), &[]);
    let ids = submit(&server, &texts(6, "webhook"), &receiver.url);
    let (attempts, deliveries, distinct) = await_all(&receiver, &ids, Duration::from_secs(120));
    assert_eq!(distinct, ids.len());
    assert!(attempts >= 8 + ids.len());
    println!(
        "webhook 500 x8: accepted {}, attempts {attempts}, deliveries {deliveries}, distinct ids \
         {distinct}",
        ids.len()
    );
}

#[test]
fn the_heavy_tier_down_during_an_escalation_defers_the_text() {
    // Nothing listens on the heavy tier's address: the edge answers with its own result at once
    // and the text goes to the overflow queue, to be delivered by webhook.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    let receiver = WebhookReceiver::start(0);
    let server = start(
        &worker_env(&receiver),
        &[
            &format!("--variable=heavy_url=http://{down}"),
            "--variable=heavy_origin=http://127.0.0.1:*",
        ],
    );
    let body = json!({"text": "I want a refund now, this is ridiculous",
                      "metadata": {"priority": "high", "customer_id": "c-7"}});
    let r = server.post_json("/classify-sentiment", &body.to_string());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["tier"], "edge", "{v}");
    assert_eq!(v["escalation"]["status"], "deferred", "{v}");
    let elapsed = v["escalation"]["elapsed_ms"].as_f64().unwrap();
    assert!(
        elapsed < 400.0,
        "a refused connection should not cost the budget: {v}"
    );
    let item = v["escalation"]["item_ids"][0].as_str().unwrap().to_owned();
    let (attempts, deliveries, distinct) = await_all(
        &receiver,
        std::slice::from_ref(&item),
        Duration::from_secs(60),
    );
    let delivered = &receiver.by_id()[&item];
    assert_eq!(delivered.body["source"], "deferred_escalation");
    assert_eq!(delivered.body["metadata"]["customer_id"], "c-7");
    println!(
        "heavy tier down: 1 deferred in {elapsed:.1} ms; attempts {attempts}, deliveries \
         {deliveries}, distinct ids {distinct}"
    );
}
