//! The release `.wasm` that Envoy loads: a valid module that speaks
//! proxy-wasm ABI 0.2.1 and imports nothing a proxy does not provide.
//! `./dev test` builds it before the tests run.

use std::path::PathBuf;

use wasmparser::{Parser, Payload, Validator};

fn wasm_path() -> PathBuf {
    std::env::var_os("CERTGATE_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/wasm/certgate_filter.wasm"))
}

fn wasm() -> Vec<u8> {
    let path = wasm_path();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; build it with `./dev test` (or `./dev run`)", path.display()))
}

#[test]
fn the_module_validates_and_speaks_proxy_wasm_0_2_1() {
    let bytes = wasm();
    Validator::new().validate_all(&bytes).expect("a valid WebAssembly module");
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload.unwrap() {
            Payload::ExportSection(s) => {
                for e in s {
                    exports.push(e.unwrap().name.to_owned());
                }
            }
            Payload::ImportSection(s) => {
                for i in s.into_imports() {
                    let i = i.unwrap();
                    imports.push((i.module.to_owned(), i.name.to_owned()));
                }
            }
            _ => {}
        }
    }
    for want in [
        "proxy_abi_version_0_2_1",
        "_initialize",
        "proxy_on_memory_allocate",
        "proxy_on_context_create",
        "proxy_on_configure",
        "proxy_on_request_headers",
        "proxy_on_done",
        "proxy_on_delete",
        "memory",
    ] {
        assert!(exports.iter().any(|e| e == want), "missing export {want}: {exports:?}");
    }
    for (module, name) in &imports {
        assert!(
            module == "env" && name.starts_with("proxy_") || module == "wasi_snapshot_preview1",
            "unexpected import {module}.{name}"
        );
    }
    // the calls certgate's request path relies on
    for want in [
        "proxy_get_header_map_pairs",
        "proxy_get_property",
        "proxy_send_local_response",
        "proxy_define_metric",
    ] {
        assert!(imports.iter().any(|(_, n)| n == want), "missing import {want}");
    }
    println!(
        "certgate filter: {} bytes, {} exports, {} imports",
        bytes.len(),
        exports.len(),
        imports.len()
    );
}

#[test]
fn the_module_is_built_for_size() {
    let bytes = wasm();
    let mut has_names = false;
    for payload in Parser::new(0).parse_all(&bytes) {
        if let Payload::CustomSection(c) = payload.unwrap() {
            has_names |= c.name() == "name" || c.name().starts_with(".debug");
        }
    }
    assert!(!has_names, "the release profile strips names and debug info");
    // The measured size is reported in BENCHMARKS.md; this bound only catches
    // a build that lost its size profile (a debug build is several MB).
    assert!(bytes.len() < 1024 * 1024, "{} bytes", bytes.len());
}
