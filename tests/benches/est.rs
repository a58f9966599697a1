//! Enrollments per second of `certgate pki serve` (the release build) on
//! this machine, EC P-256 CSRs with one-time tokens, a new TLS connection per
//! enrollment (as EST clients make them): one client at a time, then 50 at
//! once. The CSRs and tokens are made before the clock starts; what is timed
//! is the client's request to its answer (TLS handshake, the token's claim,
//! signing, the index written under its lock, the audit line). Prints
//! enrollments per second and the latency's median and 99th percentile.
//! Build first: `./dev test`. Run: `cargo bench -p certgate-tests --bench est`.

// the benches use a part of what the tests share
#[allow(dead_code, unused_imports)]
#[path = "../tests/system/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use common::{repo, wait_for_port, KillOnDrop, TempDir};

fn certgate(home: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(repo().join("target/release/certgate"));
    c.current_dir(home).env("CERTGATE_LOG", "warn");
    c
}

/// One enrollment: status and how long it took.
async fn enroll(addr: SocketAddr, tls: Arc<ClientConfig>, body: String, auth: String) -> (u16, Duration) {
    let start = Instant::now();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::post("/.well-known/est/simpleenroll")
        .header("host", "localhost")
        .header("content-type", "application/pkcs10")
        .header("authorization", auth)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await.unwrap();
    (status, start.elapsed())
}

fn main() {
    let home = TempDir::new("est-bench").unwrap();
    for args in [
        vec!["pki", "init-root", "--org", "Example"],
        vec!["pki", "init-client-ca", "--org", "Example"],
        vec!["pki", "server", "localhost", "--ip", "127.0.0.1"],
    ] {
        let out = certgate(&home.0).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let pki = home.0.join("pki");
    let addr = SocketAddr::from(([127, 0, 0, 1], common::envoy::free_port()));
    let _server = KillOnDrop(
        certgate(&home.0)
            .args(["pki", "serve", "--allow", "token", "--listen", &addr.to_string()])
            .arg("--cert")
            .arg(pki.join("issued/localhost-chain.pem"))
            .arg("--key")
            .arg(pki.join("issued/localhost.key"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(addr, "certgate pki serve", Duration::from_secs(20));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.join("root-ca/ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let ca = certgate_pki::store::Home::new(&pki).open_ca("client-ca").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "certgate pki serve (release), EC P-256 CSRs, a token and a new TLS connection per enrollment; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<14} {:>7} {:>14} {:>9} {:>9}",
        "clients", "total", "enrollments/s", "p50 ms", "p99 ms"
    );
    for (parallel, total) in [(1usize, 200usize), (50, 1000)] {
        // the requests, made before the clock starts
        let requests: Vec<(String, String)> = (0..total)
            .map(|i| {
                let cn = format!("bench-{parallel}-{i}");
                let grant = certgate_pki::enroll::tokens::TokenGrant::new(Some(cn.clone()), &Default::default(), 1).unwrap();
                let token = certgate_pki::enroll::tokens::create(&ca, &grant).unwrap().0;
                let key = rcgen::KeyPair::generate().unwrap();
                let mut params = rcgen::CertificateParams::default();
                params.distinguished_name.push(rcgen::DnType::CommonName, cn.as_str());
                let csr = params.serialize_request(&key).unwrap();
                use base64ct::Encoding;
                (
                    base64ct::Base64::encode_string(csr.der()),
                    format!("Basic {}", base64ct::Base64::encode_string(format!("{cn}:{token}").as_bytes())),
                )
            })
            .collect();
        let started = Instant::now();
        let mut latencies: Vec<Duration> = runtime.block_on(async {
            let queue = Arc::new(tokio::sync::Mutex::new(requests.into_iter()));
            let mut workers = Vec::new();
            for _ in 0..parallel {
                let (queue, tls) = (Arc::clone(&queue), Arc::clone(&tls));
                workers.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    loop {
                        let next = queue.lock().await.next();
                        let Some((body, auth)) = next else { break };
                        let (status, took) = enroll(addr, Arc::clone(&tls), body, auth).await;
                        assert_eq!(status, 200);
                        out.push(took);
                    }
                    out
                }));
            }
            let mut all = Vec::new();
            for w in workers {
                all.extend(w.await.unwrap());
            }
            all
        });
        let elapsed = started.elapsed();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "{:<14} {:>7} {:>14.0} {:>9.1} {:>9.1}",
            format!("{parallel} at a time"),
            total,
            total as f64 / elapsed.as_secs_f64(),
            at(0.5).as_secs_f64() * 1000.0,
            at(0.99).as_secs_f64() * 1000.0
        );
    }
    let lines = std::fs::read_to_string(pki.join("client-ca/index.txt")).unwrap().lines().count() - 1;
    println!("index lines written: {lines} (every enrollment recorded)");
}
