//! Metric names. Envoy shows them under `wasmcustom.` (the Wasm build) or
//! `dynamicmodulescustom.` (the dynamic module) in its stats.
//!
//! Requests are counted in one family, `certgate_requests_total`, one counter
//! per outcome, reason and rule, named so that Envoy's `stats_tags` (see the
//! committed configurations and [`stats_tags`]) turn the parts into labels:
//! `certgate_requests_total.outcome.denied.reason.subject_not_allowed.rule.admin`
//! is `certgate_requests_total{outcome="denied",reason="subject_not_allowed",
//! rule="admin"}` in `/stats/prometheus` (Envoy drops the namespace of
//! custom stats there). An
//! allowed request has no `reason`; a request no rule matched has no `rule`.

use crate::admission::Admission;
use certgate_decision::Verdict;

use crate::policy::{DenyReason, Outcome, Policy};

/// The family every request is counted in.
pub const REQUESTS: &str = "certgate_requests_total";
/// Requests with a certificate inside the expiry warning window.
pub const EXPIRING_SOON: &str = "certgate_expiring_certificates_total";
/// Certificates parsed (not found in the identity cache).
pub const CACHE_MISSES: &str = "certgate_identity_cache_misses_total";
/// Identity and override headers removed from requests.
pub const SPOOFED_HEADERS: &str = "certgate_spoofed_headers_removed_total";

/// The namespace Envoy puts a Wasm filter's counters in (`wasmcustom.`).
pub const WASM_NAMESPACE: &str = "wasmcustom";
/// The namespace Envoy puts a dynamic module's counters in.
pub const MODULE_NAMESPACE: &str = "dynamicmodulescustom";

/// Envoy's `stats_config.stats_tags` that make labels of the request
/// counters' names under a stats namespace ([`WASM_NAMESPACE`],
/// [`MODULE_NAMESPACE`]): (tag name, regex; the first group is cut from the
/// name, the second is the value). The committed configurations carry them.
pub fn stats_tags(namespace: &str) -> [(&'static str, String); 3] {
    [
        ("outcome", format!(r"^{namespace}\.certgate_requests_total(\.outcome\.([a-z_]+))")),
        ("reason", format!(r"^{namespace}\.certgate_requests_total\.outcome\.[a-z_]+(\.reason\.([a-z_]+))")),
        ("rule", format!(r"^{namespace}\.certgate_requests_total\..*?(\.rule\.([A-Za-z0-9_.-]+))$")),
    ]
}

/// What became of a request, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Allowed,
    Denied(DenyReason),
    /// Audit mode: a request enforce mode would have denied, let through.
    AuditWouldDeny(DenyReason),
}

/// The name of one request counter.
fn request_counter(counted: Counted, rule: Option<&str>) -> String {
    let mut name = match counted {
        Counted::Allowed => format!("{REQUESTS}.outcome.allowed"),
        Counted::Denied(r) => format!("{REQUESTS}.outcome.denied.reason.{}", r.as_str()),
        Counted::AuditWouldDeny(r) => format!("{REQUESTS}.outcome.audit_would_deny.reason.{}", r.as_str()),
    };
    if let Some(rule) = rule {
        name.push_str(".rule.");
        name.push_str(rule);
    }
    name
}

/// The counters every policy has, first in index order.
const FIXED: [&str; 3] = [EXPIRING_SOON, CACHE_MISSES, SPOOFED_HEADERS];
const I_EXPIRING_SOON: usize = 0;
const I_CACHE_MISSES: usize = 1;
const I_SPOOFED_HEADERS: usize = 2;

/// Request counters per rule slot (the policy's rules, then "no rule"):
/// allowed, then denied and audit-would-deny for each reason.
const PER_RULE: usize = 1 + 2 * DenyReason::ALL.len();

/// Every counter a policy can touch, to define them all at configure time
/// (so zeros show too). A counter's position here is its index for
/// [`for_each_increment`].
pub fn all_counters(policy: &Policy) -> Vec<String> {
    let mut names: Vec<String> = FIXED.iter().map(|s| (*s).to_owned()).collect();
    let rules = policy.rules.iter().map(|r| Some(r.name.as_str())).chain([None]);
    for rule in rules {
        names.push(request_counter(Counted::Allowed, rule));
        for reason in DenyReason::ALL {
            names.push(request_counter(Counted::Denied(reason), rule));
            names.push(request_counter(Counted::AuditWouldDeny(reason), rule));
        }
    }
    names
}

/// Defines every counter of [`all_counters`] with the host's `define`, in
/// index order; one the host refuses is logged and left out (`None`).
pub fn define_counters<Id, E: std::fmt::Display>(policy: &Policy, mut define: impl FnMut(&str) -> Result<Id, E>) -> Vec<Option<Id>> {
    all_counters(policy)
        .iter()
        .map(|name| define(name).map_err(|e| log::warn!("metric {name} not defined: {e}")).ok())
        .collect()
}

/// The index of a request counter in [`all_counters`].
fn request_index(policy: &Policy, counted: Counted, rule: Option<&str>) -> usize {
    let slot = rule.and_then(|r| policy.rules.iter().position(|x| x.name == r)).unwrap_or(policy.rules.len());
    let within = match counted {
        Counted::Allowed => 0,
        Counted::Denied(r) => 1 + 2 * reason_position(r),
        Counted::AuditWouldDeny(r) => 2 + 2 * reason_position(r),
    };
    FIXED.len() + slot * PER_RULE + within
}

fn reason_position(reason: DenyReason) -> usize {
    DenyReason::ALL.iter().position(|r| *r == reason).unwrap_or(0)
}

/// The counters one admission increments, by index into [`all_counters`], and
/// by how much. No names are built: this runs on every request.
pub fn for_each_increment(policy: &Policy, a: &Admission, mut add: impl FnMut(usize, i64)) {
    let counted = match (a.verdict(), a.outcome) {
        (_, Outcome::Allow) => Counted::Allowed,
        (Verdict::AuditDeny, Outcome::Deny(reason)) => Counted::AuditWouldDeny(reason),
        (_, Outcome::Deny(reason)) => Counted::Denied(reason),
    };
    add(request_index(policy, counted, a.rule.as_deref()), 1);
    if a.expiring_soon {
        add(I_EXPIRING_SOON, 1);
    }
    if a.cache_miss {
        add(I_CACHE_MISSES, 1);
    }
    if a.stripped > 0 {
        add(I_SPOOFED_HEADERS, i64::try_from(a.stripped).unwrap_or(i64::MAX));
    }
}

/// [`for_each_increment`] with names, for tests and logs.
pub fn increments(policy: &Policy, a: &Admission) -> Vec<(String, i64)> {
    let names = all_counters(policy);
    let mut out = Vec::new();
    for_each_increment(policy, a, |i, by| {
        if let Some(name) = names.get(i) {
            out.push((name.clone(), by));
        }
    });
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fixed_indices_name_their_counters() {
        assert_eq!(FIXED[I_EXPIRING_SOON], EXPIRING_SOON);
        assert_eq!(FIXED[I_CACHE_MISSES], CACHE_MISSES);
        assert_eq!(FIXED[I_SPOOFED_HEADERS], SPOOFED_HEADERS);
    }

    #[test]
    fn every_request_counter_is_at_its_index() {
        let policy = crate::config::parse_policy(br#"{"rules":[{"name":"a"},{"name":"b.c"}]}"#).unwrap();
        let names = all_counters(&policy);
        assert_eq!(names.len(), FIXED.len() + 3 * PER_RULE);
        for rule in [Some("a"), Some("b.c"), None] {
            let mut all = vec![Counted::Allowed];
            all.extend(DenyReason::ALL.iter().flat_map(|r| [Counted::Denied(*r), Counted::AuditWouldDeny(*r)]));
            for counted in all {
                assert_eq!(names[request_index(&policy, counted, rule)], request_counter(counted, rule));
            }
        }
        assert_eq!(names[request_index(&policy, Counted::Denied(DenyReason::Revoked), Some("b.c"))],
            "certgate_requests_total.outcome.denied.reason.revoked.rule.b.c");
        assert_eq!(names[request_index(&policy, Counted::Allowed, None)], "certgate_requests_total.outcome.allowed");
    }
}
