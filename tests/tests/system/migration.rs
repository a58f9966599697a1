//! Applications migrated from the Gunicorn set-up, unchanged: the Flask
//! application under gunicorn reads X-USER, X-ISSUER, X-NOT_BEFORE and
//! X-NOT_AFTER, and its `requests` client test passes through certgate, in
//! `certgate serve` and in Envoy, with exactly the values the old worker gave.

use crate::common;

use std::net::SocketAddr;

use certgate_edge as edge;
use certgate_edge::tls::ClientCertMode;
use common::envoy::{config, native, with_listener_verification, Envoy, MODULE_VERSIONS};
use common::{pki, repo, settings, venv_python, Gunicorn, TempDir};
use serde_json::Value;

/// The migration client's verdict for one front (`tests/python/migration_client.py`).
fn requests_client(front: SocketAddr, client: &str) -> Value {
    let out = std::process::Command::new(venv_python())
        .arg(repo().join("tests/python/migration_client.py"))
        .arg(format!("https://{front}/api/v0.1/headers"))
        .arg(pki("root-ca.pem"))
        .arg(pki(&format!("{client}-chain.pem")))
        .arg(pki(&format!("{client}.key")))
        .arg(pki(&format!("{client}.pem")))
        .arg(pki("mallory-chain.pem"))
        .arg(pki("mallory.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "migration_client.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check(front: &str, verdict: &Value, cn: &str) {
    assert_eq!(
        verdict["got"], verdict["want"],
        "{front}: the application reads what the Gunicorn worker gave it"
    );
    // anchors independent of the Python side's arithmetic
    assert_eq!(verdict["got"]["X-USER"], cn, "{front}");
    assert_eq!(verdict["got"]["X-ISSUER"], "Example Client CA", "{front}");
    assert_eq!(verdict["got"]["X-NOT_BEFORE"], "1735689600", "{front}");
    assert_eq!(verdict["lookalike"], "SSLError", "{front}: a client from the look-alike CA");
}

/// The committed gunicorn policy.
fn gunicorn_policy() -> String {
    std::fs::read_to_string(repo().join("fixtures/policies/gunicorn.json")).unwrap()
}

/// The migration client through one front: alice gets what the worker gave
/// her; carol, whose CA is trusted at the handshake but not by the policy,
/// is refused.
async fn the_migration_holds(front: &str, addr: SocketAddr) {
    let verdict = tokio::task::spawn_blocking(move || requests_client(addr, "alice")).await.unwrap();
    check(front, &verdict, "alice");
    let verdict = tokio::task::spawn_blocking(move || requests_client(addr, "carol")).await.unwrap();
    assert_eq!(verdict["got"]["status"], 403, "{front}: {verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flask_application_gets_what_the_gunicorn_worker_gave_it() {
    let app = Gunicorn::start("migrated_app:app");
    let policy = gunicorn_policy();

    let dir = TempDir::new("migration").unwrap();
    let policy_file = dir.0.join("policy.json");
    std::fs::write(&policy_file, &policy).unwrap();
    let edge = edge::start(settings(&policy_file, ClientCertMode::Required, &format!("http://{}", app.addr)))
        .await
        .unwrap();

    let envoy = Envoy::start(&config("required-mtls.yaml", app.addr, Some(&with_listener_verification(&policy)))).unwrap();

    for (front, addr) in [("certgate serve", edge.addr), ("Envoy", envoy.listener)] {
        the_migration_holds(front, addr).await;
    }
}

/// The same application and client through the dynamic module, on each
/// Envoy that runs it (the gunicorn preset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flask_application_gets_the_same_through_the_module() {
    let app = Gunicorn::start("migrated_app:app");
    let policy = with_listener_verification(&gunicorn_policy());
    for version in MODULE_VERSIONS {
        let envoy = Envoy::start_version(version, &native(&config("required-mtls.yaml", app.addr, Some(&policy)))).unwrap();
        the_migration_holds(&format!("Envoy {version}, module"), envoy.listener).await;
    }
}
