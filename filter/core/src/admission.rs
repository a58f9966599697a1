//! One request, start to end, over an abstract [`Host`]: strip spoofed
//! identity headers, find the peer's identity ([`crate::peer`]), decide, then
//! reply or set the identity headers.

use std::borrow::Cow;

use certgate_decision::{Published, Verdict};

use crate::cache::IdentityCache;
use crate::client_cert::CertificateFields;
use certgate_x509::text::encode_value;

use crate::headers::HeaderKind;
use crate::host::header_text;
pub use crate::host::{property, Host, HostError, XFCC_HEADER};
use crate::identity::RefusedName;
use crate::peer::{certificate_fields, find_peer, Found};
use crate::policy::{decide, Credential, DenyReason, Mode, Outcome, Peer, Policy, RequestFacts};
use crate::reply::{deny_reply, reply_body};
use crate::token::{read_token, Token};

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
    /// Why the identity could not be read, for the log.
    pub identity_error: Option<String>,
    /// The certificate's names that fail their standard, when it was first
    /// seen (so each is logged and counted once per certificate).
    pub refused: Vec<RefusedName>,
}

/// Runs the whole filter for one request's headers.
pub fn admit(host: &mut dyn Host, policy: &Policy, cache: &mut IdentityCache, now: i64) -> Admission {
    match admit_inner(host, policy, cache, now) {
        Ok(a) => a,
        Err(e) => {
            // Fail closed, even in audit mode: without the headers we cannot
            // know what the application would be told.
            let admission = Admission::failed_closed(e.to_string());
            let _ = send_failed_closed(host, policy.deny_status);
            admission
        }
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
    /// decided (a host call failed, or the glue caught a panic): `why` goes
    /// to the log.
    pub fn failed_closed(why: String) -> Admission {
        Admission {
            forwarded: false,
            outcome: Outcome::Deny(DenyReason::InternalError),
            rule: None,
            credential: Credential::None,
            cn: None,
            expiring_soon: false,
            cache_miss: false,
            stripped: 0,
            identity_error: Some(why),
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
                "{} reason={} rule={rule} cn={cn}{}",
                self.verdict().as_str(),
                reason.as_str(),
                self.identity_error
                    .as_deref()
                    .map(|e| format!(" identity_error=\"{}\"", encode_value(e)))
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
    let mut stripped: Vec<&str> = Vec::new();
    for (name, _) in &headers {
        if policy.headers.strips(name) && !stripped.contains(&name.as_str()) {
            stripped.push(name);
        }
    }
    for name in &stripped {
        host.remove_request_header(name)?;
    }

    let text = |name: &str| header_text(&headers, name);
    let path = text(":path");
    let method = text(":method");
    let mut authority = text(":authority");
    if authority.is_empty() {
        authority = text("host");
    }

    // 2. Who is calling.
    let mut cache_miss = false;
    let found = find_peer(host, policy, cache, &headers, &mut cache_miss)?;
    let (peer, identity_error) = match &found {
        Found::None => (Peer::None, None),
        Found::Unverified => (Peer::Unverified, None),
        Found::VerificationUnknown => (Peer::VerificationUnknown, None),
        Found::Unreadable(e) => (Peer::Unreadable, Some(e.clone())),
        Found::Identity(id) => (Peer::Verified(id), None),
    };

    // 3. The access token jwt_authn verified, when the policy checks tokens
    // and there is a certificate to bind it to.
    let token = match (&policy.bound_tokens, peer) {
        (Some(tokens), Peer::Verified(_)) => read_token(host, tokens, &headers)?,
        _ => Token::NotRead,
    };

    // 4. Decide.
    let facts = RequestFacts {
        path: &path,
        method: &method,
        host: &authority,
        peer,
        token: &token,
    };
    let decision = decide(policy, &facts, now);
    let usable = match (decision.credential, peer) {
        (Credential::Usable, Peer::Verified(id)) => Some(id),
        _ => None,
    };
    let expiring_soon = usable
        .and_then(|id| id.not_after)
        .is_some_and(|t| t.saturating_sub(now) <= policy.expiry_warning_secs);
    let admission = Admission {
        forwarded: true,
        outcome: decision.outcome,
        rule: decision.rule.map(str::to_owned),
        credential: decision.credential,
        cn: usable.and_then(|id| id.cn()).map(str::to_owned),
        expiring_soon,
        cache_miss,
        stripped: stripped.len(),
        identity_error,
        refused: match &found {
            Found::Identity(id) if cache_miss => id.refused.clone(),
            _ => Vec::new(),
        },
    };

    // 5. Reply, or tell the application who is calling.
    if let (Outcome::Deny(reason), Mode::Enforce) = (decision.outcome, policy.mode) {
        let reply = deny_reply(reason, decision.rule, policy.deny_status, &text("accept"));
        let mut reply_headers = vec![("content-type", reply.content_type), ("cache-control", "no-store")];
        reply_headers.extend(reason.challenge().map(|c| ("www-authenticate", c)));
        host.send_local_response(reply.status, &reply_headers, reply.body.as_bytes())?;
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
    let plan = &policy.headers;
    // RFC 9440: from the PEM the proxy gave for this request, not the cache
    let wants_certificate = plan
        .set
        .iter()
        .any(|(k, _)| matches!(k, HeaderKind::ClientCert | HeaderKind::ClientCertChain));
    let certificate = match usable {
        Some(id) if wants_certificate => certificate_fields(host, policy, id, &headers)?,
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
    Ok(admission)
}
