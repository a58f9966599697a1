//! The root context: one per plugin per worker; parses the configuration once
//! and shares the policy, cache and metric ids with every request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MetricType};

use super::http::CertgateRequest;
use crate::cache::IdentityCache;
use crate::config::parse_policy;
use crate::metrics;
use crate::policy::Policy;

/// What every request of this plugin shares.
#[derive(Debug)]
pub struct Shared {
    pub policy: Rc<Policy>,
    pub cache: IdentityCache,
    pub counters: HashMap<String, u32>,
}

impl Shared {
    /// Adds to counters by name; a counter the host refused is skipped.
    pub fn count(&self, increments: &[(String, i64)]) {
        for (name, by) in increments {
            if let Some(id) = self.counters.get(name) {
                let _ = hostcalls::increment_metric(*id, *by);
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct CertgateRoot {
    /// `None` until a configuration has been accepted.
    shared: Option<Rc<RefCell<Shared>>>,
}

impl Context for CertgateRoot {}

impl RootContext for CertgateRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                log::error!("cannot read the plugin configuration: {status:?}");
                return false;
            }
        };
        let policy = match parse_policy(&config) {
            Ok(p) => p,
            Err(e) => {
                // Envoy refuses the plugin; with fail_open: false no request passes.
                log::error!("{e}");
                return false;
            }
        };
        let mut counters = HashMap::new();
        for name in metrics::all_counters(&policy) {
            match hostcalls::define_metric(MetricType::Counter, &name) {
                Ok(id) => {
                    counters.insert(name, id);
                }
                Err(status) => log::warn!("metric {name} not defined: {status:?}"),
            }
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
                    s.cache.set_capacity(policy.cache_size);
                    s.policy = policy;
                    s.counters = counters;
                }
                Err(_) => return false,
            },
            None => {
                self.shared = Some(Rc::new(RefCell::new(Shared {
                    cache: IdentityCache::new(policy.cache_size),
                    policy,
                    counters,
                })));
            }
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(CertgateRequest::new(self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
