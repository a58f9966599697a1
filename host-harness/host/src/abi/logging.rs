//! `proxy_log`, `proxy_get_log_level`, `proxy_set_log_level`.

use wasmtime::{Caller, Linker};

use super::memory::{read, write_u32};
use super::{code, Status};
use crate::state::{HostState, LogLevel};

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let Some(level) = LogLevel::from_i32(level) else {
                return Status::BadArgument as i32;
            };
            code(read(&mut c, ptr, len).map(|msg| {
                if level >= c.data().log_level {
                    c.data_mut().log(level, String::from_utf8_lossy(&msg));
                }
            }))
        },
    )?;
    linker.func_wrap("env", "proxy_get_log_level", |mut c: Caller<'_, HostState>, ret: i32| {
        let level = c.data().log_level as u32;
        code(write_u32(&mut c, ret, level))
    })?;
    linker.func_wrap(
        "env",
        "proxy_set_log_level",
        |mut c: Caller<'_, HostState>, level: i32| match LogLevel::from_i32(level) {
            Some(l) => {
                c.data_mut().log_level = l;
                Status::Ok as i32
            }
            None => Status::BadArgument as i32,
        },
    )?;
    Ok(())
}
