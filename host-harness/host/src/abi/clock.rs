//! `proxy_get_current_time_nanoseconds`, `proxy_set_tick_period_milliseconds`.

use wasmtime::{Caller, Linker};

use super::code;
use super::memory::write_u64;
use crate::state::HostState;

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Caller<'_, HostState>, ret: i32| {
            let now = c.data().clock.nanos();
            code(write_u64(&mut c, ret, now))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Caller<'_, HostState>, ms: i32| {
            c.data_mut().tick_period_ms = ms as u32;
            code(Ok(()))
        },
    )?;
    Ok(())
}
