//! Every host call certgate makes, declared here rather than taken from the
//! SDK: its helpers panic on a status they do not expect, and a panic kills
//! the VM for every later request. Here every status is an error: a request
//! fails closed on it, a configuration is refused, a counter is skipped.
//! With the entry point, the only unsafe code of the Wasm build.
#![allow(unsafe_code)]

use std::time::Duration;

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};

use certgate_wire::{decode_map, encode_map, encode_path, Pairs, Status};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map_type: MapType, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    fn proxy_add_header_map_value(map_type: MapType, key: *const u8, key_size: usize, value: *const u8, value_size: usize) -> u32;
    fn proxy_replace_header_map_value(map_type: MapType, key: *const u8, key_size: usize, value: *const u8, value_size: usize) -> u32;
    fn proxy_remove_header_map_value(map_type: MapType, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(path: *const u8, path_size: usize, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    fn proxy_set_property(path: *const u8, path_size: usize, value: *const u8, value_size: usize) -> u32;
    fn proxy_get_buffer_bytes(buffer: BufferType, start: usize, max_size: usize, return_data: *mut *mut u8, return_size: *mut usize)
        -> u32;
    fn proxy_define_metric(metric_type: MetricType, name: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_log(level: LogLevel, message: *const u8, message_size: usize) -> u32;
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

// Statuses as numbers: a host may answer one the SDK's `Status` enum does
// not have, and such a value in an enum would be undefined behaviour.
const OK: u32 = Status::Ok as u32;
const NOT_FOUND: u32 = Status::NotFound as u32;
/// A property that is there but has no byte form (a Struct holding a null).
pub const SERIALIZATION_FAILURE: u32 = Status::SerializationFailure as u32;

/// Why a host call failed: its status, or an answer certgate cannot read.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{}", Status::from_code(*.0).map_or_else(|| format!("status {}", .0), |s| format!("{s:?}")))]
    Status(u32),
    #[error("an answer that is not in the ABI's format")]
    Malformed,
}

fn ok(status: u32) -> Result<(), CallError> {
    match status {
        OK => Ok(()),
        status => Err(CallError::Status(status)),
    }
}

/// Takes back a buffer the host returned.
///
/// SAFETY: `data` is null or a buffer of exactly `size` bytes that the host
/// allocated with this module's `proxy_on_memory_allocate` (the SDK's: a
/// boxed `[u8]` of `size` bytes), not yet taken back.
unsafe fn returned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    (!data.is_null()).then(|| unsafe { Vec::from_raw_parts(data, size, size) })
}

/// What a call that hands back a buffer answered: the buffer; `None` for
/// NOT_FOUND (or a null buffer). `call` gets where the host writes the
/// buffer's address and size.
fn fetched(call: impl FnOnce(&mut *mut u8, &mut usize) -> u32) -> Result<Option<Vec<u8>>, CallError> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0);
    match call(&mut data, &mut size) {
        // SAFETY: on OK the host filled `data` and `size` as `returned` expects.
        OK => Ok(unsafe { returned(data, size) }),
        NOT_FOUND => Ok(None),
        status => Err(CallError::Status(status)),
    }
}

pub fn get_header_map(map_type: MapType) -> Result<Pairs, CallError> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0);
    // SAFETY: the host fills `data` and `size` as `returned` expects.
    let bytes = unsafe {
        ok(proxy_get_header_map_pairs(map_type, &mut data, &mut size))?;
        returned(data, size)
    };
    decode_map(&bytes.unwrap_or_default()).map_err(|_| CallError::Malformed)
}

pub fn add_header(map_type: MapType, name: &str, value: &str) -> Result<(), CallError> {
    // SAFETY: the host reads the two buffers, which live across the call.
    ok(unsafe { proxy_add_header_map_value(map_type, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

pub fn replace_header(map_type: MapType, name: &str, value: &str) -> Result<(), CallError> {
    // SAFETY: as in `add_header`.
    ok(unsafe { proxy_replace_header_map_value(map_type, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

pub fn remove_header(map_type: MapType, name: &str) -> Result<(), CallError> {
    // SAFETY: as in `add_header`.
    ok(unsafe { proxy_remove_header_map_value(map_type, name.as_ptr(), name.len()) })
}

/// A property's value; `None` if the host has none.
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, CallError> {
    let path = encode_path(path);
    // SAFETY: the host reads `path`, which lives across the call.
    fetched(|data, size| unsafe { proxy_get_property(path.as_ptr(), path.len(), data, size) })
}

pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), CallError> {
    let path = encode_path(path);
    // SAFETY: the host reads the two buffers, which live across the call.
    ok(unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) })
}

/// Answers the request locally (no gRPC status: -1).
pub fn send_local_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), CallError> {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    let headers = encode_map(&headers);
    // SAFETY: the host reads the buffers, which live across the call.
    ok(unsafe {
        proxy_send_local_response(
            u32::from(status),
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

/// A whole buffer (the plugin configuration); `None` if the host has none.
pub fn get_buffer(buffer: BufferType) -> Result<Option<Vec<u8>>, CallError> {
    // SAFETY: no memory of ours is read.
    fetched(|data, size| unsafe { proxy_get_buffer_bytes(buffer, 0, usize::MAX, data, size) })
}

pub fn define_counter(name: &str) -> Result<u32, CallError> {
    let mut id = 0;
    // SAFETY: the host reads `name` and writes `id`, which live across the call.
    ok(unsafe { proxy_define_metric(MetricType::Counter, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, by: i64) -> Result<(), CallError> {
    // SAFETY: no memory is passed.
    ok(unsafe { proxy_increment_metric(id, by) })
}

pub fn set_tick_period(period: Duration) -> Result<(), CallError> {
    let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
    // SAFETY: no memory is passed.
    ok(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// The host's clock, nanoseconds since the Unix epoch.
pub fn now_nanos() -> Result<u64, CallError> {
    let mut nanos = 0;
    // SAFETY: the host writes `nanos`, which lives across the call.
    ok(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
    Ok(nanos)
}

pub fn log(level: LogLevel, message: &str) -> Result<(), CallError> {
    // SAFETY: the host reads `message`, which lives across the call.
    ok(unsafe { proxy_log(level, message.as_ptr(), message.len()) })
}
