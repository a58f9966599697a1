//! What every request of one plugin shares on a worker: the policy, the
//! identity cache, pending counts and the clock of the last tick. Apart from
//! the root and request contexts, which both use it.

use std::rc::Rc;

use crate::abi;

use certgate_core::cache::IdentityCache;
use certgate_core::policy::Policy;

/// What every request of this plugin shares.
#[derive(Debug)]
pub struct Shared {
    pub policy: Rc<Policy>,
    pub cache: IdentityCache,
    /// The host's metric id of each counter of [`certgate_core::metrics::all_counters`], by index.
    counters: Vec<Option<u32>>,
    /// Counts not yet given to the host: counters cost a host call each, so
    /// requests add here and the tick flushes (stats lag by up to a second).
    pending: Vec<i64>,
    /// Unix seconds at the last tick; requests use it instead of a clock call.
    pub now: Option<i64>,
    /// Whether the log already said how to fix `verification_unknown` denies.
    pub told_verification_unknown: bool,
}

impl Shared {
    /// A plugin's first accepted configuration; `counters` holds the host's
    /// id of each counter of [`certgate_core::metrics::all_counters`].
    pub fn new(policy: Rc<Policy>, counters: Vec<Option<u32>>) -> Shared {
        Shared {
            cache: IdentityCache::new(policy.cache_size),
            policy,
            pending: vec![0; counters.len()],
            counters,
            now: host_now(),
            told_verification_unknown: false,
        }
    }

    /// A new configuration for a live plugin: counts of the old policy go out
    /// under its counter ids; the cache stays (it holds certificates, not
    /// decisions).
    pub fn replace_policy(&mut self, policy: Rc<Policy>, counters: Vec<Option<u32>>) {
        self.flush();
        self.cache.set_capacity(policy.cache_size);
        self.policy = policy;
        self.pending = vec![0; counters.len()];
        self.counters = counters;
    }

    pub fn count(&mut self, index: usize, by: i64) {
        if let Some(p) = self.pending.get_mut(index) {
            *p = p.saturating_add(by);
        }
    }

    /// Gives the pending counts to the host; a counter it refused is skipped.
    pub fn flush(&mut self) {
        for (id, pending) in self.counters.iter().zip(self.pending.iter_mut()) {
            if *pending != 0 {
                if let Some(id) = id {
                    let _ = abi::increment_metric(*id, *pending);
                }
                *pending = 0;
            }
        }
    }
}

/// Unix seconds from the host clock.
pub fn host_now() -> Option<i64> {
    i64::try_from(abi::now_nanos().ok()? / 1_000_000_000).ok()
}
