//! The crates keep to their jobs: the proxy-wasm host library builds, and its
//! tests run, without an async runtime, an HTTP stack, TLS or the certgate
//! filter in its dependency tree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)]

mod common;

use std::process::Command;

fn tree(package: &str) -> String {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--locked", "-e", "normal,build,dev", "--prefix", "none", "-p", package])
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn crates(tree: &str) -> Vec<&str> {
    tree.lines().filter_map(|l| l.split_whitespace().next()).collect()
}

#[test]
fn the_host_library_depends_on_no_runtime_http_tls_or_filter() {
    let host = tree("certgate-host");
    let names = crates(&host);
    assert!(names.contains(&"wasmtime"), "{host}");
    for banned in ["tokio", "hyper", "rustls", "certgate-filter", "certgate-edge", "clap"] {
        assert!(!names.contains(&banned), "certgate-host depends on {banned}:\n{host}");
    }
    // and the edge is where they are
    let edge = tree("certgate-edge");
    assert!(crates(&edge).contains(&"tokio"), "{edge}");
}

/// What goes into Envoy's process is the policy core and the glue: no
/// proxy-wasm SDK, no Wasm runtime, no async runtime, no HTTP or TLS stack.
#[test]
fn the_dynamic_module_links_the_core_and_nothing_of_the_harness() {
    let tree = {
        let out = Command::new(env!("CARGO"))
            .args(["tree", "--offline", "--locked", "-e", "normal,build", "--prefix", "none", "-p", "certgate-module"])
            .current_dir(common::repo())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let names = crates(&tree);
    assert!(names.contains(&"certgate-filter"), "{tree}");
    for banned in ["proxy-wasm", "wasmtime", "tokio", "hyper", "rustls", "certgate-host", "certgate-edge", "certgate-test-support"] {
        assert!(!names.contains(&banned), "certgate-module depends on {banned}:\n{tree}");
    }
}
