//! The sentiment endpoints through a real `sentio serve` on 127.0.0.1, hosting the pre-initialized
//! edge-classify component with the committed student model.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

/// The edge alone: routing to the other tiers is off (empty URLs), so every answer is the
/// student's. `tests/tiers.rs` covers escalation.
fn server() -> Server {
    common::component_path("edge_classify.preinit");
    Server::start(&["--variable", "heavy_url=", "--variable", "overflow_url="])
}

fn classify(server: &Server, body: Value) -> common::Response {
    server.post_json("/classify-sentiment", &body.to_string())
}

fn probabilities_sum_to_one(scores: &Value) {
    let sum: f64 = ["negative", "neutral", "positive"]
        .iter()
        .map(|k| scores[k].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-3, "scores {scores} sum to {sum}");
}

#[test]
fn classifies_redacted_text_with_model_and_metadata() {
    let server = server();
    let email = "jane.doe@example.com";
    let r = classify(
        &server,
        json!({
            "text": format!("This is the worst service ever, I am furious. Email me at {email}"),
            "metadata": {"customer_id": "c-42", "channel": "chat", "priority": "high"}
        }),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["label"], "negative", "{v}");
    probabilities_sum_to_one(&v["scores"]);
    let confidence = v["confidence"].as_f64().unwrap();
    assert!((confidence - v["scores"]["negative"].as_f64().unwrap()).abs() < 1e-6);
    assert_eq!(v["tier"], "edge");
    assert_eq!(v["model"]["id"], "sentio-sentiment-student");
    assert_eq!(v["model"]["engine"], "tract");
    assert_eq!(v["metadata"]["customer_id"], "c-42");
    assert_eq!(v["metadata"]["priority"], "high");
    assert_eq!(v["pii"]["EMAIL_ADDRESS"], 1);
    assert!(
        v["redacted_text"]
            .as_str()
            .unwrap()
            .ends_with("<EMAIL_ADDRESS>")
    );
    assert!(
        !String::from_utf8_lossy(&r.body).contains(email),
        "raw PII echoed"
    );
    assert!(v["timing"]["classify_ms"].as_f64().unwrap() > 0.0);
    assert!(
        !server.logs().contains(email) && !server.logs().contains("furious"),
        "customer text in logs"
    );

    let positive = classify(
        &server,
        json!({"text": "Thank you so much, the agent was amazing and fixed everything!"}),
    )
    .json();
    assert_eq!(positive["label"], "positive", "{positive}");
}

#[test]
fn batches_keep_order_and_sentences_have_spans() {
    let server = server();
    let r = classify(
        &server,
        json!({"texts": [
            "I love this app, it works perfectly!",
            "My order never arrived and nobody answers. Terrible.",
            "Olá 👋 The room was lovely. But the staff were rude and the bill was wrong!"
        ]}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["label"], "positive");
    assert_eq!(results[1]["label"], "negative");
    let sentences = results[2]["sentences"].as_array().unwrap();
    assert_eq!(sentences.len(), 2, "{}", results[2]);
    assert_eq!(sentences[0]["text"], "Olá 👋 The room was lovely.");
    // Offsets for every client: the emoji is 4 bytes, 1 char and 2 UTF-16 units (a surrogate pair).
    assert_eq!(sentences[1]["span"]["bytes"], json!([31, 78]));
    assert_eq!(sentences[1]["span"]["chars"], json!([27, 74]));
    assert_eq!(sentences[1]["span"]["utf16"], json!([28, 75]));
    assert_eq!(sentences[0]["label"], "positive", "{sentences:?}");
    assert_eq!(sentences[1]["label"], "negative", "{sentences:?}");
    for s in sentences {
        probabilities_sum_to_one(&s["scores"]);
    }
    let no_sentences = classify(&server, json!({"text": "Good. Bad.", "sentences": false})).json();
    assert!(no_sentences.get("sentences").is_none());
}

#[test]
fn odd_texts_have_defined_answers() {
    let server = server();
    for blank in ["", "   \n\t "] {
        let v = classify(&server, json!({ "text": blank })).json();
        assert_eq!(v["label"], "neutral");
        assert_eq!(v["tokens"], 0);
        assert_eq!(v["chunks"], 0);
        assert_eq!(v["scores"]["neutral"], 1.0);
    }
    for text in [
        "😡😡😡",
        "最悪のサービスです。 Très mauvais service! плохо",
        "?!?!",
    ] {
        let r = classify(&server, json!({ "text": text }));
        assert_eq!(
            r.status,
            200,
            "{text}: {}",
            String::from_utf8_lossy(&r.body)
        );
        probabilities_sum_to_one(&r.json()["scores"]);
    }
    // Emoji reach the model by name ("enraged face"); as `[UNK]` every emoji-only message got
    // the same answer, positive.
    for (text, label) in [("😡😡😡", "negative"), ("😍", "positive")] {
        let v = classify(&server, json!({ "text": text })).json();
        assert_eq!(v["label"], label, "{text}: {v}");
        assert_eq!(
            v["redacted_text"], text,
            "the names are the model's input only"
        );
    }
    // 20 KB: chunked into many model inputs, sentence results capped. (Texts over
    // `max_request_tokens`, a 100 KB message among them, are refused: the next test.)
    let long = "The delivery was late again and support did not help me at all. ".repeat(300);
    let r = classify(&server, json!({ "text": long }));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert!(v["chunks"].as_u64().unwrap() > 30, "{}", v["chunks"]);
    assert_eq!(v["sentences"].as_array().unwrap().len(), 32);
    assert_eq!(v["sentences_truncated"], true);
    assert_eq!(v["label"], "negative");
}

/// A request holding more model tokens than `max_request_tokens` is refused before the model runs,
/// with a 422 naming the field and the count. Before the limit, a 247 KB message (within the
/// body limit) kept the component computing into the 30 s deadline and came back 504.
#[test]
fn requests_over_the_token_limit_get_a_422_naming_the_field() {
    let error = |r: common::Response| {
        assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
        r.json()["error"].clone()
    };
    let sentence = "The delivery was late again and support did not help me at all. ";

    let server = server();
    let huge = sentence.repeat(3800);
    assert!(huge.len() > 240_000);
    let e = error(classify(&server, json!({ "text": huge })));
    assert_eq!(e["field"], "text");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("max_request_tokens"), "{message}");
    assert!(
        !message.contains("delivery"),
        "the text is never echoed: {message}"
    );

    // A small limit: texts of one batch, turns of one conversation and one stream message count
    // against it, and a request at the limit is answered.
    let limit = 64;
    let small = Server::start(&[
        "--variable",
        "heavy_url=",
        "--variable",
        "overflow_url=",
        "--variable",
        &format!("max_request_tokens={limit}"),
    ]);
    let per_text = classify(&small, json!({ "text": sentence })).json()["tokens"]
        .as_u64()
        .unwrap() as usize;
    let fits = limit / per_text;
    assert!(fits >= 2, "{per_text} tokens a sentence");
    let r = classify(&small, json!({ "texts": vec![sentence; fits] }));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let e = error(classify(
        &small,
        json!({ "texts": vec![sentence; fits + 1] }),
    ));
    assert_eq!(e["field"], "texts");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("holds {} model tokens", (fits + 1) * per_text)),
        "{message}"
    );

    let turns: Vec<Value> = (0..=fits)
        .map(|_| json!({"speaker": "customer", "text": sentence}))
        .collect();
    let r = small.post_json(
        "/analyze-conversation",
        &json!({ "turns": turns }).to_string(),
    );
    assert_eq!(error(r)["field"], "turns");

    // In a stream the long message gets an error line and the next one its answer.
    let body = format!(
        "{}\n{}\n",
        json!({"id": "long", "text": sentence.repeat(fits + 1)}),
        json!({"id": "short", "text": sentence})
    );
    let r = small.request(
        "POST",
        "/stream-sentiment",
        &[("content-type", "application/x-ndjson")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200);
    let lines: Vec<Value> = String::from_utf8(r.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["error"]["field"], "text", "{}", lines[0]);
    assert_eq!(lines[1]["id"], "short");
    assert_eq!(lines[1]["label"], "negative", "{}", lines[1]);
}

#[test]
fn bad_requests_get_typed_errors() {
    let server = server();
    let field = |r: common::Response| {
        assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
        r.json()["error"]["field"].as_str().unwrap().to_owned()
    };
    assert_eq!(field(classify(&server, json!({}))), "text");
    assert_eq!(field(classify(&server, json!({"text": 5}))), "text");
    assert_eq!(
        field(classify(&server, json!({"text": "a", "texts": ["b"]}))),
        "texts"
    );
    assert_eq!(
        field(classify(&server, json!({"texts": vec!["x"; 65]}))),
        "texts"
    );
    assert_eq!(
        field(classify(&server, json!({"texts": ["a", null]}))),
        "texts[1]"
    );
    assert_eq!(
        field(classify(
            &server,
            json!({"text": "a", "metadata": {"priority": "asap"}})
        )),
        "metadata.priority"
    );
    assert_eq!(
        field(classify(&server, json!({"text": "a", "sentence": true}))),
        "sentence"
    );
    let conversation = |body: Value| server.post_json("/analyze-conversation", &body.to_string());
    assert_eq!(field(conversation(json!({"turns": []}))), "turns");
    assert_eq!(
        field(conversation(
            json!({"turns": [{"speaker": "robot", "text": "hi"}]})
        )),
        "turns[0].speaker"
    );
    assert_eq!(
        field(conversation(
            json!({"turns": [{"speaker": "agent", "text": "hi", "timestamp": "noon"}]})
        )),
        "turns[0].timestamp"
    );
    assert_eq!(
        field(conversation(
            json!({"turns": [{"speaker": "customer", "text": "hi"}], "escalation": {"negative": -0.5, "drop": 0.8, "window": 0}})
        )),
        "escalation.window"
    );

    let r = server.request(
        "POST",
        "/classify-sentiment",
        &[("content-type", "text/plain")],
        b"hello",
    );
    assert_eq!(r.status, 415);
    let r = server.request("GET", "/classify-sentiment", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = server.request(
        "POST",
        "/classify-sentiment",
        &[("content-type", "application/json")],
        b"{\"text\": ",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["kind"], "malformed_json");
}

#[test]
fn conversations_escalate_when_the_customer_turns_angry() {
    let server = server();
    let angry = json!({
        "turns": [
            {"speaker": "customer", "text": "Hi! I'm excited about my new phone, thanks for the quick delivery."},
            {"speaker": "agent", "text": "Great to hear! How can I help?"},
            {"speaker": "customer", "text": "It does not turn on. This is really annoying."},
            {"speaker": "agent", "text": "Sorry about that, please try holding the power button."},
            {"speaker": "customer", "text": "I did, it's still dead. Useless."},
            {"speaker": "customer", "text": "This is a disgrace. I want a refund right now or I'm cancelling everything."}
        ],
        "metadata": {"conversation_id": "conv-7"}
    });
    let r = server.post_json("/analyze-conversation", &angry.to_string());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["turns"].as_array().unwrap().len(), 6);
    assert_eq!(v["turns"][1]["speaker"], "agent");
    assert_eq!(v["speakers"]["customer"]["turns"], 4);
    assert_eq!(v["speakers"]["agent"]["turns"], 2);
    assert_eq!(v["customer_sentiment"]["label"], "negative", "{v}");
    assert_eq!(v["escalation"]["escalate"], true, "{}", v["escalation"]);
    assert!(
        v["escalation"]["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("negative_sentiment"))
    );
    assert_eq!(v["metadata"]["conversation_id"], "conv-7");

    let calm = json!({"turns": [
        {"speaker": "customer", "text": "Can I change my delivery address?"},
        {"speaker": "agent", "text": "Sure, I've updated it."},
        {"speaker": "customer", "text": "Perfect, thank you so much!"}
    ]});
    let v = server
        .post_json("/analyze-conversation", &calm.to_string())
        .json();
    assert_eq!(v["escalation"]["escalate"], false, "{}", v["escalation"]);
    assert_eq!(v["customer_sentiment"]["label"], "positive", "{v}");
}

/// Reads one `\n`-terminated line of a chunked response body (skipping chunk-size lines).
fn read_result_line(reader: &mut BufReader<TcpStream>) -> Value {
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream ended early"
        );
        let line = line.trim();
        if let Some(json) = line
            .strip_prefix("data: ")
            .or(Some(line))
            .filter(|l| l.starts_with('{'))
        {
            return serde_json::from_str(json).unwrap();
        }
    }
}

/// Opens `POST /stream-sentiment` with a chunked body that stays open: send lines with
/// [`send_chunk`], read answers from the reader (after [`skip_response_head`]).
fn open_stream(server: &Server) -> (TcpStream, BufReader<TcpStream>) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /stream-sentiment HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn send_chunk(stream: &mut TcpStream, data: &str) {
    write!(stream, "{:x}\r\n{data}\r\n", data.len()).unwrap();
    stream.flush().unwrap();
}

fn skip_response_head(reader: &mut BufReader<TcpStream>) {
    let mut head = String::new();
    while reader.read_line(&mut head).unwrap() > 2 {
        head.clear();
    }
}

#[test]
fn stream_answers_each_message_as_it_arrives() {
    let server = server();
    let (mut stream, mut reader) = open_stream(&server);

    // The first answer arrives while the request body is still open: real streaming.
    send_chunk(
        &mut stream,
        "{\"id\": \"m1\", \"text\": \"Hello, I love your product!\"}\n",
    );
    skip_response_head(&mut reader);
    let first = read_result_line(&mut reader);
    assert_eq!(first["seq"], 0);
    assert_eq!(first["id"], "m1");
    assert_eq!(first["label"], "positive", "{first}");
    assert_eq!(first["escalation"]["escalate"], false);

    send_chunk(&mut stream, "{\"text\": 12}\n");
    let bad = read_result_line(&mut reader);
    assert_eq!(bad["seq"], 1);
    assert_eq!(bad["error"]["field"], "text");

    for (i, text) in [
        "This is broken and useless.",
        "Worst support ever, I'm furious!",
        "I want a refund now, this is a disgrace.",
    ]
    .iter()
    .enumerate()
    {
        send_chunk(
            &mut stream,
            &format!("{}\n", json!({"id": format!("a{i}"), "text": text})),
        );
        let v = read_result_line(&mut reader);
        assert_eq!(v["seq"], 2 + i);
        assert_eq!(v["label"], "negative", "{v}");
    }
    send_chunk(
        &mut stream,
        "{\"text\": \"last line without newline\", \"speaker\": \"agent\"}",
    );
    write!(stream, "0\r\n\r\n").unwrap();
    let last = read_result_line(&mut reader);
    assert_eq!(last["seq"], 5);
    assert_eq!(last["speaker"], "agent");
    assert_eq!(last["escalation"]["escalate"], true, "{last}");
}

#[test]
fn stream_speaks_server_sent_events_when_asked() {
    let server = server();
    let body = "{\"text\": \"great, thanks\"}\n{\"text\": \"awful\"}\n";
    let r = server.request(
        "POST",
        "/stream-sentiment",
        &[
            ("content-type", "application/x-ndjson"),
            ("accept", "text/event-stream"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = String::from_utf8(r.body).unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    assert_eq!(events[1]["seq"], 1);
    let r = server.request(
        "POST",
        "/stream-sentiment",
        &[("content-type", "text/plain")],
        b"x",
    );
    assert_eq!(r.status, 415);
}

/// A stream is one request, but a live chat outlasts any request timeout: after the response
/// head, every message in and answer out restarts the clock, and the stream ends one timeout
/// after the last of them. (Before, the stream was cut at the timeout from its start, and a
/// message sent later got no answer.)
#[test]
fn a_stream_lives_while_messages_flow_and_ends_once_they_stop() {
    let timeout = Duration::from_secs(2);
    let server = Server::start(&[
        "--variable",
        "heavy_url=",
        "--variable",
        "overflow_url=",
        "--request-timeout-secs",
        "2",
    ]);
    let (mut stream, mut reader) = open_stream(&server);
    let opened = std::time::Instant::now();
    let messages = 6;
    for i in 0..messages {
        let line = format!(
            "{}\n",
            json!({"id": format!("m{i}"), "text": "still no refund"})
        );
        send_chunk(&mut stream, &line);
        if i == 0 {
            skip_response_head(&mut reader);
        }
        let v = read_result_line(&mut reader);
        assert_eq!(v["id"], format!("m{i}"), "{v}");
        assert_eq!(v["seq"], i);
        std::thread::sleep(timeout / 2);
    }
    assert!(
        opened.elapsed() > timeout * 2,
        "the stream outlived two request timeouts"
    );

    // Nothing moves: the server ends the stream about one timeout after the last answer.
    let quiet = std::time::Instant::now();
    let mut rest = String::new();
    let ended = loop {
        match reader.read_line(&mut rest) {
            Ok(0) | Err(_) => break quiet.elapsed(),
            Ok(_) => {}
        }
    };
    assert!(
        ended < Duration::from_secs(15),
        "still open {ended:?} after the last message"
    );
    assert!(
        !rest.contains("\"seq\""),
        "no answer without a message: {rest}"
    );
}
