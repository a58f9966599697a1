//! certgate-host: a proxy-wasm ABI 0.2.1 host on wasmtime that runs any
//! proxy-wasm filter (certgate's first), with a state-based test API in the
//! spirit of the Go SDK's `proxytest`. No async runtime, no network: the edge
//! (`certgate-edge`) drives it over real connections.
//!
//! ```no_run
//! use certgate_host::{Connection, PluginSettings, WasmModule};
//! let module = WasmModule::from_file("filter.wasm".as_ref())?;
//! let mut plugin = module.start(PluginSettings::new(r#"{"rules":[{"name":"all"}]}"#))?;
//! let conn = Connection::local_tls().with_client_cert_file("alice.pem".as_ref(), true)?;
//! let out = plugin.request(&conn, vec![(":path".into(), b"/".to_vec())])?;
//! println!("{:?} {:?}", out.forwarded(), out.header("x-client-cn"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod abi;
pub mod error;
pub mod module;
pub mod plugin;
pub mod settings;
pub mod state;
pub mod stream;
pub mod test_stream;

pub use certgate_wire::connection::{Connection, ConnectionError};
pub use error::HarnessError;
pub use module::WasmModule;
pub use plugin::{Action, Plugin};
pub use settings::PluginSettings;
pub use state::{Clock, HttpCall, HttpCallResponse, LocalResponse, LogLevel, LogLine, Metric, SharedData, StreamState};
pub use stream::{Half, HalfHeaders, Step, Verdict};
pub use test_stream::{request_headers, Exchange, HttpStream};
