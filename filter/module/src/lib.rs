//! certgate as an Envoy dynamic module: `libcertgate.so`, loaded by Envoy's
//! `envoy.filters.http.dynamic_modules` filter, runs the same policy core as
//! `certgate_filter.wasm` (`certgate_core::admission::admit`) natively.
//!
//! - `abi`: all the unsafe code: `abi::ffi`, Envoy's C ABI (types,
//!   callbacks, log, the safe handles; it imports nothing of the crate), and
//!   `abi::hooks`, the functions Envoy calls.
//! - `filter`: one configuration and one request, in safe Rust.
//! - `host`: the request as the core's [`certgate_core::host::Host`].
//! - `per_config`: one value per live configuration (each worker's parsed
//!   certificates).
//! - `logger`: the `log` crate and panics to Envoy's log.
#![warn(missing_docs)]

mod abi;
mod filter;
mod host;
mod logger;
mod per_config;

pub use filter::{FILTER_STATE_KEY, MODULE_READS, PANICS};
