//! What certgate costs inside Envoy. One run starts the test backend and five
//! Envoys (one worker each, pinned to core 0 with `taskset` when present):
//! (a) no filter, (b) Envoy's native RBAC on the same principal, (c) an empty
//! proxy-wasm filter (the floor any Wasm filter pays), (d) certgate with the
//! example policy (10 rules, every identity header), (e) the same in audit
//! mode. It drives each with the same keep-alive mTLS load (alice), variants
//! alternating A B C D E A B C D E ... so drift falls on all, and prints per
//! variant Envoy's CPU time per request (from /proc), requests per second,
//! p50/p99 latency, and the ratios to (a) and (c) with their spread.
//! Two more variants load 16 keep-alive connections, each with its own client
//! certificate (made with `certgate pki` from the fixture client CA): (f) the
//! empty filter and (g) certgate with `cache_size` 8, so every request parses
//! its certificate (a cache miss); (g) is compared with (f). (h) is (d) with
//! 7 identity headers instead of 14, to show what each header costs; (i) is
//! certgate doing the least it can (no headers, one anonymous rule); (k) is
//! (d) with the `gunicorn` header preset (4 headers, what a migrated Flask
//! application gets).
//! Last, memory: Envoy's resident size with certgate and with the empty filter
//! after one certificate, after 1,000 and after 2,000 distinct certificates
//! (one connection and request each), against certgate's cache bound (1,024).
//! With `CERTGATE_BENCH_ALT_WASM=<path>`, (j) is (d) and (l) is (g) with
//! another build of the filter, alternating with the rest: an A/B of a change
//! within one run. `CERTGATE_BENCH_VARIANTS=dj` runs only those variants
//! (with (a), (c), and (f) when a 16-certificate one is named), and no
//! memory part: a quicker A/B.
//! The committed configuration's access log is left out: it would cost every
//! variant the same and hide the filter's share.
//! Build first: `./dev test`. Run: `cargo bench -p certgate-tests --bench envoy`
//! (best as `taskset -c 1 cargo bench ...` so the load stays off Envoy's core).

// the benches use a part of what the tests share
#[allow(dead_code, unused_imports)]
#[path = "../tests/system/common/mod.rs"]
mod common;
#[allow(dead_code)]
mod support;

use std::time::Duration;

use std::path::PathBuf;
use std::sync::Arc;

use certgate_test_support::loadgen;
use common::envoy::{config, Envoy};
use common::repo;
use support::{distinct_clients, wasm_filter, with_filter, RBAC_FILTER};

const CONNECTIONS: usize = 8;
const SECONDS: u64 = 4;
const ROUNDS: usize = 6;

/// The least certgate can do: no identity headers, one anonymous rule (it
/// still reads the headers and the peer's identity).
const MINIMAL: &str = r#"{"headers":{"preset":"none"},"rules":[{"name":"all","path_prefix":"/","anonymous":true}]}"#;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let backend = rt.block_on(certgate_backend::start("127.0.0.1:0".parse().unwrap())).unwrap();
    // each Envoy its own port, picked by the kernel when it binds (a shared
    // port would spread the load over all of them: Envoy uses SO_REUSEPORT)
    let base = || config("required-mtls.yaml", backend.addr, None);
    let root = repo();
    let example: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("fixtures/policies/example.json")).unwrap()).unwrap();
    let mut audit = example.clone();
    audit["mode"] = "audit".into();
    let certgate = root.join(certgate_edge::locate::BUILD_PATH).display().to_string();
    let empty = root
        .join("target/test-filters/wasm32-wasip1/release/empty_filter.wasm")
        .display()
        .to_string();
    // the same policy setting 7 headers instead of 14: what each header costs
    let mut lean = example.clone();
    lean["headers"]["omit"] = serde_json::json!(["issuer_cn", "serial", "not_before", "expires_in", "san_uri", "san_dns", "san_email"]);
    let mut gunicorn = example.clone();
    gunicorn["headers"] = serde_json::json!({"preset": "gunicorn"});
    let mut small_cache = example.clone();
    small_cache["cache_size"] = 8.into();
    let mut variants: Vec<(&str, String)> = vec![
        ("a no filter", with_filter(&base(), "")),
        ("b native RBAC", with_filter(&base(), RBAC_FILTER)),
        ("c empty wasm", with_filter(&base(), &wasm_filter(&empty, ""))),
        ("d certgate", with_filter(&base(), &wasm_filter(&certgate, &example.to_string()))),
        (
            "e certgate audit",
            with_filter(&base(), &wasm_filter(&certgate, &audit.to_string())),
        ),
        ("f empty, 16 certs", with_filter(&base(), &wasm_filter(&empty, ""))),
        (
            "g certgate, misses",
            with_filter(&base(), &wasm_filter(&certgate, &small_cache.to_string())),
        ),
        (
            "h certgate, 7 hdrs",
            with_filter(&base(), &wasm_filter(&certgate, &lean.to_string())),
        ),
        ("i certgate, minimal", with_filter(&base(), &wasm_filter(&certgate, MINIMAL))),
        (
            "k certgate, gunicorn",
            with_filter(&base(), &wasm_filter(&certgate, &gunicorn.to_string())),
        ),
    ];
    if let Ok(alt) = std::env::var("CERTGATE_BENCH_ALT_WASM") {
        variants.push(("j certgate, alt", with_filter(&base(), &wasm_filter(&alt, &example.to_string()))));
        variants.push(("l alt, misses", with_filter(&base(), &wasm_filter(&alt, &small_cache.to_string()))));
    }
    // the variants under 16 distinct certificates, compared with (f)
    let distinct = |name: &str| name.contains("16 certs") || name.contains("misses");
    // a quicker A/B: only the variants named (their letters), with the ones
    // the ratios need
    if let Ok(only) = std::env::var("CERTGATE_BENCH_VARIANTS") {
        let any_distinct = variants.iter().any(|(name, _)| distinct(name) && only.contains(&name[..1]));
        variants.retain(|(name, _)| {
            only.contains(&name[..1]) || name.starts_with('a') || name.starts_with('c') || (any_distinct && name.starts_with('f'))
        });
    }
    let scratch = common::TempDir::new("bench-pki").unwrap();
    let clients = distinct_clients(&scratch.0, 2016);
    let root_ca = repo().join("fixtures/pki/root-ca.pem");
    let client_tls = |(chain, key): &(PathBuf, PathBuf)| Some(loadgen::client_tls(&root_ca, chain, key).unwrap());
    let sixteen: Vec<Option<Arc<rustls::ClientConfig>>> = clients[..16].iter().map(client_tls).collect();
    let taskset = std::process::Command::new("taskset").arg("--version").output().is_ok();
    let envoys: Vec<Envoy> = variants
        .iter()
        .map(|(name, yaml)| Envoy::start_with(yaml, 1, taskset.then_some("0")).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect();
    for ((name, _), e) in variants.iter().zip(&envoys) {
        eprintln!("{name}: {} (pid {})", e.listener, e.pid());
    }
    let pki = root.join("fixtures/pki");
    let tls = loadgen::client_tls(&pki.join("root-ca.pem"), &pki.join("alice-chain.pem"), &pki.join("alice.key")).unwrap();
    println!(
        "{} variants, {ROUNDS} rounds alternating, {SECONDS} s each, {CONNECTIONS} keep-alive mTLS connections; Envoy pinned: {taskset}",
        variants.len()
    );
    // per variant, per round: (cpu µs/request, req/s, p50, p99)
    let mut results: Vec<Vec<(f64, f64, u64, u64)>> = vec![Vec::new(); variants.len()];
    for round in 0..ROUNDS {
        for (i, envoy) in envoys.iter().enumerate() {
            let pid = envoy.pid();
            let before = loadgen::cpu_time(pid).unwrap();
            let configs = if distinct(variants[i].0) {
                sixteen.clone()
            } else {
                vec![Some(tls.clone()); CONNECTIONS]
            };
            let r = rt.block_on(loadgen::run_each(
                envoy.listener,
                configs,
                "/app/page",
                Duration::from_secs(SECONDS),
                200,
            ));
            let cpu = loadgen::cpu_time(pid).unwrap() - before;
            assert_eq!(r.errors, 0, "{}: {} errors, first: {:?}", variants[i].0, r.errors, r.first_error);
            let per = cpu.as_secs_f64() * 1e6 / r.requests() as f64;
            results[i].push((per, r.per_second(), r.percentile(50), r.percentile(99)));
        }
        eprintln!("round {} done", round + 1);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let position = |letter: char| variants.iter().position(|(name, _)| name.starts_with(letter)).unwrap_or(0);
    let ratio = |i: usize, j: usize| {
        let mut r: Vec<f64> = (0..ROUNDS).map(|k| results[i][k].0 / results[j][k].0).collect();
        r.sort_by(f64::total_cmp);
        format!("{:.2} ({:.2}–{:.2})", r[ROUNDS / 2], r[0], r[ROUNDS - 1])
    };
    println!(
        "{:<18} {:>12} {:>9} {:>7} {:>7}   {:<20} {:<20}",
        "variant", "CPU µs/req", "req/s", "p50 µs", "p99 µs", "ratio to (a)", "ratio to (c)"
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        let cpu = median(results[i].iter().map(|r| r.0).collect());
        let rps = median(results[i].iter().map(|r| r.1).collect());
        let p50 = median(results[i].iter().map(|r| r.2 as f64).collect());
        let p99 = median(results[i].iter().map(|r| r.3 as f64).collect());
        let floor = if distinct(name) { position('f') } else { position('c') };
        println!(
            "{name:<18} {cpu:>12.1} {rps:>9.0} {p50:>7.0} {p99:>7.0}   {:<20} {:<20}",
            ratio(i, 0),
            ratio(i, floor)
        );
    }
    println!("(f), (g) and (l): ratio to (c) is to (f), the empty filter under the same 16-certificate load");
    drop(envoys);
    if std::env::var_os("CERTGATE_BENCH_VARIANTS").is_some() {
        return;
    }

    // Memory: one connection and one request per distinct certificate.
    println!("\nEnvoy resident memory (KiB), certgate cache_size 1024 (the default):");
    println!("{:<18} {:>10} {:>12} {:>12}", "variant", "1 cert", "1,000 certs", "2,000 certs");
    for (name, yaml) in [("empty wasm", &variants[2].1), ("certgate", &variants[3].1)] {
        let envoy = Envoy::start_with(yaml, 1, taskset.then_some("0")).unwrap();
        let once = |range: std::ops::Range<usize>| {
            for chunk in clients[range].chunks(16) {
                let configs: Vec<_> = chunk.iter().map(client_tls).collect();
                let r = rt.block_on(loadgen::run_each(envoy.listener, configs, "/app/page", Duration::ZERO, 200));
                assert_eq!(r.errors, 0, "{name}: {:?}", r.first_error);
            }
        };
        rt.block_on(loadgen::run(
            envoy.listener,
            Some(tls.clone()),
            "/app/page",
            4,
            Duration::from_secs(2),
            200,
        ));
        let one = envoy.rss_kib();
        once(16..1016);
        let thousand = envoy.rss_kib();
        once(1016..2016);
        let two_thousand = envoy.rss_kib();
        println!("{name:<18} {one:>10} {thousand:>12} {two_thousand:>12}");
    }
}
