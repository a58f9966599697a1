//! Every line of unsafe code in certgate's dynamic module: `ffi`, Envoy's C
//! ABI as declared by us from Envoy's `abi.h` (types, callbacks, log, the
//! safe handles), and `hooks`, the functions Envoy calls. The rest of the
//! module is safe Rust over `ffi`'s handles.
#![allow(unsafe_code)]

pub mod ffi;
mod hooks;
