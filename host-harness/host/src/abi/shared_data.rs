//! `proxy_get_shared_data`, `proxy_set_shared_data`: key/value data shared by
//! the plugins of one VM id, with compare-and-swap numbers.

use wasmtime::{Caller, Linker};

use super::memory::{read, read_str, return_bytes, write_u32};
use super::{code, Status};
use crate::state::HostState;

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Caller<'_, HostState>, kptr: i32, klen: i32, ret_ptr: i32, ret_size: i32, ret_cas: i32| {
            let key = match read_str(&mut c, kptr, klen) {
                Ok(k) => k,
                Err(s) => return Ok(s as i32),
            };
            let entry = match c.data().shared_data.lock() {
                Ok(map) => map.get(&key).cloned(),
                Err(_) => return Ok(Status::InternalFailure as i32),
            };
            let Some((value, cas)) = entry else {
                return Ok(Status::NotFound as i32);
            };
            if let Err(s) = write_u32(&mut c, ret_cas, cas) {
                return Ok(s as i32);
            }
            return_bytes(&mut c, &value, ret_ptr, ret_size).map(code)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Caller<'_, HostState>, kptr: i32, klen: i32, vptr: i32, vlen: i32, cas: i32| {
            code((|| {
                let key = read_str(&mut c, kptr, klen)?;
                let value = read(&mut c, vptr, vlen)?;
                let mut map = c.data().shared_data.lock().map_err(|_| Status::InternalFailure)?;
                let current = map.get(&key).map_or(0, |(_, n)| *n);
                if cas != 0 && cas as u32 != current {
                    return Err(Status::CasMismatch);
                }
                map.insert(key, (value, current.wrapping_add(1).max(1)));
                Ok(())
            })())
        },
    )?;
    Ok(())
}
