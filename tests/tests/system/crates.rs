//! The crates keep to their jobs, and no crate reaches upward: every crate
//! of the workspace has a line here saying what it must not depend on
//! (ARCHITECTURE.md draws the same arrows). A new crate fails this test until
//! it has one.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;

/// What each crate's dependency tree must not hold, on the host target (the
/// wasm32 trees of the Wasm build are checked on their own below). `dev`:
/// the tree of its tests too. Runtimes and stacks: `wasmtime` (the Wasm VM), `tokio`, `hyper`,
/// `rustls` (the network), `proxy-wasm` (the SDK: the Wasm glue's alone).
const RULES: &[(&str, bool, &[&str])] = &[
    // the leaves: bytes and certificates, shared by both sides of the ABI
    (
        "certgate-x509",
        true,
        &[
            "certgate-wire",
            "certgate-core",
            "certgate-host",
            "wasmtime",
            "tokio",
            "hyper",
            "rustls",
            "proxy-wasm",
        ],
    ),
    (
        "certgate-wire",
        true,
        &[
            "certgate-core",
            "certgate-host",
            "wasmtime",
            "tokio",
            "hyper",
            "rustls",
            "proxy-wasm",
        ],
    ),
    (
        "certgate-decision",
        true,
        &[
            "certgate-x509",
            "certgate-wire",
            "certgate-core",
            "wasmtime",
            "tokio",
            "hyper",
            "rustls",
            "proxy-wasm",
        ],
    ),
    // the policy core: no proxy runtime of any kind, and no network; its
    // tests run on FakeEnvoy, no VM (the scenario checker they share brings tokio)
    ("certgate-core", false, &["proxy-wasm", "wasmtime", "tokio", "hyper", "rustls"]),
    (
        "certgate-core",
        true,
        &[
            "certgate-wasm",
            "certgate-module",
            "certgate-host",
            "certgate-edge",
            "proxy-wasm",
            "wasmtime",
        ],
    ),
    // the Wasm glue: the core and the SDK, never the VM that runs it
    (
        "certgate-wasm",
        true,
        &[
            "certgate-module",
            "certgate-host",
            "certgate-edge",
            "wasmtime",
            "tokio",
            "hyper",
            "rustls",
        ],
    ),
    // the native glue: what goes into Envoy's process is the core and the glue
    (
        "certgate-module",
        false,
        &[
            "certgate-wasm",
            "certgate-host",
            "certgate-edge",
            "certgate-test-support",
            "proxy-wasm",
            "wasmtime",
            "tokio",
            "hyper",
            "rustls",
        ],
    ),
    // the proxy-wasm host runs any filter: no network, no certgate filter
    (
        "certgate-host",
        true,
        &[
            "certgate-core",
            "certgate-wasm",
            "certgate-edge",
            "certgate-decision",
            "tokio",
            "hyper",
            "rustls",
            "clap",
            "proxy-wasm",
        ],
    ),
    // the edge runs any filter over real connections: it reads the published decision, not the filter
    (
        "certgate-edge",
        false,
        &[
            "certgate-core",
            "certgate-wasm",
            "certgate-module",
            "certgate-backend",
            "certgate-pki",
            "certgate-test-support",
            "proxy-wasm",
        ],
    ),
    (
        "certgate-backend",
        false,
        &["certgate-host", "certgate-edge", "wasmtime", "rustls", "proxy-wasm"],
    ),
    (
        "certgate-pki",
        true,
        &["certgate-core", "certgate-host", "certgate-edge", "wasmtime", "tokio", "hyper"],
    ),
    // enrollment: a server and client over the PKI home; never the filter's
    // glue or its harness. The core, yes: the approvals page admits whom a
    // certgate policy admits, decided by the filter's own code.
    (
        "certgate-est",
        true,
        &[
            "certgate-host",
            "certgate-edge",
            "certgate-wasm",
            "certgate-module",
            "wasmtime",
            "proxy-wasm",
        ],
    ),
    // what every server shares: sockets and HTTP only, never a filter, a CA or TLS
    (
        "certgate-net",
        true,
        &[
            "certgate-core",
            "certgate-host",
            "certgate-edge",
            "certgate-pki",
            "certgate-x509",
            "wasmtime",
            "rustls",
            "proxy-wasm",
        ],
    ),
    (
        "certgate-fixtures",
        true,
        &["certgate-core", "certgate-host", "certgate-edge", "wasmtime", "tokio", "hyper"],
    ),
    (
        "certgate-oci",
        true,
        &["certgate-core", "certgate-host", "certgate-edge", "wasmtime", "tokio", "hyper"],
    ),
    (
        "certgate-test-support",
        false,
        &["certgate-core", "certgate-host", "certgate-edge", "wasmtime"],
    ),
    // the command users install: no test support, no fixtures generator, no glue
    (
        "certgate-cli",
        false,
        &[
            "certgate-test-support",
            "certgate-fixtures",
            "certgate-module",
            "certgate-wasm",
            "proxy-wasm",
        ],
    ),
    // the whole-system tests use everything; they only need a line
    ("certgate-tests", true, &[]),
];

fn tree(package: &str, dev: bool) -> String {
    tree_for(package, dev, None)
}

/// The tree for `target` (the host's if `None`).
fn tree_for(package: &str, dev: bool, target: Option<&str>) -> String {
    let edges = if dev { "normal,build,dev" } else { "normal,build" };
    let mut args = vec!["tree", "--offline", "--locked", "-e", edges, "--prefix", "none", "-p", package];
    if let Some(target) = target {
        args.extend(["--target", target]);
    }
    let out = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn crates(tree: &str) -> BTreeSet<&str> {
    tree.lines().filter_map(|l| l.split_whitespace().next()).collect()
}

#[test]
fn every_crate_has_a_rule() {
    let ruled: BTreeSet<String> = RULES.iter().map(|(c, _, _)| (*c).to_owned()).collect();
    assert_eq!(
        common::workspace_crates(),
        ruled,
        "the workspace and RULES differ: give every crate a line in RULES"
    );
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
}

/// What goes into the `.wasm`, on its own target: the glue holds the core
/// and the SDK, and no runtime; the core holds no SDK there either.
#[test]
fn the_wasm_build_holds_the_core_and_the_sdk_and_no_runtime() {
    const WASM: Option<&str> = Some("wasm32-wasip1");
    let glue = tree_for("certgate-wasm", false, WASM);
    let glue = crates(&glue);
    assert!(glue.contains("certgate-core") && glue.contains("proxy-wasm"), "{glue:?}");
    // on the host the glue is empty: a host tree alone would miss the SDK
    assert!(!crates(&tree("certgate-wasm", false)).contains("proxy-wasm"));
    for banned in [
        "wasmtime",
        "tokio",
        "hyper",
        "rustls",
        "certgate-module",
        "certgate-host",
        "certgate-edge",
    ] {
        assert!(!glue.contains(banned), "the .wasm would hold {banned}");
    }
    let core = tree_for("certgate-core", false, WASM);
    for banned in ["proxy-wasm", "wasmtime", "tokio", "hyper", "rustls"] {
        assert!(!crates(&core).contains(banned), "the core on wasm32 holds {banned}");
    }
}
