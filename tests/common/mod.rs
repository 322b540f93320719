//! Helpers for the integration tests: a real `sentio serve` process on a free loopback port and a
//! minimal HTTP/1.1 client (std only, so the tests exercise the server and nothing in between).

#![allow(dead_code)] // each test file uses a different subset

pub mod tiers;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn component_path(name: &str) -> PathBuf {
    let path = workspace_root().join(format!("target/wasm32-wasip2/component/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the components first with \
         `./scripts/run` or `build_system` in scripts/lib.sh",
        path.display()
    );
    path
}

/// A running `sentio serve`; killed on drop. Its stdout and stderr are kept for log checks.
pub struct Server {
    child: Child,
    pub addr: String,
    pub output: Arc<Mutex<String>>,
    /// The data directory this server was given, removed on drop.
    own_data_dir: Option<PathBuf>,
}

impl Server {
    pub fn start(extra_args: &[&str]) -> Server {
        Self::start_with(extra_args, &[])
    }

    /// Starts `sentio serve` with extra environment variables. Each server gets its own data
    /// directory (embedded queue, worker results) unless `SENTIO_DATA_DIR` is among `envs`.
    pub fn start_with(extra_args: &[&str], envs: &[(&str, &str)]) -> Server {
        // One start at a time: the first compiles the components into the shared cache, the
        // others then load them from it instead of all compiling the same code at once.
        static STARTING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        component_path("edge_redact");
        let root = workspace_root();
        let own_data_dir =
            (!envs.iter().any(|(k, _)| *k == "SENTIO_DATA_DIR")).then(|| temp_dir("data"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_sentio"))
            .current_dir(&root)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--manifest",
                "spin.toml",
            ])
            .args(extra_args)
            .env("SENTIO_CACHE_DIR", root.join("target/sentio-test-cache"))
            .env("SENTIO_LOG", "debug,wasmtime=warn,cranelift=warn")
            .envs(
                own_data_dir
                    .iter()
                    .map(|d| ("SENTIO_DATA_DIR", d.as_os_str())),
            )
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sentio serve");
        let output = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let err_sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut o = err_sink.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out_sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(addr.to_owned());
                }
                let mut o = out_sink.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(180))
            .unwrap_or_else(|_| panic!("sentio serve did not start: {}", output.lock().unwrap()));
        Server {
            child,
            addr,
            output,
            own_data_dir,
        }
    }

    pub fn post_json(&self, path: &str, body: &str) -> Response {
        self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http_request(&self.addr, method, path, headers, body)
    }

    pub fn logs(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Server {
    /// `kill -9`: no shutdown, nothing flushed that was not already.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.own_data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`), chunked or sized responses.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body and close; ignore write errors.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

/// A fresh directory under the system's temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sentio-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until `f` is true or the deadline passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A minimal OTLP/HTTP receiver on 127.0.0.1: answers 200 to every POST and keeps each body in
/// the OTLP JSON shape, with its `contentType` added. Protobuf bodies are decoded by the official
/// OpenTelemetry bindings (`tests/otlp_decode.py`), so both encodings are checked the same way.
pub fn otlp_receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let (mut length, mut content_type) = (0, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = lower.strip_prefix("content-type:") {
                    content_type = v.trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                let decoded = if content_type == "application/x-protobuf" {
                    Some(decode_otlp_protobuf(&body))
                } else {
                    serde_json::from_slice(&body).ok()
                };
                if let Some(mut v) = decoded {
                    v["contentType"] = serde_json::json!(content_type);
                    sink.lock().unwrap().push(v);
                }
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
        }
    });
    (addr, received)
}

/// Runs a Python script of `tests/` (the tools environment's `python3`) with `stdin`.
fn run_python(script: &str, stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new("python3")
        .arg(workspace_root().join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// An `ExportTraceServiceRequest` in protobuf, decoded by `tests/otlp_decode.py` and put in the
/// OTLP JSON shape.
fn decode_otlp_protobuf(body: &[u8]) -> serde_json::Value {
    let out = run_python("tests/otlp_decode.py", body);
    assert!(
        out.status.success(),
        "python3 could not decode an OTLP protobuf body (run under scripts/lib.sh ensure_tools): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    otlp_json(&serde_json::from_slice(&out.stdout).unwrap())
}

/// An OTLP/gRPC collector (`tests/otlp_grpc_receiver.py`: grpcio serving the official
/// `TraceService`) on 127.0.0.1: the process (killed on drop), its address, and the requests it
/// received in the OTLP JSON shape of [`otlp_receiver`]'s, `contentType` `application/grpc`.
pub fn otlp_grpc_receiver() -> (KillOnDrop, String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let mut child = Command::new("python3")
        .arg(workspace_root().join("tests/otlp_grpc_receiver.py"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = lines
        .next()
        .and_then(Result::ok)
        .expect("the gRPC receiver prints its port (run under scripts/lib.sh ensure_tools)");
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut body = otlp_json(&serde_json::from_str(&line).unwrap());
            body["contentType"] = serde_json::json!("application/grpc");
            sink.lock().unwrap().push(body);
        }
    });
    (
        KillOnDrop(child),
        format!("127.0.0.1:{}", port.trim()),
        received,
    )
}

/// A helper process that must not outlive its test.
pub struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tests/otlp_decode.py`'s summary of a request, in the OTLP JSON shape.
fn otlp_json(decoded: &serde_json::Value) -> serde_json::Value {
    use serde_json::json;
    let attributes = |map: &serde_json::Value| -> Vec<serde_json::Value> {
        map.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
                    .collect()
            })
            .unwrap_or_default()
    };
    let spans: Vec<serde_json::Value> = decoded["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": s["trace_id"], "spanId": s["span_id"], "name": s["name"],
                "kind": s["kind"], "status": {"code": s["status_code"]},
                "startTimeUnixNano": s["start"].to_string(),
                "endTimeUnixNano": s["end"].to_string(),
                "attributes": attributes(&s["attributes"]),
            });
            if s["parent_span_id"] != "" {
                span["parentSpanId"] = s["parent_span_id"].clone();
            }
            span
        })
        .collect();
    let services: Vec<serde_json::Value> = decoded["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| json!({"key": "service.name", "value": {"stringValue": n}}))
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": services}, "scopeSpans": [{"spans": spans}]}]})
}

/// The span called `name` among `spans`; panics, listing them, when there is none.
pub fn span_named<'a>(spans: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name:?}: {spans:#?}"))
}

/// The spans of one trace among everything an OTLP receiver got.
pub fn spans_of_trace(
    received: &Mutex<Vec<serde_json::Value>>,
    trace_id: &str,
) -> Vec<serde_json::Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|body| {
            body["resourceSpans"][0]["scopeSpans"][0]["spans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|s| s["traceId"] == trace_id)
        .collect()
}

/// Validates `cases` (`{"what", "schema", "value", "expect_error"?}`) against `spec`'s
/// `#/components/schemas`, and the document itself, with the Python `jsonschema` and
/// `openapi-spec-validator` of the tools environment (`tests/openapi_check.py`).
pub fn check_openapi(spec: &serde_json::Value, cases: &[serde_json::Value]) {
    let input = serde_json::json!({"spec": spec, "cases": cases});
    let out = run_python("tests/openapi_check.py", input.to_string().as_bytes());
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !report.contains("ModuleNotFoundError"),
        "python3 lacks jsonschema/openapi-spec-validator: run under scripts/lib.sh ensure_tools\n{report}"
    );
    assert!(
        out.status.success(),
        "answers do not match the OpenAPI document:\n{report}"
    );
    assert!(report.contains(" answers checked, 0 errors"), "{report}");
}

/// The OpenAPI document as committed (what `sentio serve` serves at `/openapi.json`).
pub fn openapi_document() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("web/openapi.json")).unwrap(),
    )
    .unwrap()
}
