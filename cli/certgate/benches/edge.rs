//! `certgate serve` under load: requests per second, p50/p99 latency and the
//! edge process's CPU time per request, against the backend alone in the
//! same run. Keep-alive HTTP/1.1 over mTLS (alice), loopback, real processes.
//! Build the `.wasm` first (`./dev run` or `./dev test`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use certgate_test_support::loadgen::{self, LoadResult};

const CONNECTIONS: usize = 8;
const SECONDS: u64 = 5;
const ROUNDS: usize = 3;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
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

fn report(name: &str, r: &LoadResult, cpu: Option<Duration>) {
    let cpu = cpu
        .map(|c| format!("   edge CPU {:>6.1} µs/request", c.as_secs_f64() * 1e6 / r.requests() as f64))
        .unwrap_or_default();
    println!(
        "{name:<22} {:>8.0} req/s   p50 {:>6} µs   p99 {:>6} µs   errors {}{cpu}",
        r.per_second(),
        r.percentile(50),
        r.percentile(99),
        r.errors
    );
}

fn main() {
    let wasm = repo().join(certgate_edge::locate::BUILD_PATH);
    assert!(wasm.is_file(), "build the .wasm first: ./dev run");
    let (_backend, bport) = spawn(&["backend", "--listen", "127.0.0.1:0"], "backend on");
    let upstream = format!("http://127.0.0.1:{bport}");
    let (edge, eport) = spawn(
        &[
            "serve",
            "--config",
            "fixtures/serve.toml",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--wasm",
            wasm.to_str().unwrap(),
        ],
        "edge on",
    );
    let pid = edge.0.id();
    let pki = repo().join("fixtures/pki");
    let tls = loadgen::client_tls(&pki.join("root-ca.pem"), &pki.join("alice-chain.pem"), &pki.join("alice.key")).unwrap();
    println!("{CONNECTIONS} keep-alive connections, {SECONDS} s per run, {ROUNDS} rounds alternating; example policy, alice");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let d = Duration::from_secs(SECONDS);
    for round in 1..=ROUNDS {
        println!("round {round}");
        let r = rt.block_on(loadgen::run(([127, 0, 0, 1], bport).into(), None, "/app/page", CONNECTIONS, d, 200));
        report("  backend alone (HTTP)", &r, None);
        let before = loadgen::cpu_time(pid).unwrap();
        let r = rt.block_on(loadgen::run(
            ([127, 0, 0, 1], eport).into(),
            Some(tls.clone()),
            "/app/page",
            CONNECTIONS,
            d,
            200,
        ));
        let cpu = loadgen::cpu_time(pid).unwrap() - before;
        report("  through the edge", &r, Some(cpu));
    }
}
