//! The policy and the decision: pure, no host calls, no clock. The caller
//! gives the request's facts and the time; `decide` says allow or deny, why,
//! and which rule.

use std::collections::HashSet;
use std::rc::Rc;

use serde::Deserialize;

use crate::dn_pattern::DnPattern;
use crate::glob::{EmailPattern, Glob};
use crate::headers::HeaderPlan;
use crate::identity::PeerIdentity;
use crate::path::{self, NormalPath, PathCase, PathSettings, Reading};
use crate::token::{BoundTokens, Token, WithoutToken};

/// Enforce denies; audit lets everything through but says what enforce would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    /// Requests that fail the policy are refused.
    Enforce,
    /// Every request goes on; `x-certgate-audit` says what enforce would do.
    Audit,
}

/// Where the filter reads the peer's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdentitySourceSetting {
    /// `connection.peer_certificate`, else XFCC bound to this connection's
    /// certificate digest, else the subject/SAN properties.
    #[default]
    Auto,
    /// `connection.peer_certificate` alone.
    PeerCertificate,
    /// Trust the XFCC header alone: only behind a proxy that sanitises it.
    Xfcc,
    /// Envoy's subject and first-SAN properties alone (no issuer, serial or validity).
    Properties,
}

/// When a presented certificate counts as verified by the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Only when `connection.peer_certificate_valid` is 1 (Envoy 1.39+, fresh
    /// handshakes). The safe default.
    #[default]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DefaultAction {
    #[default]
    /// Refused with `no_matching_rule`.
    Deny,
    /// Let it through as an anonymous request.
    Allow,
}

/// A compiled policy. Built only by [`crate::config::compile`], so it is always valid.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Enforce or audit.
    pub mode: Mode,
    /// Where the peer's identity is read.
    pub identity_source: IdentitySourceSetting,
    /// Who vouches that a presented certificate was verified.
    pub verification: Verification,
    /// The rules, in order: the first that applies to a request decides.
    pub rules: Vec<Rule>,
    /// What a request no rule applies to gets.
    pub default: DefaultAction,
    /// The status of a deny.
    pub deny_status: u16,
    /// Serials refused at once: lowercase hex, no leading zeros.
    pub deny_serials: HashSet<String>,
    /// SHA-256 fingerprints refused at once: lowercase hex.
    pub deny_sha256: HashSet<String>,
    /// Seconds before `notAfter` from which a certificate counts as expiring soon.
    pub expiry_warning_secs: i64,
    /// Which identity headers are set, and which names are stripped.
    pub headers: HeaderPlan,
    /// Parsed certificates kept per worker.
    pub cache_size: usize,
    /// How the application reads paths (case, `;` parameters).
    pub paths: PathSettings,
    /// Which verified access tokens must be bound to the certificate.
    pub bound_tokens: Option<BoundTokens>,
    /// What the operator should know about this policy (logged at load).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
/// One compiled rule: where it applies, and what it asks of the caller.
pub struct Rule {
    /// Unique; shown in headers, replies and metrics.
    pub name: String,
    /// The paths it applies to.
    pub path: PathMatch,
    /// Uppercase methods; `None` for any.
    pub methods: Option<Vec<String>>,
    /// Host patterns (port removed before matching); `None` for any.
    pub hosts: Option<Vec<Glob>>,
    /// Who it admits.
    pub access: Access,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// The paths a rule applies to.
pub enum PathMatch {
    /// Every path.
    Any,
    /// This path and everything below it (`path_prefix`), kept without a
    /// trailing `/`: `/admin` covers `/admin`, `/admin/`, `/admin/x`, not
    /// `/administrator`.
    Under(String),
    /// Exactly this path (`path`).
    Exact(String),
}

impl PathMatch {
    /// Whether a reading of the request's path is one this rule applies to.
    pub fn matches(&self, reading: &Reading) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Under(p) => path::is_under(&reading.path, p, reading.fold_case),
            PathMatch::Exact(p) => path::is_same(&reading.path, p, reading.fold_case),
        }
    }
}

#[derive(Debug, Clone)]
/// Who a rule admits.
pub enum Access {
    /// Anyone; a certificate, if sent and usable, still yields identity headers.
    Anonymous,
    /// A usable certificate that meets every requirement.
    Certificate(Requirements),
}

/// Allow-lists: ANDed across fields, ORed within one. `None` means any.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    /// Issuer DN patterns.
    pub issuer: Option<Vec<DnPattern>>,
    /// Issuer common-name patterns.
    pub issuer_cn: Option<Vec<Glob>>,
    /// Subject DN patterns.
    pub subject: Option<Vec<DnPattern>>,
    /// Subject common-name patterns.
    pub subject_cn: Option<Vec<Glob>>,
    /// URI SAN patterns.
    pub san_uri: Option<Vec<Glob>>,
    /// DNS SAN patterns.
    pub san_dns: Option<Vec<Glob>>,
    /// E-mail SAN patterns.
    pub san_email: Option<Vec<EmailPattern>>,
    /// SPIFFE ID patterns.
    pub spiffe: Option<Vec<Glob>>,
    /// The verified access token must be bound to the certificate (the
    /// policy's `bound_tokens`).
    pub bound_token: bool,
}

/// What the filter knows of the peer's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// No certificate was sent.
    None,
    /// One was sent but the proxy did not verify it.
    Unverified,
    /// One was sent and the proxy does not say whether it verified it.
    VerificationUnknown,
    /// One was sent and verified, but could not be read: why.
    Unreadable(String),
    /// One was sent, verified, and read: the identity it proves.
    Verified(Rc<PeerIdentity>),
}

impl Peer {
    /// The identity, when the certificate was verified and read.
    pub fn identity(&self) -> Option<&PeerIdentity> {
        match self {
            Peer::Verified(id) => Some(id),
            _ => None,
        }
    }
}

/// The facts of one request that the policy looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// `:path` as received, query included.
    pub path: &'a str,
    /// `:method`.
    pub method: &'a str,
    /// `:authority`, port included or not.
    pub host: &'a str,
    /// Who is calling.
    pub peer: &'a Peer,
    /// The access token `jwt_authn` verified, if the policy reads tokens.
    pub token: &'a Token,
}

/// Every reason for a deny, as written in replies, logs and metrics. (The
/// book's deny-reasons page is written from these doc comments.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename_all = "snake_case"))]
pub enum DenyReason {
    /// No certificate, on a rule that needs one.
    CertificateRequired,
    /// The proxy says it did not verify the certificate (`peer_certificate_valid` 0: an untrusted
    /// chain, or a resumed TLS session on Envoy 1.39+ without `"verification": "listener"`).
    CertificateNotVerified,
    /// The proxy does not say whether it verified the certificate (Envoy before 1.39) and the
    /// policy does not set `"verification": "listener"`; Envoy's log says so once per worker.
    VerificationUnknown,
    /// A verified certificate that cannot be read (not DER X.509, a malformed SAN extension).
    UnparseableCertificate,
    /// On the policy's deny lists, `deny.serials` or `deny.sha256`.
    Revoked,
    /// Past its `notAfter`, by the host clock.
    Expired,
    /// Before its `notBefore`, by the host clock.
    NotYetValid,
    /// A check needs what the identity source lacks (the issuer or serial, from Envoy's
    /// properties alone).
    IdentityIncomplete,
    /// The issuer meets none of the rule's issuer patterns.
    IssuerNotAllowed,
    /// The subject meets none of the rule's subject patterns.
    SubjectNotAllowed,
    /// No SAN meets the rule's SAN patterns (a SAN that fails its standard meets none).
    SanNotAllowed,
    /// The SPIFFE ID meets none of the rule's patterns, or there is none (no URI SAN, several, or
    /// one that is no valid SPIFFE ID).
    SpiffeNotAllowed,
    /// No rule matched, and `default` is `deny`.
    NoMatchingRule,
    /// The path cannot be matched safely: an application could read it as another path (`.` or
    /// `..` segments, an encoded `/`, `\` or `;`, control characters...).
    BadPath,
    /// A host call the decision needs failed (or the dynamic module caught a panic): the request
    /// fails closed, in audit mode too.
    InternalError,
    /// The rule checks tokens, no token was verified, and `bound_tokens.without_token` is `deny`;
    /// the reply carries `www-authenticate: Bearer`.
    TokenMissing,
    /// The verified token has no `cnf["x5t#S256"]` (`www-authenticate: Bearer
    /// error="invalid_token"`).
    TokenUnbound,
    /// The verified token is bound to another certificate (`www-authenticate: Bearer
    /// error="invalid_token"`).
    TokenCertificateMismatch,
}

impl DenyReason {
    /// Every reason, in the order counters are defined.
    pub const ALL: [DenyReason; 18] = [
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
        DenyReason::TokenMissing,
        DenyReason::TokenUnbound,
        DenyReason::TokenCertificateMismatch,
    ];

    /// The reason as replies, logs and metrics write it (`subject_not_allowed`).
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
            DenyReason::TokenMissing => "token_missing",
            DenyReason::TokenUnbound => "token_unbound",
            DenyReason::TokenCertificateMismatch => "token_certificate_mismatch",
        }
    }

    /// The status of the local reply: the policy's for decisions, 400 for a
    /// path that cannot be matched safely, 500 when the host failed, 401 for
    /// a token (RFC 6750 §3.1, as RFC 8705 §3 asks).
    pub fn status(self, policy_status: u16) -> u16 {
        match self {
            DenyReason::BadPath => 400,
            DenyReason::InternalError => 500,
            DenyReason::TokenMissing | DenyReason::TokenUnbound | DenyReason::TokenCertificateMismatch => 401,
            _ => policy_status,
        }
    }

    /// The `www-authenticate` challenge of a 401 (RFC 6750 §3): a missing
    /// token gets a bare challenge, a token that is not bound to this
    /// certificate is an `invalid_token` (RFC 8705 §3).
    pub fn challenge(self) -> Option<&'static str> {
        match self {
            DenyReason::TokenMissing => Some("Bearer"),
            DenyReason::TokenUnbound | DenyReason::TokenCertificateMismatch => {
                Some("Bearer error=\"invalid_token\", error_description=\"the token is not bound to this client certificate\"")
            }
            _ => None,
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
/// The decision on a request.
pub enum Outcome {
    /// It goes on.
    Allow,
    /// It is refused, and why.
    Deny(DenyReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// The decision on a request, with the rule, the credential and the path that led to it.
pub struct Decision<'p> {
    /// Allow or deny (in audit mode, what enforce would do).
    pub outcome: Outcome,
    /// The rule that decided; `None` when no rule matched.
    pub rule: Option<&'p str>,
    /// Whether the peer's certificate could be used, and if not why.
    pub credential: Credential,
    /// The path as matched; `None` when it was refused. The application must
    /// get this one, not another spelling of it.
    pub path: Option<NormalPath>,
}

/// Decides one request. `now` is Unix seconds.
pub fn decide<'p>(policy: &'p Policy, facts: &RequestFacts<'_>, now: i64) -> Decision<'p> {
    let credential = credential(policy, facts.peer, now);
    let Some(path) = path::normalize(facts.path) else {
        return Decision {
            outcome: Outcome::Deny(DenyReason::BadPath),
            rule: None,
            credential,
            path: None,
        };
    };
    let host = strip_port(facts.host);
    let rule_of = |reading: &Reading| policy.rules.iter().position(|r| r.applies_to(reading, facts.method, host));
    // The rules of every reading an application may give the path, in policy
    // order (`None`, no rule, last); a path that is literally some rule's
    // exact `path` is that rule's alone.
    let literal = Reading {
        path: path.path.clone(),
        fold_case: policy.paths.case == PathCase::Insensitive,
    };
    let mut rules: Vec<Option<usize>> = match rule_of(&literal) {
        Some(i) if policy.rules.get(i).is_some_and(|r| matches!(r.path, PathMatch::Exact(_))) => vec![Some(i)],
        _ => match path::readings(&path.path, policy.paths) {
            Some(readings) => readings.iter().map(rule_of).collect(),
            None => {
                return Decision {
                    outcome: Outcome::Deny(DenyReason::BadPath),
                    rule: None,
                    credential,
                    path: None,
                }
            }
        },
    };
    rules.sort_by_key(|r| r.unwrap_or(usize::MAX));
    rules.dedup();
    // The request must pass each of them: the first deny decides; else the
    // first rule (the most specific, as rules are written) is the one named.
    let mut allowed = None;
    for index in rules {
        let rule = index.and_then(|i| policy.rules.get(i));
        let outcome = rule_outcome(policy, rule, credential, facts.peer, facts.token);
        if let Outcome::Deny(_) = outcome {
            return Decision {
                outcome,
                rule: rule.map(|r| r.name.as_str()),
                credential,
                path: Some(path),
            };
        }
        allowed = allowed.or(Some(rule));
    }
    let rule = allowed.flatten();
    Decision {
        outcome: Outcome::Allow,
        rule: rule.map(|r| r.name.as_str()),
        credential,
        path: Some(path),
    }
}

/// What one rule (or, `None`, the default) says of a request.
fn rule_outcome(policy: &Policy, rule: Option<&Rule>, credential: Credential, peer: &Peer, token: &Token) -> Outcome {
    let Some(rule) = rule else {
        return match policy.default {
            DefaultAction::Deny => Outcome::Deny(DenyReason::NoMatchingRule),
            DefaultAction::Allow => Outcome::Allow,
        };
    };
    match (&rule.access, credential, peer) {
        (Access::Anonymous, _, _) => Outcome::Allow,
        (Access::Certificate(_), Credential::None, _) => Outcome::Deny(DenyReason::CertificateRequired),
        (Access::Certificate(_), Credential::Failed(reason), _) => Outcome::Deny(reason),
        (Access::Certificate(req), Credential::Usable, Peer::Verified(id)) => {
            match req.check(id).and_then(|()| token_check(policy, req, id, token)) {
                Ok(()) => Outcome::Allow,
                Err(reason) => Outcome::Deny(reason),
            }
        }
        // Usable always comes with Verified; anything else fails closed.
        (Access::Certificate(_), Credential::Usable, _) => Outcome::Deny(DenyReason::InternalError),
    }
}

/// RFC 8705 §3: on a rule that checks tokens, the verified token's
/// `cnf["x5t#S256"]` must be this certificate's thumbprint.
fn token_check(policy: &Policy, req: &Requirements, id: &PeerIdentity, token: &Token) -> Result<(), DenyReason> {
    let Some(tokens) = policy.bound_tokens.as_ref().filter(|_| req.bound_token) else {
        return Ok(());
    };
    match token {
        Token::BoundTo(thumbprint) if Token::is_bound_to(thumbprint, &id.sha256) => Ok(()),
        Token::BoundTo(_) => Err(DenyReason::TokenCertificateMismatch),
        Token::Unbound => Err(DenyReason::TokenUnbound),
        Token::Missing if tokens.without_token == WithoutToken::Allow => Ok(()),
        Token::Missing => Err(DenyReason::TokenMissing),
        // the token is read whenever the policy has `bound_tokens`; if it was
        // not, fail closed
        Token::NotRead => Err(DenyReason::InternalError),
    }
}

fn credential(policy: &Policy, peer: &Peer, now: i64) -> Credential {
    let id = match peer {
        Peer::None => return Credential::None,
        Peer::Unverified => return Credential::Failed(DenyReason::CertificateNotVerified),
        Peer::VerificationUnknown => return Credential::Failed(DenyReason::VerificationUnknown),
        Peer::Unreadable(_) => return Credential::Failed(DenyReason::UnparseableCertificate),
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
    /// Whether this rule is for a request with this path reading, method and host.
    pub fn applies_to(&self, reading: &Reading, method: &str, host: &str) -> bool {
        self.path.matches(reading)
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
        for (list, values) in [(&self.san_uri, &id.san_uri), (&self.san_dns, &id.san_dns)] {
            if let Some(list) = list {
                if !any_glob(list, values) {
                    return Err(DenyReason::SanNotAllowed);
                }
            }
        }
        if let Some(list) = &self.san_email {
            if !id.san_email.iter().any(|v| list.iter().any(|p| p.matches(v))) {
                return Err(DenyReason::SanNotAllowed);
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
