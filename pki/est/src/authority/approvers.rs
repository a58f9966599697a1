//! Who may approve: the client certificate, verified by this server's TLS
//! or handed on by the trusted proxy, must be admitted to `/approvals/` by a
//! certgate policy — the same file, and the same decision code
//! (`certgate_core::policy::decide`), as the gate in front of the page. A
//! requester chooses the names in a CSR, never this file.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use certgate_core::config::parse_policy;
use certgate_core::identity::{IdentitySource, PeerIdentity};
use certgate_core::path::Reading;
use certgate_core::policy::{decide, Access, DefaultAction, Outcome, Peer, Policy, RequestFacts, Requirements};
use certgate_core::token::Token;
use ring::hmac;

/// The path every approvals request is decided for.
pub const APPROVALS: &str = "/approvals/";

/// The approvers' policy.
#[derive(Debug)]
pub struct Approvers {
    policy: Policy,
    csrf: hmac::Key,
}

/// An approver, as their certificate shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// The certificate's subject, as the audit log writes it (RFC 2253).
    pub subject: String,
    /// The same, as people read it (letters as they are).
    pub shown: String,
    /// The rule that admitted them.
    pub rule: String,
    /// The certificate's SHA-256, lower-case hex: what the CSRF token is bound to.
    pub sha256: String,
}

/// Why the approvers' policy cannot be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ApproversError {
    /// It cannot be read.
    #[error("--approvers {}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// It is no certgate policy.
    #[error("--approvers {}: {cause}", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// What the policy parser says.
        cause: certgate_core::config_error::ConfigError,
    },
    /// It admits someone without a certificate, or any certificate.
    #[error("--approvers {}: the policy admits {APPROVALS} {why}; approvers must be named by a rule that needs a certificate and names whose", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Which rule, and how.
        why: String,
    },
    /// No randomness for the CSRF key.
    #[error("no random bytes for the CSRF key")]
    Random,
}

/// Why a client is not an approver (403, the sentence says why): for the
/// log with the subject in RFC 2253's machine form, for a page as people
/// read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{log}")]
pub struct NotApprover {
    /// The sentence for the log.
    pub log: String,
    /// The sentence for a page.
    pub page: String,
}

impl NotApprover {
    fn same(why: String) -> NotApprover {
        NotApprover {
            log: why.clone(),
            page: why,
        }
    }
}

fn now() -> i64 {
    certgate_pki::profile::now().unix_timestamp()
}

/// How a policy would let someone who is not named into the approvals
/// page, whatever the host or method: a rule for the page, reached before
/// one that takes every request for it, that is anonymous (even limited to
/// a host) or names no one (no allow-list: any certificate of a CA served
/// would do), or a default that allows.
fn open_to_anyone(policy: &Policy) -> Option<String> {
    let page = Reading {
        path: APPROVALS.to_owned(),
        fold_case: true,
    };
    for rule in policy.rules.iter().filter(|r| r.path.matches(&page)) {
        match &rule.access {
            Access::Anonymous => return Some(format!("without a client certificate (rule {}, anonymous)", rule.name)),
            Access::Certificate(req) if !names_anyone(req) => {
                return Some(format!(
                    "to any client certificate (rule {} has no allow-list: no issuer, subject or SAN it must match)",
                    rule.name
                ))
            }
            // it takes every request for the page: no later rule is reached
            Access::Certificate(_) if rule.hosts.is_none() && rule.methods.is_none() => return None,
            Access::Certificate(_) => {}
        }
    }
    (policy.default == DefaultAction::Allow).then(|| "without a client certificate (its default allows)".to_owned())
}

/// Whether a rule's requirements name whom they admit (an allow-list of
/// issuer, subject or a SAN); the token binding alone names no one.
fn names_anyone(req: &Requirements) -> bool {
    req.issuer.is_some()
        || req.issuer_cn.is_some()
        || req.subject.is_some()
        || req.subject_cn.is_some()
        || req.san_uri.is_some()
        || req.san_dns.is_some()
        || req.san_email.is_some()
        || req.spiffe.is_some()
}

impl Approvers {
    /// Reads the policy file; refuses one that lets a client without a
    /// certificate reach `/approvals/`.
    pub fn load(path: &Path) -> Result<Approvers, ApproversError> {
        let json = std::fs::read(path).map_err(|cause| ApproversError::Read {
            path: path.to_owned(),
            cause,
        })?;
        let policy = parse_policy(&json).map_err(|cause| ApproversError::Policy {
            path: path.to_owned(),
            cause,
        })?;
        if let Some(why) = open_to_anyone(&policy) {
            return Err(ApproversError::Open {
                path: path.to_owned(),
                why,
            });
        }
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret).map_err(|_| ApproversError::Random)?;
        Ok(Approvers {
            policy,
            csrf: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        })
    }

    /// The approver a certificate (DER, already verified) proves, for a
    /// request with this method and host.
    pub fn check(&self, cert: Option<&[u8]>, method: &str, host: &str) -> Result<Approver, NotApprover> {
        let der =
            cert.ok_or_else(|| NotApprover::same("the approvals page needs an approver's client certificate, and none was sent".into()))?;
        let identity = PeerIdentity::from_der(der, IdentitySource::PeerCertificate)
            .map_err(|e| NotApprover::same(format!("the client certificate cannot be read: {e}")))?;
        let (subject, shown, sha256) = (identity.subject.text.clone(), identity.subject.readable(), identity.sha256.clone());
        let peer = Peer::Verified(Rc::new(identity));
        let facts = RequestFacts {
            path: APPROVALS,
            method,
            host,
            peer: &peer,
            token: &Token::NotRead,
        };
        let decision = decide(&self.policy, &facts, now());
        match decision.outcome {
            Outcome::Allow => Ok(Approver {
                subject,
                shown,
                rule: decision.rule.unwrap_or("default").to_owned(),
                sha256,
            }),
            Outcome::Deny(reason) => {
                let why = |who: &str| {
                    format!(
                        "{who} is not an approver: the approvers' policy says {} on {APPROVALS}{}",
                        reason.as_str(),
                        decision.rule.map(|r| format!(" (rule {r})")).unwrap_or_default()
                    )
                };
                Err(NotApprover {
                    log: why(&subject),
                    page: why(&shown),
                })
            }
        }
    }

    /// The CSRF token of an approver's forms: an HMAC of their certificate
    /// under a key made at start, so it is theirs alone and ends with the process.
    pub fn csrf_token(&self, approver: &Approver) -> String {
        certgate_x509::text::hex(hmac::sign(&self.csrf, approver.sha256.as_bytes()).as_ref())
    }

    /// Whether a form's token is the approver's (compared in constant time).
    pub fn csrf_ok(&self, approver: &Approver, token: &str) -> bool {
        let Some(bytes) = certgate_x509::text::from_hex(token) else {
            return false;
        };
        hmac::verify(&self.csrf, approver.sha256.as_bytes(), &bytes).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client certificate for `cn` (O=Example), issued by a CA named
    /// `issuer_cn`, DER.
    fn cert(cn: &str, issuer_cn: &str) -> Vec<u8> {
        let mut ca = rcgen::CertificateParams::default();
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name.push(rcgen::DnType::CommonName, issuer_cn);
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = rcgen::Issuer::new(ca, rcgen::KeyPair::generate().unwrap());
        let mut params = rcgen::CertificateParams::default();
        // RFC 2253 writes the last RDN first: CN=...,O=Example
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example");
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params
            .signed_by(&rcgen::KeyPair::generate().unwrap(), &issuer)
            .unwrap()
            .der()
            .to_vec()
    }

    fn approvers(policy: &str) -> Result<Approvers, ApproversError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("approvers.json");
        std::fs::write(&file, policy).unwrap();
        Approvers::load(&file)
    }

    const CAROL: &str =
        r#"{"rules":[{"name":"approvers","path_prefix":"/approvals/","issuer_cn":["Staff CA"],"subject":["CN=carol,O=Example"]}]}"#;

    #[test]
    fn the_policy_decides_who_approves_as_the_filter_would() {
        let a = approvers(CAROL).unwrap();
        let carol = a.check(Some(&cert("carol", "Staff CA")), "GET", "est.example").unwrap();
        assert_eq!(carol.subject, "CN=carol,O=Example");
        assert_eq!(carol.rule, "approvers");
        let bob = a.check(Some(&cert("bob", "Staff CA")), "GET", "est.example").unwrap_err();
        assert!(
            bob.log.contains("CN=bob,O=Example is not an approver") && bob.page.contains("subject_not_allowed"),
            "{bob}"
        );
        // carol's name from another CA is not carol
        let other = a.check(Some(&cert("carol", "People CA")), "GET", "est.example").unwrap_err();
        assert!(other.log.contains("issuer_not_allowed"), "{other}");
        let none = a.check(None, "GET", "est.example").unwrap_err();
        assert!(none.page.contains("none was sent"), "{none}");
        let garbage = a.check(Some(b"not a certificate"), "GET", "est.example").unwrap_err();
        assert!(garbage.page.contains("cannot be read"), "{garbage}");
    }

    #[test]
    fn a_policy_that_admits_the_page_without_a_certificate_is_refused() {
        for (open, says) in [
            (
                r#"{"rules":[{"name":"all","path_prefix":"/","anonymous":true}]}"#,
                "without a client certificate (rule all, anonymous)",
            ),
            (
                r#"{"rules":[{"name":"other","path_prefix":"/elsewhere/","subject":["CN=carol"]}],"default":"allow"}"#,
                "its default allows",
            ),
            // anonymous for one host only: still anonymous there
            (
                r#"{"rules":[{"name":"intranet","path_prefix":"/approvals/","hosts":["intranet.example"],"anonymous":true},{"name":"approvers","path_prefix":"/approvals/","subject_cn":["carol"]}]}"#,
                "rule intranet, anonymous",
            ),
            // a certificate, but anyone's
            (
                r#"{"rules":[{"name":"anyone","path":"/approvals/"}]}"#,
                "rule anyone has no allow-list",
            ),
            // approvers for GET only: a later anonymous rule takes the rest
            (
                r#"{"rules":[{"name":"approvers","path_prefix":"/approvals/","methods":["GET"],"subject_cn":["carol"]},{"name":"pages","path_prefix":"/","anonymous":true}]}"#,
                "rule pages, anonymous",
            ),
        ] {
            let err = approvers(open).unwrap_err();
            assert!(matches!(err, ApproversError::Open { .. }), "{err}");
            assert!(err.to_string().contains(says), "{says:?} not in {err}");
        }
        // an anonymous rule after the approvers' rule is never reached for the page
        approvers(r#"{"rules":[{"name":"approvers","path_prefix":"/approvals/","subject_cn":["carol"]},{"name":"pages","path_prefix":"/","anonymous":true}]}"#)
            .unwrap();
        let err = approvers("{").unwrap_err();
        assert!(matches!(err, ApproversError::Policy { .. }), "{err}");
        assert!(err.to_string().contains("approvers.json"), "the file is named: {err}");
    }

    #[test]
    fn the_csrf_token_is_the_approvers_own_and_this_process_own() {
        let a = approvers(CAROL).unwrap();
        let carol = a.check(Some(&cert("carol", "Staff CA")), "GET", "h").unwrap();
        let token = a.csrf_token(&carol);
        assert!(a.csrf_ok(&carol, &token));
        assert!(!a.csrf_ok(&carol, ""));
        assert!(!a.csrf_ok(&carol, &token.chars().skip(2).collect::<String>()));
        assert!(!a.csrf_ok(&carol, &"0".repeat(64)));
        // another carol certificate (another key) has another token
        let carol2 = a.check(Some(&cert("carol", "Staff CA")), "GET", "h").unwrap();
        assert!(!a.csrf_ok(&carol2, &token));
        // a restarted server has another key
        let restarted = approvers(CAROL).unwrap();
        assert!(!restarted.csrf_ok(&carol, &token));
    }
}
