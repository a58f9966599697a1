//! A proxy-wasm plugin in wasmtime, driven as Envoy drives it: the VM is
//! started and configured once, then each HTTP stream gets a context and its
//! callbacks. One instance is reused for every stream (Envoy keeps one VM per
//! worker); a trap poisons the instance, and every later call fails closed.

use std::path::Path;
use std::sync::Arc;

use std::any::{Any, TypeId};
use std::collections::HashMap;

use wasmtime::{Config, Engine, Extern, Func, Instance, Linker, Module, Store, TypedFunc, WasmParams, WasmResults};

use crate::abi::{self, codec::Pairs};
use crate::connection::Connection;
use crate::state::{Clock, HostState, HttpCall, HttpCallResponse, LocalResponse, LogLevel, LogLine, Metric, SharedData, StreamState};

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
    let lines: Vec<&str> = logs.iter().filter(|l| l.level >= LogLevel::Warn).map(|l| l.message.as_str()).collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join("; "))
    }
}

/// What a callback told the host to do with the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Go on (Envoy's `Continue`).
    Continue,
    /// Stop here (`StopIteration`; on a body callback, buffer the data).
    Pause,
    /// A value outside ABI 0.2.1's two.
    Other(i32),
}

impl Action {
    fn from_i32(v: i32) -> Action {
        match v {
            0 => Action::Continue,
            1 => Action::Pause,
            v => Action::Other(v),
        }
    }
}

/// A compiled module, shared by every plugin instance made from it.
#[derive(Clone)]
pub struct WasmModule {
    engine: Engine,
    module: Module,
    linker: Arc<Linker<HostState>>,
}

impl std::fmt::Debug for WasmModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmModule").finish_non_exhaustive()
    }
}

impl WasmModule {
    /// Compiles a module file.
    pub fn from_file(path: &Path) -> Result<WasmModule, HarnessError> {
        let bytes = std::fs::read(path).map_err(|source| HarnessError::Read { path: path.display().to_string(), source })?;
        WasmModule::from_bytes(&bytes)
    }

    /// Compiles a module (binary, or text when the `wat` format is given).
    pub fn from_bytes(bytes: &[u8]) -> Result<WasmModule, HarnessError> {
        let mut config = Config::new();
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| HarnessError::Compile(e.to_string()))?;
        let module = Module::new(&engine, bytes).map_err(|e| HarnessError::Compile(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        abi::add_to_linker(&mut linker, &module).map_err(|e| HarnessError::Instantiate(format!("{e:#}")))?;
        Ok(WasmModule { engine, module, linker: Arc::new(linker) })
    }

    /// The same module with the host refusing one `env` import: every call
    /// of it answers `status` and does nothing (as a host may refuse a
    /// call), so a test can show the filter fails closed rather than traps.
    /// `status` is a number: an ABI status (`Status::BadArgument as i32`) or
    /// one the ABI does not define, which a host may answer too.
    pub fn with_refused_import(&self, name: &str, status: i32) -> Result<WasmModule, HarnessError> {
        let mut linker = (*self.linker).clone();
        match abi::unsupported::refuse(&mut linker, &self.module, name, status) {
            Ok(true) => Ok(WasmModule { engine: self.engine.clone(), module: self.module.clone(), linker: Arc::new(linker) }),
            Ok(false) => Err(HarnessError::Instantiate(format!("the module does not import env.{name} with a status result"))),
            Err(e) => Err(HarnessError::Instantiate(format!("{e:#}"))),
        }
    }

    /// Starts a plugin: instantiate, `_initialize`, root context,
    /// `proxy_on_vm_start`, `proxy_on_configure`.
    pub fn start(&self, settings: PluginSettings) -> Result<Plugin, HarnessError> {
        let mut state = HostState::new(settings.clock, settings.shared_data);
        state.vm_configuration = settings.vm_configuration;
        state.plugin_configuration = settings.configuration;
        state.log_level = settings.log_level;
        state.upstreams = settings.upstreams;
        state.plugin_properties.insert("plugin_name".into(), settings.name.into_bytes());
        state.plugin_properties.insert("plugin_root_id".into(), settings.root_id.into_bytes());
        state.plugin_properties.insert("plugin_vm_id".into(), settings.vm_id.into_bytes());
        let mut store = Store::new(&self.engine, state);
        store.call_hook(|mut ctx, hook| {
            if matches!(hook, wasmtime::CallHook::CallingHost) {
                ctx.data_mut().host_calls += 1;
            }
            Ok(())
        });
        let instance = self
            .linker
            .instantiate(&mut store, &self.module)
            .map_err(|e| HarnessError::Instantiate(format!("{e:#}")))?;
        // found once, not on every host call
        store.data_mut().memory = instance.get_memory(&mut store, "memory");
        let allocator = ["proxy_on_memory_allocate", "malloc"]
            .iter()
            .find_map(|name| instance.get_export(&mut store, name).and_then(Extern::into_func));
        store.data_mut().allocator = allocator.and_then(|f| f.typed::<i32, i32>(&store).ok());
        let mut plugin =
            Plugin { store, instance, root_id: 1, next_id: 2, failure: None, exports: HashMap::new(), typed: HashMap::new() };
        let init = ["_initialize", "_start"].into_iter().find(|n| plugin.has_export(n));
        if let Some(init) = init {
            plugin.call::<(), ()>(init, ())?;
        }
        if !plugin.has_export("proxy_on_context_create") {
            return Err(HarnessError::MissingExport("proxy_on_context_create"));
        }
        plugin.call::<(i32, i32), ()>("proxy_on_context_create", (1, 0))?;
        let vm_len = len_i32(plugin.store.data().vm_configuration.len());
        if plugin.has_export("proxy_on_vm_start") && plugin.call::<(i32, i32), i32>("proxy_on_vm_start", (1, vm_len))? == 0 {
            return Err(HarnessError::VmStartRefused { logs: plugin.store.data().logs.clone() });
        }
        plugin.configure_current()?;
        Ok(plugin)
    }
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// How to start a plugin: its configuration and what Envoy would give it.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// The plugin configuration (`proxy_on_configure`).
    pub configuration: Vec<u8>,
    /// The VM configuration (`proxy_on_vm_start`).
    pub vm_configuration: Vec<u8>,
    /// The `plugin_name` property.
    pub name: String,
    /// The `plugin_root_id` property.
    pub root_id: String,
    /// The `plugin_vm_id` property.
    pub vm_id: String,
    /// Where the plugin's clock reads.
    pub clock: Clock,
    /// The least level logged.
    pub log_level: LogLevel,
    /// Shared data: give every plugin of one VM id the same (as Envoy does
    /// across its workers).
    pub shared_data: SharedData,
    /// The upstream names `proxy_http_call` may use.
    pub upstreams: Vec<String>,
}

impl PluginSettings {
    /// Settings with this plugin configuration and defaults for the rest.
    pub fn new(configuration: impl Into<Vec<u8>>) -> PluginSettings {
        PluginSettings {
            configuration: configuration.into(),
            vm_configuration: Vec::new(),
            name: "plugin".into(),
            root_id: String::new(),
            vm_id: String::new(),
            clock: Clock::System,
            log_level: LogLevel::Info,
            shared_data: SharedData::default(),
            upstreams: Vec::new(),
        }
    }

    /// With this clock.
    pub fn clock(mut self, clock: Clock) -> PluginSettings {
        self.clock = clock;
        self
    }

    /// With this log level.
    pub fn log_level(mut self, level: LogLevel) -> PluginSettings {
        self.log_level = level;
        self
    }

    /// With this plugin name.
    pub fn name(mut self, name: &str) -> PluginSettings {
        self.name = name.to_owned();
        self
    }

    /// Sharing this shared data (that of the plugin's other workers).
    pub fn shared_data(mut self, shared_data: SharedData) -> PluginSettings {
        self.shared_data = shared_data;
        self
    }

    /// With these upstreams for `proxy_http_call`.
    pub fn upstreams(mut self, upstreams: Vec<String>) -> PluginSettings {
        self.upstreams = upstreams;
        self
    }
}

/// A running plugin instance.
pub struct Plugin {
    store: Store<HostState>,
    instance: Instance,
    root_id: u32,
    next_id: u32,
    failure: Option<String>,
    /// Exports looked up once: `None` for one the module lacks.
    exports: HashMap<String, Option<Func>>,
    /// Exports with their checked signature, by name and signature.
    typed: HashMap<(String, TypeId), Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("root_id", &self.root_id).field("failure", &self.failure).finish_non_exhaustive()
    }
}

impl Plugin {
    fn export(&mut self, name: &str) -> Option<Func> {
        if let Some(f) = self.exports.get(name) {
            return *f;
        }
        let f = self.instance.get_func(&mut self.store, name);
        self.exports.insert(name.to_owned(), f);
        f
    }

    fn typed<P: WasmParams + 'static, R: WasmResults + 'static>(&mut self, name: &str) -> Result<TypedFunc<P, R>, HarnessError> {
        let key = (name.to_owned(), TypeId::of::<(P, R)>());
        if let Some(f) = self.typed.get(&key).and_then(|b| b.downcast_ref::<TypedFunc<P, R>>()) {
            return Ok(f.clone());
        }
        let func = self
            .export(name)
            .ok_or_else(|| HarnessError::Instantiate(format!("no export {name}")))?
            .typed::<P, R>(&self.store)
            .map_err(|e| HarnessError::Instantiate(format!("{name}: {e}")))?;
        self.typed.insert(key, Box::new(func.clone()));
        Ok(func)
    }

    fn has_export(&mut self, name: &str) -> bool {
        self.export(name).is_some()
    }

    /// Calls a guest export. A trap poisons the plugin.
    fn call<P: WasmParams + 'static, R: WasmResults + 'static>(&mut self, name: &str, params: P) -> Result<R, HarnessError> {
        if let Some(f) = &self.failure {
            return Err(HarnessError::Poisoned(f.clone()));
        }
        let func = self.typed::<P, R>(name)?;
        func.call(&mut self.store, params).map_err(|e| {
            let message = format!("{e:#}");
            self.failure = Some(format!("{name}: {message}"));
            HarnessError::Trap { during: name.to_owned(), message }
        })
    }

    /// Calls an optional stream callback; a missing one continues.
    fn callback(&mut self, name: &str, params: (i32, i32, i32)) -> Result<Action, HarnessError> {
        if !self.has_export(name) {
            return Ok(Action::Continue);
        }
        Ok(Action::from_i32(self.call::<(i32, i32, i32), i32>(name, params)?))
    }

    fn configure_current(&mut self) -> Result<(), HarnessError> {
        self.store.data_mut().current = None;
        let len = len_i32(self.store.data().plugin_configuration.len());
        let logs_before = self.store.data().logs.len();
        if self.call::<(i32, i32), i32>("proxy_on_configure", (self.root_id as i32, len))? == 0 {
            let logs = self.store.data().logs.get(logs_before..).unwrap_or_default().to_vec();
            return Err(HarnessError::ConfigureRefused { logs });
        }
        Ok(())
    }

    /// Gives the plugin a new configuration, as Envoy does on an update. If it
    /// refuses, it keeps running with what it had.
    pub fn reconfigure(&mut self, configuration: impl Into<Vec<u8>>) -> Result<(), HarnessError> {
        self.store.data_mut().plugin_configuration = configuration.into();
        self.configure_current()
    }

    /// Calls `proxy_on_tick` on the root context.
    pub fn tick(&mut self) -> Result<(), HarnessError> {
        self.store.data_mut().current = None;
        if self.has_export("proxy_on_tick") {
            self.call::<i32, ()>("proxy_on_tick", self.root_id as i32)?;
        }
        Ok(())
    }

    /// How many times the guest has called into the host.
    pub fn host_calls(&self) -> u64 {
        self.store.data().host_calls
    }

    /// The size of the guest's linear memory in bytes (its high-water mark:
    /// Wasm memory only grows).
    pub fn memory_bytes(&self) -> usize {
        self.store.data().memory.map_or(0, |m| m.data_size(&self.store))
    }

    /// The period the plugin asked for `proxy_on_tick`; 0 for none.
    pub fn tick_period_ms(&self) -> u32 {
        self.store.data().tick_period_ms
    }

    /// Every line logged so far.
    pub fn logs(&self) -> &[LogLine] {
        &self.store.data().logs
    }

    /// The lines logged since the last call.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.store.data_mut().logs)
    }

    /// The metrics defined so far.
    pub fn metrics(&self) -> &[Metric] {
        &self.store.data().metrics
    }

    /// A metric's value by name.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.metrics().iter().find(|m| m.name == name).map(|m| m.value)
    }

    /// Why the plugin is out of service, if it trapped.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Moves the plugin's clock.
    pub fn set_clock(&mut self, clock: Clock) {
        self.store.data_mut().clock = clock;
    }

    /// Opens an HTTP stream on a connection; the stream's callbacks take
    /// its context id. Several streams may be open at once, as on an Envoy
    /// worker.
    pub fn open_stream(&mut self, connection: &Connection) -> Result<u32, HarnessError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(2);
        let state = StreamState { context_id: id, properties: Arc::clone(&connection.properties), ..StreamState::default() };
        self.store.data_mut().streams.insert(id, state);
        self.store.data_mut().current = None;
        if let Err(e) = self.call::<(i32, i32), ()>("proxy_on_context_create", (id as i32, self.root_id as i32)) {
            self.store.data_mut().streams.remove(&id);
            return Err(e);
        }
        Ok(id)
    }

    /// Opens a stream ([`Plugin::open_stream`]) borrowed as an [`HttpStream`].
    pub fn stream(&mut self, connection: &Connection) -> Result<HttpStream<'_>, HarnessError> {
        let id = self.open_stream(connection)?;
        Ok(HttpStream { plugin: self, id, finished: false })
    }

    /// The state of an open stream.
    pub fn stream_state(&self, id: u32) -> Option<&StreamState> {
        self.store.data().streams.get(&id)
    }

    /// [`Plugin::stream_state`], to change (what a proxy does between callbacks).
    pub fn stream_state_mut(&mut self, id: u32) -> Option<&mut StreamState> {
        self.store.data_mut().streams.get_mut(&id)
    }

    /// Runs a stream callback with the stream as the effective context.
    fn stream_callback(&mut self, id: u32, name: &str, params: (i32, i32, i32)) -> Result<Action, HarnessError> {
        if !self.store.data().streams.contains_key(&id) {
            return Err(HarnessError::NoStream(id));
        }
        self.store.data_mut().current = Some(id);
        self.callback(name, params)
    }

    /// Stores a header map (names lowercased, as Envoy's maps) and runs its callback.
    fn headers_phase(
        &mut self,
        id: u32,
        callback: &str,
        slot: fn(&mut StreamState) -> &mut Pairs,
        headers: Pairs,
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        let headers: Pairs = headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        let n = len_i32(headers.len());
        *slot(self.stream_state_mut(id).ok_or(HarnessError::NoStream(id))?) = headers;
        self.stream_callback(id, callback, (id as i32, n, i32::from(end_of_stream)))
    }

    /// Adds body data to what the filter holds and runs the body callback
    /// with the size held (Envoy's buffering: a body callback that pauses
    /// keeps the data; the next one sees it and the new chunk together).
    fn body_phase(
        &mut self,
        id: u32,
        callback: &str,
        slot: fn(&mut StreamState) -> &mut Vec<u8>,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        let held = slot(self.stream_state_mut(id).ok_or(HarnessError::NoStream(id))?);
        held.extend_from_slice(chunk);
        let len = len_i32(held.len());
        self.stream_callback(id, callback, (id as i32, len, i32::from(end_of_stream)))
    }

    fn trailers_phase(
        &mut self,
        id: u32,
        callback: &str,
        slot: fn(&mut StreamState) -> &mut Pairs,
        trailers: Pairs,
    ) -> Result<Action, HarnessError> {
        let trailers: Pairs = trailers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        let n = len_i32(trailers.len());
        *slot(self.stream_state_mut(id).ok_or(HarnessError::NoStream(id))?) = trailers;
        if !self.store.data().streams.contains_key(&id) || !self.has_export(callback) {
            return Ok(Action::Continue);
        }
        self.store.data_mut().current = Some(id);
        Ok(Action::from_i32(self.call::<(i32, i32), i32>(callback, (id as i32, n))?))
    }

    /// `proxy_on_request_headers`.
    pub fn request_headers(&mut self, id: u32, headers: Pairs, end_of_stream: bool) -> Result<Action, HarnessError> {
        self.headers_phase(id, "proxy_on_request_headers", |s| &mut s.request_headers, headers, end_of_stream)
    }

    /// `proxy_on_request_body` with `chunk` added to the body held.
    pub fn request_body(&mut self, id: u32, chunk: &[u8], end_of_stream: bool) -> Result<Action, HarnessError> {
        self.body_phase(id, "proxy_on_request_body", |s| &mut s.request_body, chunk, end_of_stream)
    }

    /// `proxy_on_request_trailers`.
    pub fn request_trailers(&mut self, id: u32, trailers: Pairs) -> Result<Action, HarnessError> {
        self.trailers_phase(id, "proxy_on_request_trailers", |s| &mut s.request_trailers, trailers)
    }

    /// `proxy_on_response_headers` (`:status` among the headers).
    pub fn response_headers(&mut self, id: u32, headers: Pairs, end_of_stream: bool) -> Result<Action, HarnessError> {
        self.headers_phase(id, "proxy_on_response_headers", |s| &mut s.response_headers, headers, end_of_stream)
    }

    /// `proxy_on_response_body` with `chunk` added to the body held.
    pub fn response_body(&mut self, id: u32, chunk: &[u8], end_of_stream: bool) -> Result<Action, HarnessError> {
        self.body_phase(id, "proxy_on_response_body", |s| &mut s.response_body, chunk, end_of_stream)
    }

    /// `proxy_on_response_trailers`.
    pub fn response_trailers(&mut self, id: u32, trailers: Pairs) -> Result<Action, HarnessError> {
        self.trailers_phase(id, "proxy_on_response_trailers", |s| &mut s.response_trailers, trailers)
    }

    /// The request body the filter held, now passed on (after a callback
    /// continued, or the stream resumed).
    pub fn take_request_body(&mut self, id: u32) -> Vec<u8> {
        self.stream_state_mut(id).map(|s| std::mem::take(&mut s.request_body)).unwrap_or_default()
    }

    /// Likewise for the response body.
    pub fn take_response_body(&mut self, id: u32) -> Vec<u8> {
        self.stream_state_mut(id).map(|s| std::mem::take(&mut s.response_body)).unwrap_or_default()
    }

    /// The HTTP calls made since the last call, for the caller to perform.
    pub fn take_http_calls(&mut self) -> Vec<HttpCall> {
        std::mem::take(&mut self.store.data_mut().http_calls)
    }

    /// Delivers an HTTP call's response (`None`: it failed or timed out;
    /// Envoy then gives no headers, body or trailers) to
    /// `proxy_on_http_call_response`, in the context that made the call. A
    /// call whose stream has ended is dropped, as Envoy cancels it.
    pub fn http_call_response(&mut self, call: &HttpCall, response: Option<HttpCallResponse>) -> Result<(), HarnessError> {
        let state = self.store.data_mut();
        let current = if call.context_id == state.root_id {
            None
        } else if state.streams.contains_key(&call.context_id) {
            Some(call.context_id)
        } else {
            return Ok(());
        };
        state.current = current;
        let response = response.unwrap_or_default();
        let (n_headers, body_len, n_trailers) =
            (len_i32(response.headers.len()), len_i32(response.body.len()), len_i32(response.trailers.len()));
        state.call_response = Some(response);
        let result = if self.has_export("proxy_on_http_call_response") {
            self.call::<(i32, i32, i32, i32, i32), ()>(
                "proxy_on_http_call_response",
                (call.context_id as i32, call.token as i32, n_headers, body_len, n_trailers),
            )
        } else {
            Ok(())
        };
        self.store.data_mut().call_response = None;
        result
    }

    /// Ends a stream: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.
    /// Returns its last state (what an access log reads).
    pub fn close_stream(&mut self, id: u32) -> Result<StreamState, HarnessError> {
        if !self.store.data().streams.contains_key(&id) {
            return Err(HarnessError::NoStream(id));
        }
        self.store.data_mut().current = Some(id);
        let result = (|| {
            if self.has_export("proxy_on_done") {
                self.call::<i32, i32>("proxy_on_done", id as i32)?;
            }
            if self.has_export("proxy_on_log") {
                self.call::<i32, ()>("proxy_on_log", id as i32)?;
            }
            if self.has_export("proxy_on_delete") {
                self.call::<i32, ()>("proxy_on_delete", id as i32)?;
            }
            Ok(())
        })();
        let state = self.store.data_mut();
        state.current = None;
        let last = state.streams.remove(&id).unwrap_or_default();
        result.map(|()| last)
    }

    /// One request through the filter: request headers (end of stream), then
    /// the stream ends. What the upstream would get, or the local reply.
    pub fn request(&mut self, connection: &Connection, headers: Pairs) -> Result<Exchange, HarnessError> {
        let id = self.open_stream(connection)?;
        let action = match self.request_headers(id, headers, true) {
            Ok(a) => a,
            Err(e) => {
                let _ = self.close_stream(id);
                return Err(e);
            }
        };
        let last = self.close_stream(id)?;
        Ok(Exchange {
            action,
            local_response: last.local_response,
            upstream_headers: last.request_headers,
            filter_state: last.filter_state,
        })
    }
}

/// One open HTTP stream, borrowing its plugin: the callbacks in order, for
/// tests. Dropping it ends the stream.
pub struct HttpStream<'p> {
    plugin: &'p mut Plugin,
    id: u32,
    finished: bool,
}

impl std::fmt::Debug for HttpStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStream").field("id", &self.id).finish_non_exhaustive()
    }
}

impl HttpStream<'_> {
    fn state(&mut self) -> &mut StreamState {
        let id = self.id;
        self.plugin.store.data_mut().streams.entry(id).or_default()
    }

    /// See [`Plugin::request_headers`].
    pub fn request_headers(&mut self, headers: Pairs, end_of_stream: bool) -> Result<Action, HarnessError> {
        self.plugin.request_headers(self.id, headers, end_of_stream)
    }

    /// See [`Plugin::request_body`].
    pub fn request_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Result<Action, HarnessError> {
        self.plugin.request_body(self.id, chunk, end_of_stream)
    }

    /// See [`Plugin::request_trailers`].
    pub fn request_trailers(&mut self, trailers: Pairs) -> Result<Action, HarnessError> {
        self.plugin.request_trailers(self.id, trailers)
    }

    /// See [`Plugin::response_headers`].
    pub fn response_headers(&mut self, headers: Pairs, end_of_stream: bool) -> Result<Action, HarnessError> {
        self.plugin.response_headers(self.id, headers, end_of_stream)
    }

    /// See [`Plugin::response_body`].
    pub fn response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Result<Action, HarnessError> {
        self.plugin.response_body(self.id, chunk, end_of_stream)
    }

    /// The request headers as they are now (after the filter's changes).
    pub fn request_headers_now(&mut self) -> &Pairs {
        &self.state().request_headers
    }

    /// The response headers as they are now.
    pub fn response_headers_now(&mut self) -> &Pairs {
        &self.state().response_headers
    }

    /// The request body the filter holds.
    pub fn request_body_now(&mut self) -> &[u8] {
        &self.state().request_body
    }

    /// The local reply, if the filter sent one.
    pub fn local_response(&mut self) -> Option<&LocalResponse> {
        self.state().local_response.as_ref()
    }

    /// `proxy_continue_stream`/`proxy_close_stream` calls so far.
    pub fn stream_calls(&mut self) -> Vec<String> {
        self.state().stream_calls.clone()
    }

    /// Ends the stream: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.
    pub fn finish(mut self) -> Result<(), HarnessError> {
        self.end()
    }

    fn end(&mut self) -> Result<(), HarnessError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.plugin.close_stream(self.id).map(drop)
    }
}

impl Drop for HttpStream<'_> {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

/// The request headers of a plain HTTPS request as Envoy would give them
/// (`:method`, `:path`, `:authority` localhost:8443, `:scheme`, a user agent),
/// to add to or pass to [`Plugin::request`].
pub fn request_headers(method: &str, path: &str) -> Pairs {
    vec![
        (":method".into(), method.as_bytes().to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        (":authority".into(), b"localhost:8443".to_vec()),
        (":scheme".into(), b"https".to_vec()),
        ("user-agent".into(), b"harness".to_vec()),
    ]
}

/// The outcome of [`Plugin::request`].
#[derive(Debug, Clone)]
pub struct Exchange {
    /// What the request headers callback returned.
    pub action: Action,
    /// The local reply, if the filter sent one.
    pub local_response: Option<LocalResponse>,
    /// The request headers after the filter: what the upstream would receive.
    pub upstream_headers: Pairs,
    /// What the filter set with `proxy_set_property` (Envoy's filter state).
    pub filter_state: HashMap<String, Vec<u8>>,
}

impl Exchange {
    /// Whether the request goes on to the upstream.
    pub fn forwarded(&self) -> bool {
        self.local_response.is_none() && self.action == Action::Continue
    }

    /// Every value of an upstream header (case-insensitive), as text.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.upstream_headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The single value of an upstream header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }
}
