//! The bad-input corpus (`fixtures/bad-input/`) through the real `.wasm`:
//! crafted certificates (signed by the fixture client CA, so a proxy would
//! pass them on), broken PEM and DER, hostile XFCC, non-UTF-8 properties. Each
//! gives a deny with the right reason or a correct allow whose header values
//! the application cannot misread; never a trap.
//! `./dev fixtures` rewrites the crafted certificates with the test PKI.

use crate::common;

use std::path::PathBuf;

use certgate_core::headers::is_safe_value;
use certgate_fixtures::CRAFTED;
use certgate_host::abi::Status;
use certgate_host::{Connection, Exchange, HarnessError};
use common::plugin::{certgate, client, fixture, request, settings, with_peer_pem};
use common::repo;

fn dir() -> PathBuf {
    repo().join("fixtures/bad-input")
}

/// Header values certgate set: printable ASCII only (no CR, LF, NUL, no
/// non-ASCII), and list headers cannot gain an element from a comma.
fn assert_safe(out: &Exchange, case: &str) {
    let set: Vec<_> = out
        .upstream_headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-client-") || k.starts_with("x-certgate-"))
        .collect();
    for (k, v) in set {
        assert!(is_safe_value(v), "{case}: {k} = {:?}", String::from_utf8_lossy(v));
    }
}

fn outcome(out: &Exchange) -> String {
    match &out.local_response {
        Some(r) => {
            let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            format!("{} {}", r.status, json["reason"].as_str().unwrap())
        }
        None => "allow".into(),
    }
}

const POLICY: &str = r#"{ "rules": [ { "name": "app", "path_prefix": "/", "issuer": ["CN=Example Client CA,O=Example"] } ] }"#;

#[test]
fn crafted_certificates_are_allowed_with_safe_headers_or_denied_as_unparseable() {
    let mut plugin = certgate().start(settings(POLICY)).unwrap();
    for name in CRAFTED {
        let pem = std::fs::read_to_string(dir().join(format!("{name}.pem"))).unwrap();
        let conn = Connection::local_tls().with_client_cert_pem(&pem, true).unwrap();
        let out = plugin.request(&conn, request("GET", "/x")).unwrap();
        let want = match name {
            // x509-parser refuses a certificate with an extension twice (RFC 5280 4.2)
            "duplicate-san" => "403 unparseable_certificate",
            _ => "allow",
        };
        assert_eq!(outcome(&out), want, "{name}");
        assert_safe(&out, name);
        if want == "allow" {
            let cn = out.header("x-client-cn").unwrap_or_default();
            assert!(
                !cn.contains(',') && !cn.contains('\r') && !cn.contains('\0'),
                "{name}: x-client-cn {cn:?}"
            );
            assert_eq!(out.upstream_headers.iter().filter(|(k, _)| k == "x-client-cn").count(), 1, "{name}");
        }
    }
    // The comma in a URI SAN stays inside one percent-encoded element.
    let pem = std::fs::read_to_string(dir().join("comma-san.pem")).unwrap();
    let out = plugin
        .request(
            &Connection::local_tls().with_client_cert_pem(&pem, true).unwrap(),
            request("GET", "/x"),
        )
        .unwrap();
    assert_eq!(
        out.header("x-client-san-uri").as_deref(),
        Some("spiffe://example.org/ns/a%2CURI=spiffe://example.org/ns/admin")
    );
    assert!(plugin.logs().iter().all(|l| !l.message.contains("panicked")));
}

#[test]
fn broken_pem_and_der_are_denied_as_unparseable() {
    let mut plugin = certgate().start(settings(POLICY)).unwrap();
    let alice = fixture("pki/alice.pem");
    let der = pem_rfc7468::decode_vec(alice.as_bytes()).unwrap().1;
    let mut trailing = der.clone();
    trailing.extend_from_slice(&[0, 1, 2, 3]);
    let wrap = |d: &[u8]| pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, d).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated PEM", alice.as_bytes()[..alice.len() / 2].to_vec()),
        ("truncated DER", wrap(&der[..der.len() - 10]).into_bytes()),
        ("DER with trailing bytes", wrap(&trailing).into_bytes()),
        (
            "bad base64",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(),
        ),
        ("NUL bytes", vec![0; 64]),
        ("not UTF-8", vec![0xff, 0xfe, 0x80, 0x00, 0xc3]),
        (
            "a megabyte of base64",
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                "QUFB".repeat(262_144)
            )
            .into_bytes(),
        ),
        ("wrong label", alice.replace("CERTIFICATE", "PRIVATE KEY").into_bytes()),
    ];
    for (case, pem) in cases {
        let out = plugin.request(&with_peer_pem(pem), request("GET", "/x")).unwrap();
        assert_eq!(outcome(&out), "403 unparseable_certificate", "{case}");
        assert_safe(&out, case);
    }
    // Still one healthy instance: alice passes afterwards.
    assert_eq!(
        outcome(
            &plugin
                .request(&common::plugin::client("alice", true), request("GET", "/x"))
                .unwrap()
        ),
        "allow"
    );
}

#[test]
fn hostile_xfcc_is_denied_or_read_safely_never_a_trap() {
    let policy = r#"{ "identity_source": "xfcc", "rules": [ { "name": "app", "path_prefix": "/", "subject_cn": ["alice"] } ] }"#;
    let mut plugin = certgate().start(settings(policy)).unwrap();
    let good = common::plugin::client("alice", true).xfcc.unwrap();
    let files = ["unbalanced-quote", "escaped-quotes", "empty-elements", "garbage-cert"];
    let mut cases: Vec<(String, Vec<String>, &str)> = files
        .iter()
        .map(|f| {
            (
                f.to_string(),
                vec![std::fs::read_to_string(dir().join(format!("xfcc-{f}.txt"))).unwrap()],
                "403 unparseable_certificate",
            )
        })
        .collect();
    cases.push((
        "5000 elements, the nearest good".into(),
        vec![format!("{}{good}", "By=spiffe://x;Hash=00,".repeat(5000))],
        "allow",
    ));
    cases.push((
        "5000 elements, the nearest bad".into(),
        vec![format!("{good}{}", ",By=spiffe://x;Hash=00".repeat(5000))],
        "403 unparseable_certificate",
    ));
    cases.push((
        "a megabyte value".into(),
        vec![format!("By=\"{}\";{good}", "a".repeat(1 << 20))],
        "allow",
    ));
    cases.push((
        "two headers, the nearest last".into(),
        vec!["Hash=00;Cert=\"x\"".into(), good.clone()],
        "allow",
    ));
    cases.push((
        "two headers, the nearest bad".into(),
        vec![good.clone(), "Hash=00;Cert=\"x\"".into()],
        "403 unparseable_certificate",
    ));
    for (case, values, want) in cases {
        let mut headers = request("GET", "/x");
        headers.extend(values.into_iter().map(|v| ("x-forwarded-client-cert".to_owned(), v.into_bytes())));
        let out = plugin.request(&Connection::local_tls(), headers).unwrap();
        assert_eq!(outcome(&out), want, "{case}");
        assert_safe(&out, &case);
    }
}

#[test]
fn non_utf8_and_hostile_properties_are_denied_or_encoded() {
    let config = r#"{ "identity_source": "properties", "rules": [ { "name": "app", "path_prefix": "/", "subject_cn": ["*"] } ] }"#;
    let mut plugin = certgate().start(settings(config)).unwrap();
    let conn = |subject: &[u8]| {
        let mut c = Connection::local_tls();
        c.set("connection.mtls", vec![1]);
        c.set("connection.peer_certificate_valid", vec![1]);
        c.set("connection.sha256_peer_certificate_digest", "ef".repeat(32));
        c.set("connection.subject_peer_certificate", subject.to_vec());
        c
    };
    for (case, subject, want) in [
        ("not UTF-8", &b"CN=\xff\xfe,O=x"[..], "403 unparseable_certificate"),
        ("bad attribute type", &b"CN=a,\x7f=b"[..], "403 unparseable_certificate"),
        ("escaped CR LF", &b"CN=alice\\0D\\0Ax-client-cn: admin,O=x"[..], "allow"),
        ("escaped NUL", &b"CN=a\\00b"[..], "allow"),
    ] {
        let out = plugin.request(&conn(subject), request("GET", "/x")).unwrap();
        assert_eq!(outcome(&out), want, "{case}");
        assert_safe(&out, case);
    }
}

/// A host may refuse any call (Envoy answers `BadArgument` or `NotFound` for
/// a map or property it does not have at that moment). certgate must then
/// fail the request closed and live on: a trap would kill the VM for every
/// later request.
#[test]
fn a_host_refusing_a_call_fails_the_request_closed_never_traps() {
    let config = r#"{ "rules": [ { "name": "app", "path_prefix": "/app", "subject_cn": ["alice"] } ] }"#;
    let alice = client("alice", true);
    let spoofed = || {
        let mut r = request("GET", "/app/");
        r.push(("x-client-cn".into(), b"admin".to_vec()));
        r
    };
    for (import, conn, headers, want) in [
        ("proxy_get_header_map_pairs", &alice, request("GET", "/app/"), "500 internal_error"),
        ("proxy_get_property", &alice, request("GET", "/app/"), "500 internal_error"),
        ("proxy_add_header_map_value", &alice, request("GET", "/app/"), "500 internal_error"),
        ("proxy_remove_header_map_value", &alice, spoofed(), "500 internal_error"),
        // a path the rules read as /app/x, forwarded under that spelling
        (
            "proxy_replace_header_map_value",
            &alice,
            request("GET", "/%61pp/x"),
            "500 internal_error",
        ),
        // publishing the decision is for logs: the request still goes on
        ("proxy_set_property", &alice, request("GET", "/app/"), "allow"),
        // the deny itself cannot be sent: the request stays paused, never forwarded
        (
            "proxy_send_local_response",
            &Connection::local_tls(),
            request("GET", "/app/"),
            "paused",
        ),
    ] {
        // 99: no status of the ABI, which a host may answer all the same
        for status in [
            Status::BadArgument as i32,
            Status::NotFound as i32,
            Status::InternalFailure as i32,
            99,
        ] {
            let module = certgate().with_refused_import(import, status).unwrap();
            let mut plugin = module.start(settings(config)).unwrap();
            for attempt in 1..=2 {
                let out = plugin
                    .request(conn, headers.clone())
                    .unwrap_or_else(|e| panic!("{import} {status}: {e}"));
                let got = if out.local_response.is_none() && !out.forwarded() {
                    "paused".to_owned()
                } else {
                    outcome(&out)
                };
                // a property the host does not have: no certificate, denied
                let want = if import == "proxy_get_property" && status == Status::NotFound as i32 {
                    "403 certificate_required"
                } else {
                    want
                };
                assert_eq!(got, want, "{import} refused with {status}, request {attempt}");
                if want == "allow" {
                    assert_eq!(out.header("x-client-cn").as_deref(), Some("alice"), "{import}");
                }
                assert_eq!(plugin.failure(), None, "{import} refused with {status}: the VM trapped");
            }
        }
    }
}

/// The calls of the plugin rather than of a request: reading the
/// configuration, defining and counting metrics, the tick, the clock, the
/// log. A refusal is an error certgate handles, never a trap: a
/// configuration it cannot read is refused, a counter the host will not
/// define or increment is skipped, and without a clock every request fails
/// closed.
#[test]
fn a_host_refusing_a_plugin_call_never_traps() {
    let config = r#"{ "rules": [ { "name": "app", "path_prefix": "/app", "subject_cn": ["alice"] } ] }"#;
    let alice = client("alice", true);
    for status in [Status::BadArgument as i32, Status::InternalFailure as i32, 99] {
        let module = certgate().with_refused_import("proxy_get_buffer_bytes", status).unwrap();
        match module.start(settings(config)) {
            Err(HarnessError::ConfigureRefused { .. }) => {}
            other => panic!("configuration unreadable ({status}): {other:?}"),
        }
        for (import, want) in [
            ("proxy_define_metric", "allow"),
            ("proxy_increment_metric", "allow"),
            ("proxy_set_tick_period_milliseconds", "allow"),
            ("proxy_get_current_time_nanoseconds", "500 internal_error"),
            ("proxy_log", "allow"),
        ] {
            let module = certgate().with_refused_import(import, status).unwrap();
            let mut plugin = module.start(settings(config)).unwrap_or_else(|e| panic!("{import} {status}: {e}"));
            for _ in 0..2 {
                let out = plugin
                    .request(&alice, request("GET", "/app/"))
                    .unwrap_or_else(|e| panic!("{import} {status}: {e}"));
                assert_eq!(outcome(&out), want, "{import} refused with {status}");
                plugin.tick().unwrap_or_else(|e| panic!("{import} {status}, tick: {e}"));
            }
            if import == "proxy_log" {
                // a deny logs its reason
                let out = plugin.request(&Connection::local_tls(), request("GET", "/app/")).unwrap();
                assert_eq!(outcome(&out), "403 certificate_required");
            }
            assert_eq!(plugin.failure(), None, "{import} refused with {status}: the VM trapped");
        }
    }
}
