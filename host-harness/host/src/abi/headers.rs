//! The header map calls on the stream in flight. Names are lowercased as
//! Envoy's header maps do; lookups ignore case.

use wasmtime::{Caller, Linker};

use super::codec::{decode_map, encode_map, Pairs};
use super::memory::{read, read_str, return_bytes, Call};
use certgate_wire::{header_map, MapType};

use super::{code, Status};
use crate::state::HostState;

fn map(state: &mut HostState, kind: i32) -> Call<&mut Pairs> {
    let kind = MapType::from_i32(kind).ok_or(Status::BadArgument)?;
    match kind {
        MapType::HttpCallResponseHeaders | MapType::HttpCallResponseTrailers => {
            let response = state.call_response.as_mut().ok_or(Status::NotFound)?;
            Ok(if kind == MapType::HttpCallResponseHeaders {
                &mut response.headers
            } else {
                &mut response.trailers
            })
        }
        // gRPC metadata: no gRPC calls, so none
        MapType::GrpcReceiveInitialMetadata | MapType::GrpcReceiveTrailingMetadata => Err(Status::NotFound),
        MapType::HttpRequestHeaders => Ok(&mut state.stream_mut().ok_or(Status::NotFound)?.request_headers),
        MapType::HttpRequestTrailers => Ok(&mut state.stream_mut().ok_or(Status::NotFound)?.request_trailers),
        MapType::HttpResponseHeaders => Ok(&mut state.stream_mut().ok_or(Status::NotFound)?.response_headers),
        MapType::HttpResponseTrailers => Ok(&mut state.stream_mut().ok_or(Status::NotFound)?.response_trailers),
    }
}

fn key(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Call<String> {
    Ok(header_map::name(&read_str(caller, ptr, len)?))
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Caller<'_, HostState>, kind: i32, ret_ptr: i32, ret_size: i32| {
            let bytes = match map(c.data_mut(), kind) {
                Ok(m) => encode_map(m),
                Err(s) => return Ok(s as i32),
            };
            return_bytes(&mut c, &bytes, ret_ptr, ret_size).map(code)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Caller<'_, HostState>, kind: i32, ptr: i32, len: i32| {
            code((|| {
                let pairs = decode_map(&read(&mut c, ptr, len)?).map_err(|_| Status::SerializationFailure)?;
                let m = map(c.data_mut(), kind)?;
                *m = pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Caller<'_, HostState>, kind: i32, kptr: i32, klen: i32, ret_ptr: i32, ret_size: i32| {
            let value = (|| {
                let k = key(&mut c, kptr, klen)?;
                let m = map(c.data_mut(), kind)?;
                m.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).ok_or(Status::NotFound)
            })();
            match value {
                Ok(v) => return_bytes(&mut c, &v, ret_ptr, ret_size).map(code),
                Err(s) => Ok(s as i32),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Caller<'_, HostState>, kind: i32, kptr: i32, klen: i32| {
            code((|| {
                let k = key(&mut c, kptr, klen)?;
                header_map::remove(map(c.data_mut(), kind)?, &k);
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Caller<'_, HostState>, kind: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| {
            code((|| {
                let k = key(&mut c, kptr, klen)?;
                let v = read(&mut c, vptr, vlen)?;
                header_map::replace(map(c.data_mut(), kind)?, &k, v);
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Caller<'_, HostState>, kind: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| {
            code((|| {
                let k = key(&mut c, kptr, klen)?;
                let v = read(&mut c, vptr, vlen)?;
                header_map::add(map(c.data_mut(), kind)?, &k, v);
                Ok(())
            })())
        },
    )?;
    Ok(())
}
