//! What TLS session resumption saves an Envoy running certgate: the committed
//! `envoy/required-mtls.yaml` as written (one worker, pinned to core 0 with
//! `taskset` when present), new connections of one request each, alice's
//! certificate; clients that never resume (a full handshake with the client
//! certificate every time) against clients that resume (rustls's session
//! cache), over TLS 1.3 and TLS 1.2, alternating in rounds. Prints Envoy's
//! CPU time per new connection, connections per second and the share Envoy
//! counted as resumed (its `ssl.session_reused` stat).
//! Build first: `./dev test`. Run: `taskset -c 1 cargo bench -p certgate-tests --bench resumption`.

// the benches use a part of what the tests share
#[allow(dead_code, unused_imports)]
#[path = "../tests/system/common/mod.rs"]
mod common;
#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_test_support::loadgen;
use common::envoy::{admin_get, config, Envoy};
use common::repo;
use rustls::client::Resumption;
use rustls::ClientConfig;

const ROUNDS: usize = 6;
/// New connections per variant and round, `PARALLEL` at a time.
const CONNECTIONS: usize = 800;
const PARALLEL: usize = 8;

fn client(tls13: bool, resume: bool) -> Arc<ClientConfig> {
    let pki = repo().join("fixtures/pki");
    let base = loadgen::client_tls(&pki.join("root-ca.pem"), &pki.join("alice-chain.pem"), &pki.join("alice.key")).unwrap();
    let version = if tls13 { &rustls::version::TLS13 } else { &rustls::version::TLS12 };
    let mut c = ClientConfig::builder_with_provider(base.crypto_provider().clone())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(root_store())
        .with_client_auth_cert(
            certgate_edge::tls::certificates(&pki.join("alice-chain.pem")).unwrap(),
            certgate_edge::tls::private_key(&pki.join("alice.key")).unwrap(),
        )
        .unwrap();
    c.alpn_protocols = base.alpn_protocols.clone();
    if !resume {
        c.resumption = Resumption::disabled();
    }
    Arc::new(c)
}

fn root_store() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in certgate_edge::tls::certificates(&repo().join("fixtures/pki/root-ca.pem")).unwrap() {
        roots.add(c).unwrap();
    }
    roots
}

/// Sums a counter over every listener (`listener.<addr>.ssl.<name>`).
fn ssl_stat(envoy: &Envoy, name: &str) -> u64 {
    let stats = admin_get(envoy.admin, &format!("/stats?filter=^listener\\..*\\.ssl\\.{name}$")).unwrap_or_default();
    stats
        .lines()
        .filter_map(|l| l.rsplit(": ").next()?.trim().parse::<u64>().ok())
        .sum()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let backend = rt.block_on(certgate_backend::start("127.0.0.1:0".parse().unwrap())).unwrap();
    let taskset = std::process::Command::new("taskset").arg("--version").output().is_ok();
    let envoy = Envoy::start_with(&config("required-mtls.yaml", backend.addr, None), 1, taskset.then_some("0")).unwrap();
    let variants = [
        ("TLS 1.3, full", client(true, false)),
        ("TLS 1.3, resumed", client(true, true)),
        ("TLS 1.2, full", client(false, false)),
        ("TLS 1.2, resumed", client(false, true)),
    ];
    println!(
        "envoy/required-mtls.yaml, certgate's committed policy; {ROUNDS} rounds alternating, {CONNECTIONS} new connections \
         ({PARALLEL} at a time, one request each) per variant and round; Envoy pinned: {taskset}"
    );
    // per variant, per round: (CPU µs per connection, connections/s, resumed share)
    let mut results: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); variants.len()];
    for round in 0..ROUNDS {
        for (i, (name, tls)) in variants.iter().enumerate() {
            let (handshakes, reused) = (ssl_stat(&envoy, "handshake"), ssl_stat(&envoy, "session_reused"));
            let cpu = loadgen::cpu_time(envoy.pid()).unwrap();
            let start = Instant::now();
            for _ in 0..CONNECTIONS / PARALLEL {
                let r = rt.block_on(loadgen::run_each(
                    envoy.listener,
                    vec![Some(tls.clone()); PARALLEL],
                    "/app/",
                    Duration::ZERO,
                    200,
                ));
                assert_eq!(r.errors, 0, "{name}: {:?}", r.first_error);
            }
            let elapsed = start.elapsed();
            let cpu = loadgen::cpu_time(envoy.pid()).unwrap() - cpu;
            // Envoy updates the stats as the connections close
            std::thread::sleep(Duration::from_millis(200));
            let h = ssl_stat(&envoy, "handshake") - handshakes;
            let r = ssl_stat(&envoy, "session_reused") - reused;
            results[i].push((
                cpu.as_secs_f64() * 1e6 / CONNECTIONS as f64,
                CONNECTIONS as f64 / elapsed.as_secs_f64(),
                r as f64 / h.max(1) as f64,
            ));
        }
        eprintln!("round {} done", round + 1);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{:<18} {:>16} {:>8} {:>9}   {:<22}",
        "variant", "CPU µs/conn", "conn/s", "resumed", "ratio to full (min–max)"
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        let full = i - i % 2;
        let mut ratios: Vec<f64> = (0..ROUNDS).map(|k| results[i][k].0 / results[full][k].0).collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "{name:<18} {:>16.1} {:>8.0} {:>8.0}%   {:.2} ({:.2}–{:.2})",
            median(results[i].iter().map(|r| r.0).collect()),
            median(results[i].iter().map(|r| r.1).collect()),
            100.0 * median(results[i].iter().map(|r| r.2).collect()),
            ratios[ROUNDS / 2],
            ratios[0],
            ratios[ROUNDS - 1],
        );
    }
}
