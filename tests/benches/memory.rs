//! What certgate costs in memory. For `--concurrency` 1, 2 and 4, an Envoy
//! with the empty proxy-wasm filter and one with certgate (example policy)
//! each serve one request on 4 connections per worker (so every worker's VM
//! has run); then Envoy's `VmRSS`. Printed: both, the difference, and its
//! slope per worker. Then where a VM's bytes go, from the harness (the same
//! module in wasmtime): the module's code and data, and its linear memory
//! after start-up and after a request (Wasm memory only grows, so this is
//! the high-water mark). With `CERTGATE_BENCH_ALT_WASM=<path>` and/or
//! `CERTGATE_BENCH_ALT_POLICY=<json>`, a third Envoy runs that build and/or
//! policy, for an A/B of a change. Then, for each Envoy, where its memory is:
//! its allocator's heap, what of it is live, free pages and per-CPU caches
//! (admin `/memory`), and how much is in transparent huge pages.
//! `CERTGATE_BENCH_BOOTSTRAP=<yaml>` adds top-level bootstrap fields to every
//! Envoy (e.g. `memory_allocator_manager`), to try an operator's setting.
//! Build first: `./dev test`. Run: `cargo bench -p certgate-tests --bench memory`
//! (another Envoy of the matrix: `CERTGATE_ENVOY=.venvs/envoy-<version>/bin/envoy`).

// the benches use a part of what the tests share
#[allow(dead_code, unused_imports)]
#[path = "../tests/system/common/mod.rs"]
mod common;
#[allow(dead_code)]
mod support;

use std::time::Duration;

use certgate_host::{request_headers, Connection, PluginSettings, WasmModule};
use certgate_test_support::loadgen;
use common::envoy::{config, Envoy};
use common::repo;
use support::{allocator, huge_pages_kib, wasm_filter, with_filter};

/// Wasm section sizes: (code, data).
fn sections(bytes: &[u8]) -> (usize, usize) {
    let (mut code, mut data) = (0, 0);
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.unwrap() {
            wasmparser::Payload::CodeSectionStart { size, .. } => code = size as usize,
            wasmparser::Payload::DataSection(r) => data = r.range().len(),
            _ => {}
        }
    }
    (code, data)
}

/// One Envoy's memory as its allocator and the kernel see it.
struct Inside<'a> {
    workers: usize,
    name: &'a str,
    allocator: std::collections::BTreeMap<String, u64>,
    huge_kib: u64,
    rss_kib: u64,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let backend = rt.block_on(certgate_backend::start("127.0.0.1:0".parse().unwrap())).unwrap();
    let root = repo();
    let example = std::fs::read_to_string(root.join("fixtures/policies/example.json")).unwrap();
    let mut example: serde_json::Value = serde_json::from_str(&example).unwrap();
    // as the committed configuration has it (its listener requires a
    // verified certificate): so it runs on every Envoy of the matrix
    // (`CERTGATE_ENVOY=.venvs/envoy-1.36.4/bin/envoy`), those before 1.39
    // having no verified flag
    example["verification"] = "listener".into();
    let example = example.to_string();
    let certgate = root.join(certgate_edge::locate::BUILD_PATH).display().to_string();
    let empty = root
        .join("target/test-filters/wasm32-wasip1/release/empty_filter.wasm")
        .display()
        .to_string();
    let mut builds = vec![
        ("empty", empty.clone(), String::new()),
        ("certgate", certgate.clone(), example.clone()),
    ];
    let alt_wasm = std::env::var("CERTGATE_BENCH_ALT_WASM").ok();
    let alt_policy = std::env::var("CERTGATE_BENCH_ALT_POLICY").ok();
    if alt_wasm.is_some() || alt_policy.is_some() {
        builds.push(("alt", alt_wasm.unwrap_or(certgate.clone()), alt_policy.unwrap_or(example.clone())));
    }
    let pki = root.join("fixtures/pki");
    let tls = loadgen::client_tls(&pki.join("root-ca.pem"), &pki.join("alice-chain.pem"), &pki.join("alice.key")).unwrap();

    // an operator's addition to the bootstrap, e.g. `memory_allocator_manager`
    let bootstrap = std::env::var("CERTGATE_BENCH_BOOTSTRAP")
        .map(|extra| format!("\n{extra}\n"))
        .unwrap_or_default();

    println!("Envoy VmRSS (KiB) after one request on 4 connections per worker:");
    print!("{:<12}", "concurrency");
    for (name, _, _) in &builds {
        print!(" {name:>10}");
    }
    for (name, _, _) in builds.iter().skip(1) {
        print!(" {:>14}", format!("{name} - empty"));
    }
    println!();
    let mut over: Vec<Vec<i64>> = vec![Vec::new(); builds.len()];
    // per concurrency, per build: what Envoy's allocator and the kernel say
    let mut inside: Vec<Inside> = Vec::new();
    for workers in [1usize, 2, 4] {
        let mut rss = Vec::new();
        for (name, wasm, policy) in &builds {
            let yaml = with_filter(&config("required-mtls.yaml", backend.addr, None), &wasm_filter(wasm, policy)) + &bootstrap;
            let envoy = Envoy::start_with(&yaml, workers, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            let r = rt.block_on(loadgen::run_each(
                envoy.listener,
                vec![Some(tls.clone()); 4 * workers],
                "/app/page",
                Duration::ZERO,
                200,
            ));
            assert_eq!(r.errors, 0, "{name}: {:?}", r.first_error);
            std::thread::sleep(Duration::from_millis(1500));
            let rss_kib = envoy.rss_kib();
            rss.push(rss_kib as i64);
            inside.push(Inside {
                workers,
                name,
                allocator: allocator(&envoy),
                huge_kib: huge_pages_kib(&envoy),
                rss_kib,
            });
        }
        print!("{workers:<12}");
        for r in &rss {
            print!(" {r:>10}");
        }
        for (i, r) in rss.iter().enumerate().skip(1) {
            let d = r - rss[0];
            over[i].push(d);
            print!(" {d:>14}");
        }
        println!();
    }
    for (i, (name, _, _)) in builds.iter().enumerate().skip(1) {
        let slope = (over[i][2] - over[i][0]) as f64 / 3.0;
        println!(
            "{name}: {} KiB over the empty filter at --concurrency 1, {slope:.0} KiB more per worker",
            over[i][0]
        );
    }

    // Where the difference is: Envoy's heap (tcmalloc) holds what is live
    // and what was freed but kept (free pages, per-CPU caches); how much of
    // it transparent huge pages back (a release does not split them).
    println!("\nInside Envoy (KiB; admin /memory, and AnonHugePages of smaps_rollup):");
    println!(
        "{:<12} {:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "concurrency", "build", "VmRSS", "heap", "live", "free", "caches", "huge pages"
    );
    for Inside {
        workers,
        name,
        allocator,
        huge_kib: huge,
        rss_kib: rss,
    } in &inside
    {
        let k = |key: &str| allocator.get(key).copied().unwrap_or(0) / 1024;
        let free = k("pageheap_free");
        println!(
            "{workers:<12} {name:<10} {rss:>10} {:>10} {:>10} {free:>10} {:>10} {huge:>12}",
            k("heap_size"),
            k("allocated"),
            k("total_thread_cache")
        );
    }

    println!("\nOne VM, in the harness (wasmtime):");
    println!(
        "{:<10} {:>12} {:>12} {:>18} {:>18}",
        "module", "code bytes", "data bytes", "memory at start", "after a request"
    );
    for (name, wasm, policy) in &builds {
        let bytes = std::fs::read(wasm).unwrap();
        let (code, data) = sections(&bytes);
        let module = WasmModule::from_bytes(&bytes).unwrap();
        let mut plugin = module.start(PluginSettings::new(policy.clone())).unwrap();
        let at_start = plugin.memory_bytes();
        let alice = Connection::local_tls().with_client_cert_file(&pki.join("alice.pem"), true).unwrap();
        plugin.request(&alice, request_headers("GET", "/app/page")).unwrap();
        println!("{name:<10} {code:>12} {data:>12} {at_start:>18} {:>18}", plugin.memory_bytes());
    }
}
