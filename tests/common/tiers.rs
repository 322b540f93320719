//! Real servers for the tier tests, all on 127.0.0.1: moto's SQS server, cargo-lambda's Lambda
//! runtime API emulator with a function binary attached, and a webhook receiver that verifies
//! signatures the way a customer's endpoint would.
//!
//! `moto_server` and `cargo-lambda` come from PyPI (`scripts/lib.sh` `ensure_tools` installs them
//! and puts them on PATH).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{eventually, workspace_root};

pub const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let up = eventually(Duration::from_secs(60), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    if !up {
        let _ = child.kill();
        panic!("{what} did not listen on 127.0.0.1:{port}");
    }
}

fn spawn(program: &str, args: &[&str], envs: &[(&str, String)]) -> Child {
    Command::new(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start `{program}` ({e}): install the test tools with \
                 `source scripts/lib.sh && ensure_tools` (or run ./scripts/test)"
            )
        })
}

/// moto's SQS-protocol server (`moto_server`), killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        Self::start_on(free_port())
    }

    /// On a given port: a restarted server comes back where its clients expect it (empty: moto
    /// keeps queues in memory only).
    pub fn start_on(port: u16) -> Moto {
        let mut child = spawn(
            "moto_server",
            &["-H", "127.0.0.1", "-p", &port.to_string()],
            &[],
        );
        wait_for_port(port, "moto_server", &mut child);
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Environment for anything that talks to this server through the AWS SDK.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SENTIO_SQS_ENDPOINT", self.endpoint.clone()),
            ("SENTIO_S3_ENDPOINT", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Creates an S3 bucket (path style; moto takes unsigned requests).
    pub fn create_bucket(&self, name: &str) {
        let addr = self.endpoint.trim_start_matches("http://");
        let r = super::http_request(addr, "PUT", &format!("/{name}"), &[], b"");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    /// The keys under `prefix` in `bucket`.
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let addr = self.endpoint.trim_start_matches("http://");
        let r = super::http_request(
            addr,
            "GET",
            &format!("/{bucket}?list-type=2&prefix={prefix}"),
            &[],
            b"",
        );
        let xml = String::from_utf8_lossy(&r.body);
        xml.split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next().map(str::to_owned))
            .collect()
    }
}

impl Moto {
    pub fn port(&self) -> u16 {
        self.endpoint.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cargo lambda watch --only-lambda-apis` with one function binary running against it.
pub struct LambdaFunction {
    emulator: Child,
    function: Child,
    pub port: u16,
    pub output: Arc<Mutex<String>>,
}

impl LambdaFunction {
    /// Starts the emulator and `target/release/{binary}` attached to it.
    pub fn start(binary: &str, envs: &[(&str, String)]) -> LambdaFunction {
        let path = workspace_root().join("target/release").join(binary);
        assert!(
            path.exists(),
            "{} is missing: build it with `cargo build --release -p {binary}`",
            path.display()
        );
        let port = free_port();
        let mut emulator = spawn(
            "cargo-lambda",
            &[
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
            ],
            &[],
        );
        wait_for_port(port, "cargo lambda watch", &mut emulator);
        let mut function = Command::new(&path)
            .envs([
                ("AWS_LAMBDA_FUNCTION_VERSION", "1".to_owned()),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048".to_owned()),
                (
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://127.0.0.1:{port}/.rt"),
                ),
                ("AWS_LAMBDA_FUNCTION_NAME", "_".to_owned()),
                ("RUST_LOG", "info".to_owned()),
            ])
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the function binary");
        let output = Arc::new(Mutex::new(String::new()));
        for pipe in [
            Box::new(function.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(function.stderr.take().unwrap()),
        ] {
            let sink = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut o = sink.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        LambdaFunction {
            emulator,
            function,
            port,
            output,
        }
    }

    /// Synchronous invoke (what the event source mapping and the poller do).
    pub fn invoke_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/2015-03-31/functions/_/invocations",
            self.port
        )
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn logs(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.emulator] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub delivery_id: String,
    pub signature_ok: bool,
    /// The `Sentio-Signature` header as received.
    pub signature: String,
    /// The W3C `traceparent` header, if any.
    pub traceparent: Option<String>,
    pub body: serde_json::Value,
    pub raw: String,
}

/// A webhook endpoint: answers 500 to the first `fail_first` requests, then 200; verifies each
/// signature with the reference verifier and records what it got.
pub struct WebhookReceiver {
    pub url: String,
    pub attempts: Arc<AtomicUsize>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

impl WebhookReceiver {
    pub fn start(fail_first: usize) -> WebhookReceiver {
        Self::start_slow(fail_first, Duration::ZERO)
    }

    /// Like [`WebhookReceiver::start`], taking `delay` to answer each request (a slow endpoint
    /// keeps the worker's batches in flight).
    pub fn start_slow(fail_first: usize, delay: Duration) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/sentio", listener.local_addr().unwrap());
        let attempts = Arc::new(AtomicUsize::new(0));
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let (a, d) = (attempts.clone(), deliveries.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (a, d) = (a.clone(), d.clone());
                std::thread::spawn(move || serve_one(stream, fail_first, delay, &a, &d));
            }
        });
        WebhookReceiver {
            url,
            attempts,
            deliveries,
        }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// Accepted deliveries by id; panics if one id ever came with two different bodies.
    pub fn by_id(&self) -> BTreeMap<String, Delivery> {
        let mut out: BTreeMap<String, Delivery> = BTreeMap::new();
        for d in self.deliveries() {
            if let Some(first) = out.get(&d.delivery_id) {
                assert_eq!(
                    first.raw, d.raw,
                    "item {} was delivered twice with different results",
                    d.delivery_id
                );
            }
            out.insert(d.delivery_id.clone(), d);
        }
        out
    }
}

fn serve_one(
    mut stream: TcpStream,
    fail_first: usize,
    delay: Duration,
    attempts: &AtomicUsize,
    deliveries: &Mutex<Vec<Delivery>>,
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = BTreeMap::new();
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    std::thread::sleep(delay);
    let n = attempts.fetch_add(1, Ordering::SeqCst);
    let status = if n < fail_first {
        "500 Internal Server Error"
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let signature_ok = headers.get("sentio-signature").is_some_and(|h| {
            sentio_queue::webhook::verify(WEBHOOK_SECRET.as_bytes(), h, &body, now, 300).is_ok()
        });
        deliveries.lock().unwrap().push(Delivery {
            delivery_id: headers
                .get("sentio-delivery-id")
                .cloned()
                .unwrap_or_default(),
            signature_ok,
            signature: headers.get("sentio-signature").cloned().unwrap_or_default(),
            traceparent: headers.get("traceparent").cloned(),
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            raw: String::from_utf8_lossy(&body).into_owned(),
        });
        "200 OK"
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
}
