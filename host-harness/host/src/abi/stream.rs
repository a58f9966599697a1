//! The stream controls: local replies, continue/close, done, effective
//! context, and `proxy_get_status` (for gRPC calls, which are not made).

use wasmtime::{Caller, Linker};

use super::codec::decode_map;
use super::memory::{read, Call};
use certgate_wire::StreamType;

use super::{code, Status};
use crate::state::{HostState, LocalResponse};

fn record(c: &mut Caller<'_, HostState>, what: &str, kind: i32) -> Call {
    let kind = StreamType::from_i32(kind).ok_or(Status::BadArgument)?;
    let stream = c.data_mut().stream_mut().ok_or(Status::NotFound)?;
    stream.stream_calls.push(format!("{what} {}", kind.as_str()));
    if what == "continue" {
        match kind {
            StreamType::HttpRequest => stream.resume_request = true,
            StreamType::HttpResponse => stream.resume_response = true,
            StreamType::Downstream | StreamType::Upstream => {}
        }
    }
    Ok(())
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Caller<'_, HostState>,
         status: i32,
         details_ptr: i32,
         details_len: i32,
         body_ptr: i32,
         body_len: i32,
         headers_ptr: i32,
         headers_len: i32,
         grpc_status: i32| {
            code((|| {
                let details = String::from_utf8_lossy(&read(&mut c, details_ptr, details_len)?).into_owned();
                let body = read(&mut c, body_ptr, body_len)?;
                let headers = decode_map(&read(&mut c, headers_ptr, headers_len)?).map_err(|_| Status::SerializationFailure)?;
                if !(100..=999).contains(&status) {
                    return Err(Status::BadArgument);
                }
                let stream = c.data_mut().stream_mut().ok_or(Status::NotFound)?;
                stream.local_response = Some(LocalResponse {
                    status: status as u32,
                    details,
                    headers: headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
                    body,
                    grpc_status,
                });
                Ok(())
            })())
        },
    )?;
    linker.func_wrap("env", "proxy_continue_stream", |mut c: Caller<'_, HostState>, kind: i32| {
        code(record(&mut c, "continue", kind))
    })?;
    linker.func_wrap("env", "proxy_close_stream", |mut c: Caller<'_, HostState>, kind: i32| {
        code(record(&mut c, "close", kind))
    })?;
    // the 0.2.0 names of the same calls, still used by some SDKs
    linker.func_wrap("env", "proxy_continue_request", |mut c: Caller<'_, HostState>| {
        code(record(&mut c, "continue", StreamType::HttpRequest as i32))
    })?;
    linker.func_wrap("env", "proxy_continue_response", |mut c: Caller<'_, HostState>| {
        code(record(&mut c, "continue", StreamType::HttpResponse as i32))
    })?;
    linker.func_wrap("env", "proxy_done", |_: Caller<'_, HostState>| Status::Ok as i32)?;
    linker.func_wrap("env", "proxy_set_effective_context", |mut c: Caller<'_, HostState>, id: i32| {
        let state = c.data_mut();
        let id = id as u32;
        if state.streams.contains_key(&id) {
            state.current = Some(id);
        } else if id == state.root_id {
            state.current = None;
        } else {
            return Status::BadArgument as i32;
        }
        Status::Ok as i32
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |_: Caller<'_, HostState>, _code: i32, _ptr: i32, _size: i32| Status::NotFound as i32,
    )?;
    Ok(())
}
