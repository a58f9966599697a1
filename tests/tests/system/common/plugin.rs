//! certgate in the host library, without an edge: the real `.wasm` (built
//! by `./dev test` before the tests run), compiled once per test process.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use certgate_host::{Clock, Connection, PluginSettings, WasmModule};

use super::{repo, wasm};

/// The release filter, compiled once.
pub fn certgate() -> &'static WasmModule {
    static MODULE: OnceLock<WasmModule> = OnceLock::new();
    MODULE.get_or_init(|| WasmModule::from_file(&wasm()).unwrap_or_else(|e| panic!("{e}; build it with `./dev test`")))
}

/// 2026-11-22, inside every good fixture's validity.
pub fn fixed_clock() -> Clock {
    Clock::Fixed(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_305_600))
}

pub fn settings(config: &str) -> PluginSettings {
    PluginSettings::new(config).clock(fixed_clock()).name("certgate")
}

pub fn fixture(rel: &str) -> String {
    let path = repo().join("fixtures").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn client(name: &str, verified: bool) -> Connection {
    Connection::local_tls()
        .with_client_cert_file(&repo().join(format!("fixtures/pki/{name}.pem")), verified)
        .unwrap()
}

/// A connection Envoy verified whose `peer_certificate` property is `pem`,
/// whatever it holds (for certificates a TLS stack would not produce).
pub fn with_peer_pem(pem: impl Into<Vec<u8>>) -> Connection {
    let mut conn = Connection::local_tls();
    conn.set("connection.mtls", vec![1]);
    conn.set("connection.peer_certificate_valid", vec![1]);
    conn.set("connection.sha256_peer_certificate_digest", "cd".repeat(32));
    conn.set("connection.peer_certificate", pem);
    conn
}

pub use certgate_host::request_headers as request;
