//! Names exactly as their standards define them, through the whole request
//! flow: a SAN that fails its standard matches no rule, reaches the
//! application in no header, and is logged and counted once per
//! certificate. The certificates are made here, signed by the fixtures'
//! client CA, as a CA signing its users' CSRs could issue them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod common;

use certgate_core::admission::admit;
use certgate_core::cache::IdentityCache;
use certgate_core::config::parse_policy;
use certgate_core::metrics;
use certgate_core::policy::{DenyReason, Outcome};
use certgate_test_support::crafted::{client_certificate, Name};
use common::{fixtures_dir, Connection, FakeEnvoy};

const NOW: i64 = 1_795_305_600;

const POLICY: &str = r#"{"rules":[
    {"name":"prod","path_prefix":"/spiffe/","spiffe":["spiffe://example.org/ns/prod/sa/*"]},
    {"name":"any-td","path_prefix":"/td/","spiffe":["spiffe://example.org/**"]},
    {"name":"uri","path_prefix":"/uri/","san_uri":["spiffe://example.org/ns/prod/sa/**", "https://*"]},
    {"name":"dns","path_prefix":"/dns/","san_dns":["*.example.org"]},
    {"name":"mail","path_prefix":"/mail/","san_email":["*@example.org"]},
    {"name":"alice-mail","path_prefix":"/alice/","san_email":["alice@example.org"]}
]}"#;

struct Answer {
    outcome: Outcome,
    headers: FakeEnvoy,
    counted: Vec<String>,
}

/// One request for `path` from a fresh certificate with `names`.
fn request(names: &[Name<'_>], path: &str) -> Answer {
    let crafted = client_certificate(&fixtures_dir().join(".."), "crafted", names).unwrap();
    let policy = parse_policy(POLICY.as_bytes()).unwrap();
    let mut cache = IdentityCache::new(8);
    let conn = Connection::local_tls().with_client_cert_pem(&crafted.cert_pem, true).unwrap();
    let mut envoy = FakeEnvoy::request("GET", path, "localhost").on(&conn);
    let a = admit(&mut envoy, &policy, &mut cache, NOW);
    let counted = metrics::increments(&policy, &a).into_iter().map(|(n, _)| n).collect();
    // the same certificate again: read from the cache, not counted again
    let mut again = FakeEnvoy::request("GET", path, "localhost").on(&conn);
    let b = admit(&mut again, &policy, &mut cache, NOW);
    assert_eq!((b.outcome, b.cache_miss), (a.outcome, false));
    assert!(b.refused.is_empty(), "refused names are said once per certificate");
    Answer {
        outcome: a.outcome,
        headers: envoy,
        counted,
    }
}

#[test]
fn a_valid_spiffe_id_matches_and_reaches_the_application() {
    let r = request(&[Name::Uri("spiffe://example.org/ns/prod/sa/web")], "/spiffe/x");
    assert_eq!(r.outcome, Outcome::Allow);
    assert_eq!(
        r.headers.header("x-client-spiffe-id").as_deref(),
        Some("spiffe://example.org/ns/prod/sa/web")
    );
    assert!(!r.counted.iter().any(|n| n == metrics::INVALID_SPIFFE_IDS));
}

/// Every invalid form the issue's attacker tried, and one per rule of
/// SPIFFE-ID §2: none matches a `spiffe` rule, none is `x-client-spiffe-id`.
#[test]
fn no_invalid_spiffe_id_matches_a_spiffe_rule_or_reaches_the_application() {
    let invalid = [
        "spiffe://example.org/ns/prod/sa/..",
        "spiffe://example.org/ns/prod/sa/.",
        "spiffe://example.org/ns/prod/sa/web/",
        "spiffe://example.org/ns/prod/sa//web",
        "spiffe://example.org/ns/prod/sa/w%65b",
        "spiffe://example.org/ns/prod/sa/web?x=1",
        "spiffe://example.org/ns/prod/sa/web#f",
        "spiffe://example.org:443/ns/prod/sa/web",
        "spiffe://me@example.org/ns/prod/sa/web",
        "spiffe://Example.org/ns/prod/sa/web",
        "SPIFFE://example.org/ns/prod/sa/web",
        "spiffe://example.org/ns/prod/sa/w*b",
        "spiffe://example.org/ns/prod/sa/w,b",
    ];
    for uri in invalid {
        for path in ["/spiffe/x", "/td/x"] {
            let r = request(&[Name::Uri(uri)], path);
            assert_eq!(r.outcome, Outcome::Deny(DenyReason::SpiffeNotAllowed), "{uri} on {path}");
            assert_eq!(r.headers.header("x-client-spiffe-id"), None, "{uri}");
            assert!(r.counted.iter().any(|n| n == metrics::INVALID_SPIFFE_IDS), "{uri}: {:?}", r.counted);
        }
    }
    // an SVID has exactly one URI SAN
    let two = request(
        &[Name::Uri("spiffe://example.org/ns/prod/sa/web"), Name::Uri("https://example.org/")],
        "/spiffe/x",
    );
    assert_eq!(two.outcome, Outcome::Deny(DenyReason::SpiffeNotAllowed));
    assert_eq!(two.headers.header("x-client-spiffe-id"), None);
}

#[test]
fn an_invalid_spiffe_id_that_is_a_uri_stays_a_uri_san_matched_as_written() {
    let r = request(&[Name::Uri("spiffe://example.org/ns/prod/sa/..")], "/uri/x");
    assert_eq!(r.outcome, Outcome::Allow, "`**` matches the text as written");
    assert_eq!(
        r.headers.header("x-client-san-uri").as_deref(),
        Some("spiffe://example.org/ns/prod/sa/..")
    );
    assert_eq!(r.headers.header("x-client-spiffe-id"), None);
}

#[test]
fn a_uri_san_that_is_no_rfc_3986_uri_matches_nothing_and_is_not_passed_on() {
    for uri in ["https://example.org/a b", "https://example.org/a%zz", "https://exa\"mple.org/"] {
        let r = request(&[Name::Uri(uri)], "/uri/x");
        assert_eq!(r.outcome, Outcome::Deny(DenyReason::SanNotAllowed), "{uri}");
        assert_eq!(r.headers.header("x-client-san-uri"), None, "{uri}");
        assert!(r.counted.iter().any(|n| n == metrics::INVALID_URI_SANS), "{uri}");
    }
}

#[test]
fn dns_sans_match_only_as_dns_names_and_a_star_is_never_a_pattern() {
    let ok = request(&[Name::Dns("Web.Example.ORG")], "/dns/x");
    assert_eq!(ok.outcome, Outcome::Allow, "DNS names compare without case");
    assert_eq!(ok.headers.header("x-client-san-dns").as_deref(), Some("Web.Example.ORG"));
    for dns in [
        "*.example.org",
        "bad_name.example.org",
        "a..example.org",
        "xn--zz.example.org",
        "-a.example.org",
        "web.example.org.",
    ] {
        let r = request(&[Name::Dns(dns)], "/dns/x");
        assert_eq!(r.outcome, Outcome::Deny(DenyReason::SanNotAllowed), "{dns}");
        assert_eq!(r.headers.header("x-client-san-dns"), None, "{dns}");
        assert!(r.counted.iter().any(|n| n == metrics::INVALID_DNS_SANS), "{dns}");
    }
    // an IDN as its A-label is a DNS name
    assert_eq!(request(&[Name::Dns("xn--bcher-kva.example.org")], "/dns/x").outcome, Outcome::Allow);
}

#[test]
fn email_domains_compare_without_case_and_local_parts_exactly() {
    assert_eq!(request(&[Name::Email("alice@EXAMPLE.org")], "/alice/x").outcome, Outcome::Allow);
    let other_case = request(&[Name::Email("Alice@example.org")], "/alice/x");
    assert_eq!(
        other_case.outcome,
        Outcome::Deny(DenyReason::SanNotAllowed),
        "`Alice` may be another mailbox"
    );
    let any_local = request(&[Name::Email("Alice@example.org")], "/mail/x");
    assert_eq!(any_local.outcome, Outcome::Allow);
    assert_eq!(
        any_local.headers.header("x-client-san-email").as_deref(),
        Some("Alice@example.org"),
        "a valid address is passed on"
    );
    for mail in [
        "Alice <alice@example.org>",
        "alice@example.org@evil.org",
        "alice",
        "alice@*.example.org",
        "al ice@example.org",
    ] {
        let r = request(&[Name::Email(mail)], "/mail/x");
        assert_eq!(r.outcome, Outcome::Deny(DenyReason::SanNotAllowed), "{mail}");
        assert_eq!(r.headers.header("x-client-san-email"), None, "{mail}");
        assert!(r.counted.iter().any(|n| n == metrics::INVALID_EMAIL_SANS), "{mail}");
    }
}

#[test]
fn a_certificate_counts_once_per_kind_of_refused_name() {
    let r = request(
        &[Name::Dns("a_b.example.org"), Name::Dns("c_d.example.org"), Name::Email("x")],
        "/dns/x",
    );
    assert_eq!(r.counted.iter().filter(|n| *n == metrics::INVALID_DNS_SANS).count(), 1);
    assert_eq!(r.counted.iter().filter(|n| *n == metrics::INVALID_EMAIL_SANS).count(), 1);
}
