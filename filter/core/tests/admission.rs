//! The request flow's behaviour that the scenario table does not show:
//! identity sources, the cache, expiry warnings, metrics, failing closed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod common;

use certgate_core::admission::{admit, Failure};
use certgate_core::cache::IdentityCache;
use certgate_core::config::parse_policy;
use certgate_core::host::property;
use certgate_core::metrics;
use certgate_core::policy::{Credential, DenyReason, Outcome, Policy};
use common::{client_cert, sha256_hex, FakeEnvoy, WithClientCert};

const NOW: i64 = 1_795_305_600;

fn policy(json: &str) -> Policy {
    parse_policy(json.as_bytes()).unwrap()
}

const APP: &str = r#"{"rules":[{"name":"app","issuer":["CN=Example Client CA,O=Example"]}]}"#;
const ANY_CERT: &str = r#"{"rules":[{"name":"any"}]}"#;

fn get(path: &str) -> FakeEnvoy {
    FakeEnvoy::request("GET", path, "localhost")
}

/// The XFCC element Envoy's SANITIZE_SET adds for a fixture client.
fn xfcc_for(name: &str) -> String {
    common::connection(name, true).xfcc.unwrap()
}

#[test]
fn a_cached_certificate_is_not_read_again() {
    let p = policy(APP);
    let mut cache = IdentityCache::new(8);
    let mut first = get("/").with_client_cert("alice", true);
    let a = admit(&mut first, &p, &mut cache, NOW);
    assert!(a.cache_miss);
    assert!(first.property_reads.contains(&"connection.peer_certificate".to_owned()));
    let mut second = get("/").with_client_cert("alice", true);
    let a = admit(&mut second, &p, &mut cache, NOW);
    assert!(!a.cache_miss);
    assert_eq!(a.outcome, Outcome::Allow);
    assert!(!second.property_reads.contains(&"connection.peer_certificate".to_owned()));
    assert_eq!(second.header("x-client-cn").as_deref(), Some("alice"));
}

#[test]
fn the_cache_stays_within_its_bound() {
    let p = policy(&APP.replace("\"rules\"", "\"cache_size\":2,\"rules\""));
    let mut cache = IdentityCache::new(p.cache_size);
    for name in ["alice", "bob", "ops-anna", "alice"] {
        let a = admit(&mut get("/").with_client_cert(name, true), &p, &mut cache, NOW);
        assert_eq!(a.outcome, Outcome::Allow, "{name}");
        assert!(cache.len() <= 2);
    }
}

#[test]
fn an_unparseable_certificate_is_denied_and_not_parsed_twice() {
    let p = policy(APP);
    let mut cache = IdentityCache::new(8);
    for round in 0..2 {
        let mut proxy = get("/");
        proxy.set_property(property::SHA256_DIGEST, "ab".repeat(32));
        proxy.set_property(property::PEER_CERTIFICATE_VALID, vec![1]);
        proxy.set_property(
            property::PEER_CERTIFICATE,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let a = admit(&mut proxy, &p, &mut cache, NOW);
        assert_eq!(a.outcome, Outcome::Deny(DenyReason::UnparseableCertificate));
        assert_eq!(a.cache_miss, round == 0);
        assert!(matches!(a.failure, Some(Failure::UnreadableCertificate(_))), "{:?}", a.failure);
        assert_eq!(proxy.reply.unwrap().status, 403);
    }
}

const LISTENER: &str = r#"{"verification":"listener","rules":[{"name":"any"}]}"#;

/// What Envoy 1.36 and 1.37 give a filter: the digest, subject and first
/// SANs, and the SANITIZE_SET XFCC with `Cert=`; no `peer_certificate` and no
/// `peer_certificate_valid`.
fn envoy_1_36(name: &str) -> FakeEnvoy {
    let mut proxy = get("/")
        .with_client_cert(name, true)
        .with_header("x-forwarded-client-cert", &xfcc_for(name));
    proxy.properties.remove("connection.peer_certificate");
    proxy.properties.remove("connection.peer_certificate_valid");
    proxy
}

#[test]
fn a_proxy_that_does_not_say_whether_it_verified_denies_with_a_reason_of_its_own() {
    let p = policy(ANY_CERT);
    let mut proxy = envoy_1_36("alice");
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Deny(DenyReason::VerificationUnknown));
    assert_eq!(a.credential, Credential::Failed(DenyReason::VerificationUnknown));
    let reply = proxy.reply.unwrap();
    assert_eq!(reply.status, 403);
    assert!(String::from_utf8_lossy(&reply.body).contains("\"reason\":\"verification_unknown\""));
}

#[test]
fn under_listener_verification_envoy_1_36_gives_the_full_identity_from_xfcc() {
    let p = policy(LISTENER);
    let mut proxy = envoy_1_36("alice");
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Allow);
    assert_eq!(proxy.header("x-client-cn").as_deref(), Some("alice"));
    assert_eq!(proxy.header("x-client-issuer").as_deref(), Some("CN=Example Client CA,O=Example"));
    assert_eq!(proxy.header("x-client-serial").as_deref(), Some("4c1e7a5e000000000000000000001001"));
    assert_eq!(proxy.header("x-client-verified").as_deref(), Some("SUCCESS"));
    assert!(
        !proxy.property_reads.contains(&"connection.peer_certificate_valid".to_owned()),
        "the flag cannot change the answer"
    );
}

#[test]
fn under_listener_verification_a_resumed_session_is_admitted() {
    // Envoy 1.39/1.40 on a resumed TLS session: everything there, the flag 0
    let mut proxy = get("/").with_client_cert("alice", false);
    let a = admit(&mut proxy, &policy(LISTENER), &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Allow);
    assert_eq!(proxy.header("x-client-cn").as_deref(), Some("alice"));
    // the default still refuses it
    let mut proxy = get("/").with_client_cert("alice", false);
    let a = admit(&mut proxy, &policy(ANY_CERT), &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Deny(DenyReason::CertificateNotVerified));
}

#[test]
fn under_listener_verification_deny_lists_and_validity_still_apply() {
    let serial = r#""deny":{"serials":["4C:1E:7A:5E:00:00:00:00:00:00:00:00:00:00:10:01"]},"#;
    let p = policy(&LISTENER.replacen('{', &format!("{{{serial}"), 1));
    let a = admit(&mut envoy_1_36("alice"), &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Deny(DenyReason::Revoked));
    let a = admit(&mut envoy_1_36("expired"), &policy(LISTENER), &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Deny(DenyReason::Expired));
}

#[test]
fn the_verified_header_says_why_a_certificate_failed_as_nginx_does() {
    let p = policy(r#"{"headers":{"preset":"nginx"},"rules":[{"name":"home","anonymous":true}]}"#);
    for (proxy, want) in [
        (get("/").with_client_cert("alice", true), "SUCCESS"),
        (get("/"), "NONE"),
        (get("/").with_client_cert("expired", true), "FAILED:certificate has expired"),
        (
            get("/").with_client_cert("not-yet-valid", true),
            "FAILED:certificate is not yet valid",
        ),
        (get("/").with_client_cert("mallory", false), "FAILED:certificate_not_verified"),
        (envoy_1_36("alice"), "FAILED:verification_unknown"),
    ] {
        let mut proxy = proxy;
        let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
        assert_eq!(a.outcome, Outcome::Allow);
        assert_eq!(proxy.header("verified").as_deref(), Some(want));
        assert_eq!(proxy.header("dn").is_some(), want == "SUCCESS", "{want}");
    }
}

#[test]
fn a_browser_is_denied_with_a_page_and_an_api_client_with_json() {
    let p = policy(APP);
    let mut browser = get("/").with_header("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
    admit(&mut browser, &p, &mut IdentityCache::new(8), NOW);
    let reply = browser.reply.unwrap();
    assert_eq!(reply.status, 403);
    assert!(reply.headers.contains(&("content-type".into(), "text/html; charset=utf-8".into())));
    assert!(String::from_utf8_lossy(&reply.body).contains("needs a client certificate"));
    let mut api = get("/").with_header("accept", "*/*");
    admit(&mut api, &p, &mut IdentityCache::new(8), NOW);
    let reply = api.reply.unwrap();
    assert!(reply.headers.contains(&("content-type".into(), "application/json".into())));
}

#[test]
fn auto_reads_xfcc_only_for_this_connections_certificate() {
    let p = policy(ANY_CERT);
    // an older proxy: no peer_certificate property, but XFCC set by it
    let mut proxy = get("/")
        .with_client_cert("alice", true)
        .with_header("x-forwarded-client-cert", &xfcc_for("alice"));
    proxy.properties.remove("connection.peer_certificate");
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Allow);
    assert_eq!(proxy.header("x-client-serial").as_deref(), Some("4c1e7a5e000000000000000000001001"));

    // XFCC claiming ops-anna on alice's connection is ignored: the identity
    // falls back to the connection's own subject property.
    let spoof = format!("{},{}", xfcc_for("bob"), xfcc_for("ops-anna"));
    let mut proxy = get("/")
        .with_client_cert("alice", true)
        .with_header("x-forwarded-client-cert", &spoof);
    proxy.properties.remove("connection.peer_certificate");
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Allow);
    assert_eq!(proxy.header("x-client-cn").as_deref(), Some("alice"));
    assert_eq!(proxy.header("x-client-serial"), None, "properties carry no serial");
}

#[test]
fn properties_alone_cannot_satisfy_issuer_rules_or_serial_deny_lists() {
    let source = r#""identity_source":"properties","#;
    let issuer_rule = policy(&APP.replacen('{', &format!("{{{source}"), 1));
    let mut proxy = get("/").with_client_cert("alice", true);
    let a = admit(&mut proxy, &issuer_rule, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Deny(DenyReason::IdentityIncomplete));

    let cn_rule = policy(&format!(r#"{{{source}"rules":[{{"name":"a","subject_cn":["alice"]}}]}}"#));
    let mut proxy = get("/").with_client_cert("alice", true);
    let a = admit(&mut proxy, &cn_rule, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Allow);
    assert_eq!(
        proxy.header("x-client-subject").as_deref(),
        Some("CN=alice,OU=Engineering,O=Example")
    );
    assert_eq!(proxy.header("x-client-not-after"), None);

    let deny_list = policy(&format!(r#"{{{source}"deny":{{"serials":["01"]}},"rules":[{{"name":"a"}}]}}"#));
    let a = admit(
        &mut get("/").with_client_cert("alice", true),
        &deny_list,
        &mut IdentityCache::new(8),
        NOW,
    );
    assert_eq!(a.outcome, Outcome::Deny(DenyReason::IdentityIncomplete));
}

#[test]
fn xfcc_mode_reads_the_nearest_element() {
    let p = policy(r#"{"identity_source":"xfcc","rules":[{"name":"a","subject_cn":["ops-*"]}]}"#);
    let header = format!("{},{}", xfcc_for("alice"), xfcc_for("ops-anna"));
    let mut proxy = get("/").with_header("x-forwarded-client-cert", &header);
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Allow);
    assert_eq!(a.cn.as_deref(), Some("ops-anna"));

    let mut none = get("/");
    let a = admit(&mut none, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Deny(DenyReason::CertificateRequired));

    for bad in ["Hash=1;Cert=\"unterminated", "Hash=1;By=x", "Hash=1;Cert=%zz"] {
        let mut proxy = get("/").with_header("x-forwarded-client-cert", bad);
        let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
        assert_eq!(a.outcome, Outcome::Deny(DenyReason::UnparseableCertificate), "{bad}");
    }
}

#[test]
fn a_sha256_deny_list_entry_revokes_at_once() {
    let (_, der) = client_cert("bob");
    let fingerprint: Vec<String> = sha256_hex(&der)
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let p = policy(&format!(
        r#"{{"deny":{{"sha256":["{}"]}},"rules":[{{"name":"a"}}]}}"#,
        fingerprint.join(":")
    ));
    let a = admit(&mut get("/").with_client_cert("bob", true), &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Deny(DenyReason::Revoked));
    assert_eq!(a.credential, Credential::Failed(DenyReason::Revoked));
    let a = admit(&mut get("/").with_client_cert("alice", true), &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Allow);
}

#[test]
fn expiry_soon_is_flagged_and_counted() {
    let p = policy(ANY_CERT);
    let not_after = 3_313_526_400;
    let soon = not_after - 5 * 86_400;
    let mut proxy = get("/").with_client_cert("alice", true);
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), soon);
    assert!(a.expiring_soon);
    assert_eq!(proxy.header("x-client-expires-in").as_deref(), Some("432000"));
    assert!(metrics::increments(&p, &a).iter().any(|(n, _)| n == metrics::EXPIRING_SOON));
    let a = admit(&mut get("/").with_client_cert("alice", true), &p, &mut IdentityCache::new(8), NOW);
    assert!(!a.expiring_soon);
}

#[test]
fn metrics_count_by_outcome_reason_and_rule() {
    let p = policy(APP);
    let names = metrics::all_counters(&p);
    let mut proxy = get("/").with_client_cert("carol", true).with_header("x-client-cn", "admin");
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    let inc = metrics::increments(&p, &a);
    let inc: Vec<&str> = inc.iter().map(|(n, _)| n.as_str()).collect();
    assert!(inc.contains(&"certgate_requests_total.outcome.denied.reason.issuer_not_allowed.rule.app"));
    assert!(inc.contains(&metrics::SPOOFED_HEADERS));
    assert!(inc.contains(&metrics::CACHE_MISSES));
    for n in &inc {
        assert!(names.iter().flatten().any(|d| d == n), "{n} is never defined");
    }
    let audit = policy(&APP.replacen('{', r#"{"mode":"audit","#, 1));
    let a = admit(
        &mut get("/").with_client_cert("carol", true),
        &audit,
        &mut IdentityCache::new(8),
        NOW,
    );
    let inc = metrics::increments(&audit, &a);
    let inc: Vec<&str> = inc.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        inc.contains(&"certgate_requests_total.outcome.audit_would_deny.reason.issuer_not_allowed.rule.app"),
        "{inc:?}"
    );
    assert!(!inc.iter().any(|n| n.contains("outcome.denied")));
}

#[test]
fn a_failing_host_call_fails_closed_even_in_audit_mode() {
    for mode in ["enforce", "audit"] {
        let p = policy(&ANY_CERT.replacen('{', &format!(r#"{{"mode":"{mode}","#), 1));
        for call in ["request_headers", "property", "add_request_header", "remove_request_header"] {
            let mut proxy = get("/").with_client_cert("alice", true).with_header("x-client-cn", "admin");
            proxy.failing.push(call);
            let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
            assert!(!a.forwarded, "{mode} {call}");
            assert_eq!(a.outcome, Outcome::Deny(DenyReason::InternalError));
            assert_eq!(proxy.reply.as_ref().map(|r| r.status), Some(500), "{mode} {call}");
            assert!(
                matches!(&a.failure, Some(Failure::HostCall(e)) if e.call == call),
                "{mode} {call}: the failure names the call: {:?}",
                a.failure
            );
            assert_eq!(a.reply_error, None, "{mode} {call}: the reply went out");
        }
    }
}

#[test]
fn a_fail_closed_reply_that_cannot_be_sent_is_kept_with_the_failure() {
    let p = policy(ANY_CERT);
    let mut proxy = get("/").with_client_cert("alice", true);
    proxy.failing.extend(["property", "send_local_response"]);
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    assert!(!a.forwarded);
    assert_eq!(a.outcome, Outcome::Deny(DenyReason::InternalError));
    assert!(
        matches!(&a.failure, Some(Failure::HostCall(e)) if e.call == "property"),
        "{:?}",
        a.failure
    );
    assert!(
        matches!(&a.reply_error, Some(e) if e.call == "send_local_response"),
        "{:?}",
        a.reply_error
    );
    assert!(proxy.reply.is_none());
}

#[test]
fn duplicate_spoofed_headers_are_all_removed() {
    let p = policy(ANY_CERT);
    let mut proxy = get("/")
        .with_client_cert("alice", true)
        .with_header("x-client-cn", "a")
        .with_header("x-client-cn", "b")
        .with_header("X-CLIENT-CN", "c");
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    // Envoy lowercases names: one name with three values, removed at once
    assert_eq!(a.stripped, 1, "one name");
    assert_eq!(proxy.header_values("x-client-cn"), ["alice"]);
}

/// The committed configurations' rules: health, admin for operators, app.
const PATHS: &str = r#"{PATHS"rules":[
    {"name":"health","path":"/healthz","anonymous":true},
    {"name":"admin","path_prefix":"/admin/","subject_cn":["ops-*"]},
    {"name":"app","path_prefix":"/","issuer":["CN=Example Client CA,O=Example"]}]}"#;

fn paths_policy(settings: &str) -> Policy {
    policy(&PATHS.replace("{PATHS", &format!("{{{settings}")))
}

fn alice_gets(p: &Policy, path: &str) -> (Outcome, Option<String>) {
    let mut proxy = get(path).with_client_cert("alice", true);
    let a = admit(&mut proxy, p, &mut IdentityCache::new(8), NOW);
    (a.outcome, a.rule)
}

#[test]
fn by_default_case_and_parameters_cannot_dodge_a_rule() {
    let p = paths_policy("");
    for path in ["/admin", "/Admin/", "/ADMIN/x", "/admin;x/", "/;x/admin/x", "/aDmin;jsessionid=1"] {
        assert_eq!(
            alice_gets(&p, path),
            (Outcome::Deny(DenyReason::SubjectNotAllowed), Some("admin".into())),
            "{path}"
        );
    }
    assert_eq!(alice_gets(&p, "/administrator"), (Outcome::Allow, Some("app".into())));
}

#[test]
fn a_case_sensitive_application_may_say_so() {
    let p = paths_policy(r#""paths":{"case":"sensitive"},"#);
    // its router sends `/ADMIN/x` to the ordinary handler, so rule `app` decides
    assert_eq!(alice_gets(&p, "/ADMIN/x"), (Outcome::Allow, Some("app".into())));
    assert_eq!(alice_gets(&p, "/admin/x").0, Outcome::Deny(DenyReason::SubjectNotAllowed));
}

#[test]
fn a_case_folding_application_gets_case_blind_rules() {
    let p = paths_policy(r#""paths":{"case":"insensitive"},"#);
    assert_eq!(alice_gets(&p, "/ADMIN/x").0, Outcome::Deny(DenyReason::SubjectNotAllowed));
    let mut anonymous = get("/HEALTHZ");
    let a = admit(&mut anonymous, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(
        (a.outcome, a.rule.as_deref()),
        (Outcome::Allow, Some("health")),
        "to it, /HEALTHZ is /healthz"
    );
}

#[test]
fn path_parameters_follow_the_application() {
    let keep = paths_policy(r#""paths":{"parameters":"keep"},"#);
    assert_eq!(
        alice_gets(&keep, "/admin;x/y"),
        (Outcome::Allow, Some("app".into())),
        "kept, `/admin;x` is not `/admin`"
    );
    let strip = paths_policy(r#""paths":{"parameters":"strip"},"#);
    assert_eq!(alice_gets(&strip, "/admin;x/y").0, Outcome::Deny(DenyReason::SubjectNotAllowed));
    assert_eq!(alice_gets(&strip, "/app;jsessionid=1/x"), (Outcome::Allow, Some("app".into())));
}

#[test]
fn the_application_gets_the_path_the_rules_matched() {
    let p = paths_policy("");
    let mut proxy = get("/%61pp//x/?q=%2F").with_client_cert("alice", true);
    admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(proxy.header(":path").as_deref(), Some("/app/x/?q=%2F"));
    // nothing to rewrite: the header is left alone
    let mut proxy = get("/app/x?q=1").with_client_cert("alice", true);
    proxy.failing.push("set_request_header");
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Allow);
}

#[test]
fn override_headers_are_removed_unless_passed() {
    let sent = [
        ("X-HTTP-Method-Override", "DELETE"),
        ("x_original_url", "/admin/"),
        ("X-Rewrite-URL", "/admin/"),
        ("X-HTTP-Method", "PUT"),
        ("X-Method-Override", "PUT"),
    ];
    let request = || {
        sent.iter()
            .fold(get("/app/").with_client_cert("alice", true), |p, (k, v)| p.with_header(k, v))
    };
    let mut proxy = request();
    admit(&mut proxy, &paths_policy(""), &mut IdentityCache::new(8), NOW);
    for (name, _) in sent {
        assert_eq!(proxy.header_values(name), Vec::<String>::new(), "{name}");
    }
    let passing = paths_policy(r#""headers":{"pass_overrides":["X-HTTP-Method-Override"]},"#);
    let mut proxy = request();
    admit(&mut proxy, &passing, &mut IdentityCache::new(8), NOW);
    assert_eq!(proxy.header("x-http-method-override").as_deref(), Some("DELETE"));
    assert_eq!(proxy.header("x-original-url"), None);
}

#[test]
fn a_rule_no_request_can_reach_is_warned_about() {
    let p = policy(r#"{"rules":[{"name":"all","path_prefix":"/"},{"name":"admin","path_prefix":"/admin/"}]}"#);
    assert_eq!(p.warnings.len(), 1);
    assert!(
        p.warnings[0].contains("rule `admin` is never used: rule `all` before it"),
        "{:?}",
        p.warnings
    );
    assert!(paths_policy("").warnings.is_empty());
}

#[test]
fn rfc_9440_headers_carry_this_connections_certificate_and_never_the_clients() {
    let p = policy(r#"{"headers":{"preset":"rfc9440"},"rules":[{"name":"any"}]}"#);
    let (_, der) = client_cert("alice");
    let want = format!(":{}:", base64_of(&der));
    let mut proxy = get("/")
        .with_client_cert("alice", true)
        .with_header("Client-Cert", ":AAAA:")
        .with_header("client_cert_chain", ":AAAA:");
    admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(proxy.header("client-cert"), Some(want.clone()));
    assert_eq!(
        proxy.header("client-cert-chain"),
        None,
        "no chain from the proxy, none from the client"
    );
    // Envoy 1.36: from the XFCC element, which carries the chain too when asked
    let mut old = envoy_1_36("alice");
    let xfcc = xfcc_for("alice");
    let chain = common::fixture("pki/alice-chain.pem");
    let chain_field: String = chain
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    old.headers.retain(|(n, _)| n != "x-forwarded-client-cert");
    old.headers.push((
        "x-forwarded-client-cert".into(),
        format!("{xfcc};Chain=\"{chain_field}\"").into_bytes(),
    ));
    admit(
        &mut old,
        &policy(r#"{"verification":"listener","headers":{"preset":"rfc9440"},"rules":[{"name":"any"}]}"#),
        &mut IdentityCache::new(8),
        NOW,
    );
    assert_eq!(old.header("client-cert"), Some(want));
    let (_, ca) = pem_rfc7468::decode_vec(common::fixture("pki/client-ca.pem").as_bytes()).unwrap();
    assert_eq!(old.header("client-cert-chain"), Some(format!(":{}:", base64_of(&ca))));
    // no usable certificate, no header
    let mut anonymous = get("/").with_header("client-cert", ":AAAA:");
    admit(
        &mut anonymous,
        &policy(r#"{"headers":{"preset":"rfc9440"},"rules":[{"name":"any","anonymous":true}]}"#),
        &mut IdentityCache::new(8),
        NOW,
    );
    assert_eq!(anonymous.header("client-cert"), None);
}

/// Standard base64 with padding, written out here to check the filter's.
fn base64_of(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A host that gets the certificate only through a setting (the dynamic
/// module and its network filter) denies a request without it, naming the
/// setting; other hosts fall back to the subject properties as before.
#[test]
fn a_host_that_needs_a_setting_for_the_certificate_names_it_when_it_is_missing() {
    let p = policy(&ANY_CERT.replacen('{', r#"{"verification":"listener","#, 1));
    let properties_only = |setting| {
        let mut proxy = envoy_1_36("alice");
        proxy.headers.retain(|(n, _)| n != "x-forwarded-client-cert");
        proxy.certificate_setting = setting;
        proxy
    };
    let mut proxy = properties_only(Some("add the network filter"));
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Deny(DenyReason::UnparseableCertificate));
    assert!(
        matches!(&a.failure, Some(Failure::UnreadableCertificate(why)) if why.contains("add the network filter")),
        "{:?}",
        a.failure
    );
    let mut proxy = properties_only(None);
    let a = admit(&mut proxy, &p, &mut IdentityCache::new(8), NOW);
    assert_eq!(a.outcome, Outcome::Allow, "the subject properties, as before");
}
