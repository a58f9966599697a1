//! certgate-edge: `certgate serve`, a local mTLS edge that runs a proxy-wasm
//! filter the way Envoy does, in front of an HTTP upstream.
//!
//! - [`serve`]: the listener, one plugin instance per worker thread, the
//!   upstream client and the access log;
//! - [`tls`]: rustls server configuration from PEM files (client CAs, CRLs);
//! - [`policy_file`]: the policy file, re-read when it changes;
//! - [`locate`]: where the filter's `.wasm` is when none is named.

pub mod locate;
pub mod policy_file;
pub mod serve;
pub mod tls;

pub use serve::{start, EdgeError, EdgeSettings, RunningEdge};
