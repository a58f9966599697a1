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
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::tls::{certificates, private_key, TlsError};

/// A client TLS set-up trusting `root`, presenting `cert` (chain) and `key`.
pub fn client_tls(root: &Path, cert: &Path, key: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(root)? {
        roots.add(c).map_err(|e| TlsError::Setup(e.to_string()))?;
    }
    let mut c = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certificates(cert)?, private_key(key)?)
        .map_err(|e| TlsError::Setup(e.to_string()))?;
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
    pub elapsed: Duration,
}

impl LoadResult {
    pub fn requests(&self) -> usize {
        self.latencies.len()
    }

    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: usize) -> u64 {
        let n = self.latencies.len();
        if n == 0 {
            return 0;
        }
        self.latencies.get((n * p / 100).min(n - 1)).copied().unwrap_or(0)
    }
}

/// Runs `connections` keep-alive connections against `addr` for `duration`.
pub async fn run(
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    path: &str,
    connections: usize,
    duration: Duration,
    expect_status: u16,
) -> LoadResult {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let tls = tls.clone();
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move { one_connection(addr, tls, &path, deadline, expect_status).await }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok((l, e)) => {
                latencies.extend(l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    latencies.sort_unstable();
    LoadResult { latencies, errors, elapsed: start.elapsed() }
}

async fn one_connection(
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    path: &str,
    deadline: Instant,
    expect: u16,
) -> (Vec<u64>, usize) {
    let Ok(tcp) = TcpStream::connect(addr).await else { return (Vec::new(), 1) };
    let _ = tcp.set_nodelay(true);
    let sender = match tls {
        Some(cfg) => {
            let Ok(name) = ServerName::try_from("localhost") else { return (Vec::new(), 1) };
            let Ok(s) = TlsConnector::from(cfg).connect(name, tcp).await else { return (Vec::new(), 1) };
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
    let Ok(mut send) = sender else { return (Vec::new(), 1) };
    let (mut lat, mut errors) = (Vec::new(), 0);
    while Instant::now() < deadline {
        let Ok(req) = Request::get(path).header("host", "localhost").body(Empty::<Bytes>::new()) else { return (lat, errors + 1) };
        let t = Instant::now();
        match send.send_request(req).await {
            Ok(resp) => {
                let ok = resp.status().as_u16() == expect;
                let body = resp.into_body().collect().await;
                if ok && body.is_ok() {
                    lat.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                } else {
                    errors += 1;
                }
            }
            Err(_) => return (lat, errors + 1),
        }
    }
    (lat, errors)
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
