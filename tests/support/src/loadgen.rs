//! A small load generator for the benchmarks: keep-alive HTTP/1.1
//! connections (mTLS with a client certificate, or plain), each sending one
//! request after another for a fixed time; and a process's CPU time.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a client TLS set-up could not be built: the file, or rustls, says why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientTlsError(String);

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientTlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ClientTlsError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ClientTlsError(format!("{}: no certificate", path.display())));
    }
    Ok(certs)
}

/// A client TLS set-up trusting `root`, presenting `cert` (chain) and `key`.
pub fn client_tls(root: &Path, cert: &Path, key: &Path) -> Result<Arc<ClientConfig>, ClientTlsError> {
    let setup = |e: rustls::Error| ClientTlsError(format!("TLS set-up: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(root)? {
        roots.add(c).map_err(setup)?;
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| ClientTlsError(format!("{}: {e}", key.display())))?;
    let mut c = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .with_root_certificates(roots)
        .with_client_auth_cert(certificates(cert)?, key)
        .map_err(setup)?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Latency of each request, µs, sorted.
    pub latencies: Vec<u64>,
    /// Requests not answered with `expect_status`, or that failed.
    pub errors: usize,
    /// What the first error was.
    pub first_error: Option<String>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl LoadResult {
    /// Requests answered.
    pub fn requests(&self) -> usize {
        self.latencies.len()
    }

    /// Requests answered per second of the run.
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p`th percentile latency, µs.
    pub fn percentile(&self, p: usize) -> u64 {
        let n = self.latencies.len();
        if n == 0 {
            return 0;
        }
        self.latencies.get((n * p / 100).min(n - 1)).copied().unwrap_or(0)
    }
}

/// Runs `connections` keep-alive connections against `addr` for `duration`
/// (each sends at least one request).
pub async fn run(
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    path: &str,
    connections: usize,
    duration: Duration,
    expect_status: u16,
) -> LoadResult {
    run_each(addr, vec![tls; connections], path, duration, expect_status).await
}

/// [`run`] with one keep-alive connection per TLS configuration (each its
/// own client certificate, say).
pub async fn run_each(
    addr: SocketAddr,
    configs: Vec<Option<Arc<ClientConfig>>>,
    path: &str,
    duration: Duration,
    expect_status: u16,
) -> LoadResult {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for tls in configs {
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            one_connection(addr, tls, &path, deadline, expect_status).await
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok((l, e, first)) => {
                latencies.extend(l);
                errors += e;
                first_error = first_error.or(first);
            }
            Err(e) => {
                errors += 1;
                first_error = first_error.or(Some(e.to_string()));
            }
        }
    }
    latencies.sort_unstable();
    LoadResult {
        latencies,
        errors,
        first_error,
        elapsed: start.elapsed(),
    }
}

async fn one_connection(
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    path: &str,
    deadline: Instant,
    expect: u16,
) -> (Vec<u64>, usize, Option<String>) {
    let fail = |why: String| (Vec::new(), 1, Some(why));
    let tcp = match TcpStream::connect(addr).await {
        Ok(t) => t,
        Err(e) => return fail(format!("connect: {e}")),
    };
    let _ = tcp.set_nodelay(true);
    let sender = match tls {
        Some(cfg) => {
            let Ok(name) = ServerName::try_from("localhost") else {
                return fail("server name".into());
            };
            let s = match TlsConnector::from(cfg).connect(name, tcp).await {
                Ok(s) => s,
                Err(e) => return fail(format!("TLS: {e}")),
            };
            hyper::client::conn::http1::handshake(TokioIo::new(s)).await.map(|(send, conn)| {
                tokio::spawn(conn);
                send
            })
        }
        None => hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map(|(send, conn)| {
            tokio::spawn(conn);
            send
        }),
    };
    let mut send = match sender {
        Ok(s) => s,
        Err(e) => return fail(format!("HTTP handshake: {e}")),
    };
    let (mut lat, mut errors, mut first) = (Vec::new(), 0, None);
    // at least one request per connection, then until the deadline
    loop {
        let Ok(req) = Request::get(path).header("host", "localhost").body(Empty::<Bytes>::new()) else {
            return (lat, errors + 1, Some("request".into()));
        };
        let t = Instant::now();
        match send.send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await;
                if status == expect && body.is_ok() {
                    lat.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                } else {
                    errors += 1;
                    let body = body
                        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                        .unwrap_or_default();
                    first = first.or(Some(format!("status {status}: {body}")));
                }
            }
            Err(e) => return (lat, errors + 1, first.or(Some(format!("request: {e}")))),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    (lat, errors, first)
}

/// A process's user + system CPU time, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux
    Some(Duration::from_millis(ticks * 10))
}
