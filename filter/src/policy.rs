//! The policy and the decision: pure, no host calls, no clock. The caller
//! gives the request's facts and the time; `decide` says allow or deny, why,
//! and which rule.

use std::collections::HashSet;

use crate::dn::DnPattern;
use crate::glob::Glob;
use crate::headers::HeaderPlan;
use crate::identity::PeerIdentity;

/// Enforce denies; audit lets everything through but says what enforce would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
}

/// Where the filter reads the peer's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySourceSetting {
    /// `connection.peer_certificate`, else XFCC bound to this connection's
    /// certificate digest, else the subject/SAN properties.
    Auto,
    PeerCertificate,
    /// Trust the XFCC header alone: only behind a proxy that sanitises it.
    Xfcc,
    Properties,
}

/// When a presented certificate counts as verified by the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Only when `connection.peer_certificate_valid` is 1 (Envoy 1.39+, fresh
    /// handshakes). The safe default.
    ProxyFlag,
    /// The operator states that the listener verifies every certificate it
    /// accepts (trusted CAs, not `ACCEPT_UNTRUSTED`): a presented certificate
    /// counts whatever the flag says. Needed on Envoy before 1.39, which has
    /// no flag, and for resumed TLS sessions, on which Envoy reports 0.
    Listener,
}

/// Logged once per worker at the first `verification_unknown` deny.
pub const VERIFICATION_UNKNOWN_ADVICE: &str = "certgate denies client certificates as verification_unknown: \
this Envoy gives no connection.peer_certificate_valid (Envoy before 1.39), so it cannot say whether it verified them. \
If this listener verifies every certificate it accepts (a validation_context with trusted CAs, trust_chain_verification \
not ACCEPT_UNTRUSTED), set \"verification\": \"listener\" in the certgate policy (see SECURITY.md)";

/// What happens to a request no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Deny,
    /// Let it through as an anonymous request.
    Allow,
}

/// A compiled policy. Built only by [`crate::config::compile`], so it is always valid.
#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub identity_source: IdentitySourceSetting,
    pub verification: Verification,
    pub rules: Vec<Rule>,
    pub default: DefaultAction,
    pub deny_status: u16,
    pub deny_serials: HashSet<String>,
    pub deny_sha256: HashSet<String>,
    /// Seconds before `notAfter` from which a certificate counts as expiring soon.
    pub expiry_warning_secs: i64,
    pub headers: HeaderPlan,
    pub cache_size: usize,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub path: PathMatch,
    /// Uppercase methods; `None` for any.
    pub methods: Option<Vec<String>>,
    /// Host patterns (port removed before matching); `None` for any.
    pub hosts: Option<Vec<Glob>>,
    pub access: Access,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Any,
    Prefix(String),
    Exact(String),
}

#[derive(Debug, Clone)]
pub enum Access {
    /// Anyone; a certificate, if sent and usable, still yields identity headers.
    Anonymous,
    /// A usable certificate that meets every requirement.
    Certificate(Requirements),
}

/// Allow-lists: ANDed across fields, ORed within one. `None` means any.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    pub issuer: Option<Vec<DnPattern>>,
    pub issuer_cn: Option<Vec<Glob>>,
    pub subject: Option<Vec<DnPattern>>,
    pub subject_cn: Option<Vec<Glob>>,
    pub san_uri: Option<Vec<Glob>>,
    pub san_dns: Option<Vec<Glob>>,
    pub san_email: Option<Vec<Glob>>,
    pub spiffe: Option<Vec<Glob>>,
}

/// What the filter knows of the peer's certificate.
#[derive(Debug, Clone, Copy)]
pub enum Peer<'a> {
    /// No certificate was sent.
    None,
    /// One was sent but the proxy did not verify it.
    Unverified,
    /// One was sent and the proxy does not say whether it verified it.
    VerificationUnknown,
    /// One was sent and verified, but could not be read.
    Unreadable,
    Verified(&'a PeerIdentity),
}

/// The facts of one request that the policy looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// `:path` as received, query included.
    pub path: &'a str,
    pub method: &'a str,
    /// `:authority`, port included or not.
    pub host: &'a str,
    pub peer: Peer<'a>,
}

/// Every reason for a deny, as written in replies, logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    CertificateRequired,
    CertificateNotVerified,
    /// The proxy does not say whether it verified the certificate (Envoy
    /// before 1.39) and the policy does not vouch for the listener.
    VerificationUnknown,
    UnparseableCertificate,
    Revoked,
    Expired,
    NotYetValid,
    /// A check needed a field the identity source does not give (issuer, serial).
    IdentityIncomplete,
    IssuerNotAllowed,
    SubjectNotAllowed,
    SanNotAllowed,
    SpiffeNotAllowed,
    NoMatchingRule,
    BadPath,
    /// The host refused a call the decision needs: fail closed.
    InternalError,
}

impl DenyReason {
    pub const ALL: [DenyReason; 15] = [
        DenyReason::CertificateRequired,
        DenyReason::CertificateNotVerified,
        DenyReason::VerificationUnknown,
        DenyReason::UnparseableCertificate,
        DenyReason::Revoked,
        DenyReason::Expired,
        DenyReason::NotYetValid,
        DenyReason::IdentityIncomplete,
        DenyReason::IssuerNotAllowed,
        DenyReason::SubjectNotAllowed,
        DenyReason::SanNotAllowed,
        DenyReason::SpiffeNotAllowed,
        DenyReason::NoMatchingRule,
        DenyReason::BadPath,
        DenyReason::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::CertificateRequired => "certificate_required",
            DenyReason::CertificateNotVerified => "certificate_not_verified",
            DenyReason::VerificationUnknown => "verification_unknown",
            DenyReason::UnparseableCertificate => "unparseable_certificate",
            DenyReason::Revoked => "revoked",
            DenyReason::Expired => "expired",
            DenyReason::NotYetValid => "not_yet_valid",
            DenyReason::IdentityIncomplete => "identity_incomplete",
            DenyReason::IssuerNotAllowed => "issuer_not_allowed",
            DenyReason::SubjectNotAllowed => "subject_not_allowed",
            DenyReason::SanNotAllowed => "san_not_allowed",
            DenyReason::SpiffeNotAllowed => "spiffe_not_allowed",
            DenyReason::NoMatchingRule => "no_matching_rule",
            DenyReason::BadPath => "bad_path",
            DenyReason::InternalError => "internal_error",
        }
    }

    /// The status of the local reply: the policy's for decisions, 400 for a
    /// path that cannot be matched safely, 500 when the host failed.
    pub fn status(self, policy_status: u16) -> u16 {
        match self {
            DenyReason::BadPath => 400,
            DenyReason::InternalError => 500,
            _ => policy_status,
        }
    }
}

/// What the certificate is worth, whatever the rule: this decides the
/// `verified` header and whether identity headers are set at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// No certificate.
    None,
    /// A certificate that cannot be used, and why.
    Failed(DenyReason),
    /// Verified, readable, not revoked, within its validity.
    Usable,
}

impl Credential {
    /// The `verified` header's value, as nginx's `$ssl_client_verify`:
    /// `SUCCESS`, `NONE`, or `FAILED:<reason>`, the reason in OpenSSL's words
    /// where nginx would have one (`certificate has expired`), certgate's
    /// reason otherwise.
    pub fn verify_status(self) -> &'static str {
        match self {
            Credential::Usable => "SUCCESS",
            Credential::None => "NONE",
            Credential::Failed(reason) => match reason {
                DenyReason::Revoked => "FAILED:certificate revoked",
                DenyReason::Expired => "FAILED:certificate has expired",
                DenyReason::NotYetValid => "FAILED:certificate is not yet valid",
                DenyReason::CertificateNotVerified => "FAILED:certificate_not_verified",
                DenyReason::VerificationUnknown => "FAILED:verification_unknown",
                DenyReason::UnparseableCertificate => "FAILED:unparseable_certificate",
                DenyReason::IdentityIncomplete => "FAILED:identity_incomplete",
                _ => "FAILED",
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Deny(DenyReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'p> {
    pub outcome: Outcome,
    /// The rule that decided; `None` when no rule matched.
    pub rule: Option<&'p str>,
    pub credential: Credential,
}

/// Decides one request. `now` is Unix seconds.
pub fn decide<'p>(policy: &'p Policy, facts: &RequestFacts<'_>, now: i64) -> Decision<'p> {
    let credential = credential(policy, facts.peer, now);
    let decision = |outcome, rule: Option<&'p Rule>| Decision {
        outcome,
        rule: rule.map(|r| r.name.as_str()),
        credential,
    };
    let Some(path) = normalize_path(facts.path) else {
        return decision(Outcome::Deny(DenyReason::BadPath), None);
    };
    let host = strip_port(facts.host);
    let Some(rule) = policy.rules.iter().find(|r| r.applies_to(&path, facts.method, host)) else {
        return match policy.default {
            DefaultAction::Deny => decision(Outcome::Deny(DenyReason::NoMatchingRule), None),
            DefaultAction::Allow => decision(Outcome::Allow, None),
        };
    };
    let outcome = match (&rule.access, credential, facts.peer) {
        (Access::Anonymous, _, _) => Outcome::Allow,
        (Access::Certificate(_), Credential::None, _) => Outcome::Deny(DenyReason::CertificateRequired),
        (Access::Certificate(_), Credential::Failed(reason), _) => Outcome::Deny(reason),
        (Access::Certificate(req), Credential::Usable, Peer::Verified(id)) => match req.check(id) {
            Ok(()) => Outcome::Allow,
            Err(reason) => Outcome::Deny(reason),
        },
        // Usable always comes with Verified; anything else fails closed.
        (Access::Certificate(_), Credential::Usable, _) => Outcome::Deny(DenyReason::InternalError),
    };
    decision(outcome, Some(rule))
}

fn credential(policy: &Policy, peer: Peer<'_>, now: i64) -> Credential {
    let id = match peer {
        Peer::None => return Credential::None,
        Peer::Unverified => return Credential::Failed(DenyReason::CertificateNotVerified),
        Peer::VerificationUnknown => return Credential::Failed(DenyReason::VerificationUnknown),
        Peer::Unreadable => return Credential::Failed(DenyReason::UnparseableCertificate),
        Peer::Verified(id) => id,
    };
    if policy.deny_sha256.contains(&id.sha256) {
        return Credential::Failed(DenyReason::Revoked);
    }
    match &id.serial {
        Some(serial) if policy.deny_serials.contains(serial) => return Credential::Failed(DenyReason::Revoked),
        // A serial deny-list cannot be checked without the serial: fail closed.
        None if !policy.deny_serials.is_empty() => return Credential::Failed(DenyReason::IdentityIncomplete),
        _ => {}
    }
    if id.not_before.is_some_and(|t| now < t) {
        return Credential::Failed(DenyReason::NotYetValid);
    }
    if id.not_after.is_some_and(|t| now > t) {
        return Credential::Failed(DenyReason::Expired);
    }
    Credential::Usable
}

impl Rule {
    fn applies_to(&self, path: &str, method: &str, host: &str) -> bool {
        let path_ok = match &self.path {
            PathMatch::Any => true,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Exact(p) => path == p,
        };
        path_ok
            && self.methods.as_ref().is_none_or(|ms| ms.iter().any(|m| m == method))
            && self.hosts.as_ref().is_none_or(|hs| hs.iter().any(|h| h.matches(host)))
    }
}

impl Requirements {
    fn check(&self, id: &PeerIdentity) -> Result<(), DenyReason> {
        fn any_glob(list: &[Glob], values: &[String]) -> bool {
            values.iter().any(|v| list.iter().any(|g| g.matches(v)))
        }
        if self.issuer.is_some() || self.issuer_cn.is_some() {
            let Some(issuer) = &id.issuer else {
                return Err(DenyReason::IdentityIncomplete);
            };
            if let Some(list) = &self.issuer {
                if !list.iter().any(|p| p.matches(issuer)) {
                    return Err(DenyReason::IssuerNotAllowed);
                }
            }
            if let Some(list) = &self.issuer_cn {
                if !issuer.cn().is_some_and(|cn| list.iter().any(|g| g.matches(cn))) {
                    return Err(DenyReason::IssuerNotAllowed);
                }
            }
        }
        if let Some(list) = &self.subject {
            if !list.iter().any(|p| p.matches(&id.subject)) {
                return Err(DenyReason::SubjectNotAllowed);
            }
        }
        if let Some(list) = &self.subject_cn {
            if !id.cn().is_some_and(|cn| list.iter().any(|g| g.matches(cn))) {
                return Err(DenyReason::SubjectNotAllowed);
            }
        }
        for (list, values) in [
            (&self.san_uri, &id.san_uri),
            (&self.san_dns, &id.san_dns),
            (&self.san_email, &id.san_email),
        ] {
            if let Some(list) = list {
                if !any_glob(list, values) {
                    return Err(DenyReason::SanNotAllowed);
                }
            }
        }
        if let Some(list) = &self.spiffe {
            if !id.spiffe_id.as_deref().is_some_and(|s| list.iter().any(|g| g.matches(s))) {
                return Err(DenyReason::SpiffeNotAllowed);
            }
        }
        Ok(())
    }
}

/// The path rules are matched against: no query or fragment, percent-encoded
/// unreserved characters decoded (so `/%61dmin/` is `/admin/`), repeated `/`
/// merged. `None` for paths that a backend could read as another path than
/// the one matched: no leading `/`, `.` or `..` segments, encoded `/` or `\`,
/// a backslash, a bad percent escape, control characters.
pub fn normalize_path(raw: &str) -> Option<String> {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let raw = raw.get(..end)?;
    if !raw.starts_with('/') {
        return None;
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                let v = u8::from_str_radix(hex, 16).ok()?;
                if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                    decoded.push(v);
                } else if v == b'/' || v == b'\\' || v < 0x20 || v == 0x7f {
                    return None;
                } else {
                    decoded.extend_from_slice(b"%");
                    decoded.extend_from_slice(hex.to_ascii_uppercase().as_bytes());
                }
                i += 3;
            }
            b'\\' => return None,
            b if b < 0x20 || b == 0x7f => return None,
            b => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8(decoded).ok()?;
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut out = String::with_capacity(decoded.len());
    for (i, segment) in segments.iter().enumerate() {
        if *segment == "." || *segment == ".." {
            return None;
        }
        if segment.is_empty() {
            // `//` merges; a trailing `/` stays
            if i == last {
                out.push('/');
            }
            continue;
        }
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// `example.org:8443` → `example.org`; `[::1]:443` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').and_then(|i| host.get(..=i)).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_for_matching() {
        for (raw, want) in [
            ("/", "/"),
            ("/admin/x?y=1", "/admin/x"),
            ("/admin/x#frag", "/admin/x"),
            ("/%61dmin/", "/admin/"),
            ("//admin//x", "/admin/x"),
            ("/admin/", "/admin/"),
            ("/a//", "/a/"),
            ("/a%20b", "/a%20b"),
            ("/a%3f", "/a%3F"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a/..b", "/a/..b"),
        ] {
            assert_eq!(normalize_path(raw).as_deref(), Some(want), "{raw}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for raw in [
            "", "admin", "*", "/public/../admin/", "/public/%2e%2e/admin", "/./admin", "/admin/.",
            "/a%2fb", "/a%2Fb", "/a%5cb", "/a\\b", "/a%zz", "/a%4", "/a%00", "/a\nb",
        ] {
            assert_eq!(normalize_path(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn ports_are_removed_from_hosts() {
        assert_eq!(strip_port("example.org:8443"), "example.org");
        assert_eq!(strip_port("example.org"), "example.org");
        assert_eq!(strip_port("[::1]:443"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port(""), "");
    }

    #[test]
    fn reasons_have_distinct_names() {
        let names: HashSet<&str> = DenyReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), DenyReason::ALL.len());
    }
}
