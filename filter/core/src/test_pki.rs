//! Test helpers: the committed fixture PKI, read at test time.

use std::path::PathBuf;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pki").join(name)
}

/// A fixture file's text.
pub fn fixture(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The DER bytes of a fixture certificate's first PEM block.
pub fn fixture_der(name: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(fixture(name).as_bytes()).unwrap();
    pem.contents
}
