//! `proxy_get_buffer_bytes`, `proxy_set_buffer_bytes`: the VM and plugin
//! configuration, the request and response bodies the filter holds, and the
//! body of an HTTP call's response.

use wasmtime::{Caller, Linker};

use super::memory::{read, return_bytes, Call};
use certgate_wire::BufferType;

use super::{code, Status};
use crate::state::HostState;

fn buffer(state: &HostState, kind: i32) -> Call<&[u8]> {
    match BufferType::from_i32(kind).ok_or(Status::BadArgument)? {
        BufferType::VmConfiguration => Ok(&state.vm_configuration),
        BufferType::PluginConfiguration => Ok(&state.plugin_configuration),
        BufferType::HttpRequestBody => Ok(&state.stream().ok_or(Status::NotFound)?.request_body),
        BufferType::HttpResponseBody => Ok(&state.stream().ok_or(Status::NotFound)?.response_body),
        BufferType::HttpCallResponseBody => state.call_response.as_ref().map(|r| r.body.as_slice()).ok_or(Status::NotFound),
        // no TCP streams, gRPC calls or foreign calls here
        BufferType::DownstreamData | BufferType::UpstreamData | BufferType::GrpcReceiveBuffer | BufferType::CallData => {
            Err(Status::NotFound)
        }
    }
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Caller<'_, HostState>, kind: i32, start: i32, max: i32, ret_ptr: i32, ret_size: i32| {
            let slice = match buffer(c.data(), kind) {
                Ok(b) => {
                    let start = (start as u32 as usize).min(b.len());
                    let end = start.saturating_add(max as u32 as usize).min(b.len());
                    b.get(start..end).unwrap_or_default().to_vec()
                }
                Err(s) => return Ok(s as i32),
            };
            return_bytes(&mut c, &slice, ret_ptr, ret_size).map(code)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Caller<'_, HostState>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
            let data = match read(&mut c, ptr, len) {
                Ok(d) => d,
                Err(s) => return s as i32,
            };
            let Some(stream) = c.data_mut().stream_mut() else {
                return Status::NotFound as i32;
            };
            let body = match BufferType::from_i32(kind) {
                Some(BufferType::HttpRequestBody) => &mut stream.request_body,
                Some(BufferType::HttpResponseBody) => &mut stream.response_body,
                _ => return Status::BadArgument as i32,
            };
            // replace [start, start+size) with the data, as Envoy does for bodies
            let start = (start as u32 as usize).min(body.len());
            let end = start.saturating_add(size as u32 as usize).min(body.len());
            body.splice(start..end, data);
            Status::Ok as i32
        },
    )?;
    Ok(())
}
