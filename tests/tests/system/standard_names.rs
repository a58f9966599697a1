//! Names exactly as their standards define them, end to end: certificates
//! made here and signed by the fixtures' client CA (as a CA signing its
//! users' CSRs could issue them) through Envoy (the Wasm build on 1.36.4 and
//! 1.40.0, the dynamic module on 1.40.0) and `certgate serve`'s edge. Each
//! case asserts the status and the identity headers the application gets:
//! no invalid SPIFFE ID matches a `spiffe` rule or reaches it as
//! `x-client-spiffe-id`, no SAN that fails its standard is passed on. And
//! certgate's subject and issuer DNs are Envoy's own
//! (`%DOWNSTREAM_PEER_SUBJECT%`, `%DOWNSTREAM_PEER_ISSUER%`) on crafted names.

use crate::common;

use std::net::SocketAddr;

use certgate_backend as backend;
use certgate_edge::tls::ClientCertMode;
use certgate_test_support::crafted::{client_certificate, Name};
use common::envoy::{config, with_listener_verification, Build, Envoy};
use common::{client_config_files, connect_with, pki, repo, stack, TempDir};

const POLICY: &str = r#"{ "rules": [
    { "name": "prod", "path_prefix": "/spiffe/", "spiffe": ["spiffe://example.org/ns/prod/sa/*"] },
    { "name": "uri", "path_prefix": "/uri/", "san_uri": ["spiffe://example.org/ns/prod/sa/**", "https://*"] },
    { "name": "dns", "path_prefix": "/dns/", "san_dns": ["*.example.org"] },
    { "name": "mail", "path_prefix": "/mail/", "san_email": ["alice@example.org"] },
    { "name": "any", "path_prefix": "/any/" }
] }"#;

/// One request: a certificate's names, the path, the status, and what the
/// application must see of each header (`None`: not set).
struct Case {
    names: Vec<Name<'static>>,
    path: &'static str,
    status: u16,
    headers: &'static [(&'static str, Option<&'static str>)],
}

fn case(names: Vec<Name<'static>>, path: &'static str, status: u16, headers: &'static [(&'static str, Option<&'static str>)]) -> Case {
    Case {
        names,
        path,
        status,
        headers,
    }
}

fn cases() -> Vec<Case> {
    use Name::*;
    const WEB: &str = "spiffe://example.org/ns/prod/sa/web";
    vec![
        case(
            vec![Uri(WEB)],
            "/spiffe/x",
            200,
            &[("x-client-spiffe-id", Some(WEB)), ("x-client-san-uri", Some(WEB))],
        ),
        // the issue's attack: an ID that normalises to another identity
        case(vec![Uri("spiffe://example.org/ns/prod/sa/..")], "/spiffe/x", 403, &[]),
        case(
            vec![Uri("spiffe://example.org/ns/prod/sa/..")],
            "/uri/x",
            200,
            &[
                ("x-client-spiffe-id", None),
                ("x-client-san-uri", Some("spiffe://example.org/ns/prod/sa/..")),
            ],
        ),
        case(vec![Uri("spiffe://example.org/ns/prod/sa/%2e%2e")], "/spiffe/x", 403, &[]),
        case(vec![Uri("spiffe://example.org/ns/prod/sa/web/")], "/spiffe/x", 403, &[]),
        case(vec![Uri("spiffe://example.org/ns/prod/sa//web")], "/spiffe/x", 403, &[]),
        case(vec![Uri("spiffe://example.org/ns/prod/sa/web?admin=1")], "/spiffe/x", 403, &[]),
        case(vec![Uri("spiffe://example.org:8443/ns/prod/sa/web")], "/spiffe/x", 403, &[]),
        case(vec![Uri("spiffe://Example.org/ns/prod/sa/web")], "/spiffe/x", 403, &[]),
        case(
            vec![Uri("spiffe://Example.org/ns/prod/sa/web")],
            "/any/x",
            200,
            &[("x-client-spiffe-id", None)],
        ),
        // an X.509-SVID has exactly one URI SAN
        case(vec![Uri(WEB), Uri("https://example.org/")], "/spiffe/x", 403, &[]),
        case(
            vec![Uri(WEB), Uri("https://example.org/")],
            "/any/x",
            200,
            &[
                ("x-client-spiffe-id", None),
                ("x-client-san-uri", Some("spiffe://example.org/ns/prod/sa/web,https://example.org/")),
            ],
        ),
        // URI SANs: RFC 3986
        case(vec![Uri("https://example.org/a b")], "/uri/x", 403, &[]),
        case(vec![Uri("https://example.org/a b")], "/any/x", 200, &[("x-client-san-uri", None)]),
        // DNS SANs: preferred name syntax, A-labels, no wildcard
        case(
            vec![Dns("Web.Example.org")],
            "/dns/x",
            200,
            &[("x-client-san-dns", Some("Web.Example.org"))],
        ),
        case(
            vec![Dns("xn--bcher-kva.example.org")],
            "/dns/x",
            200,
            &[("x-client-san-dns", Some("xn--bcher-kva.example.org"))],
        ),
        case(vec![Dns("*.example.org")], "/dns/x", 403, &[]),
        case(
            vec![Dns("*.example.org"), Dns("bad_name.example.org")],
            "/any/x",
            200,
            &[("x-client-san-dns", None)],
        ),
        // e-mail SANs: the domain without case, the local part exactly
        case(
            vec![Email("alice@EXAMPLE.org")],
            "/mail/x",
            200,
            &[("x-client-san-email", Some("alice@EXAMPLE.org"))],
        ),
        case(vec![Email("Alice@example.org")], "/mail/x", 403, &[]),
        case(vec![Email("alice@example.org@evil.org")], "/mail/x", 403, &[]),
        case(
            vec![Email("Alice <alice@example.org>")],
            "/any/x",
            200,
            &[("x-client-san-email", None)],
        ),
    ]
}

/// Every case through one front; what went wrong.
async fn run(front: &str, addr: SocketAddr, certs: &[(Case, (std::path::PathBuf, std::path::PathBuf))]) -> Vec<String> {
    let mut failures = Vec::new();
    for (c, (chain, key)) in certs {
        let what = format!("{front} {:?} {}", c.names, c.path);
        let tls = client_config_files(&pki("root-ca.pem"), Some((chain, key)), &[b"http/1.1"]);
        let reply = match connect_with(addr, tls, false).await {
            Ok(mut conn) => {
                conn.send("GET", c.path, &[("x-client-spiffe-id", "spiffe://example.org/ns/prod/sa/admin")])
                    .await
            }
            Err(e) => Err(e),
        };
        let r = match reply {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{what}: {e}"));
                continue;
            }
        };
        if r.status != c.status {
            failures.push(format!("{what}: status {}, want {}", r.status, c.status));
        }
        if c.status == 200 {
            // a spoofed SPIFFE ID never survives
            let spiffe = r.backend_header("x-client-spiffe-id");
            if spiffe.iter().any(|v| v.ends_with("/admin")) {
                failures.push(format!("{what}: the client's own x-client-spiffe-id reached the application"));
            }
            for (name, want) in c.headers {
                let got = r.backend_header(name);
                let want: Vec<String> = want.iter().map(|w| (*w).to_owned()).collect();
                if got != want {
                    failures.push(format!("{what}: {name} = {got:?}, want {want:?}"));
                }
            }
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_fail_their_standard_match_nothing_and_reach_no_application() {
    let dir = TempDir::new("standard-names").unwrap();
    let certs: Vec<(Case, _)> = cases()
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let crafted = client_certificate(&repo(), "crafted", &c.names).unwrap();
            let paths = crafted.write_files(&dir.0, &format!("c{i}")).unwrap();
            (c, paths)
        })
        .collect();
    let policy = with_listener_verification(POLICY);
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let yaml = config("optional-mtls.yaml", backend.addr, Some(&policy));
    let mut failures = Vec::new();
    let mut fronts = 0;
    for (version, build) in [("1.36.4", Build::Wasm), ("1.40.0", Build::Wasm), ("1.40.0", Build::Module)] {
        let envoy = Envoy::start_version(version, &build.config(&yaml)).unwrap();
        let front = format!("envoy {version} {}", build.name());
        failures.extend(run(&front, envoy.listener, &certs).await);
        // each invalid SPIFFE ID's certificate was counted when first seen
        let counted = envoy.stat_eventually(&build.stat("certgate_invalid_spiffe_ids_total"), |v| v >= 8);
        if counted.is_none_or(|v| v < 8) {
            failures.push(format!("{front}: certgate_invalid_spiffe_ids_total = {counted:?}, want at least 8"));
        }
        // and the log says why
        for why in [
            "URI SAN is not a SPIFFE ID: a path segment is `.` or `..`",
            "DNS SAN is not a DNS name: a label is `*`",
        ] {
            if !envoy.log_eventually_contains(why) {
                failures.push(format!("{front}: the log does not say {why:?}"));
            }
        }
        fronts += 1;
    }
    let edge = stack(&policy, ClientCertMode::Optional).await;
    failures.extend(run("certgate serve", edge.edge.addr, &certs).await);
    fronts += 1;
    eprintln!("{} cases through {fronts} fronts", certs.len());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Distinguished names as Envoy writes them: each crafted subject through
/// Envoy, whose route adds `%DOWNSTREAM_PEER_SUBJECT%` and
/// `%DOWNSTREAM_PEER_ISSUER%` beside certgate's `x-client-subject` and
/// `x-client-issuer`: the application reads the same text from both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certgate_writes_subject_and_issuer_as_envoy_does() {
    let cns = [
        "alice",
        "a,b",
        "a+b",
        "a=b",
        "a;b",
        "\"quoted\"",
        "back\\slash",
        " leading space",
        "trailing space ",
        "#hash",
        "<angle>",
        "Zoë Ünïcødé",
        "日本",
        "CN=admin,O=Example",
        "tab\there",
    ];
    let dir = TempDir::new("envoy-dns").unwrap();
    let policy = with_listener_verification(r#"{ "rules": [ { "name": "any" } ] }"#);
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let yaml = config("optional-mtls.yaml", backend.addr, Some(&policy)).replace(
        "              domains: [\"*\"]\n",
        "              domains: [\"*\"]\n              request_headers_to_add:\n              \
         - header: { key: x-envoy-peer-subject, value: \"%DOWNSTREAM_PEER_SUBJECT%\" }\n                append_action: OVERWRITE_IF_EXISTS_OR_ADD\n              \
         - header: { key: x-envoy-peer-issuer, value: \"%DOWNSTREAM_PEER_ISSUER%\" }\n                append_action: OVERWRITE_IF_EXISTS_OR_ADD\n",
    );
    assert!(yaml.contains("x-envoy-peer-subject"), "the route of optional-mtls.yaml moved");
    let mut failures = Vec::new();
    for (version, build) in [("1.36.4", Build::Wasm), ("1.40.0", Build::Wasm), ("1.40.0", Build::Module)] {
        let envoy = Envoy::start_version(version, &build.config(&yaml)).unwrap();
        for (i, cn) in cns.iter().enumerate() {
            let crafted = client_certificate(&repo(), cn, &[]).unwrap();
            let (chain, key) = crafted.write_files(&dir.0, &format!("c{i}")).unwrap();
            let tls = client_config_files(&pki("root-ca.pem"), Some((&chain, &key)), &[b"http/1.1"]);
            let r = connect_with(envoy.listener, tls, false)
                .await
                .unwrap()
                .send("GET", "/", &[])
                .await
                .unwrap();
            for (ours, envoys) in [
                ("x-client-subject", "x-envoy-peer-subject"),
                ("x-client-issuer", "x-envoy-peer-issuer"),
            ] {
                let (a, b) = (r.backend_header(ours), r.backend_header(envoys));
                if a != b || a.len() != 1 {
                    failures.push(format!("{version} {} CN {cn:?}: certgate {ours} {a:?}, Envoy {b:?}", build.name()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
