//! Which build to pick, measured in one run on the default Envoy: the
//! Gunicorn worker's job (strip the identity headers, require the allowed
//! issuer, set X-USER, X-ISSUER, X-NOT-BEFORE, X-NOT-AFTER) done by
//! (a) no filter (the floor), (x) no filter but with the XFCC settings
//! (`forward_client_cert_details: SANITIZE_SET`, the certificate in it: the
//! Wasm build's and the module's XFCC alternative), (s) no filter but with
//! the `set_filter_state` network filter the committed module configuration
//! has (the certificate into connection filter state at the handshake, no
//! XFCC: the module's floor), (b) Envoy's native RBAC (admits by principal,
//! sets no header), (c) Envoy's Lua filter doing the job by hand (written
//! here as a user would, the strongest fair version: every spelling a WSGI
//! application reads as the same header is removed), (d) an empty proxy-wasm
//! filter, (e) certgate's Wasm build and (f) its dynamic module, both with
//! the example policy and the gunicorn preset, and (g) the module with the
//! default preset (14 headers), (h) the module doing the least it can (no
//! headers, one anonymous rule), (o) the module over XFCC (the alternative
//! where no network filter can be added). Each Envoy has one worker pinned to core 0
//! (`taskset` when present); the same keep-alive mTLS load (alice, 8
//! connections) goes to each in turn, A B C ... A B C ..., and the bench
//! prints Envoy's CPU per request (from /proc), req/s, p50/p99, and the
//! ratio to (a) and to the variant's own floor: (s) for the module, (x) for
//! the module over XFCC, the empty Wasm filter (d) for the Wasm build, each
//! with the settings of its committed configuration. Ratios are of the minimum of
//! each variant's rounds (the least noise a round can add), with the
//! round-by-round spread beside them. (a), (b) and (c) run without the XFCC
//! settings, which they do not need.
//! (A) no filter, (E) the Wasm build and (F) the module then take 16
//! connections, each with its own certificate, under `cache_size` 8: every
//! request is a first-seen certificate for certgate; (E) and (F) are
//! compared with (A).
//! Memory: Envoy's resident size over no filter, for each variant, at
//! `--concurrency` 1 and 4 before any request, and after 1,000 distinct
//! certificates (one connection and request each, `--concurrency` 1).
//! Last, the module's targets, each met or missed by how much.
//! `CERTGATE_BENCH_VARIANTS=fh` runs only those (with the floors), without
//! the memory part; `CERTGATE_BENCH_ALT_MODULE=<path>` adds (j) and (l), (f)
//! and (F) with another build of the module: an A/B within one run
//! (`<path>:<path>...` adds (k), (m), (n), cached, with more builds).
//! Build first: `./dev test`. Run: `taskset -c 1 cargo bench -p certgate-tests --bench builds`.

// the benches use a part of what the tests share
#[allow(dead_code, unused_imports)]
#[path = "../tests/system/common/mod.rs"]
mod common;
#[allow(dead_code)]
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use certgate_test_support::loadgen;
use common::envoy::{config, module, module_filter, with_peer_cert_state, Envoy};
use common::repo;
use support::{distinct_clients, wasm_filter, with_filter, RBAC_FILTER};

const CONNECTIONS: usize = 8;
const SECONDS: u64 = 4;
const ROUNDS: usize = 6;

/// A configuration without the XFCC settings: what a filter that reads the
/// connection itself (RBAC, Lua, no filter) needs.
fn without_xfcc(yaml: &str) -> String {
    yaml.lines()
        .filter(|l| !l.contains("forward_client_cert_details") && !l.contains("set_current_client_cert_details"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The least certgate can do: no identity headers, one anonymous rule (it
/// still reads the headers and the peer's identity, counts and publishes).
const MINIMAL: &str =
    r#"{"verification":"listener","headers":{"preset":"none"},"rules":[{"name":"all","path_prefix":"/","anonymous":true}]}"#;

/// The Gunicorn worker's job in Envoy's Lua filter, as a user would write
/// it: Envoy lowercases header names, and a WSGI application reads `x-user`
/// and `x_user` alike, so both spellings are removed.
const LUA: &str = r#"          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code:
                inline_string: |
                  local SPOOFABLE = { "x-user", "x_user", "x-issuer", "x_issuer", "x-not-before", "x_not_before", "x-not_before", "x-not-after", "x_not_after", "x-not_after" }
                  local function deny(handle, reason)
                    handle:respond({ [":status"] = "403", ["content-type"] = "application/json" },
                      '{"error":"forbidden","reason":"' .. reason .. '"}')
                  end
                  function envoy_on_request(handle)
                    local headers = handle:headers()
                    for _, name in ipairs(SPOOFABLE) do headers:remove(name) end
                    local ssl = handle:streamInfo():downstreamSslConnection()
                    if ssl == nil or not ssl:peerCertificatePresented() then return deny(handle, "certificate_required") end
                    local issuer = ssl:issuerPeerCertificate()
                    if issuer ~= "CN=Example Client CA,O=Example" then return deny(handle, "issuer_not_allowed") end
                    headers:add("x-user", string.match(ssl:subjectPeerCertificate(), "CN=([^,]+)") or "")
                    headers:add("x-issuer", string.match(issuer, "CN=([^,]+)") or "")
                    headers:add("x-not-before", tostring(ssl:validFromPeerCertificate()))
                    headers:add("x-not-after", tostring(ssl:expirationPeerCertificate()))
                  end
"#;

/// One Envoy set-up and the load it takes.
struct Variant {
    name: &'static str,
    yaml: String,
    /// Under 16 distinct certificates (compared with `A`), else alice's 8 connections (with `a`).
    distinct: bool,
}

impl Variant {
    /// Another build of the module (`CERTGATE_BENCH_ALT_MODULE`), perhaps
    /// one cut short to see where the time goes: not held to the policy's answers.
    fn alt(&self) -> bool {
        self.name.contains(" alt")
    }

    /// The letter of the variant it is compared with besides no filter:
    /// what the same build costs with nothing of certgate's in it.
    fn floor(&self) -> char {
        if self.distinct {
            return 'A';
        }
        match self.name.as_bytes()[0] {
            b'f' | b'g' | b'h' => 's',
            _ if self.alt() => 's',
            b'o' => 'x',
            b'e' => 'd',
            _ => 'a',
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let backend = rt.block_on(certgate_backend::start("127.0.0.1:0".parse().unwrap())).unwrap();
    let base = || config("required-mtls.yaml", backend.addr, None);
    let root = repo();
    let mut gunicorn: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("fixtures/policies/example.json")).unwrap()).unwrap();
    // the module's requirement, given to both builds alike
    gunicorn["verification"] = "listener".into();
    let default = gunicorn.clone();
    gunicorn["headers"] = serde_json::json!({"preset": "gunicorn"});
    let mut misses = gunicorn.clone();
    misses["cache_size"] = 8.into();
    let (gunicorn, default, misses) = (gunicorn.to_string(), default.to_string(), misses.to_string());
    let wasm = root.join(certgate_edge::locate::BUILD_PATH).display().to_string();
    let empty = root
        .join("target/test-filters/wasm32-wasip1/release/empty_filter.wasm")
        .display()
        .to_string();
    let so = module();
    let v = |name, filter: &str, distinct| Variant {
        name,
        yaml: with_filter(&base(), filter),
        distinct,
    };
    let bare = |name, filter: &str| Variant {
        name,
        yaml: without_xfcc(&with_filter(&base(), filter)),
        distinct: false,
    };
    // the module as committed: the certificate from the connection's filter
    // state (set_filter_state at the handshake), no XFCC built
    let native = |name, filter: &str, distinct| Variant {
        name,
        yaml: with_peer_cert_state(&with_filter(&base(), filter)),
        distinct,
    };
    let mut variants = vec![
        bare("a no filter", ""),
        v("x no filter, XFCC", "", false),
        native("s no filter, state", "", false),
        bare("b native RBAC", RBAC_FILTER),
        bare("c Lua, by hand", LUA),
        v("d empty Wasm", &wasm_filter(&empty, ""), false),
        v("e certgate Wasm", &wasm_filter(&wasm, &gunicorn), false),
        native("f certgate module", &module_filter(&so, &gunicorn), false),
        native("g module, 14 hdrs", &module_filter(&so, &default), false),
        native("h module, minimal", &module_filter(&so, MINIMAL), false),
        v("o module over XFCC", &module_filter(&so, &gunicorn), false),
        v("A no filter, 16", "", true),
        v("E Wasm, first-seen", &wasm_filter(&wasm, &misses), true),
        native("F module, first-seen", &module_filter(&so, &misses), true),
    ];
    // An A/B of a change within one run: (j) is (f) and (l) is (F) with
    // another build of the module; more builds (`:`-separated) are (k),
    // (m), (n), cached only.
    if let Ok(alts) = std::env::var("CERTGATE_BENCH_ALT_MODULE") {
        let alts: Vec<PathBuf> = alts.split(':').map(PathBuf::from).collect();
        let names = ["j alt module", "k alt module 2", "m alt module 3", "n alt module 4"];
        for (alt, name) in alts.iter().zip(names) {
            variants.push(native(name, &module_filter(alt, &gunicorn), false));
        }
        variants.push(native("l alt, first-seen", &module_filter(&alts[0], &misses), true));
    }
    // A quicker run: only the variants named (their letters), with the
    // floors their ratios need, and no memory part.
    let only = std::env::var("CERTGATE_BENCH_VARIANTS").ok();
    if let Some(only) = &only {
        let floors: String = variants
            .iter()
            .filter(|v| only.contains(&v.name[..1]))
            .map(Variant::floor)
            .collect();
        variants.retain(|v| only.contains(&v.name[..1]) || floors.contains(&v.name[..1]) || v.name.starts_with(['a', 'A', 'x', 's']));
    }
    let scratch = common::TempDir::new("bench-pki").unwrap();
    let clients = distinct_clients(&scratch.0, 1016);
    let root_ca = root.join("fixtures/pki/root-ca.pem");
    let client_tls = |(chain, key): &(PathBuf, PathBuf)| Some(loadgen::client_tls(&root_ca, chain, key).unwrap());
    let sixteen: Vec<Option<Arc<rustls::ClientConfig>>> = clients[..16].iter().map(client_tls).collect();
    let pki = root.join("fixtures/pki");
    let alice = loadgen::client_tls(&pki.join("root-ca.pem"), &pki.join("alice-chain.pem"), &pki.join("alice.key")).unwrap();
    let taskset = std::process::Command::new("taskset").arg("--version").output().is_ok();
    let pinned = taskset.then_some("0");

    // What each variant answers, before measuring it.
    let envoys: Vec<Envoy> = variants
        .iter()
        .map(|v| Envoy::start_with(&v.yaml, 1, pinned).unwrap_or_else(|e| panic!("{}: {e}", v.name)))
        .collect();
    for (v, e) in variants.iter().zip(&envoys) {
        let r = rt
            .block_on(common::get(
                e.listener,
                Some("alice"),
                "/api/v0.1/headers",
                &[("x-user", "mallory"), ("x_user", "mallory")],
            ))
            .unwrap();
        assert_eq!(r.status, 200, "{}: {}", v.name, r.body);
        // the variants doing the Gunicorn worker's job
        if v.name.starts_with(['c', 'e', 'f', 'o', 'E', 'F']) {
            assert_eq!(r.backend_header("x-user"), ["alice"], "{}: {}", v.name, r.body);
            assert_eq!(r.backend_header("x-issuer"), ["Example Client CA"], "{}", v.name);
            assert!(r.backend_header("x_user").is_empty(), "{}", v.name);
        }
        let bob = rt
            .block_on(common::get(e.listener, Some("carol"), "/api/v0.1/headers", &[]))
            .unwrap();
        // the floors and the variants that admit anyone
        if !v.name.starts_with(['a', 'x', 's', 'A', 'd', 'h']) && !v.alt() {
            assert_eq!(bob.status, 403, "{}: carol's issuer is not allowed: {}", v.name, bob.body);
        }
    }
    println!(
        "{} variants on Envoy {}, {ROUNDS} rounds alternating, {SECONDS} s each, {CONNECTIONS} keep-alive mTLS connections; Envoy pinned: {taskset}",
        variants.len(),
        common::envoy::matrix().last().unwrap()
    );
    // per variant, per round: (cpu µs/request, req/s, p50, p99)
    let mut results: Vec<Vec<(f64, f64, u64, u64)>> = vec![Vec::new(); variants.len()];
    for round in 0..ROUNDS {
        for (i, envoy) in envoys.iter().enumerate() {
            let pid = envoy.pid();
            let before = loadgen::cpu_time(pid).unwrap();
            let configs = if variants[i].distinct {
                sixteen.clone()
            } else {
                vec![Some(alice.clone()); CONNECTIONS]
            };
            let r = rt.block_on(loadgen::run_each(
                envoy.listener,
                configs,
                "/app/page",
                Duration::from_secs(SECONDS),
                200,
            ));
            let cpu = loadgen::cpu_time(pid).unwrap() - before;
            assert_eq!(r.errors, 0, "{}: {} errors, first: {:?}", variants[i].name, r.errors, r.first_error);
            results[i].push((
                cpu.as_secs_f64() * 1e6 / r.requests() as f64,
                r.per_second(),
                r.percentile(50),
                r.percentile(99),
            ));
        }
        eprintln!("round {} done", round + 1);
    }
    drop(envoys);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let at = |letter: char| variants.iter().position(|v| v.name.starts_with(letter)).unwrap();
    // a variant's least CPU per request over its rounds
    let cpu = |i: usize| results[i].iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    // the ratio of two variants' least CPU, and the spread of the round-by-round ratios
    let ratio = |i: usize, j: usize| {
        let mut r: Vec<f64> = (0..ROUNDS).map(|k| results[i][k].0 / results[j][k].0).collect();
        r.sort_by(f64::total_cmp);
        (cpu(i) / cpu(j), r[0], r[ROUNDS - 1])
    };
    println!(
        "{:<22} {:>11} {:>9} {:>7} {:>7}   {:<20} × its floor (rounds' spread)",
        "variant", "CPU µs/req", "req/s", "p50 µs", "p99 µs", "× no filter"
    );
    for (i, v) in variants.iter().enumerate() {
        let rps = median(results[i].iter().map(|r| r.1).collect());
        let p50 = median(results[i].iter().map(|r| r.2 as f64).collect());
        let p99 = median(results[i].iter().map(|r| r.3 as f64).collect());
        let (r, lo, hi) = ratio(i, if v.distinct { at('A') } else { at('a') });
        let floor = v.floor();
        let own = if floor == 'a' || floor == 'A' {
            String::new()
        } else {
            let (f, flo, fhi) = ratio(i, at(floor));
            format!("{f:.2} × ({floor}) ({flo:.2}–{fhi:.2})")
        };
        println!(
            "{:<22} {:>11.1} {rps:>9.0} {p50:>7.0} {p99:>7.0}   {:<20} {own}",
            v.name,
            cpu(i),
            format!("{r:.2} ({lo:.2}–{hi:.2})")
        );
    }
    println!("CPU: the least of the rounds; (A), (E), (F): 16 connections, each its own certificate, compared with (A), which has the XFCC settings");

    if only.is_some() {
        return;
    }

    // Memory: resident size over no filter.
    let rss = |yaml: &str, workers: usize, certificates: usize| {
        let envoy = Envoy::start_with(yaml, workers, pinned).unwrap();
        for chunk in clients[16..16 + certificates].chunks(16) {
            let configs: Vec<_> = chunk.iter().map(client_tls).collect();
            let r = rt.block_on(loadgen::run_each(envoy.listener, configs, "/app/page", Duration::ZERO, 200));
            assert_eq!(r.errors, 0, "{:?}", r.first_error);
        }
        std::thread::sleep(Duration::from_secs(1));
        envoy.rss_kib()
    };
    let settings = [(1, 0), (4, 0), (1, 1000)];
    let measure = |yaml: &str| settings.map(|(workers, certificates)| rss(yaml, workers, certificates));
    let floor = measure(&variants[at('a')].yaml);
    println!("\nEnvoy resident memory over no filter, MB (no filter's own in KiB):");
    println!(
        "{:<18} {:>16} {:>16} {:>22}",
        "variant", "concurrency 1", "concurrency 4", "1,000 certificates"
    );
    println!("{:<18} {:>12} KiB {:>12} KiB {:>18} KiB", "no filter", floor[0], floor[1], floor[2]);
    let mut module_rss = [0.0; 3];
    let mut wasm_rss = [0.0; 3];
    let mut empty_rss = [0.0; 3];
    for letter in ['x', 's', 'c', 'd', 'e', 'f'] {
        let v = &variants[at(letter)];
        let kib = measure(&v.yaml);
        let over: Vec<f64> = kib.iter().zip(&floor).map(|(k, f)| (*k as f64 - *f as f64) / 1024.0).collect();
        println!("{:<18} {:>+16.1} {:>+16.1} {:>+22.1}", v.name, over[0], over[1], over[2]);
        match letter {
            'f' => module_rss = [over[0], over[1], over[2]],
            'e' => wasm_rss = [over[0], over[1], over[2]],
            'd' => empty_rss = [over[0], over[1], over[2]],
            _ => {}
        }
    }

    let (f, e, c, a16, f16) = (at('f'), at('e'), at('c'), at('A'), at('F'));
    println!("\nThe targets (this run, on the least CPU of each variant's rounds):");
    let verdict = |met: bool, text: String| println!("  {} {text}", if met { "met   " } else { "MISSED" });
    let (module_adds, lua_adds) = (cpu(f) - cpu(at('a')), cpu(c) - cpu(at('a')));
    verdict(
        module_adds <= 0.5 * lua_adds,
        format!(
            "what the module adds to a request ≤ half of what the Lua filter adds: {module_adds:.1} against {lua_adds:.1} µs ({:.2}×)",
            module_adds / lua_adds
        ),
    );
    println!(
        "  (the module against its floor, no filter with the network filter: {:.2}×; the XFCC-only variant: {:.2}×; the module over XFCC: {:.2}× no filter)",
        ratio(f, at('s')).0,
        ratio(f, at('x')).0,
        ratio(at('o'), at('a')).0
    );
    verdict(
        module_rss[0] <= 2.0 && module_rss[2] <= 2.0,
        format!(
            "module RSS ≤ +2 MB over no filter, before and after 1,000 certificates: {:+.1}, {:+.1} MB",
            module_rss[0], module_rss[2]
        ),
    );
    let wasm = ratio(e, at('d')).0;
    verdict(wasm <= 1.25, format!("Wasm ≤ 1.25× the empty Wasm filter: {wasm:.2}×"));
    verdict(
        wasm_rss[0] - empty_rss[0] <= 16.3,
        format!(
            "Wasm RSS over the empty Wasm filter no worse than 2026-12-01's +16.3 MB: {:+.1} MB",
            wasm_rss[0] - empty_rss[0]
        ),
    );
    println!(
        "  (first-seen certificates against (A): module {:.2}×, Wasm {:.2}×; the module against no filter: {:.2}×)",
        ratio(f16, a16).0,
        ratio(at('E'), a16).0,
        ratio(f, at('a')).0
    );
}
