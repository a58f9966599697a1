//! What can go wrong loading or running a plugin.

use crate::state::{LogLevel, LogLine};

/// Why a plugin could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The module file could not be read.
    #[error("cannot read the module {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// wasmtime refused the bytes.
    #[error("not a usable WebAssembly module: {0}")]
    Compile(String),
    /// An import could not be satisfied, or an export has the wrong type.
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),
    /// The module lacks an export every proxy-wasm module has.
    #[error("the module does not export {0}")]
    MissingExport(&'static str),
    /// `proxy_on_vm_start` returned false.
    #[error("the plugin refused its VM configuration (proxy_on_vm_start returned false){}", guest_errors(.logs))]
    VmStartRefused {
        /// What the plugin logged meanwhile.
        logs: Vec<LogLine>,
    },
    /// `proxy_on_configure` returned false.
    #[error("the plugin refused its configuration (proxy_on_configure returned false){}", guest_errors(.logs))]
    ConfigureRefused {
        /// What the plugin logged meanwhile.
        logs: Vec<LogLine>,
    },
    /// The guest trapped (a panic, an out-of-bounds access...).
    #[error("the plugin trapped in {during}: {message}")]
    Trap {
        /// The export that was running.
        during: String,
        /// wasmtime's account of the trap.
        message: String,
    },
    /// A call after a trap: the instance is out of service, as in Envoy.
    #[error("the plugin is out of service since it trapped: {0}")]
    Poisoned(String),
    /// No open stream has this context id.
    #[error("no open stream {0}")]
    NoStream(u32),
}

fn guest_errors(logs: &[LogLine]) -> String {
    let lines: Vec<&str> = logs
        .iter()
        .filter(|l| l.level >= LogLevel::Warn)
        .map(|l| l.message.as_str())
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join("; "))
    }
}
