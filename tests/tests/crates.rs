//! The crates keep to their jobs, and no crate reaches upward: every crate
//! under `crates/` has a line here saying what it must not depend on
//! (ARCHITECTURE.md draws the same arrows). A new crate fails this test until
//! it has one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

/// What each crate's dependency tree must not hold. `dev`: the tree of its
/// tests too. Runtimes and stacks: `wasmtime` (the Wasm VM), `tokio`, `hyper`,
/// `rustls` (the network), `proxy-wasm` (the SDK, which certgate does not use).
const RULES: &[(&str, bool, &[&str])] = &[
    // the leaves: bytes and certificates, shared by both sides of the ABI
    ("certgate-x509", true, &["certgate-wire", "certgate-filter", "certgate-host", "wasmtime", "tokio", "hyper", "rustls"]),
    ("certgate-wire", true, &["certgate-filter", "certgate-host", "wasmtime", "tokio", "hyper", "rustls"]),
    ("certgate-decision", true, &["certgate-x509", "certgate-wire", "certgate-filter", "wasmtime", "tokio", "hyper", "rustls"]),
    // the policy core and its Wasm glue: its tests run on FakeEnvoy, no VM
    ("certgate-filter", true, &["certgate-host", "certgate-edge", "certgate-module", "wasmtime", "proxy-wasm"]),
    // the native glue: what goes into Envoy's process is the core and the glue
    ("certgate-module", false, &["certgate-host", "certgate-edge", "certgate-test-support", "wasmtime", "proxy-wasm", "tokio", "hyper", "rustls"]),
    // the proxy-wasm host runs any filter: no network, no certgate filter
    ("certgate-host", true, &["certgate-filter", "certgate-edge", "certgate-decision", "tokio", "hyper", "rustls", "clap"]),
    // the edge runs any filter over real connections: it reads the published decision, not the filter
    ("certgate-edge", false, &["certgate-filter", "certgate-module", "certgate-backend", "certgate-pki", "certgate-test-support"]),
    ("certgate-backend", false, &["certgate-host", "certgate-edge", "wasmtime", "rustls"]),
    ("certgate-pki", true, &["certgate-filter", "certgate-host", "certgate-edge", "wasmtime", "tokio", "hyper"]),
    ("certgate-fixtures", true, &["certgate-filter", "certgate-host", "certgate-edge", "wasmtime", "tokio", "hyper"]),
    ("certgate-oci", true, &["certgate-filter", "certgate-host", "certgate-edge", "wasmtime", "tokio", "hyper"]),
    ("certgate-test-support", false, &["certgate-filter", "certgate-host", "certgate-edge", "wasmtime"]),
    // the command users install: no test support, no fixtures generator
    ("certgate-cli", false, &["certgate-test-support", "certgate-fixtures", "certgate-module"]),
];

fn tree(package: &str, dev: bool) -> String {
    let edges = if dev { "normal,build,dev" } else { "normal,build" };
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--locked", "-e", edges, "--prefix", "none", "-p", package])
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn crates(tree: &str) -> BTreeSet<&str> {
    tree.lines().filter_map(|l| l.split_whitespace().next()).collect()
}

/// The package names of `crates/*/Cargo.toml`.
fn workspace_crates() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(common::repo().join("crates")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let name = text.lines().find_map(|l| l.strip_prefix("name = \"")).and_then(|l| l.strip_suffix('"'));
        out.insert(name.unwrap_or_else(|| panic!("{}: no name", manifest.display())).to_owned());
    }
    out
}

#[test]
fn every_crate_has_a_rule() {
    let ruled: BTreeSet<String> = RULES.iter().map(|(c, _, _)| (*c).to_owned()).collect();
    assert_eq!(workspace_crates(), ruled, "crates/ and RULES differ: give every crate a line in RULES");
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
    assert!(crates(&tree("certgate-module", false)).contains("certgate-filter"));
}
