//! certgate-edge: `certgate serve`, a local mTLS edge that runs a proxy-wasm
//! filter the way Envoy does, in front of an HTTP upstream.
//!
//! - [`listener`]: the edge's start, its listener and connection limit;
//! - [`worker`]: worker threads, each with its own event loop and plugin instance (VM);
//! - `connection`: one connection's handshake and HTTP serving;
//! - `request`: one request's headers for the filter, its reply and access log line;
//! - [`flow`]: one request through the filter's whole HTTP lifecycle;
//! - [`upstream`]: the application and the named upstreams of HTTP calls;
//! - [`settings`]: `certgate serve`'s flags and TOML file, as one struct;
//! - [`tls`]: rustls server configuration from PEM files (client CAs, CRLs);
//! - [`policy_file`]: the policy file, re-read when it changes;
//! - [`locate`]: where the filter's `.wasm` is when none is named.
#![warn(missing_docs)]

mod connection;
pub mod flow;
pub mod listener;
pub mod locate;
pub mod policy_file;
mod request;
pub mod settings;
pub mod tls;
pub mod upstream;
pub mod worker;

pub use listener::{start, EdgeError, EdgeSettings, RunningEdge};
pub use settings::{ServeOptions, SettingsError};
