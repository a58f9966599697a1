//! Who is calling: the peer's identity for one request, from the
//! connection's certificate property, the XFCC element this proxy added, or
//! Envoy's subject properties, through the identity cache; and the RFC 9440
//! fields of that very certificate.

use std::rc::Rc;

use certgate_wire::Pair;

use crate::cache::{IdentityCache, Parsed};
use crate::client_cert::{self, CertificateFields};
use crate::host::{header_texts, property, Host, HostError, XFCC_HEADER};
use crate::identity::{IdentitySource, PeerIdentity};
use crate::policy::{IdentitySourceSetting, Peer, Policy, Verification};
use crate::xfcc::{self, XfccElement};

/// What [`find_peer`] found, and whether it parsed a certificate to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLookup {
    /// The peer, as the policy will look at it.
    pub peer: Peer,
    /// A certificate was parsed for this request (it was not in the cache).
    pub cache_miss: bool,
}

impl PeerLookup {
    fn cached(peer: Peer) -> PeerLookup {
        PeerLookup { peer, cache_miss: false }
    }

    fn parsed(peer: Peer) -> PeerLookup {
        PeerLookup { peer, cache_miss: true }
    }
}

impl From<Parsed> for Peer {
    fn from(parsed: Parsed) -> Peer {
        match parsed {
            Ok(id) => Peer::Verified(id),
            Err(e) => Peer::Unreadable(e.to_string()),
        }
    }
}

fn flag(host: &mut dyn Host, path: &[&str]) -> Result<Option<bool>, HostError> {
    Ok(host.property(path)?.map(|v| v.first().copied().unwrap_or(0) != 0))
}

fn utf8(v: Option<Vec<u8>>) -> Option<String> {
    v.and_then(|v| String::from_utf8(v).ok()).filter(|s| !s.is_empty())
}

/// Finds the peer of a request.
pub fn find_peer(host: &mut dyn Host, policy: &Policy, cache: &mut IdentityCache, headers: &[Pair]) -> Result<PeerLookup, HostError> {
    let from_cache = |cache: &mut IdentityCache, key: &str, parse: &dyn Fn() -> _| {
        let (parsed, cache_miss) = cache.get_or_parse(key, parse);
        PeerLookup {
            peer: Peer::from(parsed),
            cache_miss,
        }
    };
    // the XFCC header carries a whole PEM: copied only where it is read
    let xfcc_values = || header_texts(headers, XFCC_HEADER);

    if policy.identity_source == IdentitySourceSetting::Xfcc {
        // The operator vouches that a proxy in front sanitises this header.
        let xfcc_values = xfcc_values();
        if xfcc_values.is_empty() {
            return Ok(PeerLookup::cached(Peer::None));
        }
        return Ok(match nearest_certificate(&xfcc_values) {
            Err(e) => PeerLookup::cached(Peer::Unreadable(e)),
            Ok((el, pem)) => {
                let key = el
                    .get("hash")
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_else(|| String::from_utf8_lossy(&pem).into_owned());
                from_cache(cache, &key, &|| PeerIdentity::from_pem(&pem, IdentitySource::Xfcc))
            }
        });
    }

    // Everything else starts from this connection's certificate.
    let Some(digest) = utf8(host.property(property::SHA256_DIGEST)?) else {
        return Ok(PeerLookup::cached(Peer::None));
    };
    let digest = digest.to_ascii_lowercase();
    // Under `verification: listener` the operator vouches for the listener,
    // so the flag could not change the answer and is not read.
    if policy.verification == Verification::ProxyFlag {
        match flag(host, property::PEER_CERTIFICATE_VALID)? {
            Some(true) => {}
            Some(false) => return Ok(PeerLookup::cached(Peer::Unverified)),
            // Envoy before 1.39 has no flag: it cannot say, so fail closed
            // with a reason that points at the setting.
            None => return Ok(PeerLookup::cached(Peer::VerificationUnknown)),
        }
    }
    if policy.identity_source != IdentitySourceSetting::Properties {
        if let Some(hit) = cache.get(&digest) {
            return Ok(PeerLookup::cached(Peer::from(hit)));
        }
        if let Some(pem) = host.property(property::PEER_CERTIFICATE)?.filter(|p| !p.is_empty()) {
            return Ok(from_cache(cache, &digest, &|| {
                PeerIdentity::from_pem_with_digest(&pem, IdentitySource::PeerCertificate, Some(&digest))
            }));
        }
        if policy.identity_source == IdentitySourceSetting::PeerCertificate {
            return Ok(PeerLookup::cached(Peer::Unreadable(
                "the proxy gives no connection.peer_certificate".into(),
            )));
        }
        // Auto: the XFCC element this proxy added, if it holds this connection's certificate.
        if let Some(id) = xfcc_identity_of(&xfcc_values(), &digest) {
            let id = Rc::new(id);
            cache.insert(digest, Ok(Rc::clone(&id)));
            return Ok(PeerLookup::parsed(Peer::Verified(id)));
        }
    }
    // A host that gets the certificate only through a setting: it is missing.
    if policy.identity_source == IdentitySourceSetting::Auto {
        if let Some(setting) = host.certificate_setting() {
            return Ok(PeerLookup::cached(Peer::Unreadable(format!(
                "the proxy gives neither the certificate nor an x-forwarded-client-cert element for this connection: {setting}"
            ))));
        }
    }
    // Last resort: the subject and first SANs Envoy gives.
    let Some(subject) = utf8(host.property(property::SUBJECT)?) else {
        return Ok(PeerLookup::cached(Peer::Unreadable(
            "the proxy gives neither the certificate nor its subject".into(),
        )));
    };
    let uri = utf8(host.property(property::URI_SAN)?);
    let dns = utf8(host.property(property::DNS_SAN)?);
    // read from properties on every request: nothing is parsed or cached
    Ok(PeerLookup::cached(
        match PeerIdentity::from_properties(&subject, uri.as_deref(), dns.as_deref(), &digest) {
            Ok(id) => Peer::Verified(Rc::new(id)),
            Err(e) => Peer::Unreadable(e.to_string()),
        },
    ))
}

/// RFC 9440's fields for a usable identity: the leaf from the property or the
/// XFCC element it came from, the chain from that element's `Chain=` (Envoy's
/// `set_current_client_cert_details: { chain: true }`); each only if it holds
/// this very certificate.
pub fn certificate_fields(
    host: &mut dyn Host,
    policy: &Policy,
    id: &PeerIdentity,
    headers: &[Pair],
) -> Result<CertificateFields, HostError> {
    let values = header_texts(headers, XFCC_HEADER);
    let element = xfcc::nearest_element(values.iter().map(String::as_str)).ok().filter(|el| {
        policy.identity_source == IdentitySourceSetting::Xfcc || el.get("hash").is_some_and(|h| h.eq_ignore_ascii_case(&id.sha256))
    });
    let leaf = match id.source {
        IdentitySource::PeerCertificate => host.property(property::PEER_CERTIFICATE)?,
        IdentitySource::Xfcc => element.as_ref().and_then(|el| el.cert_pem()).and_then(Result::ok),
        IdentitySource::Properties => None,
    };
    let chain = element
        .as_ref()
        .and_then(|el| el.get("chain"))
        .and_then(|c| xfcc::percent_decode(c).ok());
    Ok(client_cert::certificate_fields(leaf.as_deref(), chain.as_deref(), &id.sha256))
}

/// The nearest XFCC element (the one the proxy in front of the filter added)
/// and its certificate's PEM, or why there is none.
fn nearest_certificate(values: &[String]) -> Result<(XfccElement, Vec<u8>), String> {
    let element = xfcc::nearest_element(values.iter().map(String::as_str)).map_err(|e| format!("x-forwarded-client-cert: {e}"))?;
    match element.cert_pem() {
        None => Err("x-forwarded-client-cert has no Cert".into()),
        Some(Err(e)) => Err(format!("x-forwarded-client-cert Cert: {e}")),
        Some(Ok(pem)) => Ok((element, pem)),
    }
}

/// The certificate in the nearest XFCC element, if it is the one with `digest`.
fn xfcc_identity_of(values: &[String], digest: &str) -> Option<PeerIdentity> {
    if values.is_empty() {
        return None;
    }
    let (_, pem) = nearest_certificate(values).ok()?;
    let id = PeerIdentity::from_pem(&pem, IdentitySource::Xfcc).ok()?;
    (id.sha256 == digest).then_some(id)
}
