//! `proxy_http_call`: the guest asks for an HTTP request to a named upstream
//! (Envoy's cluster). The host records it; whoever drives the plugin (the
//! edge, or a test) performs it and hands the response back through
//! [`crate::Plugin::http_call_response`].

use std::time::Duration;

use wasmtime::{Caller, Linker};

use super::codec::decode_map;
use super::memory::{read, read_str, write_u32};
use super::{code, Status};
use crate::state::{HostState, HttpCall};

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: Caller<'_, HostState>,
         upstream_ptr: i32,
         upstream_len: i32,
         headers_ptr: i32,
         headers_len: i32,
         body_ptr: i32,
         body_len: i32,
         trailers_ptr: i32,
         trailers_len: i32,
         timeout_ms: i32,
         token_ptr: i32| {
            code((|| {
                let upstream = read_str(&mut c, upstream_ptr, upstream_len)?;
                let headers = decode_map(&read(&mut c, headers_ptr, headers_len)?).map_err(|_| Status::SerializationFailure)?;
                let body = read(&mut c, body_ptr, body_len)?;
                let trailers = decode_map(&read(&mut c, trailers_ptr, trailers_len)?).map_err(|_| Status::SerializationFailure)?;
                // as Envoy: a known cluster, and the three pseudo-headers a request needs
                if !c.data().upstreams.contains(&upstream) {
                    c.data_mut()
                        .host_note(format!("proxy_http_call: no upstream named {upstream:?} (give it with --cluster)"));
                    return Err(Status::BadArgument);
                }
                if [":method", ":path", ":authority"]
                    .iter()
                    .any(|p| !headers.iter().any(|(n, _)| n == p))
                {
                    return Err(Status::BadArgument);
                }
                let token = c.data().last_token.wrapping_add(1).max(1);
                write_u32(&mut c, token_ptr, token)?;
                let state = c.data_mut();
                state.last_token = token;
                let context_id = state.current.unwrap_or(state.root_id);
                state.http_calls.push(HttpCall {
                    token,
                    context_id,
                    upstream,
                    headers: headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
                    body,
                    trailers,
                    timeout: Duration::from_millis(u64::from(timeout_ms as u32)),
                });
                Ok(())
            })())
        },
    )?;
    Ok(())
}
