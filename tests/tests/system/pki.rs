//! `certgate pki` end to end: a PKI made from nothing with the command (its
//! certificates name CRL URLs, which neither verifier needs); its client
//! certificate is admitted by `certgate serve` and by Envoy; after `pki
//! revoke` and `pki crl` both refuse it at the TLS handshake, while a
//! certificate that was not revoked still passes. After `pki renew` of both
//! CAs, what they signed before still verifies against the renewed chain,
//! with CRLs signed after the renewal.

use crate::common;

use std::net::SocketAddr;

use certgate_backend as backend;
use certgate_edge as edge;
use certgate_edge::tls::ClientCertMode;
use common::connect_with;
use common::envoy::Envoy;
use common::pki::{Pki, POLICY};

/// One request as `who`: the status and the CN the backend was told, or the handshake error.
async fn call(pki: &Pki, addr: SocketAddr, who: &str) -> Result<(u16, Vec<String>), String> {
    let reply = pki.connect(addr, who).await?.send("GET", "/hello", &[]).await?;
    Ok((reply.status, reply.backend_header("x-client-cn")))
}

fn admitted(r: Result<(u16, Vec<String>), String>, who: &str) {
    assert_eq!(r, Ok((200, vec![who.to_owned()])), "{who} must be admitted with their CN passed on");
}

/// TLS 1.3: the server's refusal arrives after the client's handshake is done,
/// as an alert that closes the connection; the request sees a handshake error,
/// an alert or a closed connection, depending on timing. The same server then
/// admits bob, so the refusal is alice's revocation, not a broken set-up.
fn refused_at_handshake(r: Result<(u16, Vec<String>), String>) {
    assert!(r.is_err(), "a revoked certificate must not get a response: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pki_client_certificate_passes_serve_and_envoy_until_revoked() {
    let pki = Pki::new(&["alice", "bob"]);
    let backend = backend::start(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let policy = pki.dir.0.join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();

    // Before: both admit alice and bob.
    let serve = edge::start(pki.edge_settings(&policy, backend.addr, ClientCertMode::Required))
        .await
        .unwrap();
    admitted(call(&pki, serve.addr, "alice").await, "alice");
    admitted(call(&pki, serve.addr, "bob").await, "bob");
    serve.shutdown().await;
    let envoy = Envoy::start(&pki.envoy_yaml("required-mtls.yaml", backend.addr, POLICY)).unwrap();
    admitted(call(&pki, envoy.listener, "alice").await, "alice");
    admitted(call(&pki, envoy.listener, "bob").await, "bob");
    drop(envoy);

    // Revoke alice and publish the CRL; both load it when they start.
    pki.run(&["revoke", "alice", "--reason", "keyCompromise"]);
    pki.run(&["crl"]);
    let serve = edge::start(pki.edge_settings(&policy, backend.addr, ClientCertMode::Required))
        .await
        .unwrap();
    refused_at_handshake(call(&pki, serve.addr, "alice").await);
    admitted(call(&pki, serve.addr, "bob").await, "bob");
    serve.shutdown().await;
    let envoy = Envoy::start(&pki.envoy_yaml("required-mtls.yaml", backend.addr, POLICY)).unwrap();
    refused_at_handshake(call(&pki, envoy.listener, "alice").await);
    admitted(call(&pki, envoy.listener, "bob").await, "bob");
    // alice never reached the filter: only bob's request was counted.
    assert_eq!(
        envoy.stat_eventually("wasmcustom.certgate_requests_total.outcome.allowed.rule.app", |v| v >= 1),
        Some(1)
    );
}

/// One request as `who` presenting `chain` (a file under the PKI home).
async fn call_with_chain(pki: &Pki, addr: SocketAddr, who: &str, chain: &str) -> Result<(u16, Vec<String>), String> {
    let reply = connect_with(addr, pki.client_tls(who, Some(chain)), false)
        .await?
        .send("GET", "/hello", &[])
        .await?;
    Ok((reply.status, reply.backend_header("x-client-cn")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_renewing_both_cas_what_they_signed_before_still_verifies_in_serve_and_envoy() {
    let pki = Pki::new(&["alice"]);
    let backend = backend::start(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let policy = pki.dir.0.join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();
    // alice's chain as issued: her certificate and the client CA before renewal
    std::fs::copy(pki.path("issued/alice-chain.pem"), pki.path("issued/alice-old-chain.pem")).unwrap();

    pki.run(&["renew", "client-ca"]);
    pki.run(&["renew", "root-ca"]);
    // a client from the renewed client CA, and CRLs signed after the renewal
    pki.run(&[
        "client",
        "bob",
        "--org",
        "Example",
        "--spiffe",
        "spiffe://example.org/ns/default/sa/bob",
    ]);
    pki.run(&["crl"]);
    // her certificate with the renewed client CA as its intermediate
    let renewed_chain = format!(
        "{}{}",
        std::fs::read_to_string(pki.path("issued/alice.pem")).unwrap(),
        std::fs::read_to_string(pki.path("client-ca/ca.pem")).unwrap()
    );
    std::fs::write(pki.path("issued/alice-renewed-chain.pem"), renewed_chain).unwrap();

    // both trust only the renewed root (pki/root-ca/ca.pem)
    let serve = edge::start(pki.edge_settings(&policy, backend.addr, ClientCertMode::Required))
        .await
        .unwrap();
    let envoy = Envoy::start(&pki.envoy_yaml("required-mtls.yaml", backend.addr, POLICY)).unwrap();
    for (front, addr) in [("serve", serve.addr), ("envoy", envoy.listener)] {
        for chain in ["issued/alice-old-chain.pem", "issued/alice-renewed-chain.pem"] {
            let r = call_with_chain(&pki, addr, "alice", chain).await;
            assert_eq!(r, Ok((200, vec!["alice".to_owned()])), "{front}: alice with {chain}");
        }
        admitted(call(&pki, addr, "bob").await, "bob");
    }
    // the CRLs after the renewal still revoke
    pki.run(&["revoke", "alice"]);
    pki.run(&["crl"]);
    serve.shutdown().await;
    drop(envoy);
    let serve = edge::start(pki.edge_settings(&policy, backend.addr, ClientCertMode::Required))
        .await
        .unwrap();
    let envoy = Envoy::start(&pki.envoy_yaml("required-mtls.yaml", backend.addr, POLICY)).unwrap();
    for addr in [serve.addr, envoy.listener] {
        refused_at_handshake(call_with_chain(&pki, addr, "alice", "issued/alice-old-chain.pem").await);
        admitted(call(&pki, addr, "bob").await, "bob");
    }
}
