//! The `certgate` command as a user runs it (`./dev test` builds it first):
//! `check` and `validate` with their exit codes, and `serve` + `backend` as
//! processes, called with curl.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{certgate, pki, KillOnDrop};

fn run(args: &[&str]) -> Output {
    certgate().args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const EXAMPLE: &str = "fixtures/policies/example.json";

#[test]
fn check_allows_alice_and_prints_her_headers() {
    let o = run(&[
        "check",
        "--policy",
        EXAMPLE,
        "--cert",
        "fixtures/pki/alice.pem",
        "--path",
        "/app/x",
        "--header",
        "x-client-cn: admin",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("decision: allow"), "{out}");
    assert!(out.contains("rule: app"), "{out}");
    assert!(out.contains("x-client-cn: alice"), "{out}");
    assert!(!out.contains("x-client-cn: admin"), "{out}");
}

#[test]
fn check_denies_with_reason_and_exit_code_1() {
    let o = run(&["check", "--policy", EXAMPLE, "--cert", "fixtures/pki/bob.pem", "--path", "/admin/"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("decision: deny") && out.contains("reason: subject_not_allowed") && out.contains("rule: admin"),
        "{out}"
    );
    let o = run(&["check", "--policy", EXAMPLE, "--path", "/app/"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("certificate_required"));
    let o = run(&[
        "check",
        "--policy",
        EXAMPLE,
        "--cert",
        "fixtures/pki/mallory.pem",
        "--unverified",
        "--path",
        "/app/",
    ]);
    assert!(text(&o).contains("certificate_not_verified"));
}

#[test]
fn check_answers_for_a_verified_token_bound_or_not() {
    const BOUND: &str = "fixtures/policies/bound-tokens.json";
    let check = |extra: &[&str]| {
        let mut args = vec![
            "check",
            "--policy",
            BOUND,
            "--cert",
            "fixtures/pki/alice.pem",
            "--path",
            "/api/orders",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        (o.status.code(), text(&o))
    };
    let (code, out) = check(&["--token-bound-to", "fixtures/pki/alice.pem"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("decision: allow") && out.contains("x-client-cn: alice"), "{out}");
    let (code, out) = check(&["--token-bound-to", "fixtures/pki/bob.pem"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("status: 401") && out.contains("reason: token_certificate_mismatch"),
        "{out}"
    );
    let (_, out) = check(&["--token-unbound"]);
    assert!(out.contains("reason: token_unbound"), "{out}");
    let (_, out) = check(&[]);
    assert!(out.contains("reason: token_missing"), "{out}");
    // a policy that reads no tokens: said, not ignored
    let o = run(&["check", "--policy", EXAMPLE, "--cert", "fixtures/pki/alice.pem", "--token-unbound"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("has no `bound_tokens`"), "{}", text(&o));
}

#[test]
fn check_and_validate_errors_exit_2_and_name_the_fault() {
    let o = run(&["check", "--policy", "no/such/policy.json", "--path", "/"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no/such/policy.json"), "{}", text(&o));
    let o = run(&["check", "--policy", EXAMPLE, "--cert", "no/such.pem"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no/such.pem"));
    let o = run(&["check", "--policy", EXAMPLE, "--wasm", "no/such.wasm"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no/such.wasm"));
}

#[test]
fn validate_reports_the_json_path() {
    let o = run(&["validate", EXAMPLE]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("valid"));
    let dir = common::TempDir::new("validate").unwrap();
    let bad = dir.0.join("bad.json");
    std::fs::write(&bad, r#"{"rules":[{"name":"a","issuer":["Example CA"]}]}"#).unwrap();
    let o = run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("rules[0].issuer[0]"), "{}", text(&o));
    assert!(
        !text(&run(&["validate", EXAMPLE])).contains("never used"),
        "the example has no rule in the wrong place"
    );
}

#[test]
fn schema_prints_the_policy_json_schema_and_a_policy_may_name_it() {
    let o = run(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(schema, certgate_core::config::json_schema());
    assert_eq!(schema["title"], "certgate policy");
    assert_eq!(schema["required"], serde_json::json!(["rules"]));
    // editors find the schema through `$schema`, which the filter ignores
    let dir = common::TempDir::new("schema").unwrap();
    let policy = dir.0.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"$schema": "./certgate-policy.schema.json", "rules": [{"name": "all"}]}"#,
    )
    .unwrap();
    let o = run(&["validate", policy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn validate_warns_about_a_rule_in_the_wrong_place() {
    let dir = common::TempDir::new("validate").unwrap();
    let shadowed = dir.0.join("shadowed.json");
    let policy = r#"{"rules":[{"name":"app","path_prefix":"/"},{"name":"admin","path_prefix":"/admin/","subject_cn":["ops-*"]}]}"#;
    std::fs::write(&shadowed, policy).unwrap();
    let o = run(&["validate", shadowed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "a warning, not an error: {}", text(&o));
    assert!(
        text(&o).contains("at `rules[1]`: rule `admin` is never used: rule `app` before it"),
        "{}",
        text(&o)
    );
}

/// Starts a command and waits for its first stdout line containing `ready`.
fn spawn(mut cmd: Command, ready: &str) -> (KillOnDrop, String) {
    let mut child = KillOnDrop(cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(30), "no `{ready}` line");
        if let Some(Ok(line)) = lines.next() {
            if line.contains(ready) {
                return (child, line);
            }
        }
    }
}

fn port_of(line: &str) -> String {
    line.rsplit(':').next().unwrap().trim().to_owned()
}

fn curl(port: &str, path: &str, cert: Option<&str>, extra: &[&str]) -> (String, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "10", "--cacert"])
        .arg(pki("root-ca.pem"))
        .args(["-w", "\n%{http_code}"]);
    if let Some(name) = cert {
        c.arg("--cert")
            .arg(pki(&format!("{name}-chain.pem")))
            .arg("--key")
            .arg(pki(&format!("{name}.key")));
    }
    c.args(extra).arg(format!("https://localhost:{port}{path}"));
    let out = c.output().expect("curl is part of the test set-up");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (body.to_owned(), code.to_owned())
}

#[test]
fn serve_and_backend_as_processes_answer_curl() {
    let mut b = certgate();
    b.args(["backend", "--listen", "127.0.0.1:0"]);
    let (_backend, line) = spawn(b, "backend on");
    let backend_port = port_of(&line);
    let mut s = certgate();
    // the documented config file, with the ports overridden by flags
    s.args(["serve", "--config", "fixtures/serve.toml", "--listen", "127.0.0.1:0"])
        .args(["--upstream", &format!("http://127.0.0.1:{backend_port}")]);
    let (_edge, line) = spawn(s, "edge on");
    let port = port_of(&line);

    let (body, code) = curl(&port, "/api/v0.1/headers", Some("alice"), &["-H", "X-Client-CN: admin"]);
    assert_eq!(code, "200", "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let headers = certgate_backend::headers_of(&json);
    let cn: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k == "x-client-cn")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cn, ["alice"]);
    let (body, code) = curl(&port, "/admin/", Some("bob"), &["--http2"]);
    assert_eq!(code, "403");
    assert!(body.contains("subject_not_allowed"));
    let (_, code) = curl(&port, "/healthz", None, &[]);
    assert_eq!(code, "200");
    let (_, code) = curl(&port, "/app/", Some("revoked"), &[]);
    assert_eq!(code, "000", "a revoked certificate fails the handshake");
}

#[test]
fn serve_without_its_files_says_which() {
    let o = run(&[
        "serve",
        "--policy",
        EXAMPLE,
        "--upstream",
        "http://127.0.0.1:9",
        "--cert",
        "fixtures/pki/server.pem",
        "--key",
        "nope.key",
        "--client-ca",
        "fixtures/pki/trusted-client-cas.pem",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("nope.key"), "{}", text(&o));
    let o = run(&["serve", "--policy", EXAMPLE]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("missing upstream"), "{}", text(&o));
}
