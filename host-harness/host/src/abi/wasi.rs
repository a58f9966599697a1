//! The WASI preview-1 calls a proxy-wasm filter built for `wasm32-wasip1`
//! uses, done as Envoy does: no files, no arguments or environment, stdout
//! and stderr go to the log, clocks and randomness from the host. Any other
//! WASI import answers `ENOSYS` (see `unsupported`).

use std::time::Instant;

use wasmtime::{Caller, Linker};

use super::memory::{read, write, write_u32, write_u64};
use crate::state::{HostState, LogLevel};

const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const EIO: i32 = 29;

const W: &str = "wasi_snapshot_preview1";

fn errno<T>(r: Result<T, super::Status>) -> i32 {
    match r {
        Ok(_) => SUCCESS,
        Err(_) => EFAULT,
    }
}

/// Writes `n` zero-length lists (no args, no environment).
fn empty_sizes(c: &mut Caller<'_, HostState>, count_ptr: i32, size_ptr: i32) -> i32 {
    errno(write_u32(c, count_ptr, 0).and_then(|()| write_u32(c, size_ptr, 0)))
}

/// Appends stdout/stderr bytes; each complete line becomes a log line.
fn stdio(c: &mut Caller<'_, HostState>, fd: u32, bytes: &[u8]) {
    let level = if fd == 1 { LogLevel::Info } else { LogLevel::Error };
    let state = c.data_mut();
    let buf = state.stdio.entry(fd).or_default();
    buf.extend_from_slice(bytes);
    let mut lines = Vec::new();
    while let Some(i) = buf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buf.drain(..=i).collect();
        lines.push(String::from_utf8_lossy(line.get(..i).unwrap_or_default()).into_owned());
    }
    for line in lines {
        state.log(level, line);
    }
}

/// The WASI calls a proxy-wasm module may import (Envoy's set).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let started = Instant::now();
    linker.func_wrap(W, "args_sizes_get", |mut c: Caller<'_, HostState>, n: i32, s: i32| {
        empty_sizes(&mut c, n, s)
    })?;
    linker.func_wrap(W, "environ_sizes_get", |mut c: Caller<'_, HostState>, n: i32, s: i32| {
        empty_sizes(&mut c, n, s)
    })?;
    linker.func_wrap(W, "args_get", |_: Caller<'_, HostState>, _: i32, _: i32| SUCCESS)?;
    linker.func_wrap(W, "environ_get", |_: Caller<'_, HostState>, _: i32, _: i32| SUCCESS)?;
    linker.func_wrap(W, "random_get", |mut c: Caller<'_, HostState>, ptr: i32, len: i32| {
        let mut bytes = vec![0u8; len as u32 as usize];
        if getrandom::fill(&mut bytes).is_err() {
            return EIO;
        }
        errno(write(&mut c, ptr, &bytes))
    })?;
    linker.func_wrap(
        W,
        "clock_time_get",
        move |mut c: Caller<'_, HostState>, id: i32, _precision: i64, ret: i32| {
            let nanos = match id {
                0 => c.data().clock.nanos(),
                1..=3 => u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
                _ => return EINVAL,
            };
            errno(write_u64(&mut c, ret, nanos))
        },
    )?;
    linker.func_wrap(W, "clock_res_get", |mut c: Caller<'_, HostState>, id: i32, ret: i32| {
        if !(0..=3).contains(&id) {
            return EINVAL;
        }
        errno(write_u64(&mut c, ret, 1))
    })?;
    linker.func_wrap(
        W,
        "fd_write",
        |mut c: Caller<'_, HostState>, fd: i32, iovs: i32, count: i32, ret: i32| {
            if fd != 1 && fd != 2 {
                return EBADF;
            }
            let mut written = 0u32;
            for i in 0..count {
                let Ok(iov) = read(&mut c, iovs.wrapping_add(i.wrapping_mul(8)), 8) else {
                    return EFAULT;
                };
                let field = |at: usize| {
                    iov.get(at..at + 4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(u32::from_le_bytes)
                };
                let (Some(ptr), Some(len)) = (field(0), field(4)) else {
                    return EFAULT;
                };
                let Ok(bytes) = read(&mut c, ptr as i32, len as i32) else {
                    return EFAULT;
                };
                stdio(&mut c, fd as u32, &bytes);
                written = written.wrapping_add(len);
            }
            errno(write_u32(&mut c, ret, written))
        },
    )?;
    linker.func_wrap(W, "fd_read", |_: Caller<'_, HostState>, _: i32, _: i32, _: i32, _: i32| EBADF)?;
    linker.func_wrap(W, "fd_close", |_: Caller<'_, HostState>, _: i32| EBADF)?;
    linker.func_wrap(W, "fd_seek", |_: Caller<'_, HostState>, _: i32, _: i64, _: i32, _: i32| EBADF)?;
    linker.func_wrap(W, "fd_fdstat_get", |_: Caller<'_, HostState>, _: i32, _: i32| EBADF)?;
    // no preopened directories: EBADF ends the libc's preopen scan
    linker.func_wrap(W, "fd_prestat_get", |_: Caller<'_, HostState>, _: i32, _: i32| EBADF)?;
    linker.func_wrap(W, "fd_prestat_dir_name", |_: Caller<'_, HostState>, _: i32, _: i32, _: i32| EBADF)?;
    linker.func_wrap(W, "sched_yield", |_: Caller<'_, HostState>| SUCCESS)?;
    linker.func_wrap(W, "proc_exit", |_: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
        Err(wasmtime::format_err!("the module called proc_exit({code})"))
    })?;
    Ok(())
}
