//! What the filter's tests share: the fixtures, and the filter's own
//! `FakeEnvoy` on a fixture client's connection.
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;

pub use certgate_x509::sha256_hex;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

pub fn fixture(rel: &str) -> String {
    let path = fixtures_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The leaf PEM and its DER of a fixture client.
pub fn client_cert(name: &str) -> (String, Vec<u8>) {
    let pem = fixture(&format!("pki/{name}.pem"));
    let (_, der) = pem_rfc7468::decode_vec(pem.as_bytes()).expect("fixture PEM");
    (pem, der)
}

pub use certgate_core::testing::{FakeEnvoy, LocalReply};
pub use certgate_wire::connection::Connection;

/// The loopback TLS connection Envoy 1.40 would give this fixture client
/// (verified by the listener or not): its properties and XFCC element.
pub fn connection(name: &str, verified: bool) -> Connection {
    Connection::local_tls()
        .with_client_cert_file(&fixtures_dir().join(format!("pki/{name}.pem")), verified)
        .expect("fixture certificate")
}

/// [`FakeEnvoy::on`] the connection of a fixture client.
pub trait WithClientCert {
    /// On `name`'s connection, verified or not.
    fn with_client_cert(self, name: &str, verified: bool) -> FakeEnvoy;
}

impl WithClientCert for FakeEnvoy {
    fn with_client_cert(self, name: &str, verified: bool) -> FakeEnvoy {
        self.on(&connection(name, verified))
    }
}
