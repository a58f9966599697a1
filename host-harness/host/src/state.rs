//! What the host keeps for one plugin instance (the `T` of `Store<T>`):
//! configuration, properties, the HTTP stream in flight, logs, metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::abi::codec::Pairs;

/// proxy-wasm log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub fn from_i32(v: i32) -> Option<LogLevel> {
        Some(match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// One line the guest logged (through `proxy_log`, or stdout/stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
    /// Counter and gauge value; for a histogram, the last recorded value.
    pub value: i64,
    /// Histogram samples.
    pub samples: Vec<u64>,
}

/// A local reply the guest sent with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub details: String,
    pub headers: Pairs,
    pub body: Vec<u8>,
    pub grpc_status: i32,
}

/// The HTTP stream being processed.
#[derive(Debug, Clone, Default)]
pub struct StreamState {
    pub context_id: u32,
    pub request_headers: Pairs,
    pub request_trailers: Pairs,
    pub response_headers: Pairs,
    pub response_trailers: Pairs,
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    pub local_response: Option<LocalResponse>,
    /// `proxy_continue_stream` / `proxy_close_stream` calls, in order.
    pub stream_calls: Vec<String>,
    /// Properties of this stream's connection (Envoy's names).
    pub properties: Arc<HashMap<String, Vec<u8>>>,
}

/// Where the host's clock reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    Fixed(SystemTime),
}

impl Clock {
    pub fn now(self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            Clock::Fixed(t) => t,
        }
    }

    pub fn nanos(self) -> u64 {
        self.now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos()
            .try_into()
            .unwrap_or(u64::MAX)
    }
}

/// Key/value data shared by every plugin of one VM id, with CAS numbers.
pub type SharedData = Arc<Mutex<HashMap<String, (Vec<u8>, u32)>>>;

pub struct HostState {
    pub vm_configuration: Vec<u8>,
    pub plugin_configuration: Vec<u8>,
    pub log_level: LogLevel,
    pub logs: Vec<LogLine>,
    pub clock: Clock,
    pub metrics: Vec<Metric>,
    pub shared_data: SharedData,
    /// Plugin-wide properties (`plugin_name`, `plugin_root_id`, ...).
    pub plugin_properties: HashMap<String, Vec<u8>>,
    /// Properties the guest set with `proxy_set_property`.
    pub set_properties: HashMap<String, Vec<u8>>,
    pub stream: Option<StreamState>,
    pub effective_context: u32,
    pub tick_period_ms: u32,
    /// Partial lines written to stdout/stderr, by descriptor.
    pub stdio: HashMap<u32, Vec<u8>>,
    /// The guest's exported memory and allocator, once instantiated.
    pub memory: Option<wasmtime::Memory>,
    pub allocator: Option<wasmtime::TypedFunc<i32, i32>>,
    /// Calls from the guest into the host so far (every import, WASI too).
    pub host_calls: u64,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState").field("logs", &self.logs.len()).field("metrics", &self.metrics).finish_non_exhaustive()
    }
}

impl HostState {
    pub fn new(clock: Clock, shared_data: SharedData) -> HostState {
        HostState {
            vm_configuration: Vec::new(),
            plugin_configuration: Vec::new(),
            log_level: LogLevel::Trace,
            logs: Vec::new(),
            clock,
            metrics: Vec::new(),
            shared_data,
            plugin_properties: HashMap::new(),
            set_properties: HashMap::new(),
            stream: None,
            effective_context: 0,
            tick_period_ms: 0,
            stdio: HashMap::new(),
            memory: None,
            allocator: None,
            host_calls: 0,
        }
    }

    pub fn log(&mut self, level: LogLevel, message: impl Into<String>) {
        let message = message.into();
        tracing::event!(target: "certgate_harness::guest", tracing::Level::DEBUG, ?level, "{message}");
        self.logs.push(LogLine { level, message });
    }

    /// The host's own notes (unsupported calls and the like), as warnings.
    pub fn host_note(&mut self, message: impl Into<String>) {
        self.log(LogLevel::Warn, format!("[host] {}", message.into()));
    }
}
