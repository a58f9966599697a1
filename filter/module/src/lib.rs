//! certgate as an Envoy dynamic module: `libcertgate.so`, loaded by Envoy's
//! `envoy.filters.http.dynamic_modules` filter, runs the same policy core as
//! `certgate_filter.wasm` (`certgate_core::admission::admit`) natively.
//!
//! - `abi`: Envoy's C ABI, the hooks and the callbacks; all the unsafe code.
//! - `filter`: one configuration and one request, in safe Rust.
//! - `host`: the request as the core's [`certgate_core::host::Host`].
//! - `identity_cache`: each worker's parsed certificates.
//! - `logger`: the `log` crate and panics to Envoy's log.
#![warn(missing_docs)]

mod abi;
mod filter;
mod host;
mod identity_cache;
mod logger;

pub use filter::{FILTER_STATE_KEY, MODULE_READS, PANICS};
