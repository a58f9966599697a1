//! Failing closed when the filter itself breaks: a proxy-wasm module that traps
//! in `proxy_on_request_headers`, loaded exactly where certgate is, in Envoy
//! (`fail_open: false`, the committed configuration) and in `certgate serve`.
//! Every request gets a 5xx and none reaches the application. And with the
//! committed `failure_policy: FAIL_RELOAD`, Envoy starts a trapped VM again:
//! the trapping request is refused, nothing passes unfiltered meanwhile, and
//! requests are served again after the backoff.

use crate::common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use certgate_backend as backend;
use certgate_edge as edge;
use certgate_edge::tls::ClientCertMode;
use common::envoy::{config, Envoy};
use common::{connect, repo, Reply, TempDir};

/// The smallest proxy-wasm filter that configures fine: a bump allocator,
/// the lifecycle exports, then `imports` (module fields before them) and
/// `on_request_headers` (the body of `proxy_on_request_headers`).
fn filter_wat(imports: &str, on_request_headers: &str) -> String {
    format!(
        r#"
(module
  {imports}
  (memory (export "memory") 4)
  (global $next (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {on_request_headers}))
"#
    )
}

/// A filter that traps on every request.
fn trapping() -> String {
    filter_wat("", "unreachable")
}

/// A filter that traps on a request whose path starts `/t` (`/trap`) and
/// lets every other one through: it reads `:path` with
/// `proxy_get_header_map_value` (its address and length land at 0 and 4).
fn trapping_on_path() -> String {
    filter_wat(
        r#"(import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (data (i32.const 16) ":path")"#,
        "(drop (call $get (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 0) (i32.const 4)))
    (if (i32.eq (i32.load8_u offset=1 (i32.load (i32.const 0))) (i32.const 116)) (then unreachable))
    (i32.const 0)",
    )
}

/// The module of `wat` written to `dir/name`, and the committed
/// optional-mTLS configuration loading it where certgate was.
fn optional_mtls_with(dir: &TempDir, name: &str, wat: &str, backend: SocketAddr) -> (PathBuf, String) {
    let wasm = dir.0.join(name);
    std::fs::write(&wasm, wat::parse_str(wat).unwrap()).unwrap();
    let yaml = config("optional-mtls.yaml", backend, Some(POLICY)).replace(
        &format!("{}/target/wasm32-wasip1/wasm/certgate_filter.wasm", repo().display()),
        &wasm.display().to_string(),
    );
    assert!(yaml.contains(name) && yaml.contains("fail_open: false"));
    (wasm, yaml)
}

/// A 5xx that did not reach the application.
fn refused_unfiltered(r: &Reply) -> bool {
    (500..600).contains(&r.status) && r.backend_headers.is_none()
}

async fn alice_gets(addr: SocketAddr, path: &str) -> Reply {
    connect(addr, Some("alice"), false)
        .await
        .unwrap()
        .send("GET", path, &[])
        .await
        .unwrap()
}

const POLICY: &str = r#"{ "rules": [ { "name": "open", "path_prefix": "/", "anonymous": true } ] }"#;

async fn three_requests(addr: SocketAddr, who: &str) {
    for i in 0..3 {
        let r = alice_gets(addr, "/anything").await;
        eprintln!("{who} request {i}: {} {}", r.status, r.body);
        assert!(
            refused_unfiltered(&r),
            "{who} request {i}: {} {} {:?}",
            r.status,
            r.body,
            r.backend_headers
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_filter_fails_closed_in_envoy_and_the_edge() {
    let dir = TempDir::new("trap").unwrap();
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (wasm, yaml) = optional_mtls_with(&dir, "trap.wasm", &trapping(), backend.addr);
    let envoy = Envoy::start(&yaml).unwrap();
    three_requests(envoy.listener, "envoy").await;
    drop(envoy);

    let policy = dir.0.join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();
    let mut settings = common::settings(&policy, ClientCertMode::Optional, &format!("http://{}", backend.addr));
    settings.wasm = wasm;
    let edge = edge::start(settings).await.unwrap();
    three_requests(edge.addr, "edge").await;
    // The edge answered with its own 500 each time: it is still serving.
    let r = connect(edge.addr, None, false).await.unwrap().send("GET", "/", &[]).await.unwrap();
    assert_eq!(r.status, 500);
    assert!(r.body.contains("filter_failed"), "{}", r.body);
    edge.shutdown().await;
}

/// The committed configuration's `failure_policy: FAIL_RELOAD` on the
/// oldest and newest Envoy: a request that traps the VM is refused, every
/// request until the VM is back is refused without reaching the
/// application, and then requests are served again (one worker, so the
/// trapped VM is the one every request meets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapped_vm_is_started_again_and_nothing_passes_meanwhile() {
    let dir = TempDir::new("reload").unwrap();
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (_, yaml) = optional_mtls_with(&dir, "trap-on-path.wasm", &trapping_on_path(), backend.addr);
    assert!(yaml.contains("failure_policy: FAIL_RELOAD"));
    for version in ["1.36.4", "1.40.0"] {
        let envoy = Envoy::start_version_workers(version, &yaml, 1).unwrap();
        let send = |path| alice_gets(envoy.listener, path);
        let before = send("/ok").await;
        assert_eq!(
            (before.status, before.backend_headers.is_some()),
            (200, true),
            "{version}: {}",
            before.body
        );
        for round in 0..2 {
            let trapped = send("/trap").await;
            assert!(refused_unfiltered(&trapped), "{version}: {} {}", trapped.status, trapped.body);
            let start = Instant::now();
            let mut refused = 0;
            let recovered = loop {
                let r = send("/ok").await;
                if r.status == 200 && r.backend_headers.is_some() {
                    break start.elapsed();
                }
                assert!(refused_unfiltered(&r), "{version}: passed unfiltered: {} {}", r.status, r.body);
                refused += 1;
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "{version}: not served again in 20 s:\n{}",
                    envoy.log_tail()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            eprintln!(
                "Envoy {version}, trap {}: served again after {recovered:?} ({refused} requests refused meanwhile)",
                round + 1
            );
        }
    }
    // Without the setting (Envoy's default, FAIL_CLOSED) the trapped VM
    // stays failed: every later request is refused.
    let unset = yaml
        .lines()
        .filter(|l| !l.contains("failure_policy:") && !l.contains("reload_config:"))
        .collect::<Vec<_>>()
        .join("\n");
    let envoy = Envoy::start_version_workers("1.40.0", &unset, 1).unwrap();
    let send = |path| alice_gets(envoy.listener, path);
    assert_eq!(send("/ok").await.status, 200);
    assert!(refused_unfiltered(&send("/trap").await));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let r = send("/ok").await;
        assert!(refused_unfiltered(&r), "without FAIL_RELOAD: {} {}", r.status, r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
