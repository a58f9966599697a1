//! certgate as a proxy-wasm filter: `certgate_filter.wasm`. The only code that
//! calls proxy-wasm. It reads the configuration, owns the policy, the
//! identity cache and the metrics, and runs
//! [`certgate_core::admission::admit`] with proxy-wasm host calls.
//!
//! The crate is empty on other targets: the glue only means something inside
//! a proxy-wasm VM, and the core it drives is tested natively on its own.
//!
//! Host calls go through `abi`, which turns every status into an error;
//! never through the SDK's helpers, which panic on a status they do not
//! expect.
// The SDK's entry-point macro exports `_initialize` (`#[no_mangle]`) and runs
// the module's constructors (an `unsafe` call): allowed here alone.
#![allow(unsafe_code)]
#![cfg(target_arch = "wasm32")]

mod abi;
mod http;
mod logger;
mod root;
mod shared;

proxy_wasm::main! {{
    logger::install();
    proxy_wasm::set_root_context(|_| Box::new(root::CertgateRoot::default()));
}}
