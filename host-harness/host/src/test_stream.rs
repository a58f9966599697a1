//! The test-facing side of a plugin: one stream's callbacks in order
//! ([`HttpStream`], from [`Plugin::stream`]), and one request start to end
//! ([`Exchange`], from [`Plugin::request`]).

use std::collections::HashMap;

use crate::abi::codec::Pairs;
use certgate_wire::connection::Connection;

use crate::error::HarnessError;
use crate::plugin::{Action, Plugin};
use crate::state::{LocalResponse, StreamState};
use certgate_wire::Pair;

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

impl<'p> HttpStream<'p> {
    fn new(plugin: &'p mut Plugin, id: u32) -> HttpStream<'p> {
        HttpStream {
            plugin,
            id,
            finished: false,
        }
    }

    /// The stream's state; `None` once it has ended (none is made up for it).
    fn state(&self) -> Option<&StreamState> {
        self.plugin.stream_state(self.id)
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
    pub fn request_headers_now(&self) -> &[Pair] {
        self.state().map_or(&[], |s| &s.request_headers)
    }

    /// The response headers as they are now.
    pub fn response_headers_now(&self) -> &[Pair] {
        self.state().map_or(&[], |s| &s.response_headers)
    }

    /// The request body the filter holds.
    pub fn request_body_now(&self) -> &[u8] {
        self.state().map_or(&[], |s| &s.request_body)
    }

    /// The local reply, if the filter sent one.
    pub fn local_response(&self) -> Option<&LocalResponse> {
        self.state().and_then(|s| s.local_response.as_ref())
    }

    /// `proxy_continue_stream`/`proxy_close_stream` calls so far.
    pub fn stream_calls(&self) -> Vec<String> {
        self.state().map(|s| s.stream_calls.clone()).unwrap_or_default()
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

/// A plugin's streams and requests as tests drive them.
impl Plugin {
    /// Opens a stream ([`Plugin::open_stream`]) borrowed as an [`HttpStream`].
    pub fn stream(&mut self, connection: &Connection) -> Result<HttpStream<'_>, HarnessError> {
        let id = self.open_stream(connection)?;
        Ok(HttpStream::new(self, id))
    }

    /// One request through the filter: request headers (end of stream), then
    /// the stream ends. What the upstream would get, or the local reply.
    pub fn request(&mut self, connection: &Connection, headers: Pairs) -> Result<Exchange, HarnessError> {
        self.request_with_metadata(connection, headers, Vec::new())
    }

    /// [`Plugin::request`], after filters before this one set dynamic
    /// metadata (property path to bytes, as `certgate_wire::metadata` gives
    /// what Envoy's `jwt_authn` sets).
    pub fn request_with_metadata(&mut self, connection: &Connection, headers: Pairs, metadata: Pairs) -> Result<Exchange, HarnessError> {
        let id = self.open_stream(connection)?;
        if let Some(stream) = self.stream_state_mut(id) {
            stream.dynamic_metadata.extend(metadata);
        }
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

/// The request headers of a plain HTTPS request as Envoy would give them
/// (`:method`, `:path`, `:authority` localhost:8443, `:scheme`, a user agent),
/// to add to or pass to [`Plugin::request`].
pub fn request_headers(method: &str, path: &str) -> Pairs {
    let mut h = certgate_wire::header_map::request(method, path, "localhost:8443");
    h.push(("user-agent".into(), b"harness".to_vec()));
    h
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
