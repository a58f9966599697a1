//! certgate's policy core: admits HTTP requests by their verified TLS client
//! certificate.
//!
//! Pure modules only: the proxy is reached through the [`host::Host`] trait,
//! which the Wasm glue (`certgate-wasm`) and the dynamic-module glue
//! (`certgate-module`) implement with their host calls.
#![warn(missing_docs)]

pub mod admission;
pub mod cache;
pub mod client_cert;
pub mod config;
pub mod config_error;
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
