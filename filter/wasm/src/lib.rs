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
#![cfg(target_arch = "wasm32")]

mod abi;
mod http;
mod logger;
mod root;
mod shared;

/// The module's entry point. The SDK's macro exports `_initialize`
/// (`#[no_mangle]`) and runs the module's constructors (an `unsafe` call):
/// the one place besides `abi` where unsafe code is allowed.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        crate::logger::install();
        proxy_wasm::set_root_context(|_| Box::new(crate::root::CertgateRoot::default()));
    }}
}
