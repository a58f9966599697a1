//! certgate: admits HTTP requests by their verified TLS client certificate.
//!
//! Pure modules hold the logic; `wasm/` alone talks to the proxy.
#![warn(missing_docs)]

pub mod admission;
pub mod cache;
pub mod client_cert;
pub mod config;
pub mod dn_pattern;
pub mod glob;
pub mod headers;
pub mod host;
pub mod identity;
pub mod metrics;
pub mod path;
pub mod peer;
pub mod policy;
pub mod reply;
pub mod token;
pub mod xfcc;

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(test)]
mod test_pki;

#[cfg(target_arch = "wasm32")]
mod wasm;
