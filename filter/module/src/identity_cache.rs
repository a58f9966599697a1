//! Each worker's parsed certificates, per filter configuration. Envoy runs a
//! configuration's streams on every worker; the core's cache is single
//! threaded (as the Wasm build's, one per VM), so each worker keeps its own,
//! found by the configuration it belongs to, and none is ever locked.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use certgate_core::cache::IdentityCache;

use crate::filter::FilterConfig;

thread_local! {
    /// This worker's caches, one per live configuration.
    static CACHES: RefCell<Vec<(Weak<FilterConfig>, IdentityCache)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` with this worker's cache for `config`; `None` if the cache
/// is in use (a re-entrant call, which Envoy does not make).
pub fn with<R>(config: &Arc<FilterConfig>, work: impl FnOnce(&mut IdentityCache) -> R) -> Option<R> {
    CACHES.with(|caches| {
        let mut caches = caches.try_borrow_mut().ok()?;
        // the caches of configurations Envoy has dropped go with them
        caches.retain(|(c, _)| c.strong_count() > 0);
        let at = match caches.iter().position(|(c, _)| std::ptr::eq(c.as_ptr(), Arc::as_ptr(config))) {
            Some(at) => at,
            None => {
                caches.push((Arc::downgrade(config), IdentityCache::new(config.policy.cache_size)));
                caches.len() - 1
            }
        };
        caches.get_mut(at).map(|(_, cache)| work(cache))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config() -> Arc<FilterConfig> {
        let policy = certgate_core::config::parse_policy(br#"{"verification":"listener","cache_size":4,"rules":[{"name":"a"}]}"#).unwrap();
        Arc::new(FilterConfig::for_tests(policy))
    }

    fn count() -> usize {
        CACHES.with(|c| c.borrow().len())
    }

    #[test]
    fn each_configuration_has_its_cache_and_a_dropped_ones_goes() {
        let (a, b) = (config(), config());
        with(&a, |cache| {
            cache.insert("digest".into(), Err(certgate_core::identity::IdentityError::Subject("x".into())))
        })
        .unwrap();
        assert!(with(&a, |cache| cache.get("digest").is_some()).unwrap());
        assert!(
            !with(&b, |cache| cache.get("digest").is_some()).unwrap(),
            "b has a cache of its own"
        );
        assert_eq!(count(), 2);
        drop(a);
        with(&b, |_| ()).unwrap();
        assert_eq!(count(), 1, "a's cache went with a");
    }

    #[test]
    fn a_reentrant_call_is_refused_not_a_panic() {
        let a = config();
        assert_eq!(with(&a, |_| with(&a, |_| ())), Some(None));
    }
}
