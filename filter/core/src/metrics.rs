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
use crate::identity::NameError;
use certgate_decision::Verdict;

use crate::policy::{Access, DefaultAction, DenyReason, Mode, Outcome, Policy, Rule};
use crate::token::WithoutToken;

/// The family every request is counted in.
pub const REQUESTS: &str = "certgate_requests_total";
/// Requests with a certificate inside the expiry warning window.
pub const EXPIRING_SOON: &str = "certgate_expiring_certificates_total";
/// Certificates parsed (not found in the identity cache).
pub const CACHE_MISSES: &str = "certgate_identity_cache_misses_total";
/// Identity and override headers removed from requests.
pub const SPOOFED_HEADERS: &str = "certgate_spoofed_headers_removed_total";
/// Certificates, when first seen, with a `spiffe:` URI SAN that is no valid
/// SPIFFE ID (or beside other URI SANs): none of their requests has a SPIFFE ID.
pub const INVALID_SPIFFE_IDS: &str = "certgate_invalid_spiffe_ids_total";
/// Certificates, when first seen, with a URI SAN that is no RFC 3986 URI.
pub const INVALID_URI_SANS: &str = "certgate_invalid_uri_sans_total";
/// Certificates, when first seen, with a DNS SAN that is no DNS name.
pub const INVALID_DNS_SANS: &str = "certgate_invalid_dns_sans_total";
/// Certificates, when first seen, with an e-mail SAN that is no mailbox.
pub const INVALID_EMAIL_SANS: &str = "certgate_invalid_email_sans_total";

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
        (
            "reason",
            format!(r"^{namespace}\.certgate_requests_total\.outcome\.[a-z_]+(\.reason\.([a-z_]+))"),
        ),
        (
            "rule",
            format!(r"^{namespace}\.certgate_requests_total\..*?(\.rule\.([A-Za-z0-9_.-]+))$"),
        ),
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

/// The counters every policy has, first in index order, and what each
/// counts (the book's metrics page is written from this).
pub const FIXED_COUNTERS: [(&str, &str); 7] = [
    (
        EXPIRING_SOON,
        "requests with a certificate inside the expiry warning window (`expiry_warning_days`)",
    ),
    (CACHE_MISSES, "certificates parsed (not found in the per-worker identity cache)"),
    (SPOOFED_HEADERS, "identity and override headers a client sent, removed"),
    (
        INVALID_SPIFFE_IDS,
        "certificates, when first seen, whose `spiffe:` URI SAN is no valid SPIFFE ID or not their only URI SAN",
    ),
    (
        INVALID_URI_SANS,
        "certificates, when first seen, with a URI SAN that is no RFC 3986 URI",
    ),
    (
        INVALID_DNS_SANS,
        "certificates, when first seen, with a DNS SAN that is no DNS name",
    ),
    (
        INVALID_EMAIL_SANS,
        "certificates, when first seen, with an e-mail SAN that is no mailbox",
    ),
];
const I_EXPIRING_SOON: usize = 0;
const I_CACHE_MISSES: usize = 1;
const I_SPOOFED_HEADERS: usize = 2;

/// The first of the counters of certificates with a refused name, one per
/// kind of name, in [`refused_kind`]'s order.
const I_INVALID_NAMES: usize = 3;

/// Which kind of name a refusal is about: 0 SPIFFE ID, 1 URI, 2 DNS, 3 e-mail.
fn refused_kind(why: NameError) -> usize {
    match why {
        NameError::SpiffeId(_) | NameError::SeveralUris => 0,
        NameError::Uri(_) => 1,
        NameError::Dns(_) => 2,
        NameError::Email(_) => 3,
    }
}

/// Request counters per rule slot (the policy's rules, then "no rule"):
/// allowed, then denied and audit-would-deny for each reason.
const PER_RULE: usize = 1 + 2 * DenyReason::ALL.len();

/// What a request can be counted as, in a rule slot's index order:
/// allowed, then denied and audit-would-deny for each reason.
fn every_counted() -> impl Iterator<Item = Counted> {
    std::iter::once(Counted::Allowed).chain(
        DenyReason::ALL
            .into_iter()
            .flat_map(|r| [Counted::Denied(r), Counted::AuditWouldDeny(r)]),
    )
}

/// Every counter a policy can touch, to define them at configure time (so
/// zeros show too), by index for [`for_each_increment`]: `None` at the index
/// of a series no request can count under this policy ([`can_count`]), which
/// is not defined. Prometheus pays for every series defined.
pub fn all_counters(policy: &Policy) -> Vec<Option<String>> {
    let mut names: Vec<Option<String>> = FIXED_COUNTERS.iter().map(|(name, _)| Some((*name).to_owned())).collect();
    let rules = policy.rules.iter().map(Some).chain([None]);
    for rule in rules {
        for counted in every_counted() {
            let name = rule.map(|r| r.name.as_str());
            names.push(can_count(policy, counted, rule).then(|| request_counter(counted, name)));
        }
    }
    names
}

/// Whether a request can ever be counted as `counted` under `rule` (`None`:
/// no rule matched), as [`crate::policy::decide`] and the fail-closed path
/// decide. An anonymous rule only allows; a certificate rule denies for the
/// credential's reasons and for the checks it has; only the default denies
/// with `no_matching_rule`, and only it with `bad_path` or a fail-closed
/// `internal_error`. Enforce mode never counts `audit_would_deny`; audit mode
/// counts `denied` only for a request it failed closed.
fn can_count(policy: &Policy, counted: Counted, rule: Option<&Rule>) -> bool {
    let reason = match (counted, policy.mode) {
        (Counted::Allowed, _) => {
            return rule.is_some() || policy.default == DefaultAction::Allow;
        }
        (Counted::AuditWouldDeny(_), Mode::Enforce) => return false,
        (Counted::Denied(r), Mode::Audit) => return r == DenyReason::InternalError && rule.is_none(),
        (Counted::Denied(r) | Counted::AuditWouldDeny(r), _) => r,
    };
    let Some(rule) = rule else {
        return match reason {
            DenyReason::NoMatchingRule => policy.default == DefaultAction::Deny,
            DenyReason::BadPath | DenyReason::InternalError => true,
            _ => false,
        };
    };
    let Access::Certificate(req) = &rule.access else {
        return false;
    };
    let deny_lists = !policy.deny_serials.is_empty() || !policy.deny_sha256.is_empty();
    let issuer = req.issuer.is_some() || req.issuer_cn.is_some();
    match reason {
        DenyReason::CertificateRequired
        | DenyReason::CertificateNotVerified
        | DenyReason::VerificationUnknown
        | DenyReason::UnparseableCertificate
        | DenyReason::NotYetValid
        | DenyReason::Expired
        // unreachable by construction (a usable credential is a verified
        // peer), but never dropped if it is not
        | DenyReason::InternalError => true,
        DenyReason::Revoked => deny_lists,
        DenyReason::IdentityIncomplete => !policy.deny_serials.is_empty() || issuer,
        DenyReason::IssuerNotAllowed => issuer,
        DenyReason::SubjectNotAllowed => req.subject.is_some() || req.subject_cn.is_some(),
        DenyReason::SanNotAllowed => req.san_uri.is_some() || req.san_dns.is_some() || req.san_email.is_some(),
        DenyReason::SpiffeNotAllowed => req.spiffe.is_some(),
        DenyReason::TokenUnbound | DenyReason::TokenCertificateMismatch => req.bound_token && policy.bound_tokens.is_some(),
        DenyReason::TokenMissing => {
            req.bound_token && policy.bound_tokens.as_ref().is_some_and(|t| t.without_token == WithoutToken::Deny)
        }
        DenyReason::NoMatchingRule | DenyReason::BadPath => false,
    }
}

/// Defines every counter of [`all_counters`] with the host's `define`, in
/// index order; one the host refuses is logged and left out (`None`), as is
/// one no request can count.
pub fn define_counters<Id, E: std::fmt::Display>(policy: &Policy, mut define: impl FnMut(&str) -> Result<Id, E>) -> Vec<Option<Id>> {
    all_counters(policy)
        .iter()
        .map(|name| {
            let name = name.as_deref()?;
            define(name).map_err(|e| log::warn!("metric {name} not defined: {e}")).ok()
        })
        .collect()
}

/// The index of a request counter in [`all_counters`].
fn request_index(policy: &Policy, counted: Counted, rule: Option<&str>) -> usize {
    let slot = rule
        .and_then(|r| policy.rules.iter().position(|x| x.name == r))
        .unwrap_or(policy.rules.len());
    let within = match counted {
        Counted::Allowed => 0,
        Counted::Denied(r) => 1 + 2 * reason_position(r),
        Counted::AuditWouldDeny(r) => 2 + 2 * reason_position(r),
    };
    FIXED_COUNTERS.len() + slot * PER_RULE + within
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
    // a certificate counts once per kind of name, however many it has
    let mut kinds = [false; 4];
    for r in &a.refused {
        if let Some(k) = kinds.get_mut(refused_kind(r.why)) {
            *k = true;
        }
    }
    for (kind, _) in kinds.iter().enumerate().filter(|(_, seen)| **seen) {
        add(I_INVALID_NAMES + kind, 1);
    }
}

/// [`for_each_increment`] with names, for tests and logs.
pub fn increments(policy: &Policy, a: &Admission) -> Vec<(String, i64)> {
    let names = all_counters(policy);
    let mut out = Vec::new();
    for_each_increment(policy, a, |i, by| {
        // a series that is not defined shows as `undefined:<index>`, for tests to catch
        let name = names.get(i).cloned().flatten().unwrap_or_else(|| format!("undefined:{i}"));
        out.push((name, by));
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_indices_name_their_counters() {
        assert_eq!(FIXED_COUNTERS[I_EXPIRING_SOON].0, EXPIRING_SOON);
        assert_eq!(FIXED_COUNTERS[I_CACHE_MISSES].0, CACHE_MISSES);
        assert_eq!(FIXED_COUNTERS[I_SPOOFED_HEADERS].0, SPOOFED_HEADERS);
        assert_eq!(FIXED_COUNTERS[I_INVALID_NAMES].0, INVALID_SPIFFE_IDS);
        assert_eq!(FIXED_COUNTERS[I_INVALID_NAMES + 3].0, INVALID_EMAIL_SANS);
    }

    fn defined(policy: &str) -> (Policy, Vec<Option<String>>) {
        let policy = crate::config::parse_policy(policy.as_bytes()).unwrap();
        let names = all_counters(&policy);
        (policy, names)
    }

    #[test]
    fn every_request_counter_is_at_its_index_and_only_what_can_count_is_defined() {
        let (policy, names) = defined(
            r#"{"deny":{"serials":["01"]},"rules":[
                {"name":"a","issuer":["CN=x"],"subject_cn":["x"],"san_dns":["x"],"spiffe":["spiffe://x/y"]},
                {"name":"b.c","anonymous":true}]}"#,
        );
        assert_eq!(names.len(), FIXED_COUNTERS.len() + 3 * PER_RULE);
        for rule in [Some("a"), Some("b.c"), None] {
            for counted in every_counted() {
                if let Some(name) = &names[request_index(&policy, counted, rule)] {
                    assert_eq!(*name, request_counter(counted, rule));
                }
            }
        }
        let is = |counted, rule| names[request_index(&policy, counted, rule)].is_some();
        // a certificate rule: every reason but the default's, enforce mode only
        assert!(is(Counted::Allowed, Some("a")) && is(Counted::Denied(DenyReason::Revoked), Some("a")));
        assert!(is(Counted::Denied(DenyReason::SpiffeNotAllowed), Some("a")));
        assert!(!is(Counted::Denied(DenyReason::NoMatchingRule), Some("a")));
        assert!(!is(Counted::AuditWouldDeny(DenyReason::Expired), Some("a")));
        // an anonymous rule only allows
        assert!(is(Counted::Allowed, Some("b.c")));
        assert!(every_counted().filter(|c| *c != Counted::Allowed).all(|c| !is(c, Some("b.c"))));
        // no rule: the default's deny, bad paths, failing closed
        assert!(is(Counted::Denied(DenyReason::NoMatchingRule), None) && is(Counted::Denied(DenyReason::BadPath), None));
        assert!(is(Counted::Denied(DenyReason::InternalError), None) && !is(Counted::Allowed, None));
        assert!(!is(Counted::Denied(DenyReason::Expired), None));

        // audit mode counts what enforce would deny, and denies only when failing closed
        let (audit, names) = defined(r#"{"mode":"audit","default":"allow","rules":[{"name":"a","subject_cn":["x"]}]}"#);
        let is = |counted, rule| names[request_index(&audit, counted, rule)].is_some();
        assert!(is(Counted::AuditWouldDeny(DenyReason::SubjectNotAllowed), Some("a")));
        assert!(!is(Counted::Denied(DenyReason::SubjectNotAllowed), Some("a")));
        assert!(
            !is(Counted::AuditWouldDeny(DenyReason::IssuerNotAllowed), Some("a")),
            "no issuer check"
        );
        assert!(!is(Counted::AuditWouldDeny(DenyReason::Revoked), Some("a")), "no deny lists");
        assert!(is(Counted::Denied(DenyReason::InternalError), None) && is(Counted::Allowed, None));
    }

    /// The example policy's series: 344 (every outcome, reason and rule)
    /// before only what can count was defined; 410 possible since the three
    /// token reasons, which its rules cannot produce; 414 since the four
    /// counters of names refused by their standards.
    #[test]
    fn the_example_policy_defines_only_the_series_that_can_count() {
        let example = include_str!("../../../fixtures/policies/example.json");
        let (_, names) = defined(example);
        let series = names.iter().flatten().count();
        println!("example policy: {series} series defined of {} possible", names.len());
        assert_eq!(names.len(), 414);
        assert!(series < 120, "{series}");
    }
}
