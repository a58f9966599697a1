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
use crate::state::{Clock, HostState, LocalResponse, LogLevel, LogLine, Metric, SharedData, StreamState};

/// Why a plugin could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot read the module {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("not a usable WebAssembly module: {0}")]
    Compile(String),
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),
    #[error("the module does not export {0}")]
    MissingExport(&'static str),
    #[error("the plugin refused its VM configuration (proxy_on_vm_start returned false){}", guest_errors(.logs))]
    VmStartRefused { logs: Vec<LogLine> },
    #[error("the plugin refused its configuration (proxy_on_configure returned false){}", guest_errors(.logs))]
    ConfigureRefused { logs: Vec<LogLine> },
    #[error("the plugin trapped in {during}: {message}")]
    Trap { during: String, message: String },
    #[error("the plugin is out of service since it trapped: {0}")]
    Poisoned(String),
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
    Continue,
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

    /// Starts a plugin: instantiate, `_initialize`, root context,
    /// `proxy_on_vm_start`, `proxy_on_configure`.
    pub fn start(&self, settings: PluginSettings) -> Result<Plugin, HarnessError> {
        let mut state = HostState::new(settings.clock, settings.shared_data);
        state.vm_configuration = settings.vm_configuration;
        state.plugin_configuration = settings.configuration;
        state.log_level = settings.log_level;
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
    pub configuration: Vec<u8>,
    pub vm_configuration: Vec<u8>,
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub clock: Clock,
    pub log_level: LogLevel,
    pub shared_data: SharedData,
}

impl PluginSettings {
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
        }
    }

    pub fn clock(mut self, clock: Clock) -> PluginSettings {
        self.clock = clock;
        self
    }

    pub fn log_level(mut self, level: LogLevel) -> PluginSettings {
        self.log_level = level;
        self
    }

    pub fn name(mut self, name: &str) -> PluginSettings {
        self.name = name.to_owned();
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
        if self.has_export("proxy_on_tick") {
            self.call::<i32, ()>("proxy_on_tick", self.root_id as i32)?;
        }
        Ok(())
    }

    /// How many times the guest has called into the host.
    pub fn host_calls(&self) -> u64 {
        self.store.data().host_calls
    }

    pub fn tick_period_ms(&self) -> u32 {
        self.store.data().tick_period_ms
    }

    pub fn logs(&self) -> &[LogLine] {
        &self.store.data().logs
    }

    pub fn take_logs(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.store.data_mut().logs)
    }

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

    pub fn set_clock(&mut self, clock: Clock) {
        self.store.data_mut().clock = clock;
    }

    /// Opens an HTTP stream on a connection.
    pub fn stream(&mut self, connection: &Connection) -> Result<HttpStream<'_>, HarnessError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(2);
        self.store.data_mut().stream = Some(StreamState {
            context_id: id,
            properties: std::sync::Arc::clone(&connection.properties),
            ..StreamState::default()
        });
        self.call::<(i32, i32), ()>("proxy_on_context_create", (id as i32, self.root_id as i32))?;
        Ok(HttpStream { plugin: self, id, finished: false })
    }

    /// One request through the filter: request headers (end of stream), then
    /// the stream ends. What the upstream would get, or the local reply.
    pub fn request(&mut self, connection: &Connection, headers: Pairs) -> Result<Exchange, HarnessError> {
        let mut stream = self.stream(connection)?;
        let action = stream.request_headers(headers, true)?;
        let exchange = Exchange {
            action,
            local_response: stream.local_response().cloned(),
            upstream_headers: stream.request_headers_now().clone(),
        };
        stream.finish()?;
        Ok(exchange)
    }
}

/// One HTTP stream in a plugin. Dropping it ends the stream.
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
        self.plugin.store.data_mut().stream.get_or_insert_with(StreamState::default)
    }

    fn count(pairs: &Pairs) -> i32 {
        len_i32(pairs.len())
    }

    /// Stores a header map (names lowercased, as Envoy's maps) and runs its callback.
    fn headers_phase(
        &mut self,
        callback: &str,
        slot: fn(&mut StreamState) -> &mut Pairs,
        headers: Pairs,
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        let headers: Pairs = headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        let n = Self::count(&headers);
        *slot(self.state()) = headers;
        self.plugin.callback(callback, (self.id as i32, n, i32::from(end_of_stream)))
    }

    pub fn request_headers(&mut self, headers: Pairs, end_of_stream: bool) -> Result<Action, HarnessError> {
        self.headers_phase("proxy_on_request_headers", |s| &mut s.request_headers, headers, end_of_stream)
    }

    pub fn request_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Result<Action, HarnessError> {
        self.state().request_body.extend_from_slice(chunk);
        let len = len_i32(self.state().request_body.len());
        self.plugin.callback("proxy_on_request_body", (self.id as i32, len, i32::from(end_of_stream)))
    }

    pub fn request_trailers(&mut self, trailers: Pairs) -> Result<Action, HarnessError> {
        let n = Self::count(&trailers);
        self.state().request_trailers = trailers;
        if !self.plugin.has_export("proxy_on_request_trailers") {
            return Ok(Action::Continue);
        }
        Ok(Action::from_i32(self.plugin.call::<(i32, i32), i32>("proxy_on_request_trailers", (self.id as i32, n))?))
    }

    pub fn response_headers(&mut self, headers: Pairs, end_of_stream: bool) -> Result<Action, HarnessError> {
        self.headers_phase("proxy_on_response_headers", |s| &mut s.response_headers, headers, end_of_stream)
    }

    pub fn response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Result<Action, HarnessError> {
        self.state().response_body.extend_from_slice(chunk);
        let len = len_i32(self.state().response_body.len());
        self.plugin.callback("proxy_on_response_body", (self.id as i32, len, i32::from(end_of_stream)))
    }

    /// The request headers as they are now (after the filter's changes).
    pub fn request_headers_now(&mut self) -> &Pairs {
        &self.state().request_headers
    }

    pub fn response_headers_now(&mut self) -> &Pairs {
        &self.state().response_headers
    }

    pub fn request_body_now(&mut self) -> &[u8] {
        &self.state().request_body
    }

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
        let id = self.id as i32;
        let result = (|| {
            if self.plugin.has_export("proxy_on_done") {
                self.plugin.call::<i32, i32>("proxy_on_done", id)?;
            }
            if self.plugin.has_export("proxy_on_log") {
                self.plugin.call::<i32, ()>("proxy_on_log", id)?;
            }
            if self.plugin.has_export("proxy_on_delete") {
                self.plugin.call::<i32, ()>("proxy_on_delete", id)?;
            }
            Ok(())
        })();
        self.plugin.store.data_mut().stream = None;
        result
    }
}

impl Drop for HttpStream<'_> {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

/// The outcome of [`Plugin::request`].
#[derive(Debug, Clone)]
pub struct Exchange {
    pub action: Action,
    pub local_response: Option<LocalResponse>,
    /// The request headers after the filter: what the upstream would receive.
    pub upstream_headers: Pairs,
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
