//! The properties an Envoy listener gives a stream, per connection: TLS and
//! client-certificate facts with Envoy's names and encodings (strings as
//! bytes, booleans as one byte, integers as 8-byte little-endian).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use certgate_x509::pem::{self, PemError};
use certgate_x509::{sha256_hex, CertError, CertFacts};

use crate::{encode_bool, encode_int};

/// Why a certificate could not be turned into connection properties.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The certificate file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The text holds no PEM certificate.
    #[error("{what}: {source}")]
    Pem {
        /// `certificate`, or the file's path.
        what: String,
        /// What is wrong with the PEM.
        source: PemError,
    },
    /// The DER is not one X.509 certificate.
    #[error("{what}: {source}")]
    Der {
        /// `certificate`, or the file's path.
        what: String,
        /// What is wrong with the certificate.
        source: CertError,
    },
}

/// One downstream connection's properties (shared, not copied, by its streams).
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Property path (`connection.mtls`) to its encoded value.
    pub properties: Arc<HashMap<String, Vec<u8>>>,
    /// The `x-forwarded-client-cert` element Envoy's `SANITIZE_SET` would add
    /// for this connection (`Hash`, `Cert`, `Subject`, `URI`, `DNS`).
    pub xfcc: Option<String>,
}

impl Connection {
    /// A plaintext connection from `source` to `destination`.
    pub fn plaintext(source: SocketAddr, destination: SocketAddr) -> Connection {
        let mut c = Connection::default();
        c.set("source.address", source.to_string());
        c.set("source.port", encode_int(i64::from(source.port())));
        c.set("destination.address", destination.to_string());
        c.set("destination.port", encode_int(i64::from(destination.port())));
        c.set("connection.mtls", encode_bool(false));
        c
    }

    /// A TLS connection on which the client sent no certificate, with the
    /// version the handshake agreed on as Envoy spells it (`TLSv1.2`,
    /// `TLSv1.3`), or `None` when the TLS stack does not say.
    pub fn tls(source: SocketAddr, destination: SocketAddr, sni: Option<&str>, version: Option<&str>) -> Connection {
        let mut c = Connection::plaintext(source, destination);
        if let Some(version) = version {
            c.set("connection.tls_version", version);
        }
        if let Some(sni) = sni {
            c.set("connection.requested_server_name", sni);
        }
        c
    }

    /// The loopback TLS connection most tests want.
    pub fn local_tls() -> Connection {
        let src: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 50_000));
        let dst: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8443));
        Connection::tls(src, dst, Some("localhost"), Some("TLSv1.3"))
    }

    /// Adds a client certificate (the leaf, PEM), as Envoy 1.40 presents it;
    /// `verified` is whether the listener's validation accepted it.
    pub fn with_client_cert_pem(self, pem: &str, verified: bool) -> Result<Connection, ConnectionError> {
        let der = pem::first_certificate(pem.as_bytes()).map_err(|source| ConnectionError::Pem {
            what: "certificate".into(),
            source,
        })?;
        self.with_client_cert_der(&der, verified)
    }

    /// [`Connection::with_client_cert_pem`] from DER (what a TLS stack gives).
    pub fn with_client_cert_der(mut self, der: &[u8], verified: bool) -> Result<Connection, ConnectionError> {
        let facts = CertFacts::from_der(der).map_err(|source| ConnectionError::Der {
            what: "certificate".into(),
            source,
        })?;
        let pem = pem::encode_certificate(der);
        let subject = facts.subject.text;
        let digest = sha256_hex(der);
        self.set("connection.mtls", encode_bool(true));
        self.set("connection.peer_certificate", pem.clone());
        self.set("connection.peer_certificate_valid", encode_bool(verified));
        self.set("connection.peer_certificate_presented", encode_bool(true));
        self.set("connection.subject_peer_certificate", subject.clone());
        self.set("connection.sha256_peer_certificate_digest", digest.clone());
        // Envoy gives the first SAN of each kind only
        if let Some(uri) = facts.san_uri.first() {
            self.set("connection.uri_san_peer_certificate", uri.clone());
        }
        if let Some(dns) = facts.san_dns.first() {
            self.set("connection.dns_san_peer_certificate", dns.clone());
        }
        let mut xfcc = format!(
            "Hash={digest};Cert=\"{}\";Subject=\"{}\"",
            url_encode(&pem),
            subject.replace('"', "\\\"")
        );
        for uri in &facts.san_uri {
            xfcc.push_str(&format!(";URI={uri}"));
        }
        for dns in &facts.san_dns {
            xfcc.push_str(&format!(";DNS={dns}"));
        }
        self.xfcc = Some(xfcc);
        Ok(self)
    }

    /// [`Connection::with_client_cert_pem`] from a file (its first certificate).
    pub fn with_client_cert_file(self, path: &Path, verified: bool) -> Result<Connection, ConnectionError> {
        let pem = std::fs::read_to_string(path).map_err(|source| ConnectionError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let what = path.display().to_string();
        self.with_client_cert_pem(&pem, verified).map_err(|e| match e {
            ConnectionError::Pem { source, .. } => ConnectionError::Pem { what, source },
            ConnectionError::Der { source, .. } => ConnectionError::Der { what, source },
            other => other,
        })
    }

    /// Sets one property (a dotted path such as `connection.mtls`).
    pub fn set(&mut self, path: &str, value: impl Into<Vec<u8>>) {
        Arc::make_mut(&mut self.properties).insert(path.to_owned(), value.into());
    }

    /// The connection without one property (as an older Envoy would give it).
    pub fn without(mut self, path: &str) -> Connection {
        Arc::make_mut(&mut self.properties).remove(path);
        self
    }
}

/// Percent-encodes all but unreserved characters, as Envoy writes `Cert=`.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
