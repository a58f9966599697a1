//! Shared by the end-to-end tests: the fixture paths, a real TLS client
//! (rustls, HTTP/1.1 or HTTP/2, with or without a client certificate), and an
//! edge + backend on ephemeral loopback ports.

pub mod browser;
pub mod envoy;
pub mod pki;
pub mod plugin;
pub mod soak;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use certgate_backend::{self as backend, RunningBackend};
use certgate_edge::tls::{certificates, private_key, ClientCertMode, TlsFiles};
use certgate_edge::{self as edge, EdgeSettings, RunningEdge};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The package names of the workspace's members, as cargo sees them.
pub fn workspace_crates() -> std::collections::BTreeSet<String> {
    crates_of(&cargo_metadata())
}

/// What `cargo metadata --no-deps` says of the workspace, as it printed it.
pub fn cargo_metadata() -> Vec<u8> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--offline", "--locked", "--no-deps", "--format-version", "1"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The crate names of [`cargo_metadata`]'s output.
pub fn crates_of(metadata: &[u8]) -> std::collections::BTreeSet<String> {
    let meta: serde_json::Value = serde_json::from_slice(metadata).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

pub fn pki(name: &str) -> PathBuf {
    repo().join("fixtures/pki").join(name)
}

/// The `certgate` command (`./dev test` builds it), run in the repository.
pub fn certgate() -> std::process::Command {
    let bin = repo().join("target/debug/certgate");
    assert!(bin.is_file(), "{} missing: `./dev test` builds it", bin.display());
    let mut c = std::process::Command::new(bin);
    c.current_dir(repo()).env("CERTGATE_LOG", "warn");
    c
}

pub fn wasm() -> PathBuf {
    let p = repo().join(certgate_edge::locate::BUILD_PATH);
    assert!(p.is_file(), "{} missing: build it with `./dev test`", p.display());
    p
}

/// An edge in front of a test backend, with the fixture PKI.
pub struct Stack {
    pub edge: RunningEdge,
    /// Kept so the backend runs as long as the stack.
    _backend: RunningBackend,
    pub policy: PathBuf,
    _dir: TempDir,
}

/// A directory removed on drop.
pub use certgate_test_support::scratch::ScratchDir as TempDir;

pub async fn stack(policy_json: &str, mode: ClientCertMode) -> Stack {
    let backend = backend::start(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let dir = TempDir::new("edge").unwrap();
    let policy = dir.0.join("policy.json");
    std::fs::write(&policy, policy_json).unwrap();
    let edge = edge::start(settings(&policy, mode, &format!("http://{}", backend.addr)))
        .await
        .unwrap();
    Stack {
        edge,
        _backend: backend,
        policy,
        _dir: dir,
    }
}

pub fn settings(policy: &std::path::Path, mode: ClientCertMode, upstream: &str) -> EdgeSettings {
    EdgeSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstream: upstream.parse().unwrap(),
        tls: TlsFiles {
            cert: pki("server.pem"),
            key: pki("server.key"),
            client_ca: pki("trusted-client-cas.pem"),
            crls: vec![pki("crls.pem")],
            mode,
        },
        wasm: wasm(),
        policy: policy.to_path_buf(),
        handshake_timeout: Duration::from_secs(5),
        header_timeout: Duration::from_secs(10),
        max_connections: 1024,
        reload_every: Duration::from_millis(100),
        clusters: Default::default(),
        workers: 2,
    }
}

/// A TLS client configuration trusting the fixture root, with a client
/// certificate (`<name>-chain.pem`, `<name>.key`) or none.
pub fn client_config(cert: Option<&str>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let files = cert.map(|name| (pki(&format!("{name}-chain.pem")), pki(&format!("{name}.key"))));
    client_config_files(&pki("root-ca.pem"), files.as_ref().map(|(c, k)| (c.as_path(), k.as_path())), alpn)
}

/// The same from any files: the root to trust, and a (chain, key) pair.
pub fn client_config_files(root: &Path, client: Option<(&Path, &Path)>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(root).unwrap() {
        roots.add(c).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(certificates(chain).unwrap(), private_key(key).unwrap())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// One HTTPS connection to the edge, HTTP/1.1 (keep-alive) or HTTP/2.
pub enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// Connects; an error is a failed TCP connect or TLS handshake.
pub async fn connect(addr: SocketAddr, cert: Option<&str>, h2: bool) -> Result<Conn, String> {
    let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
    connect_with(addr, client_config(cert, alpn), h2).await
}

/// Connects with a given client configuration (sharing one across
/// connections lets rustls resume TLS sessions, as browsers do).
pub async fn connect_with(addr: SocketAddr, config: Arc<ClientConfig>, h2: bool) -> Result<Conn, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let io = TokioIo::new(tls);
    if h2 {
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Conn::H2(send))
    } else {
        let (send, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Conn::H1(send))
    }
}

/// What came back: status, body, and (for a request the backend answered)
/// the headers the backend received.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub backend_headers: Option<Vec<(String, String)>>,
}

impl Reply {
    /// The outcome as a black-box client sees it, for the scenario table.
    pub fn observed(&self) -> certgate_test_support::scenarios::Observed {
        certgate_test_support::scenarios::Observed::black_box(
            self.status,
            self.backend_headers.is_none().then(|| self.body.clone()),
            self.backend_headers.clone().unwrap_or_default(),
        )
    }

    pub fn backend_header(&self, name: &str) -> Vec<String> {
        self.backend_headers
            .iter()
            .flatten()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

impl Conn {
    /// Waits until the connection can take a request; false if the server closed it.
    pub async fn ready(&mut self) -> bool {
        match self {
            Conn::H1(s) => s.ready().await.is_ok(),
            Conn::H2(s) => s.ready().await.is_ok(),
        }
    }

    /// Sends one request. A TLS 1.3 handshake failure on the server side
    /// shows here, on the first request.
    pub async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
        let mut b = Request::builder().method(method).uri(path);
        let host = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map_or("localhost", |(_, v)| *v);
        if let Conn::H2(_) = self {
            b = b.uri(format!("https://{host}{path}"));
        } else {
            b = b.header("host", host);
        }
        for (k, v) in headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("host")) {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let resp = match self {
            Conn::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await
            }
            Conn::H2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let backend_headers = json.get("headers").map(|_| certgate_backend::headers_of(&json));
        Ok(Reply {
            status,
            body,
            backend_headers,
        })
    }
}

/// Headers that differ by nature between two fronts, left out of
/// comparisons: request ids, Envoy's own timeout hint, the XFCC element (the
/// same fields; Envoy's URL-encoding of the PEM differs from the edge's in
/// which characters it escapes), framing, and `x-client-expires-in` (seconds
/// from now: two requests may fall either side of a second; the scenario
/// table checks the validity headers themselves).
const DIFFER_BY_NATURE: &[&str] = &[
    "x-request-id",
    "x-envoy-expected-rq-timeout-ms",
    "x-forwarded-client-cert",
    "content-length",
    "x-client-expires-in",
];

/// The headers the application got that must be the same through any front, sorted.
pub fn comparable_headers(r: &Reply) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = r
        .backend_headers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !DIFFER_BY_NATURE.contains(&k.as_str()))
        .collect();
    h.sort();
    h
}

/// What must be the same whichever build of certgate answered: the status,
/// a local reply's body, and the [`comparable_headers`].
pub fn comparable(reply: &Result<Reply, String>) -> String {
    match reply {
        Err(_) => "no answer".into(),
        Ok(r) => {
            let body = if r.backend_headers.is_none() { r.body.as_str() } else { "" };
            format!("{} {body} {:?}", r.status, comparable_headers(r))
        }
    }
}

/// Connect and send one GET.
pub async fn get(addr: SocketAddr, cert: Option<&str>, path: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
    connect(addr, cert, false).await?.send("GET", path, headers).await
}

/// One connection of [`resume_client`].
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The TLS session was resumed (no certificate exchange on this connection).
    pub reused: bool,
    /// 0 when the connection failed (see `error`).
    pub status: u16,
    pub body: String,
    /// Why the connection failed (a refused handshake), if it did.
    pub error: Option<String>,
}

impl Resumed {
    /// One line `resume_client.py` printed.
    pub fn from_line(line: &str) -> Resumed {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        Resumed {
            reused: v["reused"].as_bool().unwrap(),
            status: v["status"].as_u64().unwrap() as u16,
            body: v["body"].as_str().unwrap().to_owned(),
            error: v["error"].as_str().map(str::to_owned),
        }
    }

    pub fn backend_header(&self, name: &str) -> Vec<String> {
        let json: serde_json::Value = serde_json::from_str(&self.body).unwrap_or_default();
        let headers = if json.get("headers").is_some() {
            certgate_backend::headers_of(&json)
        } else {
            Vec::new()
        };
        headers
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }
}

/// `count` connections with a fixture client's certificate, each resuming
/// the TLS session of the one before (`tls`: "1.2" or "1.3"), one GET each:
/// Python's `ssl`, as a browser or `requests` would resume
/// (`tests/python/resume_client.py`).
pub fn resume_client(addr: SocketAddr, tls: &str, cert: &str, path: &str, count: usize) -> Vec<Resumed> {
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/python/resume_client.py"))
        .args([addr.ip().to_string(), addr.port().to_string()])
        .arg(pki("root-ca.pem"))
        .arg(pki(&format!("{cert}-chain.pem")))
        .arg(pki(&format!("{cert}.key")))
        .args([tls, path, &count.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "resume_client.py: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(Resumed::from_line).collect()
}

/// The project's Python (`.venv`, with Flask, gunicorn and requests from `./dev test`).
pub fn venv_python() -> PathBuf {
    let p = repo().join(".venv/bin/python");
    assert!(p.is_file(), "{} missing: `./dev test` makes the venv", p.display());
    p
}

/// A WSGI application from `tests/python` served by gunicorn on a loopback
/// port; stopped on drop.
pub struct Gunicorn {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl Gunicorn {
    /// `app` is `module:variable` in `tests/python`, e.g. `migrated_app:app`.
    pub fn start(app: &str) -> Gunicorn {
        Gunicorn::start_in(&repo().join("tests/python"), app)
    }

    /// `app` is `module:variable` in `dir`.
    pub fn start_in(dir: &Path, app: &str) -> Gunicorn {
        let port = envoy::free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = std::process::Command::new(repo().join(".venv/bin/gunicorn"))
            .args(["--bind", &addr.to_string(), "--workers", "1", "--chdir"])
            .arg(dir)
            .arg(app)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gunicorn from `./dev test`'s .venv");
        wait_for_port(addr, "gunicorn", Duration::from_secs(20));
        Gunicorn { child, addr }
    }
}

impl Drop for Gunicorn {
    /// SIGTERM first: gunicorn then stops its workers (SIGKILL to the master
    /// alone would leave them running); SIGKILL if it has not gone in 5 s.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request written byte for byte (the request target as given,
/// unparsed: exotic paths a client library would refuse or rewrite), over a
/// new TLS connection with `config`, or plain TCP without one. Returns the
/// status and the body.
pub async fn raw_request(
    addr: SocketAddr,
    config: Option<Arc<ClientConfig>>,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut request = format!("{method} {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("content-length: 0\r\n\r\n");
    match config {
        Some(config) => {
            let tls = TlsConnector::from(config)
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            exchange(tls, &request).await
        }
        None => exchange(tcp, &request).await,
    }
}

async fn exchange(mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin, request: &str) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    // Read until the response is complete by its own framing, not until the
    // peer closes: Envoy delays closing after a local reply (its
    // delayed_close_timeout) until the client goes first.
    let mut raw = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(reply) = complete_response(&raw) {
            return reply;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => raw.extend_from_slice(&chunk[..n]),
            // closed (with or without close_notify), failed or timed out
            _ => {
                return complete_response(&raw).unwrap_or_else(|| Err(format!("no complete response: {:?}", String::from_utf8_lossy(&raw))))
            }
        }
    }
}

/// The status and body of a complete HTTP/1.1 response, if `raw` holds one.
fn complete_response(raw: &[u8]) -> Option<Result<(u16, String), String>> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let Some(status) = head.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()) else {
        return Some(Err(format!("bad status line: {head:?}")));
    };
    let lower = head.to_ascii_lowercase();
    if lower.contains("transfer-encoding: chunked") {
        return body.contains("0\r\n\r\n").then(|| Ok((status, dechunk(body))));
    }
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
    match length {
        Some(n) => (body.len() >= n).then(|| Ok((status, body.to_owned()))),
        None => None,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest.get(n + 2..).unwrap_or("");
    }
    out
}

pub use certgate_x509::sha256_hex;

/// A scenario's request through a front: a new connection with its client
/// certificate (if any), its headers and its host.
pub async fn send_scenario(addr: SocketAddr, s: &certgate_test_support::scenarios::Scenario) -> Result<Reply, String> {
    let mut headers: Vec<(&str, &str)> = s.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    headers.push(("host", s.authority.as_str()));
    connect(addr, s.cert.as_deref(), false)
        .await?
        .send(&s.method, &s.path, &headers)
        .await
}

/// Judges what a front made of a scenario: a handshake the fixture PKI
/// refuses must fail, anything else must meet the scenario's expectations.
/// What differs goes to `failures`; the reply is returned when there is one
/// to look at further.
pub fn judge_scenario<'r>(
    front: &str,
    s: &certgate_test_support::scenarios::Scenario,
    reply: &'r Result<Reply, String>,
    failures: &mut Vec<String>,
) -> Option<&'r Reply> {
    let rejected = s.handshake == "rejected" || !s.verified;
    match (reply, rejected) {
        (Err(_), true) => None,
        (Ok(r), true) => {
            failures.push(format!("{}: {front}: the handshake should fail, got {}", s.name, r.status));
            None
        }
        (Err(e), false) => {
            failures.push(format!("{}: {front}: {e}", s.name));
            None
        }
        (Ok(r), false) => {
            if let Err(why) = s.check(&r.observed()) {
                failures.push(format!("{}: {front}: {why}", s.name));
            }
            Some(r)
        }
    }
}

/// Waits until something accepts connections on `addr`; fails the test
/// after `within`.
pub fn wait_for_port(addr: SocketAddr, what: &str, within: Duration) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(start.elapsed() < within, "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed on drop.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
