//! `sentio serve` with the real edge components, over real HTTP on 127.0.0.1: good input, every
//! kind of bad input, variables, concurrency, and no PII in any log line.

mod common;

use common::Server;
use serde_json::json;

const PII: &[&str] = &[
    "Maria Gonzalez",
    "+44 20 7946 0958",
    "maria.g@example.com",
    "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32",
];

/// edge-redact instances the host started so far (its debug line "instance started").
fn redact_instances_started(server: &Server) -> usize {
    server
        .logs()
        .lines()
        .filter(|l| l.contains("instance started") && l.contains("edge-redact"))
        .count()
}

fn angry_message() -> String {
    format!(
        "Hi, my name is {}. Call me at {} or mail {}; card {} was charged twice, refund to IBAN {}!",
        PII[0], PII[1], PII[2], PII[3], PII[4]
    )
}

#[test]
fn redacts_one_and_many_and_reports_offsets() {
    let server = Server::start(&[]);
    let text = angry_message();
    let r = server.post_json(
        "/redact",
        &json!({"text": text, "metadata": {"customer_id": "c-42", "channel": "chat", "timestamp": "2026-11-27T09:30:00Z", "priority": "high"}}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    let redacted = v["redacted_text"].as_str().unwrap();
    for value in PII {
        assert!(!redacted.contains(value), "{value} survived: {redacted}");
    }
    assert_eq!(
        redacted,
        "Hi, my name is <PERSON>. Call me at <PHONE_NUMBER> or mail <EMAIL_ADDRESS>; card <CREDIT_CARD> was charged twice, refund to IBAN <IBAN_CODE>!"
    );
    let entities: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["entity_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        entities,
        [
            "PERSON",
            "PHONE_NUMBER",
            "EMAIL_ADDRESS",
            "CREDIT_CARD",
            "IBAN_CODE"
        ]
    );
    let utf16: Vec<u16> = text.encode_utf16().collect();
    for f in v["findings"].as_array().unwrap() {
        let [s, e] = [
            f["input"]["utf16"][0].as_u64().unwrap() as usize,
            f["input"]["utf16"][1].as_u64().unwrap() as usize,
        ];
        let [bs, be] = [
            f["input"]["bytes"][0].as_u64().unwrap() as usize,
            f["input"]["bytes"][1].as_u64().unwrap() as usize,
        ];
        assert_eq!(String::from_utf16(&utf16[s..e]).unwrap(), text[bs..be]);
    }
    assert_eq!(
        v["metadata"],
        json!({"customer_id": "c-42", "channel": "chat", "timestamp": "2026-11-27T09:30:00Z", "priority": "high"})
    );
    assert!(v["timing"]["redact_ms"].as_f64().unwrap() >= 0.0);

    // A batch shares pseudonyms, and a value found in one text is redacted in the next.
    let r = server.post_json(
        "/redact",
        &json!({"texts": ["my name is Ann Lee, phone 415-555-2671", "Ann Lee again: 415-555-2671 😀"], "operators": {"PERSON": {"type": "pseudonym"}, "PHONE_NUMBER": {"type": "mask", "keep_last": 4}}}).to_string(),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        v["results"][0]["redacted_text"],
        "my name is <PERSON_1>, phone ********2671"
    );
    assert_eq!(
        v["results"][1]["redacted_text"],
        "<PERSON_1> again: ********2671 😀"
    );

    // A message a JavaScript client cut inside an emoji (`"…😀".slice(0, n)`) carries a lone
    // surrogate, as `JSON.stringify` writes it: answered, with U+FFFD in its place.
    let r = server.post_json("/redact", r#"{"text": "mail maria.g@example.com \ud83d"}"#);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["redacted_text"], "mail <EMAIL_ADDRESS> \u{FFFD}");
}

#[test]
fn bad_input_gets_typed_errors() {
    let server = Server::start(&[]);
    let json = [("content-type", "application/json")];
    let oversized = format!(r#"{{"text": "{}"}}"#, "a".repeat(300 * 1024));
    // (method, headers, body, status, error kind, field)
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [u8],
        u16,
        &'a str,
        Option<&'a str>,
    );
    let cases: &[Case] = &[
        ("POST", &json, b"{\"text\": ", 400, "malformed_json", None),
        ("POST", &json, b"\xff\xfe\xfd", 400, "invalid_utf8", None),
        (
            "POST",
            &json,
            br#"{"text": 42}"#,
            422,
            "invalid_field",
            Some("text"),
        ),
        (
            "POST",
            &json,
            br#"{"texts": ["a", {"x": 1}]}"#,
            422,
            "invalid_field",
            Some("texts[1]"),
        ),
        (
            "POST",
            &json,
            br#"{"txt": "a"}"#,
            422,
            "invalid_field",
            Some("txt"),
        ),
        (
            "POST",
            &json,
            br#"{"text": "a", "score_threshold": 7}"#,
            422,
            "invalid_field",
            Some("score_threshold"),
        ),
        (
            "POST",
            &json,
            br#"{"text": "a", "operators": {"EMAIL_ADDRESS": {"type": "hash"}}}"#,
            422,
            "invalid_field",
            Some("operators.EMAIL_ADDRESS.type"),
        ),
        (
            "POST",
            &json,
            br#"{"text": "a", "metadata": {"priority": "asap"}}"#,
            422,
            "invalid_field",
            Some("metadata.priority"),
        ),
        (
            "POST",
            &[("content-type", "text/plain")],
            br#"{"text": "a"}"#,
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "POST",
            &[],
            br#"{"text": "a"}"#,
            415,
            "unsupported_media_type",
            None,
        ),
        ("GET", &[], b"", 405, "method_not_allowed", None),
        (
            "POST",
            &json,
            oversized.as_bytes(),
            413,
            "payload_too_large",
            None,
        ),
    ];
    for &(method, headers, body, status, kind, field) in cases {
        let r = server.request(method, "/redact", headers, body);
        let v = r.json();
        let label = format!(
            "{method} {:?} -> {v}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
        assert_eq!(r.status, status, "{label}");
        assert_eq!(v["error"]["kind"], kind, "{label}");
        assert_eq!(v["error"]["field"].as_str(), field, "{label}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{label}"
        );
    }
    let r = server.request("GET", "/redact", &[], b"");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = server.request(
        "POST",
        "/nowhere",
        &[("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["kind"], "not_found");
    // The host is still healthy after all of that.
    assert_eq!(
        server
            .request("GET", "/.well-known/spin/health", &[], b"")
            .status,
        200
    );
    assert_eq!(
        server.post_json("/redact", r#"{"text": "fine"}"#).status,
        200
    );
}

#[test]
fn variables_configure_hash_key_and_custom_recognizers() {
    let server = Server::start(&[
        "--variable",
        "redact_hash_key=test-tenant-key-0123456789",
        "--variable",
        "redact_custom_recognizers=[[recognizer]]\nname = \"codenames\"\nentity = \"PROJECT_CODENAME\"\ndeny_list = [\"Project Falcon\"]",
    ]);
    let body = json!({"text": "mail maria.g@example.com about project falcon", "operators": {"EMAIL_ADDRESS": {"type": "hash", "length": 12}}}).to_string();
    let a = server.post_json("/redact", &body).json();
    let b = server.post_json("/redact", &body).json();
    let text = a["redacted_text"].as_str().unwrap();
    assert!(text.starts_with("mail <EMAIL_ADDRESS#"), "{text}");
    assert!(text.ends_with("about <PROJECT_CODENAME>"), "{text}");
    assert_eq!(
        a["redacted_text"], b["redacted_text"],
        "keyed hash is stable across requests"
    );
}

#[test]
fn concurrent_requests_each_get_a_fresh_instance() {
    let server = Server::start(&[]);
    let addr = server.addr.clone();
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let body =
                    json!({"texts": [format!("ticket {i}: call +1 415 555 {:04}", 2600 + i)]})
                        .to_string();
                common::http_request(
                    &addr,
                    "POST",
                    "/redact",
                    &[("content-type", "application/json")],
                    body.as_bytes(),
                )
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json()["results"][0]["redacted_text"],
            format!("ticket {i}: call <PHONE_NUMBER>")
        );
    }
}

/// `--max-instance-reuse-count`: one instance serves consecutive requests, as Spin reuses
/// `wasi:http/handler@0.3` instances, and nothing of one request shows in the next (pseudonym
/// numbering starts again, the same name gets the same answer every time).
#[test]
fn reused_instances_serve_many_requests_and_keep_them_apart() {
    const REQUESTS: usize = 6;
    let fresh = Server::start(&[]);
    let reused = Server::start(&[
        "--max-instance-reuse-count",
        "100",
        "--idle-instance-timeout-ms",
        "60000",
    ]);
    for server in [&fresh, &reused] {
        for i in 0..REQUESTS {
            let body = json!({"texts": [format!("ticket {i}: I am Ann Lee"), format!("and I am Bob Stone, ticket {i}")], "operators": {"PERSON": {"type": "pseudonym"}}});
            let r = server.post_json("/redact", &body.to_string());
            assert_eq!(r.status, 200);
            let v = r.json();
            assert_eq!(
                v["results"][0]["redacted_text"],
                format!("ticket {i}: I am <PERSON_1>")
            );
            assert_eq!(
                v["results"][1]["redacted_text"],
                format!("and I am <PERSON_2>, ticket {i}")
            );
        }
    }
    assert_eq!(
        redact_instances_started(&fresh),
        REQUESTS,
        "{}",
        fresh.logs()
    );
    assert_eq!(redact_instances_started(&reused), 1, "{}", reused.logs());
}

#[test]
fn no_pii_reaches_the_logs() {
    let server = Server::start(&[]);
    let text = angry_message();
    for _ in 0..3 {
        assert_eq!(
            server
                .post_json("/redact", &json!({"text": text}).to_string())
                .status,
            200
        );
    }
    // Malformed and oversized bodies carrying PII must not be echoed either.
    server.post_json("/redact", &format!("{{\"text\": \"{}", text));
    server.post_json("/redact", &json!({"text": text, "bogus": text}).to_string());
    assert!(common::eventually(
        std::time::Duration::from_secs(5),
        || server.logs().contains("\"status\":200")
    ));
    let logs = server.logs();
    assert!(
        logs.contains("request"),
        "access log lines are written: {logs}"
    );
    for value in PII {
        assert!(!logs.contains(value), "log leaked {value}: {logs}");
    }
}

/// A request that stalls is answered 504 when its own time is up, also on a reused instance (its
/// deadline counts from this request, not the instance's first), and the host keeps serving:
/// the expired instance is dropped and the next request gets a new one.
#[test]
fn a_stalled_body_is_answered_504_within_the_request_timeout() {
    use std::io::{Read as _, Write as _};
    for (reuse, instances) in [("1", 3), ("100", 2)] {
        let server = Server::start(&[
            "--request-timeout-secs",
            "2",
            "--max-instance-reuse-count",
            reuse,
            "--idle-instance-timeout-ms",
            "60000",
        ]);
        assert_eq!(
            server.post_json("/redact", r#"{"text": "first"}"#).status,
            200
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
        let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        // Promise 100 bytes, send 12, then go quiet.
        stream
            .write_all(b"POST /redact HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"text\": \"ab")
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 504"), "reuse {reuse}: {head}");
        assert!(head.contains(r#""kind":"timeout""#), "{head}");
        let waited = started.elapsed();
        assert!(
            waited >= std::time::Duration::from_millis(1900)
                && waited < std::time::Duration::from_secs(10),
            "reuse {reuse}: answered after {waited:?}"
        );
        // The host keeps serving.
        assert_eq!(
            server.post_json("/redact", r#"{"text": "fine"}"#).status,
            200
        );
        // The host's log lines reach the test through a reader thread, which can lag the answer.
        common::eventually(std::time::Duration::from_secs(5), || {
            redact_instances_started(&server) >= instances
        });
        assert_eq!(
            redact_instances_started(&server),
            instances,
            "reuse {reuse}: {}",
            server.logs()
        );
    }
}

#[test]
fn random_and_mangled_bodies_never_get_a_5xx() {
    let server = Server::start(&[]);
    // Deterministic mangling of valid requests: truncation, byte flips, wrong types, deep nesting,
    // huge numbers, odd Unicode. Every answer must be a typed 2xx/4xx, never a crash.
    let seeds = [
        json!({"text": angry_message()}).to_string(),
        json!({"texts": ["a", "b 4111 1111 1111 1111"], "operators": {"DEFAULT": {"type": "mask", "keep_last": 2}}}).to_string(),
        json!({"text": "x", "metadata": {"timestamp": "2026-11-27T09:30:00Z", "attributes": {"k": "v"}}}).to_string(),
        format!("{}{}{}", "[".repeat(2000), "1", "]".repeat(2000)),
        json!({"text": "\u{0}\u{200b}\u{feff}😀 ＋４４ ２０ ７９４６ ０９５８", "score_threshold": 1e308}).to_string(),
    ];
    let mut state: u64 = 0x5eed;
    let mut next = |m: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % m.max(1)
    };
    for i in 0..300 {
        let mut body = seeds[i % seeds.len()].clone().into_bytes();
        match next(4) {
            0 => body.truncate(next(body.len())),
            1 => {
                for _ in 0..1 + next(8) {
                    let at = next(body.len());
                    body[at] = next(256) as u8;
                }
            }
            2 => {
                let (a, b) = (next(body.len()), next(body.len()));
                body.splice(a.min(b)..a.max(b), b"\"\\u12".iter().copied());
            }
            _ => {}
        }
        let r = server.request(
            "POST",
            "/redact",
            &[("content-type", "application/json")],
            &body,
        );
        assert!(
            matches!(r.status, 200 | 400 | 413 | 415 | 422),
            "status {} for body {:?}: {}",
            r.status,
            String::from_utf8_lossy(&body[..body.len().min(80)]),
            String::from_utf8_lossy(&r.body)
        );
        if r.status != 200 {
            assert!(r.json()["error"]["kind"].is_string());
        }
    }
}

/// `sentio redact --file` (what models/scripts/prepare_data.py redacts the training corpus with)
/// gives `/redact`'s answer for each record, which is also the text `/classify-sentiment` hands the
/// model; it keeps the other fields and names a bad line.
#[test]
fn the_cli_redacts_json_lines_as_the_endpoint_does() {
    use std::io::Write as _;
    let server = Server::start(&[]);
    let texts = [
        angry_message(),
        "line one\nmail maria.g@example.com".to_owned(),
    ];
    let run = |input: String| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sentio"))
            .args(["redact", "--format", "jsonl"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let input: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{}\n", json!({"text": t, "id": i})))
        .collect();
    let out = run(input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), texts.len());
    for (i, (line, text)) in lines.iter().zip(&texts).enumerate() {
        let served = server.post_json("/redact", &json!({ "text": text }).to_string());
        assert_eq!(served.status, 200);
        assert_eq!(line["redacted_text"], served.json()["redacted_text"]);
        assert_eq!(line["input"], json!({ "id": i }));
        let classified =
            server.post_json("/classify-sentiment", &json!({ "text": text }).to_string());
        assert_eq!(classified.status, 200);
        assert_eq!(line["redacted_text"], classified.json()["redacted_text"]);
    }
    assert_eq!(lines[1]["redacted_text"], "line one\nmail <EMAIL_ADDRESS>");

    let bad = run(format!(
        "{}\n{}\n",
        json!({"text": "ok"}),
        json!({"body": "x"})
    ));
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("`text`"),
        "{stderr}"
    );
}
