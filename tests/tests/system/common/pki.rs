//! A PKI made from nothing by the `certgate pki` command, as the README's
//! quick start does, and the edge and Envoy set up with its files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use certgate_edge::tls::{ClientCertMode, TlsFiles};
use certgate_edge::EdgeSettings;
use rustls::ClientConfig;

use super::envoy::config;
use super::{certgate, repo, TempDir};

/// A policy for a [`Pki`]'s clients: issued by its client CA, with a SPIFFE ID.
pub const POLICY: &str = r#"{
  "rules": [
    { "name": "app", "path_prefix": "/",
      "issuer": ["CN=certgate Client CA,O=Example"],
      "spiffe": ["spiffe://example.org/ns/*/sa/*"] }
  ]
}"#;

/// A PKI home: a root, a client CA, a server certificate for localhost and
/// 127.0.0.1, and the named clients (each with a SPIFFE ID). Both CAs have a
/// CRL URL, so every certificate names one (no verifier here fetches it).
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new(clients: &[&str]) -> Pki {
        let dir = TempDir::new("pki-e2e").unwrap();
        let p = Pki { dir };
        p.run(&[
            "init-root",
            "--org",
            "Example",
            "--crl-url",
            "http://pki.example.invalid/root-ca.crl",
        ]);
        p.run(&[
            "init-client-ca",
            "--org",
            "Example",
            "--crl-url",
            "http://pki.example.invalid/client-ca.crl",
        ]);
        p.run(&["server", "localhost", "--ip", "127.0.0.1"]);
        for who in clients {
            p.run(&[
                "client",
                who,
                "--org",
                "Example",
                "--spiffe",
                &format!("spiffe://example.org/ns/default/sa/{who}"),
            ]);
        }
        p
    }

    /// `certgate pki ARGS` in this home; fails the test if it fails.
    pub fn run(&self, args: &[&str]) {
        let out = certgate().arg("pki").args(args).current_dir(&self.dir.0).output().unwrap();
        assert!(out.status.success(), "pki {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.0.join("pki").join(rel)
    }

    /// A TLS client (HTTP/1.1) trusting this PKI's root, as `who`, sending
    /// `chain` (a file under the home) or else `issued/<who>-chain.pem`.
    pub fn client_tls(&self, who: &str, chain: Option<&str>) -> Arc<ClientConfig> {
        let chain = chain.map_or_else(|| self.path(&format!("issued/{who}-chain.pem")), |c| self.path(c));
        let key = self.path(&format!("issued/{who}.key"));
        super::client_config_files(&self.path("root-ca/ca.pem"), Some((&chain, &key)), &[b"http/1.1"])
    }

    /// A new connection as `who`: the handshake's error, if it fails.
    pub async fn connect(&self, addr: SocketAddr, who: &str) -> Result<super::Conn, String> {
        super::connect_with(addr, self.client_tls(who, None), false).await
    }

    pub fn edge_settings(&self, policy: &Path, upstream: SocketAddr, mode: ClientCertMode) -> EdgeSettings {
        EdgeSettings {
            tls: TlsFiles {
                cert: self.path("issued/localhost.pem"),
                key: self.path("issued/localhost.key"),
                client_ca: self.path("root-ca/ca.pem"),
                crls: vec![self.path("crls.pem")],
                mode,
            },
            ..super::settings(policy, mode, &format!("http://{upstream}"))
        }
    }

    /// A committed Envoy configuration with this PKI's files and `policy`.
    pub fn envoy_yaml(&self, file: &str, backend: SocketAddr, policy: &str) -> String {
        let fixtures = format!("{}/fixtures/pki/", repo().display());
        config(file, backend, Some(policy))
            .replace(
                &format!("{fixtures}server.pem"),
                &self.path("issued/localhost.pem").display().to_string(),
            )
            .replace(
                &format!("{fixtures}server.key"),
                &self.path("issued/localhost.key").display().to_string(),
            )
            .replace(
                &format!("{fixtures}trusted-client-cas.pem"),
                &self.path("root-ca/ca.pem").display().to_string(),
            )
            .replace(&format!("{fixtures}crls.pem"), &self.path("crls.pem").display().to_string())
    }
}

/// The book's page of the issuer's names (generated from the enums).
fn issuer_reference() -> String {
    std::fs::read_to_string(crate::common::repo().join("docs/src/reference/issuer.md")).unwrap()
}

/// Every `operation`, `mode` and `outcome` an audit log wrote is a row of
/// the book's reference page, under its field; returns how many lines were read.
pub fn assert_audit_documented(audit: &str) -> usize {
    let page = issuer_reference();
    let mut lines = 0;
    for line in audit.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in ["operation", "mode", "outcome"] {
            let value = v[field].as_str().unwrap_or_else(|| panic!("no {field} in {line}"));
            assert!(
                documented(&page, field, value),
                "{field} {value:?} of {line} is not in docs/src/reference/issuer.md"
            );
        }
        lines += 1;
    }
    lines
}

/// Every label of `certgate_est_requests_total` in a scrape is a row of the
/// book's reference page; returns how many series were read.
pub fn assert_metrics_documented(scrape: &str) -> usize {
    let page = issuer_reference();
    let mut series = 0;
    for line in scrape.lines().filter(|l| l.starts_with("certgate_est_requests_total{")) {
        for field in ["operation", "outcome"] {
            let value = line
                .split(&format!("{field}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no {field} in {line}"));
            assert!(
                documented(&page, field, value),
                "{field} {value:?} of {line} is not in docs/src/reference/issuer.md"
            );
        }
        series += 1;
    }
    series
}

fn documented(page: &str, field: &str, value: &str) -> bool {
    page.split(&format!("\n## {field}\n"))
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .is_some_and(|section| section.contains(&format!("\n| `{value}` | ")))
}
