//! What the host keeps for one plugin instance (the `T` of `Store<T>`):
//! configuration, properties, the HTTP stream in flight, logs, metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::abi::codec::Pairs;

/// proxy-wasm log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    /// The level of the ABI's number, if it is one.
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
    /// The level the guest gave (stderr is `Error`, stdout `Info`).
    pub level: LogLevel,
    /// The text, without a line end.
    pub message: String,
}

/// proxy-wasm metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric the guest defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// The name as defined (Envoy prefixes nothing here).
    pub name: String,
    /// Its type.
    pub kind: MetricKind,
    /// Counter and gauge value; for a histogram, the last recorded value.
    pub value: i64,
    /// Histogram samples.
    pub samples: Vec<u64>,
}

/// A local reply the guest sent with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// The HTTP status.
    pub status: u32,
    /// Envoy's response code details (what `%RESPONSE_CODE_DETAILS%` logs).
    pub details: String,
    /// Headers to add, names lowercased.
    pub headers: Pairs,
    /// The body.
    pub body: Vec<u8>,
    /// -1 for none.
    pub grpc_status: i32,
}

/// One HTTP stream in flight, as its callbacks see it.
#[derive(Debug, Clone, Default)]
pub struct StreamState {
    /// The stream's context id.
    pub context_id: u32,
    /// The request headers, with the filter's changes.
    pub request_headers: Pairs,
    /// The request trailers, once they came.
    pub request_trailers: Pairs,
    /// The response headers (`:status` among them), once they came.
    pub response_headers: Pairs,
    /// The response trailers, once they came.
    pub response_trailers: Pairs,
    /// Request body the filter holds: what arrived since the last body
    /// callback that continued (Envoy's buffered data).
    pub request_body: Vec<u8>,
    /// Response body the filter holds, likewise.
    pub response_body: Vec<u8>,
    /// The local reply the filter sent, if it sent one.
    pub local_response: Option<LocalResponse>,
    /// `proxy_continue_stream` / `proxy_close_stream` calls, in order.
    pub stream_calls: Vec<String>,
    /// A `proxy_continue_stream` on the request the driver has not acted on yet.
    pub resume_request: bool,
    /// Likewise for the response.
    pub resume_response: bool,
    /// What the guest set with `proxy_set_property` during this stream:
    /// Envoy's filter state (`%FILTER_STATE(wasm.NAME)%`).
    pub filter_state: HashMap<String, Vec<u8>>,
    /// Properties of this stream's connection (Envoy's names).
    pub properties: Arc<HashMap<String, Vec<u8>>>,
    /// Dynamic metadata filters before this one set, by property path
    /// (`metadata.filter_metadata.<namespace>...`, as
    /// `certgate_wire::metadata` writes it).
    pub dynamic_metadata: HashMap<String, Vec<u8>>,
}

/// A `proxy_http_call` the guest made, for the driver to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// The token the guest got back.
    pub token: u32,
    /// The context that made the call: a stream, or the root.
    pub context_id: u32,
    /// The upstream (Envoy's cluster) name.
    pub upstream: String,
    /// Request headers, pseudo-headers (`:method`, `:path`, `:authority`) included.
    pub headers: Pairs,
    /// The request body.
    pub body: Vec<u8>,
    /// The request trailers.
    pub trailers: Pairs,
    /// How long the call may take.
    pub timeout: Duration,
}

/// What came back from an [`HttpCall`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCallResponse {
    /// Response headers, `:status` among them.
    pub headers: Pairs,
    /// The response body.
    pub body: Vec<u8>,
    /// The response trailers.
    pub trailers: Pairs,
}

/// Where the host's clock reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    System,
    /// A fixed instant, for tests.
    Fixed(SystemTime),
}

impl Clock {
    /// The time now.
    pub fn now(self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            Clock::Fixed(t) => t,
        }
    }

    /// Nanoseconds since the Unix epoch (0 before it).
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

/// Everything the host keeps for one plugin instance.
pub struct HostState {
    /// `proxy_on_vm_start`'s configuration.
    pub vm_configuration: Vec<u8>,
    /// `proxy_on_configure`'s configuration.
    pub plugin_configuration: Vec<u8>,
    /// The least level logged; `proxy_get_log_level` answers it.
    pub log_level: LogLevel,
    /// Every line the guest logged.
    pub logs: Vec<LogLine>,
    /// The clock `proxy_get_current_time_nanoseconds` reads.
    pub clock: Clock,
    /// Metrics the guest defined, by id - 1.
    pub metrics: Vec<Metric>,
    /// Shared with every plugin of the same VM id.
    pub shared_data: SharedData,
    /// Plugin-wide properties (`plugin_name`, `plugin_root_id`, ...).
    pub plugin_properties: HashMap<String, Vec<u8>>,
    /// Properties the guest set outside any stream.
    pub set_properties: HashMap<String, Vec<u8>>,
    /// The open HTTP streams, by context id.
    pub streams: HashMap<u32, StreamState>,
    /// The stream whose callback runs (Envoy's effective context); `None`
    /// in the root context's callbacks.
    pub current: Option<u32>,
    /// The root context's id.
    pub root_id: u32,
    /// `proxy_set_tick_period_milliseconds`'s period; 0 for none.
    pub tick_period_ms: u32,
    /// Upstream names `proxy_http_call` may use (Envoy's clusters).
    pub upstreams: Vec<String>,
    /// Calls made and not yet taken by the driver.
    pub http_calls: Vec<HttpCall>,
    /// The last token given out.
    pub last_token: u32,
    /// The response `proxy_on_http_call_response` is reading.
    pub call_response: Option<HttpCallResponse>,
    /// Partial lines written to stdout/stderr, by descriptor.
    pub stdio: HashMap<u32, Vec<u8>>,
    /// The guest's exported memory, once instantiated.
    pub memory: Option<wasmtime::Memory>,
    /// The guest's allocator, once instantiated.
    pub allocator: Option<wasmtime::TypedFunc<i32, i32>>,
    /// Calls from the guest into the host so far (every import, WASI too).
    pub host_calls: u64,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("logs", &self.logs.len())
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl HostState {
    /// A fresh state; the plugin fills in the rest as it starts.
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
            streams: HashMap::new(),
            current: None,
            root_id: 1,
            tick_period_ms: 0,
            upstreams: Vec::new(),
            http_calls: Vec::new(),
            last_token: 0,
            call_response: None,
            stdio: HashMap::new(),
            memory: None,
            allocator: None,
            host_calls: 0,
        }
    }

    /// The stream whose callback runs.
    pub fn stream(&self) -> Option<&StreamState> {
        self.current.and_then(|id| self.streams.get(&id))
    }

    /// [`HostState::stream`], to change.
    pub fn stream_mut(&mut self) -> Option<&mut StreamState> {
        self.current.and_then(|id| self.streams.get_mut(&id))
    }

    /// Records a guest log line (and passes it to `tracing` at debug level).
    pub fn log(&mut self, level: LogLevel, message: impl Into<String>) {
        let message = message.into();
        tracing::event!(target: "certgate_host::guest", tracing::Level::DEBUG, ?level, "{message}");
        self.logs.push(LogLine { level, message });
    }

    /// The host's own notes (unsupported calls and the like), as warnings.
    pub fn host_note(&mut self, message: impl Into<String>) {
        self.log(LogLevel::Warn, format!("[host] {}", message.into()));
    }
}
