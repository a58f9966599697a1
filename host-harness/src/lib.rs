//! certgate-harness: the `certgate` command's library. Today it holds the test
//! PKI generator; the wasmtime proxy-wasm host and the mTLS edge come next.

pub mod pki;
