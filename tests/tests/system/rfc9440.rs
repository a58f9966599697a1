//! RFC 9440's `Client-Cert` and `Client-Cert-Chain`, read by an application
//! that parses them as structured fields (Python's http-sfv under gunicorn):
//! through Envoy (with XFCC `Chain=` on) it gets alice's certificate and her
//! client CA's, through `certgate serve` her certificate; a client's own
//! `Client-Cert` never reaches it.

use crate::common;

use certgate_edge as edge;
use certgate_edge::tls::ClientCertMode;
use common::envoy::{config, Envoy};
use common::{connect, pki, settings, sha256_hex, Gunicorn, TempDir};
use serde_json::Value;

const POLICY: &str =
    r#"{"verification":"listener","headers":{"preset":"rfc9440"},"rules":[{"name":"app","issuer_cn":["Example Client CA"]}]}"#;

fn der_sha256(name: &str) -> String {
    let pem = std::fs::read_to_string(pki(name)).unwrap();
    let (_, der) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
    sha256_hex(&der)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_reading_rfc_9440_headers_gets_the_clients_certificates() {
    let app = Gunicorn::start("rfc9440_app:app");
    let with_chain = config("required-mtls.yaml", app.addr, Some(POLICY)).replace(
        "set_current_client_cert_details: { cert: true,",
        "set_current_client_cert_details: { chain: true, cert: true,",
    );
    assert!(with_chain.contains("chain: true"));
    let envoy = Envoy::start(&with_chain).unwrap();
    let dir = TempDir::new("rfc9440").unwrap();
    let policy = dir.0.join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();
    let serve = edge::start(settings(&policy, ClientCertMode::Required, &format!("http://{}", app.addr)))
        .await
        .unwrap();

    let spoof = [("client-cert", ":AAAA:"), ("Client-Cert-Chain", ":AAAA:")];
    for (front, addr, chain) in [("Envoy", envoy.listener, true), ("certgate serve", serve.addr, false)] {
        let reply = connect(addr, Some("alice"), false)
            .await
            .unwrap()
            .send("GET", "/whoami", &spoof)
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{front}: {}", reply.body);
        let got: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(got["client_cert_sha256"], der_sha256("alice.pem"), "{front}: {got}");
        if chain {
            assert_eq!(
                got["chain_sha256"],
                serde_json::json!([der_sha256("client-ca.pem")]),
                "{front}: {got}"
            );
        } else {
            assert!(
                got.get("chain_sha256").is_none(),
                "{front}: no chain, so no header (not the client's): {got}"
            );
        }
    }
}
