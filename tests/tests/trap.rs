//! Failing closed when the filter itself breaks: a proxy-wasm module that traps
//! in `proxy_on_request_headers`, loaded exactly where certgate is, in Envoy
//! (`fail_open: false`, the committed configuration) and in `certgate serve`.
//! Every request gets a 5xx and none reaches the application.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)]

mod common;

use std::net::SocketAddr;

use certgate_test_support::backend;
use certgate_edge as edge;
use certgate_edge::tls::ClientCertMode;
use common::envoy::{config, Envoy};
use common::{connect, repo, TempDir};

/// The smallest proxy-wasm filter: it configures fine and traps on every request.
const TRAPPING: &str = r#"
(module
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
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable))
"#;

const POLICY: &str = r#"{ "rules": [ { "name": "open", "path_prefix": "/", "anonymous": true } ] }"#;

async fn three_requests(addr: SocketAddr, who: &str) {
    for i in 0..3 {
        let r = connect(addr, Some("alice"), false).await.unwrap().send("GET", "/anything", &[]).await.unwrap();
        eprintln!("{who} request {i}: {} {}", r.status, r.body);
        assert!((500..600).contains(&r.status), "{who} request {i}: {} {}", r.status, r.body);
        assert!(r.backend_headers.is_none(), "{who} request {i} reached the application");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_filter_fails_closed_in_envoy_and_the_edge() {
    let dir = TempDir::new("trap").unwrap();
    let wasm = dir.0.join("trap.wasm");
    std::fs::write(&wasm, wat::parse_str(TRAPPING).unwrap()).unwrap();
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();

    let yaml = config("optional-mtls.yaml", backend.addr, Some(POLICY)).replace(
        &format!("{}/target/wasm32-wasip1/wasm/certgate_filter.wasm", repo().display()),
        &wasm.display().to_string(),
    );
    assert!(yaml.contains("trap.wasm") && yaml.contains("fail_open: false"));
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
