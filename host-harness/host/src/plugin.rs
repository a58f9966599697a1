//! A running proxy-wasm plugin, driven as Envoy drives it: the VM is started
//! and configured once ([`crate::WasmModule::start`]), then each HTTP stream
//! gets a context and its callbacks. One instance is reused for every stream
//! (Envoy keeps one VM per worker); a trap poisons the instance, and every
//! later call fails closed.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::{Func, Instance, Store, TypedFunc, WasmParams, WasmResults};

use crate::abi::codec::Pairs;
use crate::error::HarnessError;
use crate::state::{Clock, HostState, HttpCall, HttpCallResponse, LogLine, Metric, StreamState};
use certgate_wire::connection::Connection;

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
    pub(crate) fn from_i32(v: i32) -> Action {
        match v {
            0 => Action::Continue,
            1 => Action::Pause,
            v => Action::Other(v),
        }
    }
}

pub(crate) fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A running plugin instance.
pub struct Plugin {
    pub(crate) store: Store<HostState>,
    pub(crate) instance: Instance,
    pub(crate) root_id: u32,
    pub(crate) next_id: u32,
    pub(crate) failure: Option<String>,
    /// Exports looked up once: `None` for one the module lacks.
    pub(crate) exports: HashMap<String, Option<Func>>,
    /// Exports with their checked signature, by name and signature.
    pub(crate) typed: HashMap<(String, TypeId), Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("root_id", &self.root_id)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
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

    pub(crate) fn has_export(&mut self, name: &str) -> bool {
        self.export(name).is_some()
    }

    /// Calls a guest export. A trap poisons the plugin.
    pub(crate) fn call<P: WasmParams + 'static, R: WasmResults + 'static>(&mut self, name: &str, params: P) -> Result<R, HarnessError> {
        if let Some(f) = &self.failure {
            return Err(HarnessError::Poisoned(f.clone()));
        }
        let func = self.typed::<P, R>(name)?;
        func.call(&mut self.store, params).map_err(|e| {
            let message = format!("{e:#}");
            self.failure = Some(format!("{name}: {message}"));
            HarnessError::Trap {
                during: name.to_owned(),
                message,
            }
        })
    }

    /// Calls an optional stream callback; a missing one continues.
    fn callback(&mut self, name: &str, params: (i32, i32, i32)) -> Result<Action, HarnessError> {
        if !self.has_export(name) {
            return Ok(Action::Continue);
        }
        Ok(Action::from_i32(self.call::<(i32, i32, i32), i32>(name, params)?))
    }

    pub(crate) fn configure_current(&mut self) -> Result<(), HarnessError> {
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
        let state = StreamState {
            context_id: id,
            properties: Arc::clone(&connection.properties),
            ..StreamState::default()
        };
        self.store.data_mut().streams.insert(id, state);
        self.store.data_mut().current = None;
        if let Err(e) = self.call::<(i32, i32), ()>("proxy_on_context_create", (id as i32, self.root_id as i32)) {
            self.store.data_mut().streams.remove(&id);
            return Err(e);
        }
        Ok(id)
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
        self.stream_state_mut(id)
            .map(|s| std::mem::take(&mut s.request_body))
            .unwrap_or_default()
    }

    /// Likewise for the response body.
    pub fn take_response_body(&mut self, id: u32) -> Vec<u8> {
        self.stream_state_mut(id)
            .map(|s| std::mem::take(&mut s.response_body))
            .unwrap_or_default()
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
        let (n_headers, body_len, n_trailers) = (
            len_i32(response.headers.len()),
            len_i32(response.body.len()),
            len_i32(response.trailers.len()),
        );
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
}
