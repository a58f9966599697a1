//! What each fuzz target checks. Not panicking is the first property (a panic
//! kills the Wasm VM in Envoy); each target adds the ones a security reviewer
//! asks for: no identity header from a client survives, no header value the
//! application could misread, no identity without a verified certificate.
//! `cargo test` here replays `corpus/` and `regressions/` through the same code.

use std::rc::Rc;

use arbitrary::Arbitrary;
use certgate_core::admission::admit;
use certgate_core::cache::IdentityCache;
use certgate_core::config::parse_policy;
use certgate_core::headers::{is_safe_value, HeaderKind};
use certgate_core::host::Verified;
use certgate_core::host::{property, XFCC_HEADER};
use certgate_core::identity::{IdentitySource, PeerIdentity};
use certgate_core::path::{self, PathCase, Reading};
use certgate_core::policy::{
    decide, Access, Credential, DenyReason, IdentitySourceSetting, Outcome, PathMatch, Peer, Policy, RequestFacts, Verification,
};
use certgate_core::testing::FakeEnvoy;
use certgate_core::token::{Token, WithoutToken};
use certgate_core::xfcc;
use certgate_wire::Pairs;
use certgate_x509::san;
use certgate_x509::sha256_hex;
use certgate_x509::spiffe::SpiffeId;

/// 2026-11-23, inside the fixtures' validity.
const NOW: i64 = 1_795_400_000;

/// Header values certgate sets are printable ASCII: nothing that ends a header
/// line, splits a list the application parses, or hides in another encoding.
fn assert_safe_value(name: &str, value: &str) {
    assert!(is_safe_value(value.as_bytes()), "{name}: unsafe byte in {value:?}");
}

pub fn xfcc(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(elements) = xfcc::parse(&text) {
        for e in &elements {
            let _ = e.get("hash");
            let _ = e.all("uri").count();
            if let Some(Ok(pem)) = e.cert_pem() {
                let _ = PeerIdentity::from_pem(&pem, IdentitySource::Xfcc);
            }
        }
    }
    let _ = xfcc::nearest_element(text.split('\n'));
    let _ = xfcc::percent_decode(&text);
}

fn check_identity(id: &PeerIdentity) {
    for kind in HeaderKind::ALL {
        if let Some(v) = kind.identity_value(id, NOW) {
            assert_safe_value(kind.default_name(), &v);
        }
    }
    // every name the identity keeps meets its standard
    if let Some(s) = &id.spiffe_id {
        assert!(SpiffeId::parse(s).is_ok(), "invalid SPIFFE ID kept: {s:?}");
    }
    assert!(id.san_uri.iter().all(|u| san::check_uri(u).is_ok()), "{:?}", id.san_uri);
    assert!(id.san_dns.iter().all(|d| san::check_dns_name(d).is_ok()), "{:?}", id.san_dns);
    assert!(id.san_email.iter().all(|e| san::check_email(e).is_ok()), "{:?}", id.san_email);
}

/// A SPIFFE ID as read by a reader under test: its trust domain and path.
pub type SpiffeReading = Option<(String, String)>;

/// certgate's reading.
pub fn certgate_spiffe(uri: &str) -> SpiffeReading {
    SpiffeId::parse(uri).ok().map(|id| (id.trust_domain.to_owned(), id.path.to_owned()))
}

/// The `spiffe` crate's reading: the independent oracle.
pub fn oracle_spiffe(uri: &str) -> SpiffeReading {
    spiffe::SpiffeId::new(uri)
        .ok()
        .map(|id| (id.trust_domain_name().to_owned(), id.path().to_owned()))
}

/// Whether `uri` has an uppercase letter in its scheme or trust domain:
/// the `spiffe` crate folds those to lowercase, go-spiffe and certgate
/// refuse them (the standard's trust domain is lowercase).
fn folds_case(uri: &str) -> bool {
    let (scheme, rest) = uri.split_once("://").unwrap_or((uri, ""));
    let td = rest.split('/').next().unwrap_or("");
    scheme.bytes().chain(td.bytes()).any(|b| b.is_ascii_uppercase())
}

/// What a reader gets wrong about `uri` against the oracle; `None` if
/// nothing. Where the oracle folds case, the reader must refuse.
pub fn spiffe_disagreement(uri: &str, reading: SpiffeReading) -> Option<String> {
    if folds_case(uri) {
        return reading.map(|r| format!("{uri:?}: read as {r:?}, but uppercase in the scheme or trust domain is no SPIFFE ID"));
    }
    let oracle = oracle_spiffe(uri);
    (reading != oracle).then(|| format!("{uri:?}: read as {reading:?}, the spiffe crate reads {oracle:?}"))
}

/// The differential target: certgate and the oracle agree on every string.
pub fn spiffe(data: &[u8]) {
    if let Ok(uri) = std::str::from_utf8(data) {
        if let Some(d) = spiffe_disagreement(uri, certgate_spiffe(uri)) {
            panic!("{d}");
        }
    }
}

pub fn identity(data: &[u8]) {
    for source in [IdentitySource::PeerCertificate, IdentitySource::Xfcc] {
        if let Ok(id) = PeerIdentity::from_der(data, source) {
            check_identity(&id);
        }
        if let Ok(id) = PeerIdentity::from_pem(data, source) {
            check_identity(&id);
        }
    }
    // Envoy's subject/SAN properties are text from the proxy: any bytes.
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (subject, uri, dns) = (parts.next().unwrap_or(""), parts.next(), parts.next());
    if let Ok(id) = PeerIdentity::from_properties(subject, uri, dns, "00") {
        check_identity(&id);
    }
}

pub fn config(data: &[u8]) {
    if let Ok(policy) = parse_policy(data) {
        // A policy that loads can decide any request without panicking.
        let request = Request {
            policy: 0,
            ..Request::default()
        };
        run(&policy, &request);
    }
}

/// The seed policies: the README's full example, the two migrations, and
/// certificate-bound tokens.
const POLICIES: [&str; 4] = [
    include_str!("../../fixtures/policies/example.json"),
    include_str!("../../fixtures/policies/gunicorn.json"),
    include_str!("../../fixtures/policies/nginx-optional.json"),
    include_str!("../../fixtures/policies/bound-tokens.json"),
];

/// The fixture certificates, DER: good, from another CA, odd names, expired.
const CERTS: [&str; 6] = [
    include_str!("../../fixtures/pki/alice.pem"),
    include_str!("../../fixtures/pki/ops-anna.pem"),
    include_str!("../../fixtures/pki/carol.pem"),
    include_str!("../../fixtures/pki/comma-cn.pem"),
    include_str!("../../fixtures/pki/unicode.pem"),
    include_str!("../../fixtures/pki/expired.pem"),
];

/// The client's certificate as the proxy presents it.
#[derive(Debug, Clone, Default, Arbitrary)]
pub enum Cert {
    #[default]
    None,
    Fixture(u8),
    Bytes(Vec<u8>),
}

/// The access token Envoy's `jwt_authn` verified, as the host gives it.
#[derive(Debug, Clone, Default, Arbitrary)]
pub enum TokenInput {
    /// None was verified.
    #[default]
    None,
    /// One bound to the connection's certificate.
    BoundToPeer,
    /// One whose `cnf["x5t#S256"]` is any bytes.
    Claim(Vec<u8>),
    /// One without the claim.
    Unbound,
    /// One the host cannot look inside (the dynamic module): the claims come
    /// from the payload header among the request's headers.
    Opaque,
}

/// One request: which policy, which certificate (verified or not), the
/// token `jwt_authn` verified, and whatever headers a client sends.
#[derive(Debug, Clone, Default, Arbitrary)]
pub struct Request {
    pub policy: u8,
    pub audit: bool,
    pub xfcc_mode: bool,
    /// The policy vouches for the listener (`verification: listener`).
    pub listener_verifies: bool,
    pub cert: Cert,
    /// `connection.peer_certificate_valid`; `None`: the proxy does not say.
    pub verified: Option<bool>,
    /// What `jwt_authn` verified (read by policies with `bound_tokens`).
    pub token: TokenInput,
    pub method: String,
    pub path: String,
    pub authority: String,
    pub headers: Pairs,
}

fn der_of(pem: &str) -> Vec<u8> {
    pem_rfc7468::decode_vec(pem.as_bytes()).map(|(_, der)| der).unwrap_or_default()
}

fn pem_of(der: &[u8]) -> String {
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, der).unwrap_or_default()
}

fn run(policy: &Policy, r: &Request) {
    // Envoy lower-cases header names (HTTP/2 requires it; HTTP/1 is normalised).
    let mut host = FakeEnvoy::request(&r.method, &r.path, &r.authority);
    host.headers.extend(FakeEnvoy::from_headers(r.headers.iter().cloned()).headers);
    let der = match &r.cert {
        Cert::None => None,
        Cert::Fixture(i) => Some(der_of(CERTS[usize::from(*i) % CERTS.len()])),
        Cert::Bytes(b) => Some(b.clone()),
    };
    if let Some(der) = &der {
        let digest = sha256_hex(der);
        host.properties.insert(property::SHA256_DIGEST.join("."), digest.into_bytes());
        host.properties
            .insert(property::PEER_CERTIFICATE.join("."), pem_of(der).into_bytes());
        if let Some(v) = r.verified {
            host.properties
                .insert(property::PEER_CERTIFICATE_VALID.join("."), vec![u8::from(v)]);
        }
    }
    let thumbprint = der.as_deref().map(certgate_x509::x5t_s256);
    if let Some(tokens) = &policy.bound_tokens {
        let verified = match &r.token {
            TokenInput::None => None,
            TokenInput::BoundToPeer => Some(Verified::Thumbprint(thumbprint.clone().map(String::into_bytes))),
            TokenInput::Claim(c) => Some(Verified::Thumbprint(Some(c.clone()))),
            TokenInput::Unbound => Some(Verified::Thumbprint(None)),
            TokenInput::Opaque => Some(Verified::Opaque),
        };
        if let Some(v) = verified {
            host.tokens.insert(tokens.metadata_key.clone(), v);
        }
    }
    let sent = host.headers.clone();
    let mut cache = IdentityCache::new(4);
    let admission = admit(&mut host, policy, &mut cache, NOW);

    // RFC 8705: a request allowed on a rule that checks tokens, with this
    // connection's certificate, had a token bound to it (or none, where the
    // policy lets tokenless requests through). The module's header path is
    // checked by its own tests.
    if let (Outcome::Allow, Some(tokens), Credential::Usable) = (admission.outcome, &policy.bound_tokens, admission.credential) {
        let rule = admission.rule.as_deref().and_then(|n| policy.rules.iter().find(|x| x.name == n));
        let checks = rule.is_some_and(|rule| matches!(&rule.access, Access::Certificate(req) if req.bound_token));
        if checks && policy.identity_source != IdentitySourceSetting::Xfcc {
            let bound = match &r.token {
                TokenInput::BoundToPeer | TokenInput::Opaque => true,
                TokenInput::Claim(c) => thumbprint.as_ref().is_some_and(|t| t.as_bytes() == c.as_slice()),
                TokenInput::None => tokens.without_token == WithoutToken::Allow,
                TokenInput::Unbound => false,
            };
            assert!(
                bound,
                "allowed on a rule that checks tokens without a token bound to this certificate: {:?}",
                r.token
            );
        }
    }

    assert_eq!(
        admission.forwarded,
        host.reply.is_none(),
        "a request is either forwarded or answered"
    );
    // every series a request counts in was defined (only those that can count are)
    for (name, _) in certgate_core::metrics::increments(policy, &admission) {
        assert!(
            !name.starts_with("undefined"),
            "a request counted in a series the policy never defined: {admission:?}"
        );
    }
    // No identity header from the client survives: every header the policy
    // strips that is still there was set by certgate.
    for (name, value) in &host.headers {
        if policy.headers.strips(name) {
            let ours = host.added.iter().any(|(n, v)| n == name && v.as_bytes() == value.as_slice());
            assert!(ours, "client-sent {name} survived: {:?}", String::from_utf8_lossy(value));
        }
    }
    for (name, value) in &host.added {
        assert!(policy.headers.strips(name), "{name} set but not stripped first");
        assert_safe_value(name, value);
    }
    // Identity headers only from a certificate the proxy verified, or one the
    // policy vouches the listener verified (or, in XFCC mode, from the
    // sanitised XFCC header).
    let vouched = policy.verification == Verification::Listener;
    let verified = der.is_some() && (r.verified == Some(true) || vouched);
    let has_xfcc = sent.iter().any(|(n, _)| n == XFCC_HEADER);
    let xfcc_trusted = policy.identity_source == IdentitySourceSetting::Xfcc && has_xfcc;
    if !verified && !xfcc_trusted {
        for (name, _) in &host.added {
            let kind = policy.headers.set.iter().find(|(_, n)| n == name).map(|(k, _)| *k);
            assert!(
                matches!(kind, Some(HeaderKind::Verified | HeaderKind::Rule | HeaderKind::Audit)),
                "{name} set without a verified certificate"
            );
        }
    }
}

/// A seed policy, in audit mode or not, with XFCC as the identity source or
/// not, vouching for the listener or not.
fn seed_policy(json: &str, audit: bool, xfcc: bool, listener: bool) -> Policy {
    let mut value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        if audit {
            object.insert("mode".into(), "audit".into());
        }
        if xfcc {
            object.insert("identity_source".into(), "xfcc".into());
        }
        if listener {
            object.insert("verification".into(), "listener".into());
        }
    }
    parse_policy(value.to_string().as_bytes()).unwrap_or_else(|e| panic!("a seed policy must load: {e}"))
}

thread_local! {
    /// Every seed policy variant, compiled once rather than per input.
    static SEED_POLICIES: Vec<Policy> = POLICIES
        .iter()
        .flat_map(|json| (0..8u8).map(move |bits| seed_policy(json, bits & 4 != 0, bits & 2 != 0, bits & 1 != 0)))
        .collect();
}

/// The whole decision on one random request, under each seed policy.
pub fn admission(r: &Request) {
    let index = usize::from(r.policy) % POLICIES.len() * 8
        + usize::from(r.audit) * 4
        + usize::from(r.xfcc_mode) * 2
        + usize::from(r.listener_verifies);
    SEED_POLICIES.with(|policies| run(&policies[index], r));
}

/// Seed policies under every path setting: the three seeds × case (either,
/// sensitive, insensitive) × parameters (either, strip, keep).
fn path_policies() -> Vec<Policy> {
    let mut out = Vec::new();
    for json in POLICIES {
        for case in ["either", "sensitive", "insensitive"] {
            for parameters in ["either", "strip", "keep"] {
                let mut value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.insert("paths".into(), serde_json::json!({ "case": case, "parameters": parameters }));
                }
                out.push(parse_policy(value.to_string().as_bytes()).unwrap_or_else(|e| panic!("a seed policy must load: {e}")));
            }
        }
    }
    out
}

thread_local! {
    static PATH_POLICIES: Vec<Policy> = path_policies();
    static ALICE: Option<Rc<PeerIdentity>> = PeerIdentity::from_pem(CERTS[0].as_bytes(), IdentitySource::PeerCertificate).ok().map(Rc::new);
}

/// The path rules, on any path: byte 0 picks the policy, byte 1 the client
/// (none, or alice), the rest is the raw `:path`. Whatever path an allowed
/// request has, every reading an application may give it is allowed too (no
/// spelling reaches a rule the request would not pass), and the normal path
/// certgate forwards decides the same as the path it came as.
pub fn paths(data: &[u8]) {
    let (Some(&pick), Some(&who)) = (data.first(), data.get(1)) else {
        return;
    };
    let raw = String::from_utf8_lossy(data.get(2..).unwrap_or_default()).into_owned();
    PATH_POLICIES.with(|policies| {
        ALICE.with(|alice| {
            let policy = &policies[usize::from(pick) % policies.len()];
            let peer = match (who % 2, alice) {
                (1, Some(id)) => Peer::Verified(Rc::clone(id)),
                _ => Peer::None,
            };
            // alice's token is bound to her, as jwt_authn would have verified it
            let token = match (policy.bound_tokens.is_some(), &peer) {
                (true, Peer::Verified(_)) => Token::BoundTo(certgate_x509::x5t_s256(&der_of(CERTS[0]))),
                (true, _) => Token::Missing,
                (false, _) => Token::NotRead,
            };
            let decide_path = |path: &str| {
                decide(
                    policy,
                    &RequestFacts {
                        path,
                        method: "GET",
                        host: "localhost",
                        peer: &peer,
                        token: &token,
                    },
                    NOW,
                )
            };
            let first = decide_path(&raw);
            let Some(normal) = first.path.clone() else {
                assert_eq!(first.outcome, Outcome::Deny(DenyReason::BadPath), "{raw:?}: no path, so refused");
                return;
            };
            let forwarded = decide_path(&format!("{}{}", normal.path, normal.query));
            assert_eq!(
                (forwarded.outcome, forwarded.rule),
                (first.outcome, first.rule),
                "{raw:?}: the forwarded path decides the same"
            );
            if first.outcome != Outcome::Allow {
                return;
            }
            // An exact rule names its path as the application does.
            let as_written = Reading {
                path: normal.path.clone(),
                fold_case: policy.paths.case == PathCase::Insensitive,
            };
            let literal = policy.rules.iter().find(|r| r.applies_to(&as_written, "GET", "localhost"));
            if literal.is_some_and(|r| matches!(r.path, PathMatch::Exact(_))) {
                return;
            }
            for reading in path::readings(&normal.path, policy.paths).unwrap_or_default() {
                let read = if reading.fold_case {
                    reading.path.to_ascii_lowercase()
                } else {
                    reading.path.clone()
                };
                let d = decide_path(&read);
                assert_eq!(
                    d.outcome,
                    Outcome::Allow,
                    "{raw:?} is allowed ({:?}) but an application may read it as {read:?}: {d:?}",
                    first.rule
                );
            }
        })
    });
}
