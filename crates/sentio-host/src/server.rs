//! The HTTP server: routes requests to components, a fresh instance per request unless instance
//! reuse is asked for (as Spin reuses `wasi:http/handler@0.3` instances).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use sentio_core::ApiError;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime::component::{GuestTaskId, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx};

use crate::manifest::Manifest;
use crate::outbound::{OutboundHooks, full_body};
use crate::routes::Router;
use crate::runtime::{EPOCH_TICK, HostState, InstanceMemory};
use crate::{HostOptions, PreparedComponent};

/// A native handler mounted beside the components: `sentio serve` plays the heavy tier (and the
/// queue's HTTP front) this way, as a separate service would answer in a deployment.
pub type NativeHandler = Arc<
    dyn Fn(Request<bytes::Bytes>) -> Pin<Box<dyn Future<Output = Response<bytes::Bytes>> + Send>>
        + Send
        + Sync,
>;

/// Requests under `prefix` go to `handler` with the prefix stripped (`/heavy/v1/classify` →
/// `/v1/classify`), bodies up to `max_body_bytes`.
#[derive(Clone)]
pub struct NativeRoute {
    pub prefix: String,
    pub max_body_bytes: usize,
    pub handler: NativeHandler,
}

/// Wraps every request the host answers: access control before it reaches a component or a
/// native route, observation (metrics, audit) of what comes back. `sentio serve` plugs its
/// gateway in here; the host itself knows nothing about keys or metrics.
pub trait Interceptor: Send + Sync {
    /// Sees the request head before it is dispatched to `route` (the matched route pattern, or
    /// `unmatched`) and may change its headers. An `Err` is the answer (401, 403, 429, a CORS
    /// preflight): nothing else runs.
    fn admit(
        &self,
        parts: &mut http::request::Parts,
        route: &str,
    ) -> Result<Box<dyn Exchange>, Box<Response<bytes::Bytes>>>;
}

/// One admitted request on its way back.
pub trait Exchange: Send {
    /// The response head, once known (headers may be added).
    fn response_head(&mut self, status: StatusCode, headers: &mut http::HeaderMap);
    /// Each piece of the response body as it goes out (streams included).
    fn body_chunk(&mut self, chunk: &[u8]);
    /// The body ended, or the client went away.
    fn finish(self: Box<Self>);
}

/// A response body that shows every data frame to the exchange on its way out.
struct ObservedBody {
    inner: ResponseBody,
    exchange: Option<Box<dyn Exchange>>,
}

impl http_body::Body for ObservedBody {
    type Data = bytes::Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(exchange)) = (frame.data_ref(), self.exchange.as_mut()) {
                    exchange.body_chunk(data);
                }
            }
            Poll::Ready(None | Some(Err(_))) => {
                if let Some(exchange) = self.exchange.take() {
                    exchange.finish();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(exchange) = self.exchange.take() {
            exchange.finish();
        }
    }
}

/// When one request's data last moved. Until the guest sends the response head, a request gets
/// the request timeout from its start, however its body trickles in (a slow body is cut, as
/// before). After it, every frame in or out restarts the clock: a `/stream-sentiment` chat is one
/// request that lives as long as messages and answers keep moving, and ends a request timeout
/// after the last of them. A guest computing without moving any data still traps at the deadline.
struct Activity {
    started: Instant,
    /// Milliseconds from `started` to the latest frame after the response head; 0 before it.
    last_ms: AtomicU64,
    responded: AtomicBool,
}

impl Activity {
    fn start() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            responded: AtomicBool::new(false),
        })
    }

    fn responded(&self) {
        self.responded.store(true, Ordering::Relaxed);
        self.touch();
    }

    fn touch(&self) {
        if self.responded.load(Ordering::Relaxed) {
            let ms = self.started.elapsed().as_millis() as u64;
            self.last_ms.fetch_max(ms, Ordering::Relaxed);
        }
    }

    fn deadline(&self, timeout: Duration) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + timeout
    }
}

/// The activity of every request an instance took (more than one only with instance reuse),
/// shared by its worker, its expiration and its epoch-deadline callback.
#[derive(Clone, Default)]
struct InstanceActivity(Arc<Mutex<Vec<Arc<Activity>>>>);

impl InstanceActivity {
    /// Adds a request, dropping those whose deadline has passed: they can no longer move any
    /// deadline (one past is as good as none), and an instance reused for many requests would
    /// otherwise keep every one it ever took.
    fn add(&self, request: Arc<Activity>, timeout: Duration) {
        let mut requests = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        requests.retain(|a| a.deadline(timeout) > now);
        requests.push(request);
    }

    /// The latest deadline of the instance's requests; `None` before its first request.
    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        let requests = self.0.lock().unwrap_or_else(|e| e.into_inner());
        requests.iter().map(|a| a.deadline(timeout)).max()
    }
}

/// What a request's path resolved to.
enum Target<'a> {
    Native(&'a NativeRoute),
    Component(crate::routes::RouteMatch),
    NotFound,
}

/// A loaded application, ready to serve.
pub struct App {
    router: Router,
    native: Vec<NativeRoute>,
    interceptor: Option<Arc<dyn Interceptor>>,
    components: Vec<ProxyHandler<ComponentHandler>>,
    request_timeout: Duration,
}

/// Per-component state the request handler instantiates from.
struct ComponentHandler {
    engine: Engine,
    component: PreparedComponent,
    max_memory_bytes: usize,
    timeout: Duration,
    reuse: Reuse,
    /// Bounds live instances below the pooling allocator's slot count, shared by every
    /// component. A permit lives in the instance's store, so it is returned when the instance is
    /// dropped, not when its response head is sent: a streamed body keeps its instance alive, and
    /// releasing earlier let a load test run the pool dry (500s at 16 connections with 4 permits).
    admission: Arc<Semaphore>,
}

/// How many requests an instance takes: Spin's instance-reuse settings.
#[derive(Clone, Copy)]
struct Reuse {
    max_requests: usize,
    max_concurrent: usize,
    idle_timeout: Duration,
}

impl Reuse {
    /// The configured reuse for a component: Spin reuses only `wasi:http/handler@0.3`
    /// instances; 0.2 ones serve one request each.
    fn for_component(limits: &crate::InstanceLimits, pre: &ProxyPre<HostState>) -> Self {
        let (max_requests, max_concurrent) = match pre {
            ProxyPre::P3(_) => (
                limits.max_instance_reuse_count.max(1),
                limits.max_instance_concurrent_reuse_count.max(1),
            ),
            _ => (1, 1),
        };
        Self {
            max_requests: max_requests as usize,
            max_concurrent: max_concurrent as usize,
            idle_timeout: limits.idle_instance_timeout,
        }
    }
}

impl HandlerState for ComponentHandler {
    type StoreData = HostState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HostState, Expiration, Worker>> {
        let admitted = self
            .admission
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| wasmtime::format_err!("the host is shutting down"))?;
        let c = &self.component;
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&c.environment).inherit_stderr();
        for (host_dir, guest_path) in &c.mounts {
            wasi.preopened_dir(host_dir, guest_path, FsPerms::ReadOnly)?;
        }
        let state = HostState {
            admitted: Some(admitted),
            component: c.id.as_str().into(),
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                allowed: c.allowed_outbound.clone(),
            },
            variables: c.variables.clone(),
            limits: InstanceMemory::new(
                StoreLimitsBuilder::new()
                    .memory_size(self.max_memory_bytes)
                    .build(),
            ),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Instantiation runs guest code too; each request then sets its own deadline. At the
        // deadline the guest traps, unless a request's data moved since (see `Activity`).
        let activity = InstanceActivity::default();
        store.set_epoch_deadline(deadline_ticks(self.timeout));
        let (timeout, requests) = (self.timeout, activity.clone());
        store.epoch_deadline_callback(move |_| {
            let now = Instant::now();
            Ok(match requests.deadline(timeout) {
                Some(deadline) if deadline > now => {
                    UpdateDeadline::Continue(deadline_ticks(deadline - now))
                }
                _ => UpdateDeadline::Interrupt,
            })
        });
        let proxy = c.pre.instantiate_async(&mut store).await?;
        tracing::debug!(component = %c.id, "instance started");
        Ok(Instance {
            store,
            proxy,
            view: HostState::http_view,
            expiration: Expiration {
                sleep: Box::pin(tokio::time::sleep(self.timeout)),
                request_timeout: self.timeout + EPOCH_TICK * 10,
                idle_timeout: self.reuse.idle_timeout,
                activity: activity.clone(),
            },
            state: Worker {
                reuse: self.reuse,
                timeout: self.timeout,
                component: c.id.clone(),
                activity,
            },
        })
    }
}

/// A timeout in epoch ticks, as `Store::set_epoch_deadline` counts.
fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// One instance's request policy: how many requests it takes (one, as Spin runs 0.2 components,
/// unless reuse is configured) and each request's deadline.
struct Worker {
    reuse: Reuse,
    timeout: Duration,
    component: String,
    activity: InstanceActivity,
}

impl WorkerState for Worker {
    type StoreData = HostState;
    type RequestData = Arc<Activity>;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse.max_requests {
            ShouldAccept::Never
        } else if concurrent >= self.reuse.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        activity: Arc<Activity>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        // Guest code running past the deadline traps (and the instance goes with it); a request
        // merely waiting for its response head expires when the returned sleep ends.
        self.activity.add(activity, self.timeout);
        store.set_epoch_deadline(deadline_ticks(self.timeout));
        Box::pin(tokio::time::sleep(self.timeout))
    }

    fn drop(&self, _store: Store<HostState>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            // The error is wasmtime's (trap, timeout): it carries no request data.
            tracing::warn!(component = %self.component, error = %e, "instance ended with an error");
        }
    }
}

/// Ends an instance that sat idle past the idle timeout, or one still busy when its latest
/// request's time is up (a second line of defence behind the epoch deadline, for instances
/// blocked outside the guest). After the response head, time is up a request timeout after its
/// data last moved (see `Activity`).
struct Expiration {
    sleep: Pin<Box<tokio::time::Sleep>>,
    request_timeout: Duration,
    idle_timeout: Duration,
    activity: InstanceActivity,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        state: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let deadline = match state {
            WorkerStatus::Idle => start + self.idle_timeout,
            WorkerStatus::Requests => start + self.request_timeout,
            WorkerStatus::PostReturn => {
                let fixed = start + self.request_timeout;
                let moved = self.activity.deadline(self.request_timeout);
                moved.map_or(fixed, |d| d.max(fixed))
            }
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

type ResponseBody = WasiBody;

/// A host-level error as the same JSON every tier answers, with the status from core's table.
fn error_response(error: ApiError) -> Response<ResponseBody> {
    let mut response = Response::new(full_body(error.to_json()));
    *response.status_mut() =
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

impl App {
    /// Loads the manifest and prepares every HTTP component.
    pub fn load(options: &HostOptions) -> Result<Arc<Self>> {
        Self::load_with(options, Vec::new(), None)
    }

    /// [`App::load`] with native routes mounted beside the components (they match first) and an
    /// interceptor around every request.
    pub fn load_with(
        options: &HostOptions,
        native: Vec<NativeRoute>,
        interceptor: Option<Arc<dyn Interceptor>>,
    ) -> Result<Arc<Self>> {
        let (manifest, base) = Manifest::load(&options.manifest_path)?;
        let engine = crate::runtime::engine(&options.limits)?;
        let prepared = crate::prepare_components(&manifest, &base, options, &engine)?;
        let router = Router::new(
            prepared
                .iter()
                .enumerate()
                .map(|(i, c)| (i, c.route.clone())),
        );
        let admission = Arc::new(Semaphore::new(
            (options.limits.max_concurrent_requests as usize).max(1),
        ));
        let components = prepared
            .into_iter()
            .map(|component| {
                ProxyHandler::new(ComponentHandler {
                    engine: engine.clone(),
                    reuse: Reuse::for_component(&options.limits, &component.pre),
                    component,
                    max_memory_bytes: options.limits.max_memory_bytes,
                    timeout: options.request_timeout,
                    admission: admission.clone(),
                })
            })
            .collect();
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("sentio-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .context("starting the epoch thread")?;
        Ok(Arc::new(Self {
            router,
            native,
            interceptor,
            components,
            request_timeout: options.request_timeout,
        }))
    }

    /// Routes (pattern, component id) in match order.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.components
            .iter()
            .map(|h| {
                let c = &h.state().component;
                (c.route.clone(), c.id.clone())
            })
            .collect()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets open requests finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, client) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            continue;
                        }
                    };
                    // Responses go out as several small writes (head, chunks); without
                    // TCP_NODELAY, Nagle's algorithm meets the client's delayed ACK and every
                    // keep-alive request waits 40 ms.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY");
                    }
                    let app = self.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let app = app.clone();
                            async move { Ok::<_, std::convert::Infallible>(app.handle(req, client).await) }
                        });
                        let result = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            // Slow clients (slowloris) get 10 s to send their headers.
                            .header_read_timeout(Duration::from_secs(10))
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "connection closed with an error");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        let drain = async { while connections.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        Ok(())
    }

    async fn handle_native(
        &self,
        route: &NativeRoute,
        req: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let (mut parts, body) = req.into_parts();
        let too_large = ApiError::PayloadTooLarge {
            limit_bytes: route.max_body_bytes,
        };
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > route.max_body_bytes) {
            return error_response(too_large);
        }
        let limited = http_body_util::Limited::new(body, route.max_body_bytes);
        let collect = tokio::time::timeout(self.request_timeout, limited.collect());
        let bytes = match collect.await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(_)) => return error_response(too_large),
            Err(_) => {
                return error_response(ApiError::Timeout {
                    seconds: self.request_timeout.as_secs(),
                });
            }
        };
        let rest = parts.uri.path()[route.prefix.len()..].to_owned();
        let path_and_query = match parts.uri.query() {
            Some(q) => format!("{}?{q}", if rest.is_empty() { "/" } else { &rest }),
            None => {
                if rest.is_empty() {
                    "/".to_owned()
                } else {
                    rest
                }
            }
        };
        parts.uri = match path_and_query.parse::<Uri>() {
            Ok(uri) => uri,
            Err(_) => {
                return error_response(ApiError::BadRequest {
                    detail: "invalid path".into(),
                });
            }
        };
        let response = (route.handler)(Request::from_parts(parts, bytes)).await;
        response.map(full_body)
    }

    fn native_route(&self, path: &str) -> Option<&NativeRoute> {
        self.native.iter().find(|r| {
            path.strip_prefix(r.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// Where a path goes: a native route, a component, or nowhere (404). Resolved once per
    /// request; the interceptor's route label and the dispatch both read it.
    fn resolve(&self, path: &str) -> Target<'_> {
        match self.native_route(path) {
            Some(native) => Target::Native(native),
            None => match self.router.route(path) {
                Some(matched) => Target::Component(matched),
                None => Target::NotFound,
            },
        }
    }

    /// Handles one request: admit, route, instance, response.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<ResponseBody> {
        let path = req.uri().path();
        if path == "/.well-known/spin/health" {
            return Response::new(full_body("OK"));
        }
        let target = self.resolve(path);
        let Some(interceptor) = &self.interceptor else {
            return self.dispatch(req, client, target).await;
        };
        let route = match &target {
            Target::Native(native) => native.prefix.as_str(),
            Target::Component(matched) => &self.components[matched.index].state().component.route,
            Target::NotFound => "unmatched",
        };
        let (mut parts, body) = req.into_parts();
        let mut exchange = match interceptor.admit(&mut parts, route) {
            Ok(exchange) => exchange,
            Err(answer) => return (*answer).map(full_body),
        };
        let mut response = self
            .dispatch(Request::from_parts(parts, body), client, target)
            .await;
        exchange.response_head(response.status(), response.headers_mut());
        response.map(|inner| {
            ObservedBody {
                inner,
                exchange: Some(exchange),
            }
            .boxed_unsync()
        })
    }

    /// Sends one request to its native handler or a component instance.
    async fn dispatch(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        target: Target<'_>,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let matched = match target {
            Target::Native(route) => {
                let response = self.handle_native(route, req).await;
                tracing::info!(
                    method = %method,
                    route = %route.prefix,
                    status = response.status().as_u16(),
                    duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "request"
                );
                return response;
            }
            Target::Component(matched) => matched,
            Target::NotFound => {
                return error_response(ApiError::NotFound {
                    path: req.uri().path().to_owned(),
                });
            }
        };
        let handler = &self.components[matched.index];
        let component = &handler.state().component;
        let (mut parts, body) = req.into_parts();
        let authority = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_owned();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let full_url = format!("http://{authority}{path_and_query}");
        match full_url.parse::<Uri>() {
            Ok(uri) => parts.uri = uri,
            Err(_) => {
                return error_response(ApiError::BadRequest {
                    detail: "invalid Host header".into(),
                });
            }
        }
        // The headers Spin adds for its HTTP trigger.
        let spin_headers = [
            ("spin-full-url", full_url.clone()),
            ("spin-path-info", matched.path_info.clone()),
            ("spin-matched-route", component.route.clone()),
            ("spin-raw-component-route", component.route.clone()),
            (
                "spin-component-route",
                component.route.trim_end_matches("/...").to_owned(),
            ),
            ("spin-base-path", "/".to_owned()),
            ("spin-client-addr", client.to_string()),
        ];
        for (name, value) in spin_headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                parts.headers.insert(name, v);
            }
        }
        let activity = Activity::start();
        let moved = Arc::clone(&activity);
        let body = body
            .map_frame(move |frame| {
                moved.touch();
                frame
            })
            .map_err(wasmtime_wasi_http::Error::Hyper)
            .boxed_unsync();
        let request = Request::from_parts(parts, body);
        let response = match handler.handle(Arc::clone(&activity), request).await {
            Ok(response) => {
                activity.responded();
                response.map(|body| {
                    body.map_frame(move |frame| {
                        activity.touch();
                        frame
                    })
                    .boxed_unsync()
                })
            }
            Err(e) => {
                // A guest still computing at its deadline traps (epoch interruption), and the
                // handler reports only that its worker trapped: past the request timeout, that
                // is the timeout, not an internal failure.
                let timed_out = e
                    .downcast_ref::<wasmtime_wasi_http::handler::ExpirationError>()
                    .is_some()
                    || started.elapsed() >= self.request_timeout;
                tracing::error!(component = %component.id, error = %e, "component failed");
                if timed_out {
                    error_response(ApiError::Timeout {
                        seconds: self.request_timeout.as_secs(),
                    })
                } else {
                    error_response(ApiError::Internal {
                        detail: "the component failed; see the host log".into(),
                    })
                }
            }
        };
        tracing::info!(
            method = %method,
            route = %component.route,
            component = %component.id,
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        response
    }
}
