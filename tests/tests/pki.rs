//! `certgate pki` end to end: a PKI made from nothing with the command; its
//! client certificate is admitted by `certgate serve` and by Envoy; after
//! `pki revoke` and `pki crl` both refuse it at the TLS handshake, while a
//! certificate that was not revoked still passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use certgate_harness::backend;
use certgate_harness::edge::{self, EdgeSettings};
use certgate_harness::tls::{ClientCertMode, TlsFiles};
use common::envoy::{config, Envoy};
use common::{certgate, client_config_files, connect_with, repo, TempDir};

const POLICY: &str = r#"{
  "rules": [
    { "name": "app", "path_prefix": "/",
      "issuer": ["CN=certgate Client CA,O=Example"],
      "spiffe": ["spiffe://example.org/ns/*/sa/*"] }
  ]
}"#;

/// A PKI home made by the `certgate` command, as the README's quick start does.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("pki-e2e").unwrap();
        let p = Pki { dir };
        p.run(&["init-root", "--org", "Example"]);
        p.run(&["init-client-ca", "--org", "Example"]);
        p.run(&["server", "localhost", "--ip", "127.0.0.1"]);
        for who in ["alice", "bob"] {
            p.run(&["client", who, "--org", "Example", "--spiffe", &format!("spiffe://example.org/ns/default/sa/{who}")]);
        }
        p
    }

    fn run(&self, args: &[&str]) {
        let out = certgate().arg("pki").args(args).current_dir(&self.dir.0).output().unwrap();
        assert!(out.status.success(), "pki {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.0.join("pki").join(rel)
    }

    fn edge_settings(&self, policy: &std::path::Path, upstream: SocketAddr) -> EdgeSettings {
        EdgeSettings {
            tls: TlsFiles {
                cert: self.path("issued/localhost.pem"),
                key: self.path("issued/localhost.key"),
                client_ca: self.path("root-ca/ca.pem"),
                crls: vec![self.path("crls.pem")],
                mode: ClientCertMode::Required,
            },
            ..common::settings(policy, ClientCertMode::Required, &format!("http://{upstream}"))
        }
    }

    /// The committed required-mtls configuration with this PKI's files.
    fn envoy_yaml(&self, backend: SocketAddr) -> String {
        let fixtures = format!("{}/fixtures/pki/", repo().display());
        config("required-mtls.yaml", backend, Some(POLICY))
            .replace(&format!("{fixtures}server.pem"), &self.path("issued/localhost.pem").display().to_string())
            .replace(&format!("{fixtures}server.key"), &self.path("issued/localhost.key").display().to_string())
            .replace(&format!("{fixtures}trusted-client-cas.pem"), &self.path("root-ca/ca.pem").display().to_string())
            .replace(&format!("{fixtures}crls.pem"), &self.path("crls.pem").display().to_string())
    }

    /// One request as `who`: the status and the CN the backend was told, or the handshake error.
    async fn call(&self, addr: SocketAddr, who: &str) -> Result<(u16, Vec<String>), String> {
        let chain = self.path(&format!("issued/{who}-chain.pem"));
        let key = self.path(&format!("issued/{who}.key"));
        let config = client_config_files(&self.path("root-ca/ca.pem"), Some((&chain, &key)), &[b"http/1.1"]);
        let reply = connect_with(addr, config, false).await?.send("GET", "/hello", &[]).await?;
        Ok((reply.status, reply.backend_header("x-client-cn")))
    }
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
    let pki = Pki::new();
    let backend = backend::start(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let policy = pki.dir.0.join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();

    // Before: both admit alice and bob.
    let serve = edge::start(pki.edge_settings(&policy, backend.addr)).await.unwrap();
    admitted(pki.call(serve.addr, "alice").await, "alice");
    admitted(pki.call(serve.addr, "bob").await, "bob");
    serve.shutdown().await;
    let envoy = Envoy::start(&pki.envoy_yaml(backend.addr)).unwrap();
    admitted(pki.call(envoy.listener, "alice").await, "alice");
    admitted(pki.call(envoy.listener, "bob").await, "bob");
    drop(envoy);

    // Revoke alice and publish the CRL; both load it when they start.
    pki.run(&["revoke", "alice", "--reason", "keyCompromise"]);
    pki.run(&["crl"]);
    let serve = edge::start(pki.edge_settings(&policy, backend.addr)).await.unwrap();
    refused_at_handshake(pki.call(serve.addr, "alice").await);
    admitted(pki.call(serve.addr, "bob").await, "bob");
    serve.shutdown().await;
    let envoy = Envoy::start(&pki.envoy_yaml(backend.addr)).unwrap();
    refused_at_handshake(pki.call(envoy.listener, "alice").await);
    admitted(pki.call(envoy.listener, "bob").await, "bob");
    // alice never reached the filter: only bob's request was counted.
    assert_eq!(envoy.stat_eventually("wasmcustom.certgate.requests.allowed", |v| v >= 1), Some(1));
}
