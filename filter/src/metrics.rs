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

/// Every counter a policy can touch, to define them all at configure time.
pub fn all_counters(policy: &Policy) -> Vec<String> {
    let mut names: Vec<String> = [ALLOWED, DENIED, AUDIT_WOULD_DENY, EXPIRING_SOON, CACHE_MISSES, SPOOFED_HEADERS]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    names.extend(DenyReason::ALL.iter().map(|r| denied_by_reason(*r)));
    for rule in &policy.rules {
        names.push(rule_allowed(&rule.name));
        names.push(rule_denied(&rule.name));
    }
    names
}

/// The counters one admission increments, and by how much.
pub fn increments(policy: &Policy, a: &Admission) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    match a.outcome {
        Outcome::Allow => {
            out.push((ALLOWED.to_owned(), 1));
            if let Some(rule) = &a.rule {
                out.push((rule_allowed(rule), 1));
            }
        }
        Outcome::Deny(reason) => {
            let audited = policy.mode == Mode::Audit && a.forwarded;
            out.push(((if audited { AUDIT_WOULD_DENY } else { DENIED }).to_owned(), 1));
            out.push((denied_by_reason(reason), 1));
            if let Some(rule) = &a.rule {
                out.push((rule_denied(rule), 1));
            }
        }
    }
    if a.expiring_soon {
        out.push((EXPIRING_SOON.to_owned(), 1));
    }
    if a.cache_miss {
        out.push((CACHE_MISSES.to_owned(), 1));
    }
    if a.stripped > 0 {
        out.push((SPOOFED_HEADERS.to_owned(), i64::try_from(a.stripped).unwrap_or(i64::MAX)));
    }
    out
}
