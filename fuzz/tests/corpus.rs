//! Replays every seed and every input a fuzzer ever found (`regressions/`)
//! through the targets' checks, without libFuzzer: part of `./dev test`.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [root.join("corpus").join(target), root.join("regressions").join(target)] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            out.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    out.sort();
    out
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no corpus for {target}: its seeds are committed in fuzz/corpus/{target}/ (`./dev fuzz` finds more, in target/fuzz-corpus/)"
    );
    for file in files {
        let data = std::fs::read(&file).unwrap();
        eprintln!("{target}: {}", file.display());
        run(&data);
    }
}

#[test]
fn xfcc_corpus() {
    replay("xfcc", certgate_fuzz::xfcc);
}

#[test]
fn identity_corpus() {
    replay("identity", certgate_fuzz::identity);
}

#[test]
fn config_corpus() {
    replay("config", certgate_fuzz::config);
}

#[test]
fn paths_corpus() {
    replay("paths", certgate_fuzz::paths);
}

#[test]
fn admission_corpus() {
    replay("admission", |data| {
        let mut u = arbitrary::Unstructured::new(data);
        if let Ok(request) = <certgate_fuzz::Request as arbitrary::Arbitrary>::arbitrary(&mut u) {
            certgate_fuzz::admission(&request);
        }
    });
}

/// The bound-tokens seed policy (the fourth) with alice's certificate, each
/// kind of token: the admission target's checks hold on every one (the
/// fuzzer starts from these).
#[test]
fn admission_with_each_kind_of_token() {
    use certgate_fuzz::{Cert, Request, TokenInput};
    for token in [
        TokenInput::None,
        TokenInput::BoundToPeer,
        TokenInput::Claim(b"x".to_vec()),
        TokenInput::Unbound,
        TokenInput::Opaque,
    ] {
        for listener_verifies in [false, true] {
            let request = Request {
                policy: 3,
                listener_verifies,
                cert: Cert::Fixture(0),
                verified: Some(true),
                token: token.clone(),
                method: "GET".into(),
                path: "/api/orders".into(),
                authority: "localhost".into(),
                ..Request::default()
            };
            certgate_fuzz::admission(&request);
        }
    }
}

#[test]
fn spiffe_corpus() {
    replay("spiffe", certgate_fuzz::spiffe);
}
