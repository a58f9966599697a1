//! A proxy-wasm filter that is not certgate (tests/filters/hello, built for
//! wasm32-unknown-unknown by `./dev test`) runs in the harness unchanged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod common;

use certgate_host::{Action, Connection, HarnessError, LogLevel, PluginSettings, WasmModule};
use common::{repo, request};

fn hello() -> WasmModule {
    let path = repo().join("target/test-filters/wasm32-unknown-unknown/release/hello_filter.wasm");
    WasmModule::from_file(&path).unwrap_or_else(|e| panic!("{e}; `./dev test` builds it"))
}

#[test]
fn it_adds_a_header_reads_a_property_and_counts() {
    let mut p = hello().start(PluginSettings::new("world")).unwrap();
    let out = p.request(&Connection::local_tls(), request("GET", "/x")).unwrap();
    assert!(out.forwarded());
    assert_eq!(out.header("x-hello").as_deref(), Some("world"));
    assert_eq!(out.header("x-hello-host").as_deref(), Some("localhost:8443"));
    assert_eq!(p.metric("hello.requests"), Some(1));
    assert!(p.logs().iter().any(|l| l.level == LogLevel::Info && l.message == "hello /x"));
}

#[test]
fn it_answers_locally() {
    let mut p = hello().start(PluginSettings::new("world")).unwrap();
    let out = p.request(&Connection::local_tls(), request("GET", "/teapot")).unwrap();
    assert_eq!(out.action, Action::Pause);
    let reply = out.local_response.unwrap();
    assert_eq!(reply.status, 418);
    assert_eq!(reply.body, b"short and stout");
    assert_eq!(reply.headers, vec![("x-filter".to_owned(), b"hello".to_vec())]);
}

#[test]
fn it_sees_the_response_phase() {
    let mut p = hello().start(PluginSettings::new("world")).unwrap();
    let mut s = p.stream(&Connection::local_tls()).unwrap();
    assert_eq!(s.request_headers(request("GET", "/"), true).unwrap(), Action::Continue);
    let action = s.response_headers(vec![(":status".into(), b"200".to_vec())], false).unwrap();
    assert_eq!(action, Action::Continue);
    assert!(s.response_headers_now().iter().any(|(k, v)| k == "x-hello-response" && v == b"1"));
    s.finish().unwrap();
}

#[test]
fn its_refusal_carries_its_log_line() {
    match hello().start(PluginSettings::new("")) {
        Err(HarnessError::ConfigureRefused { logs }) => {
            assert!(logs.iter().any(|l| l.message.contains("needs a greeting")), "{logs:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_empty_benchmark_filter_only_continues() {
    let path = repo().join("target/test-filters/wasm32-wasip1/release/empty_filter.wasm");
    let module = WasmModule::from_file(&path).unwrap_or_else(|e| panic!("{e}; `./dev test` builds it"));
    let mut p = module.start(PluginSettings::new("")).unwrap();
    let out = p.request(&Connection::local_tls(), request("GET", "/x")).unwrap();
    assert!(out.forwarded());
    assert_eq!(out.upstream_headers, request("GET", "/x"));
}
