//! Access tokens bound to the client certificate (RFC 8705): what each
//! verified token gets, the settings, the reply, the metrics, and the
//! configuration's refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use base64ct::{Base64UrlUnpadded, Encoding};
use certgate_core::admission::admit;
use certgate_core::cache::IdentityCache;
use certgate_core::config::{check_host_reads, parse_policy};
use certgate_core::config_error::{ConfigErrorKind, JsonErrorClass};
use certgate_core::host::{HostReads, Verified};
use certgate_core::metrics;
use certgate_core::policy::{DenyReason, Outcome, Policy};
use common::{client_cert, FakeEnvoy, WithClientCert};

const NOW: i64 = 1_795_305_600;

const POLICY: &str = r#"{"bound_tokens":{"payload_in_metadata":"certgate_jwt"},
  "rules":[{"name":"health","path":"/health","bound_token":false},
           {"name":"public","path_prefix":"/public","anonymous":true},
           {"name":"api","issuer":["CN=Example Client CA,O=Example"]}]}"#;

fn policy(json: &str) -> Policy {
    parse_policy(json.as_bytes()).unwrap()
}

/// `name`'s certificate thumbprint, as a token bound to it carries.
fn thumbprint(name: &str) -> String {
    certgate_x509::x5t_s256(&client_cert(name).1)
}

/// A GET of `path` by `client`, with what jwt_authn verified.
fn request(p: &Policy, client: &str, path: &str, token: Option<Verified>) -> (Outcome, FakeEnvoy) {
    let mut envoy = FakeEnvoy::request("GET", path, "localhost").with_client_cert(client, true);
    if let Some(t) = token {
        envoy.tokens.insert("certgate_jwt".into(), t);
    }
    let a = admit(&mut envoy, p, &mut IdentityCache::new(8), NOW);
    (a.outcome, envoy)
}

fn bound_to(name: &str) -> Verified {
    Verified::Thumbprint(Some(thumbprint(name).into_bytes()))
}

#[test]
fn only_a_token_bound_to_this_certificate_passes() {
    let p = policy(POLICY);
    assert_eq!(request(&p, "alice", "/api", Some(bound_to("alice"))).0, Outcome::Allow);
    assert_eq!(request(&p, "bob", "/api", Some(bound_to("bob"))).0, Outcome::Allow);
    let cases = [
        (Some(bound_to("bob")), DenyReason::TokenCertificateMismatch),
        (Some(Verified::Thumbprint(None)), DenyReason::TokenUnbound),
        (None, DenyReason::TokenMissing),
        (
            Some(Verified::Thumbprint(Some(b"not-a-thumbprint".to_vec()))),
            DenyReason::TokenCertificateMismatch,
        ),
        (
            Some(Verified::Thumbprint(Some(format!("{}=", thumbprint("alice")).into_bytes()))),
            DenyReason::TokenCertificateMismatch,
        ),
    ];
    for (token, reason) in cases {
        let (outcome, envoy) = request(&p, "alice", "/api", token.clone());
        assert_eq!(outcome, Outcome::Deny(reason), "{token:?}");
        let reply = envoy.reply.unwrap();
        assert_eq!(reply.status, 401, "{token:?}");
        let challenge = reply
            .headers
            .iter()
            .find(|(n, _)| n == "www-authenticate")
            .map(|(_, v)| v.clone())
            .unwrap();
        if reason == DenyReason::TokenMissing {
            assert_eq!(challenge, "Bearer");
        } else {
            assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{challenge}");
        }
        assert!(String::from_utf8(reply.body).unwrap().contains(reason.as_str()));
    }
}

#[test]
fn certificate_checks_come_first_and_rules_without_tokens_do_not_read_them() {
    let p = policy(POLICY);
    // carol's CA is not allowed: her bound token does not change that
    assert_eq!(
        request(&p, "carol", "/api", Some(bound_to("carol"))).0,
        Outcome::Deny(DenyReason::IssuerNotAllowed)
    );
    assert_eq!(request(&p, "alice", "/health", None).0, Outcome::Allow);
    assert_eq!(
        request(&p, "alice", "/public/x", Some(Verified::Thumbprint(None))).0,
        Outcome::Allow
    );
    // without a certificate nothing is read, and the rule wants one
    let mut envoy = FakeEnvoy::request("GET", "/api", "localhost");
    envoy.failing.push("verified_token");
    let a = admit(&mut envoy, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Deny(DenyReason::CertificateRequired));
}

#[test]
fn without_token_allow_lets_tokenless_requests_through_but_not_unbound_tokens() {
    let p = policy(&POLICY.replace(r#""certgate_jwt"}"#, r#""certgate_jwt","without_token":"allow"}"#));
    assert_eq!(request(&p, "alice", "/api", None).0, Outcome::Allow);
    assert_eq!(
        request(&p, "alice", "/api", Some(Verified::Thumbprint(None))).0,
        Outcome::Deny(DenyReason::TokenUnbound)
    );
    assert_eq!(
        request(&p, "alice", "/api", Some(bound_to("bob"))).0,
        Outcome::Deny(DenyReason::TokenCertificateMismatch)
    );
}

#[test]
fn a_host_that_cannot_read_claims_reads_the_header_jwt_authn_wrote() {
    let json = POLICY.replace(r#""certgate_jwt"}"#, r#""certgate_jwt","payload_header":"X-Jwt-Payload"}"#);
    let p = policy(&json);
    let payload = |claims: &str| Base64UrlUnpadded::encode_string(claims.as_bytes());
    let with_header = |value: &str, verified: bool| {
        let mut envoy = FakeEnvoy::request("GET", "/api", "localhost")
            .with_client_cert("alice", true)
            .with_header("x-jwt-payload", value);
        if verified {
            envoy.tokens.insert("certgate_jwt".into(), Verified::Opaque);
        }
        let a = admit(&mut envoy, &p, &mut IdentityCache::new(8), NOW);
        a.outcome
    };
    let alice = payload(&format!(r#"{{"sub":"alice","cnf":{{"x5t#S256":"{}"}}}}"#, thumbprint("alice")));
    assert_eq!(with_header(&alice, true), Outcome::Allow);
    // the same header with no verified token behind it is a forgery
    assert_eq!(with_header(&alice, false), Outcome::Deny(DenyReason::TokenMissing));
    assert_eq!(
        with_header(&payload(r#"{"sub":"alice"}"#), true),
        Outcome::Deny(DenyReason::TokenUnbound)
    );
    assert_eq!(
        with_header(&payload(r#"{"cnf":{"x5t#S256":""}}"#), true),
        Outcome::Deny(DenyReason::TokenUnbound)
    );
    assert_eq!(
        with_header(&payload(r#"{"cnf":{"x5t#S256":null}}"#), true),
        Outcome::Deny(DenyReason::TokenCertificateMismatch)
    );
    // a verified token but no readable header: jwt_authn is set up wrong, fail closed
    assert_eq!(with_header("%%%", true), Outcome::Deny(DenyReason::InternalError));
}

#[test]
fn the_dynamic_module_needs_the_payload_header() {
    let module = HostReads {
        host: "Envoy's dynamic module ABI",
        peer_certificate: false,
        verified_flag: false,
        token_claims: false,
    };
    let e = check_host_reads(
        &policy(&POLICY.replace("{\"bound", "{\"verification\":\"listener\",\"bound")),
        module,
    )
    .unwrap_err();
    assert_eq!(e.path, "bound_tokens.payload_header");
    assert_eq!(e.kind, ConfigErrorKind::NoTokenClaims { host: module.host });
    assert!(e.to_string().contains("forward_payload_header"), "{e}");
    let with_header = POLICY
        .replace("{\"bound", "{\"verification\":\"listener\",\"bound")
        .replace(r#""certgate_jwt"}"#, r#""certgate_jwt","payload_header":"x-jwt-payload"}"#);
    check_host_reads(&policy(&with_header), module).unwrap();
}

#[test]
fn bad_settings_are_refused_by_path() {
    let refused = |json: &str| parse_policy(json.as_bytes()).unwrap_err();
    let e = refused(r#"{"rules":[{"name":"a","bound_token":true}]}"#);
    assert_eq!(e.path, "rules[0].bound_token");
    assert_eq!(e.kind, ConfigErrorKind::BoundTokenWithoutProvider);
    let e = refused(r#"{"bound_tokens":{"payload_in_metadata":"k"},"rules":[{"name":"a","anonymous":true,"bound_token":true}]}"#);
    assert_eq!(e.path, "rules[0].bound_token");
    assert_eq!(e.kind, ConfigErrorKind::AnonymousBoundToken);
    let e = refused(r#"{"bound_tokens":{"payload_in_metadata":""},"rules":[{"name":"a"}]}"#);
    assert_eq!(e.path, "bound_tokens.payload_in_metadata");
    assert_eq!(e.kind, ConfigErrorKind::NotAMetadataKey(String::new()));
    let e = refused(r#"{"bound_tokens":{"payload_in_metadata":"k","payload_header":"bad header"},"rules":[{"name":"a"}]}"#);
    assert_eq!(e.path, "bound_tokens.payload_header");
    assert_eq!(e.kind, ConfigErrorKind::NotAHeaderName("bad header".into()));
    let e = refused(r#"{"bound_tokens":{"payload_in_metadata":"k","without_token":"maybe"},"rules":[{"name":"a"}]}"#);
    assert!(e.path.starts_with("bound_tokens.without_token"), "{e}");
    let e = refused(r#"{"bound_tokens":{"metadata":"k"},"rules":[{"name":"a"}]}"#);
    assert!(
        matches!(&e.kind, ConfigErrorKind::Json { class: JsonErrorClass::Data, message } if message.contains("unknown field")),
        "{e}"
    );
}

#[test]
fn token_series_exist_only_where_a_rule_checks_tokens() {
    let names: Vec<String> = metrics::all_counters(&policy(POLICY)).into_iter().flatten().collect();
    let has = |s: &str| names.iter().any(|n| n == s);
    for reason in ["token_missing", "token_unbound", "token_certificate_mismatch"] {
        assert!(
            has(&format!("certgate_requests_total.outcome.denied.reason.{reason}.rule.api")),
            "{reason}"
        );
        assert!(
            !has(&format!("certgate_requests_total.outcome.denied.reason.{reason}.rule.health")),
            "{reason}"
        );
        assert!(
            !has(&format!("certgate_requests_total.outcome.denied.reason.{reason}.rule.public")),
            "{reason}"
        );
    }
    let allow = policy(&POLICY.replace(r#""certgate_jwt"}"#, r#""certgate_jwt","without_token":"allow"}"#));
    let names: Vec<String> = metrics::all_counters(&allow).into_iter().flatten().collect();
    assert!(!names.iter().any(|n| n.contains("token_missing")));
    // a deny that counts has its series
    let p = policy(POLICY);
    let mut envoy = FakeEnvoy::request("GET", "/api", "localhost").with_client_cert("alice", true);
    let a = admit(&mut envoy, &p, &mut IdentityCache::new(8), NOW);
    let counted = metrics::increments(&p, &a);
    assert!(
        counted
            .iter()
            .any(|(n, _)| n == "certgate_requests_total.outcome.denied.reason.token_missing.rule.api"),
        "{counted:?}"
    );
}
