//! The ABI edges, with small hand-written modules: bad guest pointers,
//! unimplemented calls, the allocator fallback, typed properties, traps.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod common;

use certgate_host::abi::Status;
use certgate_host::{Connection, HarnessError, PluginSettings, WasmModule};
use common::request;

/// Each check adds a request header `rN` whose one byte is a status (or a
/// value read back), so the test reads the outcomes from the headers.
const PROBE: &str = r#"
(module
  (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $buf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_made_up_call" (func $made_up (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 100) "r1r2r3r4r5r6r7r8r9")
  (data (i32.const 200) "connection\00mtls")
  (data (i32.const 220) "source\00port")
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    global.get $heap local.set $p
    global.get $heap local.get $n i32.add global.set $heap
    local.get $p)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func $record (param $name i32) (param $value i32)
    i32.const 300 local.get $value i32.store8
    (drop (call $add (i32.const 0) (local.get $name) (i32.const 2) (i32.const 300) (i32.const 1))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; r1: the return slots are outside memory
    (call $record (i32.const 100) (call $pairs (i32.const 0) (i32.const 0x7ffffff0) (i32.const 0x7ffffff4)))
    ;; r2: a key that runs off the end of memory
    (call $record (i32.const 102) (call $prop (i32.const 65530) (i32.const 100) (i32.const 400) (i32.const 404)))
    ;; r3: a good property read
    (call $record (i32.const 104) (call $prop (i32.const 200) (i32.const 15) (i32.const 400) (i32.const 404)))
    ;; r4: connection.mtls is one byte
    (call $record (i32.const 106) (i32.load (i32.const 404)))
    ;; r5: its value
    (call $record (i32.const 108) (i32.load8_u (i32.load (i32.const 400))))
    ;; r6: an HTTP call to an upstream nobody named
    (call $record (i32.const 110) (call $http (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 408)))
    ;; r7: a negative length
    (call $record (i32.const 112) (call $log (i32.const 2) (i32.const 0) (i32.const -1)))
    ;; r8: an import no host knows
    (call $record (i32.const 114) (call $made_up (i32.const 1)))
    ;; r9: source.port is 8 bytes, little-endian
    (call $record (i32.const 116) (call $prop (i32.const 220) (i32.const 11) (i32.const 400) (i32.const 404)))
    i32.const 0)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    unreachable)
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (call $exit (i32.const 3))
    i32.const 0)
)
"#;

fn probe(allocator: &str) -> WasmModule {
    WasmModule::from_bytes(PROBE.replace("proxy_on_memory_allocate", allocator).as_bytes()).unwrap()
}

fn byte(out: &certgate_host::Exchange, name: &str) -> u8 {
    let v: Vec<&Vec<u8>> = out.upstream_headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect();
    assert_eq!(v.len(), 1, "{name}");
    v[0][0]
}

#[test]
fn bad_pointers_unimplemented_calls_and_properties_answer_with_statuses() {
    for allocator in ["proxy_on_memory_allocate", "malloc"] {
        let mut p = probe(allocator).start(PluginSettings::new("")).unwrap();
        let conn = Connection::local_tls();
        let out = p.request(&conn, request("GET", "/")).unwrap();
        assert_eq!(byte(&out, "r1"), Status::InvalidMemoryAccess as u8);
        assert_eq!(byte(&out, "r2"), Status::InvalidMemoryAccess as u8);
        assert_eq!(byte(&out, "r3"), Status::Ok as u8, "{allocator}");
        assert_eq!(byte(&out, "r4"), 1, "a bool is one byte");
        assert_eq!(byte(&out, "r5"), 0, "plain TLS, no client certificate");
        assert_eq!(byte(&out, "r6"), Status::BadArgument as u8);
        assert_eq!(byte(&out, "r7"), Status::InvalidMemoryAccess as u8);
        assert_eq!(byte(&out, "r8"), Status::Unimplemented as u8);
        assert_eq!(byte(&out, "r9"), Status::Ok as u8);
        let notes: Vec<&str> = p.logs().iter().map(|l| l.message.as_str()).collect();
        assert!(notes.iter().any(|n| n.contains("proxy_http_call: no upstream named")), "{notes:?}");
        assert!(notes.contains(&"[host] unimplemented: env.proxy_made_up_call"), "{notes:?}");
        assert!(p.failure().is_none());
    }
}

#[test]
fn a_trap_poisons_the_plugin_for_every_later_request() {
    let mut p = probe("proxy_on_memory_allocate").start(PluginSettings::new("")).unwrap();
    let conn = Connection::local_tls();
    let mut s = p.stream(&conn).unwrap();
    s.request_headers(request("GET", "/"), true).unwrap();
    match s.response_headers(vec![], true) {
        Err(HarnessError::Trap { during, .. }) => assert_eq!(during, "proxy_on_response_headers"),
        other => panic!("{other:?}"),
    }
    drop(s);
    assert!(p.failure().unwrap().contains("proxy_on_response_headers"));
    for _ in 0..3 {
        assert!(matches!(p.request(&conn, request("GET", "/")), Err(HarnessError::Poisoned(_))));
    }
}

#[test]
fn proc_exit_is_a_trap_not_a_host_exit() {
    let mut p = probe("proxy_on_memory_allocate").start(PluginSettings::new("")).unwrap();
    let mut s = p.stream(&Connection::local_tls()).unwrap();
    s.request_headers(request("POST", "/"), false).unwrap();
    let err = s.request_body(b"x", true).unwrap_err();
    assert!(err.to_string().contains("proc_exit(3)"), "{err}");
}

#[test]
fn a_module_without_the_abi_is_refused_clearly() {
    let m = WasmModule::from_bytes(br#"(module (memory (export "memory") 1))"#).unwrap();
    let err = m.start(PluginSettings::new("")).unwrap_err();
    assert!(matches!(err, HarnessError::MissingExport("proxy_on_context_create")), "{err}");
    let err = WasmModule::from_bytes(b"\0asm garbage").unwrap_err();
    assert!(err.to_string().contains("not a usable WebAssembly module"), "{err}");
}
