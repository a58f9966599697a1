//! One filter configuration (the policy, its counters) and one request
//! (`admit`, then counters, log and the published decision), in safe Rust
//! over the handles of `abi`. What the Wasm glue does with proxy-wasm calls.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use certgate_core::admission::{admit, fail_closed, Admission, Failure};
use certgate_core::cache::IdentityCache;
use certgate_core::config::load_policy;
use certgate_core::host::HostReads;
use certgate_core::metrics;
use certgate_core::policy::{Credential, DenyReason, Policy, VERIFICATION_UNKNOWN_ADVICE};

use crate::abi::ffi::{ConfigHandle, Stream};
use crate::host::EnvoyHost;
use crate::per_config::PerConfig;

/// What Envoy's dynamic module ABI lets certgate read: the certificate and,
/// on Envoy 1.39+, its verification flag, from the connection's filter state
/// (the listener's `set_filter_state` network filter,
/// [`crate::host::PEER_CERT_STATE`]).
pub const MODULE_READS: HostReads = HostReads {
    host: "Envoy's dynamic module ABI",
    peer_certificate: true,
    verified_flag: true,
    token_claims: false,
};

/// The filter state certgate publishes each decision under (the Wasm
/// build's is `wasm.certgate`): `%FILTER_STATE(certgate:PLAIN)%`.
pub const FILTER_STATE_KEY: &str = "certgate";

/// Requests whose filter code panicked: each was refused with 500
/// `internal_error` (and is counted under that reason too).
pub const PANICS: &str = "certgate_panics_total";

/// One configuration of the filter: Envoy shares it between its workers.
#[derive(Debug)]
pub struct FilterConfig {
    pub policy: Policy,
    /// Envoy's id of each counter of [`metrics::all_counters`], by index.
    counters: Vec<Option<usize>>,
    panics: Option<usize>,
}

impl FilterConfig {
    /// A configuration with no counters, for tests of what holds one.
    #[cfg(test)]
    fn for_tests(policy: Policy) -> FilterConfig {
        FilterConfig {
            policy,
            counters: Vec::new(),
            panics: None,
        }
    }
}

/// One stream's filter: its configuration.
#[derive(Debug)]
pub struct StreamFilter {
    config: Arc<FilterConfig>,
}

impl StreamFilter {
    pub fn new(config: Arc<FilterConfig>) -> StreamFilter {
        StreamFilter { config }
    }
}

/// Reads and checks a configuration, and defines its counters; `None` (and
/// the error in Envoy's log) refuses it.
pub fn new_config(envoy: &mut ConfigHandle<'_>, name: &[u8], json: &[u8]) -> Option<FilterConfig> {
    let policy = load_policy(json, MODULE_READS)?;
    let counters = metrics::define_counters(&policy, |name| envoy.define_counter(name).ok_or("refused by Envoy"));
    let panics = envoy.define_counter(PANICS);
    log::info!(
        "filter {} loaded: {} rules, mode {:?}, identity from {:?}",
        String::from_utf8_lossy(name),
        policy.rules.len(),
        policy.mode,
        policy.identity_source
    );
    Some(FilterConfig { policy, counters, panics })
}

thread_local! {
    /// This worker's parsed certificates, one cache per live configuration.
    static CACHES: RefCell<PerConfig<FilterConfig, IdentityCache>> = const { RefCell::new(PerConfig::new()) };
}

/// Runs `work` with this worker's cache for `config`; `None` if the cache
/// is in use (a re-entrant call, which Envoy does not make).
fn with_cache<R>(config: &Arc<FilterConfig>, work: impl FnOnce(&mut IdentityCache) -> R) -> Option<R> {
    CACHES.with(|caches| {
        let mut caches = caches.try_borrow_mut().ok()?;
        caches.for_config(config, |c| IdentityCache::new(c.policy.cache_size)).map(work)
    })
}

thread_local! {
    /// Whether this worker's log already said how to fix `verification_unknown`.
    static TOLD_VERIFICATION_UNKNOWN: Cell<bool> = const { Cell::new(false) };
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Runs the filter on a request's headers; whether the request goes on.
pub fn on_request_headers(stream: &mut Stream<'_>, filter: &StreamFilter) -> bool {
    #[cfg(feature = "test-panic")]
    panic_on_request(stream);
    let config = &filter.config;
    let policy = &config.policy;
    let admission = with_cache(config, |cache| admit(&mut EnvoyHost(stream), policy, cache, unix_now()))
        .unwrap_or_else(|| fail_closed(&mut EnvoyHost(stream), policy.deny_status, Failure::CacheInUse));
    finish(stream, config, &admission);
    if admission.forwarded {
        stream.refresh_route();
    }
    admission.forwarded
}

/// Counters, the log line and the published decision of one request.
fn finish(stream: &mut Stream<'_>, config: &FilterConfig, admission: &Admission) {
    metrics::for_each_increment(&config.policy, admission, |index, by| {
        if let (Some(Some(id)), Ok(by)) = (config.counters.get(index), u64::try_from(by)) {
            stream.increment_counter(*id, by);
        }
    });
    admission.log();
    if admission.credential == Credential::Failed(DenyReason::VerificationUnknown) && !TOLD_VERIFICATION_UNKNOWN.replace(true) {
        log::warn!("{VERIFICATION_UNKNOWN_ADVICE}");
    }
    if !stream.set_filter_state(FILTER_STATE_KEY, &admission.published().to_bytes()) {
        log::debug!("decision not published");
    }
}

/// After a panic in [`on_request_headers`]: the request fails closed (unless
/// it was already answered), and is counted and logged.
pub fn on_panic(stream: &mut Stream<'_>, filter: &StreamFilter) {
    let config = &filter.config;
    let admission = if stream.responded() {
        Admission::failed_closed(Failure::Panicked)
    } else {
        fail_closed(&mut EnvoyHost(stream), config.policy.deny_status, Failure::Panicked)
    };
    if let Some(id) = config.panics {
        stream.increment_counter(id, 1);
    }
    finish(stream, config, &admission);
}

/// Tests only (feature `test-panic`): a request with this header panics.
#[cfg(feature = "test-panic")]
#[allow(clippy::panic)]
fn panic_on_request(stream: &mut Stream<'_>) {
    if stream
        .request_headers()
        .unwrap_or_default()
        .iter()
        .any(|(n, _)| n == "x-certgate-test-panic")
    {
        panic!("x-certgate-test-panic");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Arc<FilterConfig> {
        let policy = certgate_core::config::parse_policy(br#"{"verification":"listener","cache_size":4,"rules":[{"name":"a"}]}"#).unwrap();
        Arc::new(FilterConfig::for_tests(policy))
    }

    #[test]
    fn each_configuration_has_its_cache_on_a_worker() {
        let (a, b) = (config(), config());
        with_cache(&a, |cache| {
            cache.insert("digest".into(), Err(certgate_core::identity::IdentityError::Subject("x".into())))
        })
        .unwrap();
        assert!(with_cache(&a, |cache| cache.get("digest").is_some()).unwrap());
        assert!(
            !with_cache(&b, |cache| cache.get("digest").is_some()).unwrap(),
            "b has a cache of its own"
        );
    }

    #[test]
    fn a_reentrant_call_is_refused_not_a_panic() {
        let a = config();
        assert_eq!(with_cache(&a, |_| with_cache(&a, |_| ())), Some(None));
    }
}
