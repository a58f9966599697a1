//! `proxy_get_property`, `proxy_set_property`. Lookup order: what the guest
//! set (in this stream: its filter state; outside: the plugin's), the
//! stream's connection properties, its dynamic metadata, values derived from the request headers
//! (`request.path`, ...), then the plugin's.

use wasmtime::{Caller, Linker};

use super::codec::{decode_path, encode_map};
use super::memory::{read, return_bytes};
use super::{code, Status};
use crate::state::HostState;

fn header<'a>(state: &'a HostState, name: &str) -> Option<&'a [u8]> {
    let stream = state.stream()?;
    stream.request_headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
}

/// The `request.*` attributes Envoy derives from the request headers.
fn from_request(state: &HostState, path: &str) -> Option<Vec<u8>> {
    let value = match path {
        "request.path" => header(state, ":path")?.to_vec(),
        "request.url_path" => {
            let p = header(state, ":path")?;
            let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
            p.get(..end)?.to_vec()
        }
        "request.host" => header(state, ":authority")?.to_vec(),
        "request.method" => header(state, ":method")?.to_vec(),
        "request.scheme" => header(state, ":scheme")?.to_vec(),
        "request.id" => header(state, "x-request-id")?.to_vec(),
        "request.referer" => header(state, "referer")?.to_vec(),
        "request.useragent" => header(state, "user-agent")?.to_vec(),
        "request.headers" => encode_map(&state.stream()?.request_headers),
        "response.headers" => encode_map(&state.stream()?.response_headers),
        _ => return None,
    };
    Some(value)
}

/// A property's value as `proxy_get_property` gives it.
pub fn lookup(state: &HostState, path: &str) -> Option<Vec<u8>> {
    let stream = state.stream();
    stream
        .and_then(|s| s.filter_state.get(path).cloned())
        .or_else(|| state.set_properties.get(path).cloned())
        .or_else(|| stream.and_then(|s| s.properties.get(path).cloned()))
        .or_else(|| stream.and_then(|s| s.dynamic_metadata.get(path).cloned()))
        .or_else(|| from_request(state, path))
        .or_else(|| state.plugin_properties.get(path).cloned())
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Caller<'_, HostState>, ptr: i32, len: i32, ret_ptr: i32, ret_size: i32| {
            let path = match read(&mut c, ptr, len) {
                Ok(p) => p,
                Err(s) => return Ok(s as i32),
            };
            let Some(path) = decode_path(&path) else {
                return Ok(Status::BadArgument as i32);
            };
            match lookup(c.data(), &path) {
                Some(v) => return_bytes(&mut c, &v, ret_ptr, ret_size).map(code),
                None => Ok(Status::NotFound as i32),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: Caller<'_, HostState>, ptr: i32, len: i32, vptr: i32, vlen: i32| {
            code((|| {
                let path = decode_path(&read(&mut c, ptr, len)?).ok_or(Status::BadArgument)?;
                let value = read(&mut c, vptr, vlen)?;
                let state = c.data_mut();
                match state.stream_mut() {
                    Some(stream) => stream.filter_state.insert(path, value),
                    None => state.set_properties.insert(path, value),
                };
                Ok(())
            })())
        },
    )?;
    Ok(())
}
