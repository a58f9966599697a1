//! The functions Envoy calls (`envoy_dynamic_module_on_*`). Every hook with
//! logic catches panics: nothing unwinds into Envoy. A panic during a
//! request fails that request closed (500) and is counted.
// Envoy is the only caller of the hooks; their contract is abi.h's.
#![allow(clippy::missing_safety_doc)]

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::ffi::{
    envoy_bytes, guarded, log, program_init, refuse, ConfigHandle, EnvoyBuffer, EnvoyHttpHeader, EnvoyPtr, LogLevel, ModulePtr, Stream,
    CONTINUE, STOP_ITERATION,
};
use crate::filter::{self, FilterConfig, StreamFilter};

// SAFETY (every hook below): Envoy calls the hooks as abi.h says. A
// `ModulePtr` it passes is one this module returned and has not yet been
// told to destroy; a buffer it passes is valid for the call.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    guarded(std::ptr::null(), || {
        crate::logger::install();
        match program_init() {
            Ok(version) => version.as_ptr().cast(),
            Err(why) => {
                refuse(&format!(
                    "certgate: {why}. The dynamic module runs on Envoy 1.38 to 1.40; on older Envoys use certgate_filter.wasm"
                ));
                std::ptr::null()
            }
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(envoy: EnvoyPtr, name: EnvoyBuffer, config: EnvoyBuffer) -> ModulePtr {
    guarded(std::ptr::null(), || {
        // SAFETY: `envoy` is this call's configuration; the handle lives for the call.
        let mut handle = unsafe { ConfigHandle::for_hook(envoy) };
        // SAFETY: the hook's own buffers, read only during this call.
        let (name, config) = unsafe { (envoy_bytes(name), envoy_bytes(config)) };
        match filter::new_config(&mut handle, name, config) {
            Some(config) => Arc::into_raw(Arc::new(config)).cast(),
            None => std::ptr::null(),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: ModulePtr) {
    // SAFETY: `config` came from `Arc::into_raw` in config_new; this drops
    // Envoy's reference (streams hold their own).
    guarded((), || drop(unsafe { Arc::from_raw(config.cast::<FilterConfig>()) }))
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(config: ModulePtr, _envoy: EnvoyPtr) -> ModulePtr {
    guarded(std::ptr::null(), || {
        let config = config.cast::<FilterConfig>();
        // SAFETY: `config` came from `Arc::into_raw` and is alive (Envoy
        // holds it while it creates streams): one more reference for the stream.
        let config = unsafe {
            Arc::increment_strong_count(config);
            Arc::from_raw(config)
        };
        Box::into_raw(Box::new(StreamFilter::new(config))).cast()
    })
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: EnvoyPtr,
    module: ModulePtr,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: `module` came from `Box::into_raw` in filter_new and is not yet destroyed.
    let stream_filter = unsafe { &*module.cast::<StreamFilter>() };
    // SAFETY: `envoy` is this call's stream; the handle lives for the call.
    let mut stream = unsafe { Stream::for_hook(envoy) };
    let forwarded = catch_unwind(AssertUnwindSafe(|| filter::on_request_headers(&mut stream, stream_filter)));
    match forwarded {
        Ok(true) => CONTINUE,
        Ok(false) => STOP_ITERATION,
        Err(_) => {
            guarded((), || filter::on_panic(&mut stream, stream_filter));
            STOP_ITERATION
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: ModulePtr) {
    // SAFETY: `module` came from `Box::into_raw` in filter_new; Envoy destroys it once.
    guarded((), || drop(unsafe { Box::from_raw(module.cast::<StreamFilter>().cast_mut()) }))
}

/// `envoy_dynamic_module_on_http_filter_per_route_config_new`: certgate has
/// no per-route configuration; one is refused (null).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(_name: EnvoyBuffer, _config: EnvoyBuffer) -> ModulePtr {
    log(
        LogLevel::Error,
        "certgate takes no per-route configuration: its policy's rules match paths, methods and hosts",
    );
    std::ptr::null()
}

// Hooks Envoy requires of every HTTP filter module; certgate acts on request
// headers alone, so each lets the stream go on and does nothing else.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(_config: ModulePtr) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(_envoy: EnvoyPtr, _module: ModulePtr, _end_of_stream: bool) -> u32 {
    CONTINUE
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(_envoy: EnvoyPtr, _module: ModulePtr) -> u32 {
    CONTINUE
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(_envoy: EnvoyPtr, _module: ModulePtr, _end_of_stream: bool) -> u32 {
    CONTINUE
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(_envoy: EnvoyPtr, _module: ModulePtr, _end_of_stream: bool) -> u32 {
    CONTINUE
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(_envoy: EnvoyPtr, _module: ModulePtr) -> u32 {
    CONTINUE
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(_envoy: EnvoyPtr, _module: ModulePtr) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _envoy: EnvoyPtr,
    _module: ModulePtr,
    _status: u32,
    _details: EnvoyBuffer,
    _reset_imminent: bool,
) -> u32 {
    CONTINUE
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _envoy: EnvoyPtr,
    _module: ModulePtr,
    _callout_id: u64,
    _result: u32,
    _headers: *mut EnvoyHttpHeader,
    _headers_size: usize,
    _body: *mut EnvoyBuffer,
    _body_size: usize,
) {
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: EnvoyPtr,
    _module: ModulePtr,
    _stream_id: u64,
    _headers: *mut EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: EnvoyPtr,
    _module: ModulePtr,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: EnvoyPtr,
    _module: ModulePtr,
    _stream_id: u64,
    _trailers: *mut EnvoyHttpHeader,
    _trailers_size: usize,
) {
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(_envoy: EnvoyPtr, _module: ModulePtr, _stream_id: u64) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: EnvoyPtr,
    _module: ModulePtr,
    _stream_id: u64,
    _reason: u32,
) {
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(_envoy: EnvoyPtr, _module: ModulePtr, _event_id: u64) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(_envoy: EnvoyPtr, _module: ModulePtr) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(_envoy: EnvoyPtr, _module: ModulePtr) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(_envoy: EnvoyPtr, _config: ModulePtr, _event_id: u64) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _envoy: EnvoyPtr,
    _config: ModulePtr,
    _callout_id: u64,
    _result: u32,
    _headers: *mut EnvoyHttpHeader,
    _headers_size: usize,
    _body: *mut EnvoyBuffer,
    _body_size: usize,
) {
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _envoy: EnvoyPtr,
    _config: ModulePtr,
    _stream_id: u64,
    _headers: *mut EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _envoy: EnvoyPtr,
    _config: ModulePtr,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _envoy: EnvoyPtr,
    _config: ModulePtr,
    _stream_id: u64,
    _trailers: *mut EnvoyHttpHeader,
    _trailers_size: usize,
) {
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(_envoy: EnvoyPtr, _config: ModulePtr, _stream_id: u64) {}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _envoy: EnvoyPtr,
    _config: ModulePtr,
    _stream_id: u64,
    _reason: u32,
) {
}
