//! `certgate serve`: a local mTLS edge that runs a proxy-wasm filter the way
//! Envoy does. TLS (rustls) verifies the client; each connection goes to one
//! worker thread (its own VM, as an Envoy worker); each request gets Envoy's
//! connection properties and a sanitised `x-forwarded-client-cert`, goes
//! through the filter's whole HTTP lifecycle ([`crate::flow`]), and is
//! answered locally or by the upstream with the filter's changes. The access
//! log prints the decision certgate publishes as filter state.

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use certgate_decision::{Published, PROPERTY};
use certgate_host::{Connection, HarnessError, PluginSettings, WasmModule};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::flow::{outgoing, Flow, FlowError, Outgoing, HOP_BY_HOP};
use crate::policy_file::{read_policy, watch as watch_policy, PolicyError, PolicyStore};
use crate::tls::{server_config, TlsFiles};
use crate::upstream::{Buffered, Upstreams};
use crate::worker::{Worker, WorkerHandle, WorkerShared};
use certgate_wire::Pairs;

type Body = BoxBody<Bytes, hyper::Error>;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// `http://host:port` of the application.
    pub upstream: Uri,
    /// Server certificate, client CAs, CRLs, whether a client certificate is required.
    pub tls: TlsFiles,
    /// The filter module.
    pub wasm: PathBuf,
    /// The policy file, watched for changes.
    pub policy: PathBuf,
    /// How long a client has to finish its handshake.
    pub handshake_timeout: Duration,
    /// How long a client has to send a request's headers (HTTP/1.1), once the
    /// connection is up or after the previous response: a slower client's
    /// connection is closed, and the log says why.
    pub header_timeout: Duration,
    /// Connections open at once, handshakes included; more are closed at
    /// once (as Envoy's listener `max_connections`), and counted in the log.
    pub max_connections: usize,
    /// How often the policy file is looked at.
    pub reload_every: Duration,
    /// Named upstreams for the filter's HTTP calls.
    pub clusters: HashMap<String, Uri>,
    /// Worker threads, each with its own VM.
    pub workers: usize,
}

/// Why an edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The TLS files.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The module.
    #[error("{0}")]
    Wasm(HarnessError),
    /// The policy, naming its file.
    #[error("{path}: {source}")]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// Why it was not taken.
        source: PolicyError,
    },
    /// The port.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// A worker thread could not start.
    #[error("cannot start a worker thread: {0}")]
    Worker(std::io::Error),
}

/// A running edge; dropping it (or `shutdown`) stops it gracefully.
#[derive(Debug)]
pub struct RunningEdge {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl RunningEdge {
    /// Stops accepting, lets requests in flight finish (up to 10 s).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

impl Drop for RunningEdge {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

struct EdgeState {
    upstream: Uri,
    tls: TlsAcceptor,
    handshake_timeout: Duration,
    header_timeout: Duration,
}

/// Envoy's default limits on a request's headers (`max_request_headers_kb`,
/// `max_headers_count`): a request over either is answered 431.
const MAX_HEADER_BYTES: usize = 60 * 1024;
const MAX_HEADERS: usize = 100;

/// Starts an edge. Errors name the file or port at fault.
pub async fn start(settings: EdgeSettings) -> Result<RunningEdge, EdgeError> {
    let tls = TlsAcceptor::from(server_config(&settings.tls)?);
    let module = WasmModule::from_file(&settings.wasm).map_err(EdgeError::Wasm)?;
    let policy_error = |source| EdgeError::Policy {
        path: settings.policy.clone(),
        source,
    };
    let json = read_policy(&settings.policy).map_err(policy_error)?;
    // refuse to start on a policy the filter refuses
    module
        .start(PluginSettings::new(json.clone()).name("certgate"))
        .map_err(|e| policy_error(e.into()))?;
    let policy = Arc::new(PolicyStore::new(json));
    let (stop, stopped) = watch::channel(false);
    watch_policy(
        settings.policy.clone(),
        module.clone(),
        Arc::clone(&policy),
        settings.reload_every,
        stopped.clone(),
    );

    let listener = TcpListener::bind(settings.listen).await.map_err(|source| EdgeError::Listen {
        addr: settings.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| EdgeError::Listen {
        addr: settings.listen,
        source,
    })?;
    let shared = Arc::new(WorkerShared {
        module,
        policy,
        shared_data: Default::default(),
        clusters: settings.clusters.clone(),
        name: "certgate".into(),
    });
    let workers = (0..settings.workers.max(1))
        .map(|i| WorkerHandle::spawn(Arc::clone(&shared), i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(EdgeError::Worker)?;
    let state = Arc::new(EdgeState {
        upstream: settings.upstream.clone(),
        tls,
        handshake_timeout: settings.handshake_timeout,
        header_timeout: settings.header_timeout,
    });
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let done = tokio::spawn(accept_loop(listener, state, workers, slots, stopped));
    tracing::info!(%addr, upstream = %settings.upstream, workers = settings.workers, "certgate edge listening");
    Ok(RunningEdge {
        addr,
        stop,
        done: Some(done),
    })
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<EdgeState>,
    workers: Vec<WorkerHandle>,
    slots: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut next = 0usize;
    let mut refused = RefusedConnections::default();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            },
        };
        // over --max-connections: closed at once, before any TLS work
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused.count(peer);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let local = listener.local_addr().unwrap_or(peer);
        // the connection moves to its worker's event loop, and stays there
        let Ok(tcp) = tcp.into_std() else { continue };
        let Some(worker) = workers.get(next % workers.len().max(1)) else {
            break;
        };
        next = next.wrapping_add(1);
        let state = Arc::clone(&state);
        worker.serve(Box::new(move |worker, upstreams, watcher| {
            Box::pin(async move {
                let Ok(tcp) = tokio::net::TcpStream::from_std(tcp) else { return };
                serve_connection(tcp, peer, local, state, worker, upstreams, watcher).await;
                drop(slot);
            })
        }));
    }
    drop(listener);
    // each worker finishes its requests in flight, then ends
    let _ = tokio::task::spawn_blocking(move || {
        for worker in workers {
            worker.join();
        }
    })
    .await;
}

/// Connections refused over `--max-connections`, logged at most once a second
/// with how many, so a flood cannot flood the log too.
#[derive(Debug, Default)]
struct RefusedConnections {
    since_log: u64,
    last_log: Option<Instant>,
}

impl RefusedConnections {
    fn count(&mut self, peer: SocketAddr) {
        self.since_log += 1;
        if self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            tracing::warn!(%peer, refused = self.since_log, "connection refused: --max-connections reached");
            self.since_log = 0;
            self.last_log = Some(Instant::now());
        }
    }
}

/// One connection on its worker: the TLS handshake, Envoy's connection
/// properties, then HTTP/1.1 or HTTP/2 until it closes.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    state: Arc<EdgeState>,
    worker: Rc<RefCell<Worker>>,
    upstreams: Rc<Upstreams>,
    watcher: Watcher,
) {
    let stream = match tokio::time::timeout(state.handshake_timeout, state.tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, "TLS handshake refused: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let (_, session) = stream.get_ref();
    let sni = session.server_name().map(str::to_owned);
    // what rustls agreed on; the edge offers only these two
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
        Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
        _ => None,
    };
    let mut conn = Connection::tls(peer, local, sni.as_deref(), version);
    if let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) {
        // rustls only completes a handshake with a certificate it verified
        match conn.with_client_cert_der(leaf.as_ref(), true) {
            Ok(c) => conn = c,
            Err(e) => {
                tracing::warn!(%peer, "client certificate unreadable: {e}");
                return;
            }
        }
    }
    let conn = Rc::new(conn);
    let header_timeout = state.header_timeout;
    let service = service_fn(move |req| handle(req, Arc::clone(&state), Rc::clone(&conn), Rc::clone(&worker), Rc::clone(&upstreams)));
    let mut builder = auto::Builder::new(LocalExec);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let serving = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    // a client over a limit (431, header timeout) or gone mid-request: say why
    if let Err(e) = watcher.watch(serving.into_owned()).await {
        tracing::info!(%peer, "connection closed: {e}");
    }
}

/// Runs HTTP/2 streams on the worker's own loop (they hold the worker).
#[derive(Debug, Clone, Copy)]
struct LocalExec;

impl<F: std::future::Future + 'static> hyper::rt::Executor<F> for LocalExec {
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

fn json_reply(status: u16, reason: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{{\"error\":\"{reason}\"}}")));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn request_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    certgate_x509::text::hex(&b)
}

/// The request's headers as Envoy gives them to the filter chain.
fn filter_headers(parts: &hyper::http::request::Parts, conn: &Connection) -> Pairs {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| parts.headers.get("host").and_then(|h| h.to_str().ok()).map(str::to_owned))
        .unwrap_or_default();
    let mut headers = certgate_wire::header_map::request(parts.method.as_str(), &path, &authority);
    for (name, value) in &parts.headers {
        let n = name.as_str();
        // SANITIZE_SET: the client's own XFCC never passes
        if n == "host" || n == "x-forwarded-client-cert" || HOP_BY_HOP.contains(&n) {
            continue;
        }
        headers.push((n.to_owned(), value.as_bytes().to_vec()));
    }
    if let Some(xfcc) = &conn.xfcc {
        headers.push(("x-forwarded-client-cert".into(), xfcc.clone().into_bytes()));
    }
    headers.push(("x-forwarded-proto".into(), b"https".to_vec()));
    if !parts.headers.contains_key("x-request-id") {
        headers.push(("x-request-id".into(), request_id().into_bytes()));
    }
    headers
}

fn error_reply(e: FlowError) -> Response<Body> {
    match e {
        FlowError::Filter(_) => {
            tracing::error!("request refused: {e}");
            json_reply(500, "filter_failed")
        }
        FlowError::Paused => json_reply(500, "filter_paused_without_reply"),
        FlowError::Client => json_reply(400, "bad_request_body"),
        FlowError::Upstream => json_reply(502, "upstream_unavailable"),
    }
}

fn response_of(out: Outgoing) -> Response<Body> {
    let mut r = Response::new(Buffered::new(out.body, out.trailers).map_err(|never| match never {}).boxed());
    *r.status_mut() = out.status;
    *r.headers_mut() = out.headers;
    r
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<EdgeState>,
    conn: Rc<Connection>,
    worker: Rc<RefCell<Worker>>,
    upstreams: Rc<Upstreams>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let (parts, body) = req.into_parts();
    let headers = filter_headers(&parts, &conn);
    let end = hyper::body::Body::is_end_stream(&body);
    let (response, last) = match Flow::start(worker, &conn, headers, end).await {
        Ok((mut flow, first)) => {
            let result = flow.run(first, body, &upstreams, &state.upstream).await;
            let last = flow.close();
            let response = match result {
                Ok(ending) => response_of(outgoing(ending, last.as_ref())),
                Err(e) => error_reply(e),
            };
            (response, last)
        }
        Err(e) => (error_reply(e), None),
    };
    // the decision the filter published (certgate's; other filters publish none)
    let published = last
        .as_ref()
        .and_then(|s| s.filter_state.get(PROPERTY))
        .and_then(|v| Published::from_bytes(v));
    let field = |f: fn(&Published) -> Option<&str>| published.as_ref().and_then(f).unwrap_or("-").to_owned();
    tracing::info!(
        target: "certgate::access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        decision = %field(|p| Some(p.decision.as_str())),
        rule = %field(|p| p.rule.as_deref()),
        reason = %field(|p| p.reason.as_deref()),
        // the client's text: encoded so it cannot forge log lines
        cn = %certgate_x509::text::encode_value(&field(|p| p.cn.as_deref())),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(response)
}

/// Boxes a full body into the edge's body type.
fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}
