//! The header map calls on the stream in flight. Names are lowercased as
//! Envoy's header maps do; lookups ignore case.

use wasmtime::{Caller, Linker};

use super::codec::{decode_map, encode_map, Pairs};
use super::memory::{read, read_str, return_bytes, Call};
use super::{code, Status};
use crate::state::HostState;

fn map(state: &mut HostState, kind: i32) -> Call<&mut Pairs> {
    if !(0..=7).contains(&kind) {
        return Err(Status::BadArgument);
    }
    if kind >= 6 {
        let response = state.call_response.as_mut().ok_or(Status::NotFound)?;
        return Ok(if kind == 6 { &mut response.headers } else { &mut response.trailers });
    }
    let stream = state.stream_mut().ok_or(Status::NotFound)?;
    match kind {
        0 => Ok(&mut stream.request_headers),
        1 => Ok(&mut stream.request_trailers),
        2 => Ok(&mut stream.response_headers),
        3 => Ok(&mut stream.response_trailers),
        // gRPC metadata: no gRPC calls, so none
        _ => Err(Status::NotFound),
    }
}

fn key(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Call<String> {
    Ok(read_str(caller, ptr, len)?.to_ascii_lowercase())
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
    linker.func_wrap("env", "proxy_set_header_map_pairs", |mut c: Caller<'_, HostState>, kind: i32, ptr: i32, len: i32| {
        code((|| {
            let pairs = decode_map(&read(&mut c, ptr, len)?).map_err(|_| Status::SerializationFailure)?;
            let m = map(c.data_mut(), kind)?;
            *m = pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
            Ok(())
        })())
    })?;
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
                map(c.data_mut(), kind)?.retain(|(n, _)| *n != k);
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
                let m = map(c.data_mut(), kind)?;
                // the first one keeps its place; any repeats go
                match m.iter().position(|(n, _)| *n == k) {
                    Some(i) => {
                        if let Some(slot) = m.get_mut(i) {
                            slot.1 = v;
                        }
                        let mut seen = 0usize;
                        m.retain(|(n, _)| {
                            if *n == k {
                                seen += 1;
                                seen == 1
                            } else {
                                true
                            }
                        });
                    }
                    None => m.push((k, v)),
                }
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
                map(c.data_mut(), kind)?.push((k, v));
                Ok(())
            })())
        },
    )?;
    Ok(())
}
