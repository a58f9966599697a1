//! The only code that calls proxy-wasm. It reads the configuration, owns the
//! policy, the identity cache and the metrics, and runs
//! [`crate::admission::admit`] with proxy-wasm host calls.
//!
//! Host calls go through `proxy_wasm::hostcalls`, which return `Result`s,
//! never through the SDK's context helpers that unwrap; the header map
//! calls, on every request, through `abi`.
// The SDK's entry-point macro exports `_initialize` (`#[no_mangle]`) and runs
// the module's constructors (an `unsafe` call): allowed here alone.
#![allow(unsafe_code)]

mod abi;
mod http;
mod root;
mod shared;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::CertgateRoot::default()));
}}
