//! The only code that touches guest memory. Every access is bounds-checked
//! through `Memory::data`; a bad pointer is the status
//! `INVALID_MEMORY_ACCESS`, never a host panic. Nothing from guest memory is
//! kept across a call into the guest (allocation may grow the memory).

use wasmtime::{Caller, Extern, Memory};

use super::Status;
use crate::state::HostState;

/// A host call's outcome: a status for the guest, or an error that traps.
pub type Call<T = ()> = Result<T, Status>;

fn memory(caller: &mut Caller<'_, HostState>) -> Call<Memory> {
    if let Some(m) = caller.data().memory {
        return Ok(m);
    }
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(Status::InvalidMemoryAccess),
    }
}

fn range(ptr: i32, len: i32) -> Call<std::ops::Range<usize>> {
    let start = usize::try_from(ptr as u32).map_err(|_| Status::InvalidMemoryAccess)?;
    let len = usize::try_from(len as u32).map_err(|_| Status::InvalidMemoryAccess)?;
    let end = start.checked_add(len).ok_or(Status::InvalidMemoryAccess)?;
    Ok(start..end)
}

/// Copies `len` bytes at `ptr` out of the guest.
pub fn read(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Call<Vec<u8>> {
    let mem = memory(caller)?;
    let r = range(ptr, len)?;
    mem.data(&caller).get(r).map(<[u8]>::to_vec).ok_or(Status::InvalidMemoryAccess)
}

/// Reads a UTF-8 string argument.
pub fn read_str(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Call<String> {
    String::from_utf8(read(caller, ptr, len)?).map_err(|_| Status::BadArgument)
}

/// Writes bytes into the guest at `ptr`.
pub fn write(caller: &mut Caller<'_, HostState>, ptr: i32, bytes: &[u8]) -> Call {
    let mem = memory(caller)?;
    let r = range(ptr, i32::try_from(bytes.len()).map_err(|_| Status::InvalidMemoryAccess)?)?;
    let slot = mem.data_mut(caller).get_mut(r).ok_or(Status::InvalidMemoryAccess)?;
    slot.copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian u32 into guest memory.
pub fn write_u32(caller: &mut Caller<'_, HostState>, ptr: i32, v: u32) -> Call {
    write(caller, ptr, &v.to_le_bytes())
}

/// Writes a little-endian u64 into guest memory.
pub fn write_u64(caller: &mut Caller<'_, HostState>, ptr: i32, v: u64) -> Call {
    write(caller, ptr, &v.to_le_bytes())
}

/// Checks that `len` bytes at `ptr` are inside the guest's memory.
pub fn check(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Call {
    let mem = memory(caller)?;
    let r = range(ptr, len)?;
    if r.end <= mem.data_size(&caller) {
        Ok(())
    } else {
        Err(Status::InvalidMemoryAccess)
    }
}

/// Asks the guest for `size` bytes: `proxy_on_memory_allocate`, else `malloc`.
/// A trap inside the guest's allocator is returned as the outer error.
pub fn allocate(caller: &mut Caller<'_, HostState>, size: u32) -> wasmtime::Result<Call<i32>> {
    let Some(typed) = caller.data().allocator.clone() else {
        return Ok(Err(Status::InternalFailure));
    };
    let ptr = typed.call(&mut *caller, size as i32)?;
    if ptr == 0 {
        return Ok(Err(Status::InternalFailure));
    }
    Ok(Ok(ptr))
}

/// Returns bytes to the guest the ABI way: allocate in the guest, copy, then
/// write the pointer and size to the two return slots. Empty data is
/// (0, 0) with nothing allocated, as Envoy does.
pub fn return_bytes(caller: &mut Caller<'_, HostState>, data: &[u8], ret_ptr: i32, ret_size: i32) -> wasmtime::Result<Call> {
    // check the return slots first, so nothing is allocated for a bad pointer
    if let Err(s) = check(caller, ret_ptr, 4).and_then(|()| check(caller, ret_size, 4)) {
        return Ok(Err(s));
    }
    let size = match u32::try_from(data.len()) {
        Ok(s) => s,
        Err(_) => return Ok(Err(Status::InternalFailure)),
    };
    let ptr = if data.is_empty() {
        0
    } else {
        match allocate(caller, size)? {
            Ok(p) => p,
            Err(s) => return Ok(Err(s)),
        }
    };
    Ok((|| {
        if !data.is_empty() {
            write(caller, ptr, data)?;
        }
        write_u32(caller, ret_ptr, ptr as u32)?;
        write_u32(caller, ret_size, size)
    })())
}
