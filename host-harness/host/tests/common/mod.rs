//! Shared by the host library's tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn request(method: &str, path: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (":method".into(), method.as_bytes().to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        (":authority".into(), b"localhost:8443".to_vec()),
        (":scheme".into(), b"https".to_vec()),
        ("user-agent".into(), b"harness".to_vec()),
    ]
}
