//! A real browser: headless Chromium (Debian's, installed by `./dev test`)
//! with a `certgate pki p12` bundle imported into its NSS store, as the
//! README tells people to do. Through Envoy (`envoy/nginx-optional.yaml`)
//! and through `certgate serve`, the browser with the bundle sees its own
//! identity on the backend's page; one without it sees Envoy's visitors'
//! page, and a readable deny page where the policy wants a certificate.

use crate::common;

use std::path::PathBuf;

use certgate_backend as backend;
use certgate_edge as edge;
use certgate_edge::tls::ClientCertMode;
use common::browser::Browser;
use common::envoy::Envoy;
use common::pki::Pki;

/// Also the protected application of the registration tests.
pub(crate) const POLICY: &str = r#"{
  "verification": "listener",
  "headers": { "preset": "nginx" },
  "rules": [
    { "name": "private", "path_prefix": "/private/", "issuer_cn": ["certgate Client CA"] },
    { "name": "site", "path_prefix": "/", "anonymous": true }
  ]
}"#;

fn bundle(pki: &Pki) -> (PathBuf, PathBuf) {
    let password = pki.dir.0.join("p12-password");
    std::fs::write(&password, "correct horse").unwrap();
    pki.run(&["p12", "alice", "--password-file", password.to_str().unwrap()]);
    (pki.path("issued/alice.p12"), password)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_with_an_imported_p12_sees_its_identity_through_envoy_and_the_edge() {
    let pki = Pki::new(&["alice"]);
    let (p12, password) = bundle(&pki);
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let envoy = Envoy::start(&pki.envoy_yaml("nginx-optional.yaml", backend.addr, POLICY)).unwrap();
    let policy = pki.dir.0.join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();
    let edge = edge::start(pki.edge_settings(&policy, backend.addr, ClientCertMode::Optional))
        .await
        .unwrap();
    let origins = [envoy.listener, edge.addr];
    let root = pki.path("root-ca/ca.pem");
    let member = Browser::new(&root, Some((&p12, &password)), &origins, "certgate Client CA");
    let visitor = Browser::new(&root, None, &origins, "certgate Client CA");

    for (front, addr) in [("Envoy", envoy.listener), ("certgate serve", edge.addr)] {
        let page = tokio::task::block_in_place(|| member.open(&format!("https://{addr}/private/account")));
        assert!(
            page.contains(r#"You are <strong id="who">CN=alice,O=Example</strong>"#),
            "{front}, with the bundle:\n{page}"
        );
        assert!(page.contains("<tr><th>verified</th><td>SUCCESS</td></tr>"), "{front}:\n{page}");
    }
    let page = tokio::task::block_in_place(|| visitor.open(&format!("https://{}/", envoy.listener)));
    assert!(
        page.contains("Welcome, visitor"),
        "Envoy, no certificate: the visitors' page\n{page}"
    );
    for (front, addr) in [("Envoy", envoy.listener), ("certgate serve", edge.addr)] {
        let page = tokio::task::block_in_place(|| visitor.open(&format!("https://{addr}/private/account")));
        assert!(
            page.contains("<title>403 Forbidden</title>") && page.contains("needs a client certificate"),
            "{front}, no certificate:\n{page}"
        );
    }
}
