//! The crates keep to their jobs, and no crate reaches upward: every crate
//! of the workspace has a line here saying what it must not depend on
//! (ARCHITECTURE.md draws the same arrows). A new crate fails this test until
//! it has one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

/// What each crate's dependency tree must not hold, on any target (the Wasm
/// glue's dependencies exist on wasm32 only). `dev`: the tree of its tests
/// too. Runtimes and stacks: `wasmtime` (the Wasm VM), `tokio`, `hyper`,
/// `rustls` (the network), `proxy-wasm` (the SDK: the Wasm glue's alone).
const RULES: &[(&str, bool, &[&str])] = &[
    // the leaves: bytes and certificates, shared by both sides of the ABI
    ("certgate-x509", true, &["certgate-wire", "certgate-core", "certgate-host", "wasmtime", "tokio", "hyper", "rustls", "proxy-wasm"]),
    ("certgate-wire", true, &["certgate-core", "certgate-host", "wasmtime", "tokio", "hyper", "rustls", "proxy-wasm"]),
    ("certgate-decision", true, &["certgate-x509", "certgate-wire", "certgate-core", "wasmtime", "tokio", "hyper", "rustls", "proxy-wasm"]),
    // the policy core: no proxy runtime of any kind; its tests run on FakeEnvoy, no VM
    ("certgate-core", true, &["certgate-wasm", "certgate-module", "certgate-host", "certgate-edge", "proxy-wasm", "wasmtime", "tokio", "hyper", "rustls"]),
    // the Wasm glue: the core and the SDK, never the VM that runs it
    ("certgate-wasm", true, &["certgate-module", "certgate-host", "certgate-edge", "wasmtime", "tokio", "hyper", "rustls"]),
    // the native glue: what goes into Envoy's process is the core and the glue
    ("certgate-module", false, &["certgate-wasm", "certgate-host", "certgate-edge", "certgate-test-support", "proxy-wasm", "wasmtime", "tokio", "hyper", "rustls"]),
    // the proxy-wasm host runs any filter: no network, no certgate filter
    ("certgate-host", true, &["certgate-core", "certgate-wasm", "certgate-edge", "certgate-decision", "tokio", "hyper", "rustls", "clap", "proxy-wasm"]),
    // the edge runs any filter over real connections: it reads the published decision, not the filter
    ("certgate-edge", false, &["certgate-core", "certgate-wasm", "certgate-module", "certgate-backend", "certgate-pki", "certgate-test-support", "proxy-wasm"]),
    ("certgate-backend", false, &["certgate-host", "certgate-edge", "wasmtime", "rustls", "proxy-wasm"]),
    ("certgate-pki", true, &["certgate-core", "certgate-host", "certgate-edge", "wasmtime", "tokio", "hyper"]),
    ("certgate-fixtures", true, &["certgate-core", "certgate-host", "certgate-edge", "wasmtime", "tokio", "hyper"]),
    ("certgate-oci", true, &["certgate-core", "certgate-host", "certgate-edge", "wasmtime", "tokio", "hyper"]),
    ("certgate-test-support", false, &["certgate-core", "certgate-host", "certgate-edge", "wasmtime"]),
    // the command users install: no test support, no fixtures generator, no glue
    ("certgate-cli", false, &["certgate-test-support", "certgate-fixtures", "certgate-module", "certgate-wasm", "proxy-wasm"]),
    // the whole-system tests use everything; they only need a line
    ("certgate-tests", true, &[]),
];

fn tree(package: &str, dev: bool) -> String {
    let edges = if dev { "normal,build,dev" } else { "normal,build" };
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--locked", "--target", "all", "-e", edges, "--prefix", "none", "-p", package])
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn crates(tree: &str) -> BTreeSet<&str> {
    tree.lines().filter_map(|l| l.split_whitespace().next()).collect()
}

/// The package names of the workspace's members, as cargo sees them.
fn workspace_crates() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--offline", "--locked", "--no-deps", "--format-version", "1"])
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn every_crate_has_a_rule() {
    let ruled: BTreeSet<String> = RULES.iter().map(|(c, _, _)| (*c).to_owned()).collect();
    assert_eq!(workspace_crates(), ruled, "the workspace and RULES differ: give every crate a line in RULES");
}

#[test]
fn no_crate_depends_on_what_its_rule_forbids() {
    let mut broken = Vec::new();
    for (krate, dev, banned) in RULES {
        let t = tree(krate, *dev);
        let names = crates(&t);
        assert!(names.contains(krate), "{krate}: {t}");
        for b in *banned {
            if names.contains(b) {
                broken.push(format!("{krate} depends on {b}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

/// The rules can fail: the crates that run things do hold what they run.
#[test]
fn the_runtimes_are_where_the_rules_put_them() {
    assert!(crates(&tree("certgate-host", false)).contains("wasmtime"));
    assert!(crates(&tree("certgate-edge", false)).contains("tokio"));
    assert!(crates(&tree("certgate-edge", false)).contains("certgate-decision"));
    assert!(crates(&tree("certgate-module", false)).contains("certgate-core"));
    assert!(crates(&tree("certgate-wasm", false)).contains("certgate-core"));
    // the SDK is the Wasm glue's, on wasm32: a tree of the host target alone would miss it
    assert!(crates(&tree("certgate-wasm", false)).contains("proxy-wasm"));
}
