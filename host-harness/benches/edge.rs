//! `certgate serve` under load: requests per second, p50/p99 latency and the
//! edge process's CPU time per request, against the backend alone in the
//! same run. Keep-alive HTTP/1.1 over mTLS (alice), loopback, real processes.
//! Build the `.wasm` first (`./dev run` or `./dev test`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use certgate_harness::tls::{certificates, private_key};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const CONNECTIONS: usize = 8;
const SECONDS: u64 = 5;
const ROUNDS: usize = 3;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], ready: &str) -> (Proc, u16) {
    let mut child = Proc(
        Command::new(env!("CARGO_BIN_EXE_certgate"))
            .args(args)
            .current_dir(repo())
            .env("CERTGATE_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().unwrap().unwrap();
        if line.contains(ready) {
            return (child, line.rsplit(':').next().unwrap().trim().parse().unwrap());
        }
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn tls_client() -> Arc<ClientConfig> {
    let pki = repo().join("fixtures/pki");
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(&pki.join("root-ca.pem")).unwrap() {
        roots.add(c).unwrap();
    }
    let mut c = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certificates(&pki.join("alice-chain.pem")).unwrap(), private_key(&pki.join("alice.key")).unwrap())
        .unwrap();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// Runs the load; returns per-request latencies in µs.
async fn load(port: u16, tls: Option<Arc<ClientConfig>>) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut lat = Vec::new();
            macro_rules! drive {
                ($io:expr) => {{
                    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new($io)).await.unwrap();
                    tokio::spawn(conn);
                    while Instant::now() < deadline {
                        let req = Request::get("/app/page").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
                        let t = Instant::now();
                        let resp = send.send_request(req).await.unwrap();
                        assert_eq!(resp.status(), 200);
                        resp.into_body().collect().await.unwrap();
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                }};
            }
            match tls {
                Some(cfg) => {
                    let s = TlsConnector::from(cfg).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
                    drive!(s)
                }
                None => drive!(tcp),
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    all
}

fn report(name: &str, lat: &[u64], cpu: Option<f64>) {
    let n = lat.len();
    let rps = n as f64 / SECONDS as f64;
    let cpu = cpu.map(|c| format!("   edge CPU {:>6.1} µs/request", c * 1e6 / n as f64)).unwrap_or_default();
    println!(
        "{name:<22} {rps:>8.0} req/s   p50 {:>6} µs   p99 {:>6} µs{cpu}",
        lat[n / 2],
        lat[n * 99 / 100]
    );
}

fn main() {
    let wasm = repo().join(certgate_harness::locate::BUILD_PATH);
    assert!(wasm.is_file(), "build the .wasm first: ./dev run");
    let (_backend, bport) = spawn(&["backend", "--listen", "127.0.0.1:0"], "backend on");
    let upstream = format!("http://127.0.0.1:{bport}");
    let (edge, eport) = spawn(
        &["serve", "--config", "fixtures/serve.toml", "--listen", "127.0.0.1:0", "--upstream", &upstream, "--wasm", wasm.to_str().unwrap()],
        "edge on",
    );
    let pid = edge.0.id();
    println!("{CONNECTIONS} keep-alive connections, {SECONDS} s per run, {ROUNDS} rounds alternating; example policy, alice");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    for round in 1..=ROUNDS {
        println!("round {round}");
        let lat = rt.block_on(load(bport, None));
        report("  backend alone (HTTP)", &lat, None);
        let before = cpu_seconds(pid);
        let lat = rt.block_on(load(eport, Some(tls_client())));
        let cpu = cpu_seconds(pid) - before;
        report("  through the edge", &lat, Some(cpu));
    }
}
