//! Metric names. Envoy shows them under `wasmcustom.` in its stats.

use crate::admission::Admission;
use crate::policy::{DenyReason, Mode, Outcome, Policy};

pub const ALLOWED: &str = "certgate.requests.allowed";
pub const DENIED: &str = "certgate.requests.denied";
/// Audit mode: requests enforce mode would have denied, let through.
pub const AUDIT_WOULD_DENY: &str = "certgate.requests.audit_would_deny";
pub const EXPIRING_SOON: &str = "certgate.certificates.expiring_soon";
pub const CACHE_MISSES: &str = "certgate.identity_cache.misses";
pub const SPOOFED_HEADERS: &str = "certgate.spoofed_headers_removed";

pub fn denied_by_reason(reason: DenyReason) -> String {
    format!("certgate.denied.{}", reason.as_str())
}

pub fn rule_allowed(rule: &str) -> String {
    format!("certgate.rule.{rule}.allowed")
}

pub fn rule_denied(rule: &str) -> String {
    format!("certgate.rule.{rule}.denied")
}

/// The counters every policy has, in index order (see [`all_counters`]); the
/// `I_*` constants are their indices.
const FIXED: [&str; 6] = [ALLOWED, DENIED, AUDIT_WOULD_DENY, EXPIRING_SOON, CACHE_MISSES, SPOOFED_HEADERS];
const I_ALLOWED: usize = 0;
const I_DENIED: usize = 1;
const I_AUDIT_WOULD_DENY: usize = 2;
const I_EXPIRING_SOON: usize = 3;
const I_CACHE_MISSES: usize = 4;
const I_SPOOFED_HEADERS: usize = 5;

/// Every counter a policy can touch, to define them all at configure time.
/// A counter's position here is its index for [`for_each_increment`].
pub fn all_counters(policy: &Policy) -> Vec<String> {
    let mut names: Vec<String> = FIXED.iter().map(|s| (*s).to_owned()).collect();
    names.extend(DenyReason::ALL.iter().map(|r| denied_by_reason(*r)));
    for rule in &policy.rules {
        names.push(rule_allowed(&rule.name));
        names.push(rule_denied(&rule.name));
    }
    names
}

fn reason_index(reason: DenyReason) -> usize {
    FIXED.len() + DenyReason::ALL.iter().position(|r| *r == reason).unwrap_or(0)
}

fn rule_index(policy: &Policy, rule: &str, allowed: bool) -> Option<usize> {
    let i = policy.rules.iter().position(|r| r.name == rule)?;
    Some(FIXED.len() + DenyReason::ALL.len() + 2 * i + usize::from(!allowed))
}

/// The counters one admission increments, by index into [`all_counters`], and
/// by how much. No names are built: this runs on every request.
pub fn for_each_increment(policy: &Policy, a: &Admission, mut add: impl FnMut(usize, i64)) {
    let rule = a.rule.as_deref();
    match a.outcome {
        Outcome::Allow => {
            add(I_ALLOWED, 1);
            if let Some(i) = rule.and_then(|r| rule_index(policy, r, true)) {
                add(i, 1);
            }
        }
        Outcome::Deny(reason) => {
            let audited = policy.mode == Mode::Audit && a.forwarded;
            add(if audited { I_AUDIT_WOULD_DENY } else { I_DENIED }, 1);
            add(reason_index(reason), 1);
            if let Some(i) = rule.and_then(|r| rule_index(policy, r, false)) {
                add(i, 1);
            }
        }
    }
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
    #![allow(clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn fixed_indices_name_their_counters() {
        assert_eq!(FIXED[I_ALLOWED], ALLOWED);
        assert_eq!(FIXED[I_DENIED], DENIED);
        assert_eq!(FIXED[I_AUDIT_WOULD_DENY], AUDIT_WOULD_DENY);
        assert_eq!(FIXED[I_EXPIRING_SOON], EXPIRING_SOON);
        assert_eq!(FIXED[I_CACHE_MISSES], CACHE_MISSES);
        assert_eq!(FIXED[I_SPOOFED_HEADERS], SPOOFED_HEADERS);
    }
}
