//! The proxy-wasm ABI 0.2.1 host side: one file per group of imports, each
//! with its `add_to_linker`. Host functions return a [`Status`] to the guest;
//! they trap only when the guest itself trapped (in its allocator).

pub mod codec;
pub mod memory;

mod buffers;
mod clock;
mod headers;
mod http_call;
mod logging;
mod metrics;
mod properties;
mod shared_data;
mod stream;
pub mod unsupported;
pub mod wasi;

use wasmtime::{Linker, Module};

use crate::state::HostState;

pub use certgate_wire::Status;

/// The i32 a host function returns for a call's outcome.
pub fn code(outcome: memory::Call) -> i32 {
    match outcome {
        Ok(()) => Status::Ok as i32,
        Err(s) => s as i32,
    }
}

/// Registers every host function, then answers whatever else the module
/// imports: `UNIMPLEMENTED` (or WASI's `ENOSYS`) with a log line, not a trap.
pub fn add_to_linker(linker: &mut Linker<HostState>, module: &Module) -> wasmtime::Result<()> {
    logging::add_to_linker(linker)?;
    clock::add_to_linker(linker)?;
    buffers::add_to_linker(linker)?;
    headers::add_to_linker(linker)?;
    properties::add_to_linker(linker)?;
    stream::add_to_linker(linker)?;
    http_call::add_to_linker(linker)?;
    metrics::add_to_linker(linker)?;
    shared_data::add_to_linker(linker)?;
    wasi::add_to_linker(linker)?;
    unsupported::add_to_linker(linker, module)?;
    Ok(())
}
