//! One request, start to end, over an abstract [`Host`]: strip spoofed
//! identity headers, find the peer's identity ([`crate::peer`]), decide, then
//! reply or set the identity headers.

use std::borrow::Cow;

use certgate_decision::{Published, Verdict};
use certgate_wire::Pair;
use certgate_x509::text::encode_value;

use crate::cache::IdentityCache;
use crate::client_cert::CertificateFields;
use crate::headers::HeaderKind;
use crate::host::{header_text, Host, HostError};
use crate::identity::{PeerIdentity, RefusedName};
use crate::peer::{certificate_fields, find_peer, PeerLookup};
use crate::policy::{decide, Credential, Decision, DenyReason, Mode, Outcome, Peer, Policy, RequestFacts};
use crate::reply::{deny_reply, reply_body};
use crate::token::{read_token, Token};

/// Why a request was not decided on a readable certificate: its certificate
/// could not be read, or the request could not be decided at all and failed
/// closed. For the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The peer's certificate could not be read; the request was decided as
    /// `unparseable_certificate`.
    #[error("{0}")]
    UnreadableCertificate(String),
    /// A host call failed: the request failed closed.
    #[error("{0}")]
    HostCall(HostError),
    /// The filter panicked (the glue caught it): the request failed closed.
    #[error("the filter panicked")]
    Panicked,
    /// The glue found its identity cache in use (a re-entrant call): the
    /// request failed closed.
    #[error("identity cache in use")]
    CacheInUse,
}

impl Failure {
    /// Whether the request failed closed for it (rather than being decided).
    pub fn failed_closed(&self) -> bool {
        !matches!(self, Failure::UnreadableCertificate(_))
    }
}

/// What happened to a request, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The request goes on to the application.
    pub forwarded: bool,
    /// The decision (in audit mode, what enforce mode would have done).
    pub outcome: Outcome,
    /// The rule that decided, if one matched.
    pub rule: Option<String>,
    /// Whether the peer's certificate could be used, and if not why.
    pub credential: Credential,
    /// The client's common name, when its certificate was usable.
    pub cn: Option<String>,
    /// The certificate is within the expiry warning window.
    pub expiring_soon: bool,
    /// The certificate was parsed for this request (not found in the cache).
    pub cache_miss: bool,
    /// Spoofed identity headers removed.
    pub stripped: usize,
    /// Why the certificate could not be read, or why the request failed closed.
    pub failure: Option<Failure>,
    /// The fail-closed reply could not be sent either (the proxy then
    /// answers the stopped request itself).
    pub reply_error: Option<HostError>,
    /// The certificate's names that fail their standard, when it was first
    /// seen (so each is logged and counted once per certificate).
    pub refused: Vec<RefusedName>,
}

/// Runs the whole filter for one request's headers.
pub fn admit(host: &mut dyn Host, policy: &Policy, cache: &mut IdentityCache, now: i64) -> Admission {
    match admit_inner(host, policy, cache, now) {
        Ok(a) => a,
        // Fail closed, even in audit mode: without the headers we cannot
        // know what the application would be told.
        Err(e) => fail_closed(host, policy.deny_status, Failure::HostCall(e)),
    }
}

/// Refuses a request that cannot be decided with the `internal_error`
/// reply; what happened, the reply's own failure included.
pub fn fail_closed(host: &mut dyn Host, policy_status: u16, failure: Failure) -> Admission {
    Admission {
        reply_error: send_failed_closed(host, policy_status).err(),
        ..Admission::failed_closed(failure)
    }
}

/// The `internal_error` reply (JSON) of a request that cannot be decided.
pub fn send_failed_closed(host: &mut dyn Host, policy_status: u16) -> Result<(), HostError> {
    let reason = DenyReason::InternalError;
    let body = reply_body(reason, None);
    host.send_local_response(
        reason.status(policy_status),
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
}

impl Admission {
    /// A request refused with `internal_error` because it could not be
    /// decided (a host call failed, or the glue caught a panic), whose reply
    /// was sent (or not) by the caller.
    pub fn failed_closed(failure: Failure) -> Admission {
        Admission {
            forwarded: false,
            outcome: Outcome::Deny(DenyReason::InternalError),
            rule: None,
            credential: Credential::None,
            cn: None,
            expiring_soon: false,
            cache_miss: false,
            stripped: 0,
            failure: Some(failure),
            reply_error: None,
            refused: Vec::new(),
        }
    }

    /// What became of the request: a deny that went on is audit mode's.
    pub fn verdict(&self) -> Verdict {
        match self.outcome {
            Outcome::Allow => Verdict::Allow,
            Outcome::Deny(_) if self.forwarded => Verdict::AuditDeny,
            Outcome::Deny(_) => Verdict::Deny,
        }
    }

    /// The decision as certgate publishes it (filter state).
    pub fn published(&self) -> Published {
        let reason = match self.outcome {
            Outcome::Allow => None,
            Outcome::Deny(r) => Some(r.as_str().to_owned()),
        };
        Published {
            decision: self.verdict(),
            reason,
            rule: self.rule.clone(),
            cn: self.cn.clone(),
        }
    }

    /// The proxy log's line for this request: allows at debug, denies and
    /// audit denies at info, an expiring certificate once (when first seen)
    /// at warn.
    pub fn log(&self) {
        let rule = self.rule.as_deref().unwrap_or("-");
        // the CN is the client's text: encoded so it cannot forge log lines
        let cn = self.cn.as_deref().map_or(Cow::Borrowed("-"), encode_value);
        match self.outcome {
            Outcome::Allow => log::debug!("allow rule={rule} cn={cn}"),
            Outcome::Deny(reason) => log::info!(
                "{} reason={} rule={rule} cn={cn}{}{}",
                self.verdict().as_str(),
                reason.as_str(),
                self.failure
                    .as_ref()
                    .map(|f| {
                        let key = if f.failed_closed() { "failed_closed" } else { "identity_error" };
                        format!(" {key}=\"{}\"", encode_value(&f.to_string()))
                    })
                    .unwrap_or_default(),
                self.reply_error
                    .as_ref()
                    .map(|e| format!(" reply_error=\"{}\"", encode_value(&e.to_string())))
                    .unwrap_or_default()
            ),
        }
        // once per certificate, when it is first seen; the counter counts requests
        if self.expiring_soon && self.cache_miss {
            log::warn!("certificate of cn={cn} expires soon");
        }
        for name in &self.refused {
            log::warn!(
                "certificate of cn={cn}: {} (\"{}\"): no rule matches it, no header carries it",
                name.why,
                encode_value(&name.value)
            );
        }
    }
}

fn admit_inner(host: &mut dyn Host, policy: &Policy, cache: &mut IdentityCache, now: i64) -> Result<Admission, HostError> {
    let headers = host.request_headers()?;

    // 1. No identity header from the client survives, whatever happens next.
    let stripped = strip_identity_headers(host, policy, &headers)?;

    let text = |name: &str| header_text(&headers, name);
    let path = text(":path");
    let method = text(":method");
    let mut authority = text(":authority");
    if authority.is_empty() {
        authority = text("host");
    }

    // 2. Who is calling.
    let PeerLookup { peer, cache_miss } = find_peer(host, policy, cache, &headers)?;

    // 3. The access token jwt_authn verified, when the policy checks tokens
    // and there is a certificate to bind it to.
    let token = match (&policy.bound_tokens, &peer) {
        (Some(tokens), Peer::Verified(_)) => read_token(host, tokens, &headers)?,
        _ => Token::NotRead,
    };

    // 4. Decide.
    let facts = RequestFacts {
        path: &path,
        method: &method,
        host: &authority,
        peer: &peer,
        token: &token,
    };
    let decision = decide(policy, &facts, now);
    let usable = peer.identity().filter(|_| decision.credential == Credential::Usable);
    let admission = Admission {
        forwarded: true,
        outcome: decision.outcome,
        rule: decision.rule.map(str::to_owned),
        credential: decision.credential,
        cn: usable.and_then(|id| id.cn()).map(str::to_owned),
        expiring_soon: usable
            .and_then(|id| id.not_after)
            .is_some_and(|t| t.saturating_sub(now) <= policy.expiry_warning_secs),
        cache_miss,
        stripped,
        failure: match &peer {
            Peer::Unreadable(why) => Some(Failure::UnreadableCertificate(why.clone())),
            _ => None,
        },
        reply_error: None,
        refused: match peer.identity() {
            Some(id) if cache_miss => id.refused.clone(),
            _ => Vec::new(),
        },
    };

    // 5. Reply, or tell the application who is calling.
    if let (Outcome::Deny(reason), Mode::Enforce) = (decision.outcome, policy.mode) {
        send_deny(host, policy, reason, decision.rule, &text("accept"))?;
        return Ok(Admission {
            forwarded: false,
            ..admission
        });
    }
    // The application gets the path the rules matched, not another spelling
    // of it (`/%61dmin//x` goes on as `/admin/x`).
    if let Some(normal) = decision.path.as_ref().filter(|n| !n.is_spelled(&path)) {
        host.set_request_header(":path", &format!("{}{}", normal.path, normal.query))?;
    }
    set_identity_headers(host, policy, &decision, usable, &headers, now)?;
    Ok(admission)
}

/// Removes every identity header the client sent (each name once, every
/// value of it); how many names were removed.
fn strip_identity_headers(host: &mut dyn Host, policy: &Policy, headers: &[Pair]) -> Result<usize, HostError> {
    let mut stripped: Vec<&str> = Vec::new();
    for (name, _) in headers {
        if policy.headers.strips(name) && !stripped.contains(&name.as_str()) {
            stripped.push(name);
        }
    }
    for name in &stripped {
        host.remove_request_header(name)?;
    }
    Ok(stripped.len())
}

/// The deny reply, in the form the client accepts.
fn send_deny(host: &mut dyn Host, policy: &Policy, reason: DenyReason, rule: Option<&str>, accept: &str) -> Result<(), HostError> {
    let reply = deny_reply(reason, rule, policy.deny_status, accept);
    let mut reply_headers = vec![("content-type", reply.content_type), ("cache-control", "no-store")];
    reply_headers.extend(reason.challenge().map(|c| ("www-authenticate", c)));
    host.send_local_response(reply.status, &reply_headers, reply.body.as_bytes())
}

/// Tells the application who is calling: each header of the policy's plan
/// that has a value for this request (identity headers only for a usable
/// certificate).
fn set_identity_headers(
    host: &mut dyn Host,
    policy: &Policy,
    decision: &Decision<'_>,
    usable: Option<&PeerIdentity>,
    headers: &[Pair],
    now: i64,
) -> Result<(), HostError> {
    let plan = &policy.headers;
    // RFC 9440: from the PEM the proxy gave for this request, not the cache
    let wants_certificate = plan
        .set
        .iter()
        .any(|(k, _)| matches!(k, HeaderKind::ClientCert | HeaderKind::ClientCertChain));
    let certificate = match usable {
        Some(id) if wants_certificate => certificate_fields(host, policy, id, headers)?,
        _ => CertificateFields::default(),
    };
    for (kind, name) in &plan.set {
        let value = match kind {
            HeaderKind::Verified => Some(Cow::Borrowed(decision.credential.verify_status())),
            HeaderKind::Rule => decision.rule.map(Cow::Borrowed),
            HeaderKind::Audit => match decision.outcome {
                Outcome::Deny(reason) => Some(Cow::Owned(format!(
                    "deny; reason={}; rule={}",
                    reason.as_str(),
                    decision.rule.unwrap_or("-")
                ))),
                Outcome::Allow => None,
            },
            HeaderKind::ClientCert => certificate.client_cert.as_deref().map(Cow::Borrowed),
            HeaderKind::ClientCertChain => certificate.chain.as_deref().map(Cow::Borrowed),
            kind => usable.and_then(|id| kind.identity_value(id, now)),
        };
        if let Some(value) = value {
            host.add_request_header(name, &value)?;
        }
    }
    Ok(())
}
