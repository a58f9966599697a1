//! certgate-harness: a proxy-wasm ABI 0.2.1 host on wasmtime that runs any
//! proxy-wasm filter (certgate's first), with a state-based test API in the
//! spirit of the Go SDK's `proxytest`; the local mTLS edge (`certgate serve`), the
//! test backend, the scenario table model, a load generator and the test PKI.
//!
//! ```no_run
//! use certgate_harness::{Connection, PluginSettings, WasmModule};
//! let module = WasmModule::from_file("filter.wasm".as_ref())?;
//! let mut plugin = module.start(PluginSettings::new(r#"{"rules":[{"name":"all"}]}"#))?;
//! let conn = Connection::local_tls().with_client_cert_file("alice.pem".as_ref(), true)?;
//! let out = plugin.request(&conn, vec![(":path".into(), b"/".to_vec())])?;
//! println!("{:?} {:?}", out.forwarded(), out.header("x-client-cn"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod abi;
pub mod backend;
pub mod edge;
pub mod loadgen;
pub mod package;
pub mod locate;
pub mod policy_file;
pub mod tls;
pub mod connection;
pub mod pki;
pub mod plugin;
pub mod scenarios;
pub mod scratch;
pub mod state;

pub use connection::Connection;
pub use plugin::{Action, Exchange, HarnessError, HttpStream, Plugin, PluginSettings, WasmModule};
pub use state::{Clock, LocalResponse, LogLevel, LogLine, Metric};
