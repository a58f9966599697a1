//! Imports the harness does not provide (gRPC calls, shared queues, foreign
//! functions, and anything unknown; HTTP calls are provided, by `http_call`): they answer `UNIMPLEMENTED`
//! (WASI: `ENOSYS`) and log a line, so a filter sees an error, not a trap.
//! An import whose signature cannot carry a status traps when called.
//!
//! The ABI 0.2.1 calls answered this way: `proxy_grpc_call`,
//! `proxy_grpc_stream`, `proxy_grpc_send`, `proxy_grpc_cancel`,
//! `proxy_grpc_close`, the shared queues (`proxy_register_shared_queue`,
//! `proxy_resolve_shared_queue`, `proxy_dequeue_shared_queue`,
//! `proxy_enqueue_shared_queue`) and `proxy_call_foreign_function`.

use wasmtime::{Caller, ExternType, FuncType, Linker, Module, Val, ValType};

use super::Status;
use crate::state::HostState;

const WASI_ENOSYS: i32 = 52;

/// Answers every import not yet in `linker` that can carry a status.
pub fn add_to_linker(linker: &mut Linker<HostState>, module: &Module) -> wasmtime::Result<()> {
    let mut probe = wasmtime::Store::new(module.engine(), dummy_state());
    for import in module.imports() {
        let (m, name) = (import.module(), import.name());
        if linker.get_by_import(&mut probe, &import).is_some() {
            continue;
        }
        let ExternType::Func(ty) = import.ty() else { continue };
        let results: Vec<ValType> = ty.results().collect();
        if !matches!(results.as_slice(), [ValType::I32]) {
            continue;
        }
        let status = if m == "wasi_snapshot_preview1" {
            WASI_ENOSYS
        } else {
            Status::Unimplemented as i32
        };
        answer(linker, m, name, ty, status, format!("unimplemented: {m}.{name}"))?;
    }
    linker.define_unknown_imports_as_traps(module)?;
    Ok(())
}

/// Makes the `env` import `name` answer `status` and do nothing, shadowing
/// the working one: a host refusing a call, for tests. `false` if the module
/// does not import it (or it cannot return a status).
pub fn refuse(linker: &mut Linker<HostState>, module: &Module, name: &str, status: i32) -> wasmtime::Result<bool> {
    let found = module
        .imports()
        .find(|i| i.module() == "env" && i.name() == name)
        .and_then(|i| match i.ty() {
            ExternType::Func(ty) if matches!(ty.results().collect::<Vec<_>>().as_slice(), [ValType::I32]) => Some(ty),
            _ => None,
        });
    let Some(ty) = found else { return Ok(false) };
    linker.allow_shadowing(true);
    answer(linker, "env", name, ty, status, format!("refused: {name} (status {status})"))?;
    Ok(true)
}

/// Defines an import that logs `note` and returns `status`.
fn answer(linker: &mut Linker<HostState>, m: &str, name: &str, ty: FuncType, status: i32, note: String) -> wasmtime::Result<()> {
    linker.func_new(m, name, ty, move |mut c: Caller<'_, HostState>, _args: &[Val], out: &mut [Val]| {
        c.data_mut().host_note(note.clone());
        if let Some(slot) = out.first_mut() {
            *slot = Val::I32(status);
        }
        Ok(())
    })?;
    Ok(())
}

fn dummy_state() -> HostState {
    HostState::new(crate::state::Clock::System, Default::default())
}
