//! One request, start to end, over an abstract [`Host`]: strip spoofed
//! identity headers, find the peer's identity, decide, then reply or set the
//! identity headers. The wasm glue implements `Host` with proxy-wasm calls;
//! tests implement it with a map.

use std::rc::Rc;

use crate::cache::{IdentityCache, Parsed};
use crate::client_cert::{self, CertificateFields};
use crate::headers::HeaderKind;
use crate::identity::{IdentitySource, PeerIdentity};
use crate::policy::{
    decide, Credential, DenyReason, IdentitySourceSetting, Mode, Outcome, Peer, Policy, RequestFacts, Verification,
};
use crate::reply::{deny_reply, reply_body};
use crate::xfcc;

/// A host call failed; the request fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host call {call} failed: {status}")]
pub struct HostError {
    pub call: &'static str,
    pub status: String,
}

/// What certgate needs from the proxy for one request.
pub trait Host {
    /// Every request header, repeated names included, values as bytes.
    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError>;
    /// Removes every header with this exact name.
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;
    /// Adds a header. certgate adds only names it stripped first, so there is
    /// never one to replace (and appending is the cheaper call in Envoy).
    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Replaces a header's value (`:path`, when the request goes on under the
    /// spelling of its path that the rules matched).
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// A property such as `connection.peer_certificate`; `None` if the host has none.
    fn property(&mut self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError>;
    /// Answers the request locally; it goes no further.
    fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError>;
}

/// What happened to a request, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The request goes on to the application.
    pub forwarded: bool,
    /// The decision (in audit mode, what enforce mode would have done).
    pub outcome: Outcome,
    pub rule: Option<String>,
    pub credential: Credential,
    pub cn: Option<String>,
    /// The certificate is within the expiry warning window.
    pub expiring_soon: bool,
    /// The certificate was parsed for this request (not found in the cache).
    pub cache_miss: bool,
    /// Spoofed identity headers removed.
    pub stripped: usize,
    /// Why the identity could not be read, for the log.
    pub identity_error: Option<String>,
}

/// Where things are in the property tree (Envoy's attribute names).
pub mod property {
    pub const PEER_CERTIFICATE: &[&str] = &["connection", "peer_certificate"];
    pub const PEER_CERTIFICATE_VALID: &[&str] = &["connection", "peer_certificate_valid"];
    pub const SHA256_DIGEST: &[&str] = &["connection", "sha256_peer_certificate_digest"];
    pub const SUBJECT: &[&str] = &["connection", "subject_peer_certificate"];
    pub const URI_SAN: &[&str] = &["connection", "uri_san_peer_certificate"];
    pub const DNS_SAN: &[&str] = &["connection", "dns_san_peer_certificate"];
}

pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

/// The peer as found, before the policy looks at it.
enum Found {
    None,
    Unverified,
    VerificationUnknown,
    Unreadable(String),
    Identity(Rc<PeerIdentity>),
}

impl From<Parsed> for Found {
    fn from(parsed: Parsed) -> Found {
        match parsed {
            Ok(id) => Found::Identity(id),
            Err(e) => Found::Unreadable(e.to_string()),
        }
    }
}

/// Runs the whole filter for one request's headers.
pub fn admit(host: &mut dyn Host, policy: &Policy, cache: &mut IdentityCache, now: i64) -> Admission {
    match admit_inner(host, policy, cache, now) {
        Ok(a) => a,
        Err(e) => {
            // Fail closed, even in audit mode: without the headers we cannot
            // know what the application would be told.
            let reason = DenyReason::InternalError;
            let body = reply_body(reason, None);
            let _ = host.send_local_response(reason.status(policy.deny_status), &[("content-type", "application/json")], body.as_bytes());
            Admission {
                forwarded: false,
                outcome: Outcome::Deny(reason),
                rule: None,
                credential: Credential::None,
                cn: None,
                expiring_soon: false,
                cache_miss: false,
                stripped: 0,
                identity_error: Some(e.to_string()),
            }
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

    let text = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
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

    // 3. Decide.
    let facts = RequestFacts { path: &path, method: &method, host: &authority, peer };
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
    };

    // 4. Reply, or tell the application who is calling.
    if let (Outcome::Deny(reason), Mode::Enforce) = (decision.outcome, policy.mode) {
        let reply = deny_reply(reason, decision.rule, policy.deny_status, &text("accept"));
        host.send_local_response(
            reply.status,
            &[("content-type", reply.content_type), ("cache-control", "no-store")],
            reply.body.as_bytes(),
        )?;
        return Ok(Admission { forwarded: false, ..admission });
    }
    // The application gets the path the rules matched, not another spelling
    // of it (`/%61dmin//x` goes on as `/admin/x`).
    if let Some(normal) = decision.path.as_ref().filter(|n| !n.is_spelled(&path)) {
        host.set_request_header(":path", &format!("{}{}", normal.path, normal.query))?;
    }
    let plan = &policy.headers;
    // RFC 9440: from the PEM the proxy gave for this request, not the cache
    let wants_certificate = plan.set.iter().any(|(k, _)| matches!(k, HeaderKind::ClientCert | HeaderKind::ClientCertChain));
    let certificate = match usable {
        Some(id) if wants_certificate => certificate_fields(host, policy, id, &headers)?,
        _ => CertificateFields::default(),
    };
    for (kind, name) in &plan.set {
        let value = match kind {
            HeaderKind::Verified => Some(decision.credential.verify_status().to_owned()),
            HeaderKind::Rule => decision.rule.map(str::to_owned),
            HeaderKind::Audit => match decision.outcome {
                Outcome::Deny(reason) => Some(format!(
                    "deny; reason={}; rule={}",
                    reason.as_str(),
                    decision.rule.unwrap_or("-")
                )),
                Outcome::Allow => None,
            },
            HeaderKind::ClientCert => certificate.client_cert.clone(),
            HeaderKind::ClientCertChain => certificate.chain.clone(),
            kind => usable.and_then(|id| kind.identity_value(id, now)),
        };
        if let Some(value) = value {
            host.add_request_header(name, &value)?;
        }
    }
    Ok(admission)
}

fn flag(host: &mut dyn Host, path: &[&str]) -> Result<Option<bool>, HostError> {
    Ok(host.property(path)?.map(|v| v.first().copied().unwrap_or(0) != 0))
}

fn utf8(v: Option<Vec<u8>>) -> Option<String> {
    v.and_then(|v| String::from_utf8(v).ok()).filter(|s| !s.is_empty())
}

fn find_peer(
    host: &mut dyn Host,
    policy: &Policy,
    cache: &mut IdentityCache,
    headers: &[(String, Vec<u8>)],
    cache_miss: &mut bool,
) -> Result<Found, HostError> {
    let from_cache = |cache: &mut IdentityCache, key: &str, miss: &mut bool, parse: &dyn Fn() -> _| {
        let (parsed, was_miss) = cache.get_or_parse(key, parse);
        *miss = was_miss;
        Found::from(parsed)
    };
    let xfcc_values = xfcc_values(headers);

    if policy.identity_source == IdentitySourceSetting::Xfcc {
        // The operator vouches that a proxy in front sanitises this header.
        if xfcc_values.is_empty() {
            return Ok(Found::None);
        }
        return Ok(match xfcc::nearest_element(xfcc_values.iter().map(String::as_str)) {
            Err(e) => Found::Unreadable(format!("x-forwarded-client-cert: {e}")),
            Ok(el) => match el.cert_pem() {
                None => Found::Unreadable("x-forwarded-client-cert has no Cert".into()),
                Some(Err(e)) => Found::Unreadable(format!("x-forwarded-client-cert Cert: {e}")),
                Some(Ok(pem)) => {
                    let key = el.get("hash").map(str::to_ascii_lowercase).unwrap_or_else(|| String::from_utf8_lossy(&pem).into_owned());
                    from_cache(cache, &key, cache_miss, &|| PeerIdentity::from_pem(&pem, IdentitySource::Xfcc))
                }
            },
        });
    }

    // Everything else starts from this connection's certificate.
    let Some(digest) = utf8(host.property(property::SHA256_DIGEST)?) else {
        return Ok(Found::None);
    };
    let digest = digest.to_ascii_lowercase();
    // Under `verification: listener` the operator vouches for the listener,
    // so the flag could not change the answer and is not read.
    if policy.verification == Verification::ProxyFlag {
        match flag(host, property::PEER_CERTIFICATE_VALID)? {
            Some(true) => {}
            Some(false) => return Ok(Found::Unverified),
            // Envoy before 1.39 has no flag: it cannot say, so fail closed
            // with a reason that points at the setting.
            None => return Ok(Found::VerificationUnknown),
        }
    }
    if policy.identity_source != IdentitySourceSetting::Properties {
        if let Some(hit) = cache.get(&digest) {
            return Ok(Found::from(hit));
        }
        if let Some(pem) = host.property(property::PEER_CERTIFICATE)?.filter(|p| !p.is_empty()) {
            return Ok(from_cache(cache, &digest, cache_miss, &|| PeerIdentity::from_pem_with_digest(&pem, IdentitySource::PeerCertificate, Some(&digest))));
        }
        if policy.identity_source == IdentitySourceSetting::PeerCertificate {
            return Ok(Found::Unreadable("the proxy gives no connection.peer_certificate".into()));
        }
        // Auto: the XFCC element this proxy added, if it holds this connection's certificate.
        if let Some(id) = xfcc_identity_of(&xfcc_values, &digest) {
            *cache_miss = true;
            let id = Rc::new(id);
            cache.insert(digest, Ok(Rc::clone(&id)));
            return Ok(Found::Identity(id));
        }
    }
    // Last resort: the subject and first SANs Envoy gives.
    let Some(subject) = utf8(host.property(property::SUBJECT)?) else {
        return Ok(Found::Unreadable("the proxy gives neither the certificate nor its subject".into()));
    };
    let uri = utf8(host.property(property::URI_SAN)?);
    let dns = utf8(host.property(property::DNS_SAN)?);
    Ok(match PeerIdentity::from_properties(&subject, uri.as_deref(), dns.as_deref(), &digest) {
        Ok(id) => Found::Identity(Rc::new(id)),
        Err(e) => Found::Unreadable(e.to_string()),
    })
}

/// RFC 9440's fields for a usable identity: the leaf from the property or the
/// XFCC element it came from, the chain from that element's `Chain=` (Envoy's
/// `set_current_client_cert_details: { chain: true }`); each only if it holds
/// this very certificate.
fn certificate_fields(host: &mut dyn Host, policy: &Policy, id: &PeerIdentity, headers: &[(String, Vec<u8>)]) -> Result<CertificateFields, HostError> {
    let values = xfcc_values(headers);
    let element = xfcc::nearest_element(values.iter().map(String::as_str)).ok().filter(|el| {
        policy.identity_source == IdentitySourceSetting::Xfcc || el.get("hash").is_some_and(|h| h.eq_ignore_ascii_case(&id.sha256))
    });
    let leaf = match id.source {
        IdentitySource::PeerCertificate => host.property(property::PEER_CERTIFICATE)?,
        IdentitySource::Xfcc => element.as_ref().and_then(|el| el.cert_pem()).and_then(Result::ok),
        IdentitySource::Properties => None,
    };
    let chain = element.as_ref().and_then(|el| el.get("chain")).and_then(|c| xfcc::percent_decode(c).ok());
    Ok(client_cert::certificate_fields(leaf.as_deref(), chain.as_deref(), &id.sha256))
}

/// Every `x-forwarded-client-cert` value of a request, as text.
fn xfcc_values(headers: &[(String, Vec<u8>)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(XFCC_HEADER))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// The certificate in the nearest XFCC element, if it is the one with `digest`.
fn xfcc_identity_of(values: &[String], digest: &str) -> Option<PeerIdentity> {
    if values.is_empty() {
        return None;
    }
    let element = xfcc::nearest_element(values.iter().map(String::as_str)).ok()?;
    let pem = element.cert_pem()?.ok()?;
    let id = PeerIdentity::from_pem(&pem, IdentitySource::Xfcc).ok()?;
    (id.sha256 == digest).then_some(id)
}
