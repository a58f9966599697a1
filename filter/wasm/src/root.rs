//! The root context: one per plugin per worker; parses the configuration once
//! and shares the policy, cache and metric ids with every request.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use crate::abi;
use crate::http::CertgateRequest;
use crate::shared::{host_now, Shared};
use certgate_core::config::load_policy;
use certgate_core::host::HostReads;
use certgate_core::metrics;

/// proxy-wasm gives the certificate (Envoy 1.38+) and the verification
/// flag (1.39+); where Envoy does not, certgate finds the identity elsewhere
/// or denies with a reason, at request time.
const WASM_READS: HostReads = HostReads {
    host: "proxy-wasm",
    peer_certificate: true,
    verified_flag: true,
    token_claims: true,
};

/// How often counters are flushed to the host and the clock is read.
const TICK: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct CertgateRoot {
    /// `None` until a configuration has been accepted.
    shared: Option<Rc<RefCell<Shared>>>,
}

impl Context for CertgateRoot {}

impl RootContext for CertgateRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = match abi::get_buffer(BufferType::PluginConfiguration) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(e) => {
                log::error!("cannot read the plugin configuration: {e}");
                return false;
            }
        };
        // Envoy refuses a plugin whose configuration is refused; with
        // fail_open: false no request passes.
        let Some(policy) = load_policy(&config, WASM_READS) else {
            return false;
        };
        let counters = metrics::define_counters(&policy, abi::define_counter);
        if let Err(e) = abi::set_tick_period(TICK) {
            log::warn!("no tick ({e}): counters will not reach the host");
        }
        log::info!(
            "policy loaded: {} rules, mode {:?}, identity from {:?}",
            policy.rules.len(),
            policy.mode,
            policy.identity_source
        );
        let policy = Rc::new(policy);
        match &self.shared {
            // A new configuration for a live plugin: keep the cache (it holds
            // certificates, not decisions) and swap the policy.
            Some(shared) => match shared.try_borrow_mut() {
                Ok(mut s) => {
                    // counts of the old policy go out under its counter ids
                    s.replace_policy(policy, counters);
                }
                Err(_) => return false,
            },
            None => {
                self.shared = Some(Rc::new(RefCell::new(Shared::new(policy, counters))));
            }
        }
        true
    }

    fn on_tick(&mut self) {
        if let Some(Ok(mut shared)) = self.shared.as_ref().map(|s| s.try_borrow_mut()) {
            shared.flush();
            shared.now = host_now();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(CertgateRequest::new(self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
