//! One request through the real certgate `.wasm` in the harness: prints the
//! time per request for an allowed request whose certificate is cached, one
//! whose certificate is parsed anew, and a denied one, each with the host
//! calls one such request makes. Build the `.wasm`
//! first (`./dev run`). Figures go to BENCHMARKS.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use certgate_host::{Clock, Connection, Plugin, PluginSettings, WasmModule};
use certgate_wire::Pairs;

const BATCHES: usize = 15;
const PER_BATCH: usize = 2_000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn client(name: &str) -> Connection {
    Connection::local_tls()
        .with_client_cert_file(&repo().join(format!("fixtures/pki/{name}.pem")), true)
        .unwrap()
}

/// A request's headers as Envoy gives them, with the connection's
/// `x-forwarded-client-cert` (`SANITIZE_SET`, the certificate in `Cert=`).
fn headers(conn: &Connection, path: &str) -> Pairs {
    let mut h = certgate_host::abi::codec::request_pseudo_headers("GET", path, "localhost:8443");
    h.push(("user-agent".into(), b"bench".to_vec()));
    h.push(("accept".into(), b"*/*".to_vec()));
    if let Some(xfcc) = &conn.xfcc {
        h.push(("x-forwarded-client-cert".into(), xfcc.clone().into_bytes()));
    }
    h
}

/// Median and fastest batch, in microseconds per request. `one` returns the
/// time of the part measured, or `None` to time all of it.
fn measure(name: &str, mut one: impl FnMut(usize) -> Option<Duration>) {
    for i in 0..PER_BATCH {
        one(i);
    }
    let mut per_request: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            let mut part = Duration::ZERO;
            let mut parts = false;
            for i in 0..PER_BATCH {
                if let Some(d) = one(i) {
                    part += d;
                    parts = true;
                }
            }
            let total = if parts { part } else { t.elapsed() };
            total.as_secs_f64() * 1e6 / PER_BATCH as f64
        })
        .collect();
    per_request.sort_by(f64::total_cmp);
    println!(
        "{name:<58} median {:>7.2} µs   fastest {:>7.2} µs   ({BATCHES} batches of {PER_BATCH})",
        per_request[BATCHES / 2],
        per_request[0]
    );
}

/// Host calls one more request makes (every callback, create to delete).
fn print_host_calls(p: &mut Plugin, conn: &Connection, path: &str) {
    let before = p.host_calls();
    p.request(conn, headers(conn, path)).unwrap();
    println!("{:<58} {} host calls per request", "", p.host_calls() - before);
}

fn start(module: &WasmModule, config: &str) -> Plugin {
    let clock = Clock::Fixed(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_305_600));
    module.start(PluginSettings::new(config).clock(clock)).unwrap()
}

fn main() {
    let wasm = repo().join("target/wasm32-wasip1/wasm/certgate_filter.wasm");
    let t = Instant::now();
    let module = WasmModule::from_file(&wasm).unwrap_or_else(|e| panic!("{e}; run ./dev run first"));
    println!(
        "compile the .wasm ({} bytes): {:?}",
        std::fs::metadata(&wasm).unwrap().len(),
        t.elapsed()
    );
    let example = std::fs::read_to_string(repo().join("fixtures/policies/example.json")).unwrap();

    let (alice, bob) = (client("alice"), client("bob"));

    let mut p = start(&module, &example);
    measure("allowed, cached identity (request: create..delete)", |_| {
        let out = p.request(&alice, headers(&alice, "/app/page")).unwrap();
        assert!(out.forwarded());
        None
    });
    print_host_calls(&mut p, &alice, "/app/page");

    let mut p = start(&module, &example);
    measure("allowed, cached identity (on_request_headers only)", |_| {
        let mut s = p.stream(&alice).unwrap();
        let h = headers(&alice, "/app/page");
        let t = Instant::now();
        s.request_headers(h, true).unwrap();
        Some(t.elapsed())
    });

    // cache of one certificate, two clients taking turns: every request parses
    let one = example.replacen("\"rules\"", "\"cache_size\": 1, \"rules\"", 1);
    let mut p = start(&module, &one);
    measure("allowed, first-seen certificate (parsed every time)", |i| {
        let conn = if i % 2 == 0 { &alice } else { &bob };
        let out = p.request(conn, headers(conn, "/app/page")).unwrap();
        assert!(out.forwarded());
        None
    });
    // PER_BATCH is even: bob came last, so alice is not in the cache
    print_host_calls(&mut p, &alice, "/app/page");

    let mut p = start(&module, &example);
    measure("denied (subject_not_allowed), cached identity", |_| {
        let out = p.request(&alice, headers(&alice, "/admin/x")).unwrap();
        assert!(!out.forwarded());
        None
    });
    print_host_calls(&mut p, &alice, "/admin/x");

    // a token bound to alice's certificate, in jwt_authn's metadata
    let bound = std::fs::read_to_string(repo().join("fixtures/policies/bound-tokens.json")).unwrap();
    let alice_pem = std::fs::read(repo().join("fixtures/pki/alice.pem")).unwrap();
    let thumbprint = certgate_x509::x5t_s256(&certgate_x509::pem::first_certificate(&alice_pem).unwrap());
    let payload = serde_json::json!({"iss": "https://issuer.certgate.test", "sub": "alice", "exp": 4_000_000_000u64, "cnf": {"x5t#S256": thumbprint}});
    let metadata = certgate_wire::metadata::properties("envoy.filters.http.jwt_authn", "certgate_jwt", &payload);
    // the same rules without `bound_tokens`: what the token check costs
    let mut unbound: serde_json::Value = serde_json::from_str(&bound).unwrap();
    unbound.as_object_mut().unwrap().remove("bound_tokens");
    let unbound = unbound.to_string();
    for (name, policy) in [
        ("bound-tokens policy without bound_tokens", &unbound),
        ("bound-tokens policy, token bound to alice", &bound),
    ] {
        let mut p = start(&module, policy);
        measure(&format!("allowed, cached identity, {name}"), |_| {
            let out = p
                .request_with_metadata(&alice, headers(&alice, "/app/page"), metadata.clone())
                .unwrap();
            assert!(out.forwarded(), "{:?}", out.local_response);
            None
        });
    }

    // the floor: a filter that adds one header (tests/filters/hello)
    let hello = repo().join("target/test-filters/wasm32-unknown-unknown/release/hello_filter.wasm");
    if let Ok(hello) = WasmModule::from_file(&hello) {
        let mut p = hello.start(PluginSettings::new("world")).unwrap();
        measure("floor: hello-filter, one header added", |_| {
            let out = p.request(&alice, headers(&alice, "/app/page")).unwrap();
            assert!(out.forwarded());
            None
        });
    }
}
