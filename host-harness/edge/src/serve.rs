//! `certgate serve`: a local mTLS edge that runs the filter `.wasm` the way
//! Envoy does. TLS (rustls) verifies the client; each request gets Envoy's
//! connection properties and a sanitised `x-forwarded-client-cert`, goes
//! through the filter in the worker thread's own plugin instance, and is
//! answered locally or forwarded to the upstream with the filter's changes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use certgate_host::{Connection, Exchange, HarnessError, Plugin, PluginSettings, WasmModule};

use crate::policy_file::{watch as watch_policy, PolicyStore};
use crate::tls::{server_config, TlsFiles};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub listen: SocketAddr,
    /// `http://host:port` of the application.
    pub upstream: Uri,
    pub tls: TlsFiles,
    pub wasm: PathBuf,
    /// The policy file, watched for changes.
    pub policy: PathBuf,
    pub handshake_timeout: Duration,
    pub reload_every: Duration,
}

/// Why an edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Wasm(HarnessError),
    #[error("{0}")]
    Policy(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// A running edge; dropping it (or `shutdown`) stops it gracefully.
#[derive(Debug)]
pub struct RunningEdge {
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
    id: u64,
    module: WasmModule,
    policy: Arc<PolicyStore>,
    upstream: Uri,
    client: Client<HttpConnector, Incoming>,
}

static NEXT_EDGE: AtomicU64 = AtomicU64::new(1);

/// Starts an edge. Errors name the file or port at fault.
pub async fn start(settings: EdgeSettings) -> Result<RunningEdge, EdgeError> {
    let tls = TlsAcceptor::from(server_config(&settings.tls)?);
    let module = WasmModule::from_file(&settings.wasm).map_err(EdgeError::Wasm)?;
    let json = crate::policy_file::read_policy(&settings.policy).map_err(EdgeError::Policy)?;
    // refuse to start on a policy the filter refuses
    module
        .start(PluginSettings::new(json.clone()).name("certgate"))
        .map_err(|e| EdgeError::Policy(format!("{}: {e}", settings.policy.display())))?;
    let policy = Arc::new(PolicyStore::new(json));
    watch_policy(settings.policy.clone(), module.clone(), Arc::clone(&policy), settings.reload_every);

    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| EdgeError::Listen { addr: settings.listen, source })?;
    let addr = listener.local_addr().map_err(|source| EdgeError::Listen { addr: settings.listen, source })?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let state = Arc::new(EdgeState {
        id: NEXT_EDGE.fetch_add(1, Ordering::Relaxed),
        module,
        policy,
        upstream: settings.upstream.clone(),
        client: Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector),
    });
    let (stop, stopped) = watch::channel(false);
    let timeout = settings.handshake_timeout;
    let done = tokio::spawn(accept_loop(listener, tls, state, stopped, timeout));
    tracing::info!(%addr, upstream = %settings.upstream, "certgate edge listening");
    Ok(RunningEdge { addr, stop, done: Some(done) })
}

async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    state: Arc<EdgeState>,
    mut stopped: watch::Receiver<bool>,
    handshake_timeout: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let state = Arc::clone(&state);
        let local = listener.local_addr().unwrap_or(peer);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(handshake_timeout, tls.accept(tcp)).await {
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
            let mut conn = Connection::tls(peer, local, sni.as_deref());
            let version = match session.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "TLSv1.3",
            };
            conn.set("connection.tls_version", version);
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
            let conn = Arc::new(conn);
            let service = service_fn(move |req| handle(req, Arc::clone(&state), Arc::clone(&conn)));
            let builder = auto::Builder::new(TokioExecutor::new());
            let serving = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let _ = watcher.watch(serving.into_owned()).await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("shutdown: requests still in flight after 10 s"),
    }
}

thread_local! {
    /// Each worker thread's plugin instance per edge, with the policy version
    /// it runs: one VM per worker, as in Envoy.
    static WORKER: RefCell<HashMap<u64, (u64, Plugin, Instant)>> = RefCell::new(HashMap::new());
}

/// Runs the filter on request headers in this thread's plugin.
fn run_filter(state: &EdgeState, conn: &Connection, headers: Vec<(String, Vec<u8>)>) -> Result<Exchange, HarnessError> {
    let policy = state.policy.current();
    WORKER.with(|cell| {
        let mut plugins = cell.borrow_mut();
        let stale = match plugins.get(&state.id) {
            None => true,
            Some((_, p, _)) => p.failure().is_some(),
        };
        if stale {
            // a new worker, or one whose plugin trapped: start afresh (the
            // failed request itself was already answered 500)
            let plugin = state.module.start(PluginSettings::new(policy.json.clone()).name("certgate"))?;
            plugins.insert(state.id, (policy.version, plugin, Instant::now()));
        }
        let Some((version, plugin, last_tick)) = plugins.get_mut(&state.id) else {
            return Err(HarnessError::Poisoned("no plugin".into()));
        };
        if *version != policy.version {
            plugin.reconfigure(policy.json.clone())?;
            *version = policy.version;
        }
        // Envoy ticks on a timer; a worker here ticks when a request comes
        // after the plugin's period (enough for counters and clocks).
        let period = plugin.tick_period_ms();
        if period > 0 && last_tick.elapsed() >= Duration::from_millis(u64::from(period)) {
            plugin.tick()?;
            *last_tick = Instant::now();
        }
        let out = plugin.request(conn, headers);
        // the guest's log lines go to the edge's log
        for line in plugin.take_logs() {
            tracing::debug!(target: "certgate::filter", "{}", line.message);
        }
        out
    })
}

fn json_reply(status: u16, reason: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{{\"error\":\"{reason}\"}}")));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

/// Headers that belong to one hop and are not forwarded.
const HOP_BY_HOP: &[&str] = &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"];

fn request_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    certgate_x509::text::hex(&b)
}

async fn handle(req: Request<Incoming>, state: Arc<EdgeState>, conn: Arc<Connection>) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let method = parts.method.to_string();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| parts.headers.get("host").and_then(|h| h.to_str().ok()).map(str::to_owned))
        .unwrap_or_default();
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), parts.method.as_str().as_bytes().to_vec()),
        (":path".into(), path.clone().into_bytes()),
        (":authority".into(), authority.into_bytes()),
        (":scheme".into(), b"https".to_vec()),
    ];
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

    let outcome = run_filter(&state, &conn, headers);
    let (response, rule, reason, cn) = match outcome {
        Err(e) => {
            tracing::error!("filter failed, request refused: {e}");
            (json_reply(500, "filter_failed"), None, Some("filter_failed".to_owned()), None)
        }
        Ok(ex) => {
            let rule = ex.header("x-certgate-rule");
            let cn = ex.header("x-client-cn");
            if let Some(local) = ex.local_response {
                let text = String::from_utf8_lossy(&local.body).into_owned();
                let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let mut r = Response::new(full(local.body));
                *r.status_mut() = hyper::StatusCode::from_u16(local.status as u16).unwrap_or(hyper::StatusCode::FORBIDDEN);
                for (k, v) in &local.headers {
                    if let (Ok(k), Ok(v)) = (hyper::header::HeaderName::from_bytes(k.as_bytes()), hyper::header::HeaderValue::from_bytes(v)) {
                        r.headers_mut().append(k, v);
                    }
                }
                let reason = json.get("reason").and_then(serde_json::Value::as_str).map(str::to_owned);
                let rule = json.get("rule").and_then(serde_json::Value::as_str).map(str::to_owned);
                (r, rule, reason, None)
            } else if ex.forwarded() {
                let audit = ex.header("x-certgate-audit");
                // as Envoy does: the request goes on with the filter's
                // `:method` and `:path` (certgate forwards the path it matched)
                let method = ex.header(":method").and_then(|m| hyper::Method::from_bytes(m.as_bytes()).ok()).unwrap_or(parts.method);
                let path = ex.header(":path").unwrap_or(path.clone());
                (forward(&state, method, &path, ex.upstream_headers, body).await, rule, audit, cn)
            } else {
                (json_reply(500, "filter_paused_without_reply"), rule, None, cn)
            }
        }
    };
    tracing::info!(
        target: "certgate::access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        rule = rule.as_deref().unwrap_or("-"),
        reason = reason.as_deref().unwrap_or("-"),
        cn = cn.as_deref().unwrap_or("-"),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(response)
}

async fn forward(
    state: &EdgeState,
    method: hyper::Method,
    path: &str,
    headers: Vec<(String, Vec<u8>)>,
    body: Incoming,
) -> Response<Body> {
    let uri = format!(
        "{}://{}{}",
        state.upstream.scheme_str().unwrap_or("http"),
        state.upstream.authority().map(|a| a.as_str()).unwrap_or("127.0.0.1"),
        path
    );
    let mut builder = Request::builder().method(method).uri(uri);
    for (k, v) in &headers {
        if k.starts_with(':') || HOP_BY_HOP.contains(&k.as_str()) {
            if k == ":authority" {
                builder = builder.header("host", v.as_slice());
            }
            continue;
        }
        builder = builder.header(k.as_str(), v.as_slice());
    }
    let Ok(req) = builder.body(body) else {
        return json_reply(502, "bad_upstream_request");
    };
    match state.client.request(req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            for h in HOP_BY_HOP {
                parts.headers.remove(*h);
            }
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => {
            tracing::warn!(upstream = %state.upstream, "upstream failed: {e}");
            json_reply(502, "upstream_unavailable")
        }
    }
}

/// Boxes a full body into the edge's body type.
fn full(bytes: impl Into<Bytes>) -> BoxBody<Bytes, hyper::Error> {
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}
