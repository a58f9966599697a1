//! Every configuration mistake is refused with the JSON path at fault.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use certgate_core::config::parse_policy;
use certgate_core::config_error::{ConfigErrorKind as K, JsonErrorClass};
use certgate_core::glob::GlobError;
use certgate_x509::spiffe::SpiffeIdError;

fn rule(extra: &str) -> String {
    format!(r#"{{"rules":[{{"name":"r"{extra}}}]}}"#)
}

/// A configuration, the JSON path at fault, and whether an error is of the kind expected.
type Case = (String, &'static str, fn(&K) -> bool);

#[test]
fn each_mistake_names_its_json_path() {
    // each mistake, the path at fault, and the kind of error it is
    let cases: Vec<Case> = vec![
        ("".into(), ".", |k| matches!(k, K::Empty)),
        ("   ".into(), ".", |k| matches!(k, K::Empty)),
        ("{".into(), ".", |k| {
            matches!(
                k,
                K::Json {
                    class: JsonErrorClass::Eof,
                    ..
                }
            )
        }),
        ("[]".into(), ".", |k| matches!(k, K::NotAnObject)),
        ("\"rules\"".into(), ".", |k| matches!(k, K::NotAnObject)),
        (
            "{}".into(),
            ".",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("missing field `rules`")),
        ),
        (r#"{"rules":[]}"#.into(), "rules", |k| matches!(k, K::NoRules)),
        (
            r#"{"rules":[],"colour":"red"}"#.into(),
            "colour",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("unknown field `colour`")),
        ),
        (
            r#"{"mode":"block","rules":[]}"#.into(),
            "mode",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("unknown variant `block`")),
        ),
        (
            r#"{"identity_source":"header","rules":[]}"#.into(),
            "identity_source",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("unknown variant")),
        ),
        (
            rule(r#","isuer":["CN=x"]"#),
            "rules[0].isuer",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("unknown field `isuer`")),
        ),
        (
            rule(r#","anonymous":"yes""#),
            "rules[0].anonymous",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("invalid type")),
        ),
        (
            r#"{"rules":[{"path":"/"}]}"#.into(),
            "rules[0]",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("missing field `name`")),
        ),
        (rule(r#","issuer":[]"#), "rules[0].issuer", |k| matches!(k, K::EmptyAllowList)),
        (rule(r#","spiffe":[]"#), "rules[0].spiffe", |k| matches!(k, K::EmptyAllowList)),
        (rule(r#","methods":[]"#), "rules[0].methods", |k| matches!(k, K::EmptyAllowList)),
        (rule(r#","subject_cn":["ops-***"]"#), "rules[0].subject_cn[0]", |k| {
            matches!(
                k,
                K::Pattern {
                    error: GlobError::TripleStar,
                    ..
                }
            )
        }),
        (rule(r#","san_dns":[""]"#), "rules[0].san_dns[0]", |k| {
            matches!(
                k,
                K::Pattern {
                    error: GlobError::Empty,
                    ..
                }
            )
        }),
        (rule(r#","issuer":["Example Client CA"]"#), "rules[0].issuer[0]", |k| {
            matches!(k, K::DnPattern { .. })
        }),
        (rule(r#","subject":["CN=a,\\q"]"#), "rules[0].subject[0]", |k| {
            matches!(k, K::DnPattern { .. })
        }),
        (rule(r#","spiffe":["spiffe://*.org/x"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::TrustDomainCharacter,
                    ..
                }
            )
        }),
        (rule(r#","spiffe":["https://example.org/x"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::Scheme,
                    ..
                }
            )
        }),
        (rule(r#","spiffe":["spiffe://Example.org/x"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::TrustDomainCharacter,
                    ..
                }
            )
        }),
        (
            rule(r#","spiffe":["spiffe://example.org/ns/prod/sa/.."]"#),
            "rules[0].spiffe[0]",
            |k| {
                matches!(
                    k,
                    K::SpiffePattern {
                        error: SpiffeIdError::DotSegment,
                        ..
                    }
                )
            },
        ),
        (rule(r#","spiffe":["spiffe://example.org/ns/*?x=1"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::Query,
                    ..
                }
            )
        }),
        (rule(r#","spiffe":["spiffe://example.org/ns/*#f"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::Fragment,
                    ..
                }
            )
        }),
        (rule(r#","spiffe":["spiffe://example.org/ns%2F*"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::PercentEncoding,
                    ..
                }
            )
        }),
        (rule(r#","spiffe":["spiffe://example.org/ns/"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::TrailingSlash,
                    ..
                }
            )
        }),
        (rule(r#","spiffe":["spiffe://example.org/ns//*"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::EmptySegment,
                    ..
                }
            )
        }),
        (rule(r#","spiffe":["spiffe://example.org:443/*"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::Port,
                    ..
                }
            )
        }),
        (rule(r#","spiffe":["spiffe://me@example.org/*"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::Userinfo,
                    ..
                }
            )
        }),
        (rule(r#","spiffe":["spiffe://example.org/ns/a b"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::PathCharacter,
                    ..
                }
            )
        }),
        (rule(r#","spiffe":["spiffe:///ns/*"]"#), "rules[0].spiffe[0]", |k| {
            matches!(
                k,
                K::SpiffePattern {
                    error: SpiffeIdError::NoTrustDomain,
                    ..
                }
            )
        }),
        (rule(r#","san_email":["example.org"]"#), "rules[0].san_email[0]", |k| {
            matches!(
                k,
                K::Pattern {
                    error: GlobError::NotEmail,
                    ..
                }
            )
        }),
        (rule(r#","san_email":["@example.org"]"#), "rules[0].san_email[0]", |k| {
            matches!(
                k,
                K::Pattern {
                    error: GlobError::NotEmail,
                    ..
                }
            )
        }),
        (rule(r#","anonymous":true,"subject_cn":["a"]"#), "rules[0]", |k| {
            matches!(k, K::AnonymousWithAllowLists)
        }),
        (rule(r#","path":"/a","path_prefix":"/a/""#), "rules[0]", |k| {
            matches!(k, K::PathAndPrefix)
        }),
        (rule(r#","path_prefix":"/a/../b/""#), "rules[0].path_prefix", |k| {
            matches!(k, K::NotAPath(_))
        }),
        (rule(r#","path_prefix":"a/""#), "rules[0].path_prefix", |k| {
            matches!(k, K::NotAPath(_))
        }),
        (rule(r#","path":"/a//b""#), "rules[0].path", |k| {
            matches!(k, K::PathNotNormal { .. })
        }),
        (rule(r#","path_prefix":"/admin./""#), "rules[0].path_prefix", |k| {
            matches!(k, K::NotAPath(_))
        }),
        (rule(r#","path":"/a;b""#), "rules[0].path", |k| matches!(k, K::PathParameter(_))),
        (
            r#"{"paths":{"case":"lower"},"rules":[]}"#.into(),
            "paths.case",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("unknown variant `lower`")),
        ),
        (
            r#"{"paths":{"parameters":"refuse"},"rules":[]}"#.into(),
            "paths.parameters",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("unknown variant `refuse`")),
        ),
        (
            r#"{"paths":{"slashes":"merge"},"rules":[]}"#.into(),
            "paths.slashes",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("unknown field")),
        ),
        (
            r#"{"headers":{"pass_overrides":["x-user"]},"rules":[{"name":"r"}]}"#.into(),
            "headers.pass_overrides[0]",
            |k| matches!(k, K::NotAnOverrideHeader { .. }),
        ),
        (rule(r#","methods":["get"]"#), "rules[0].methods[0]", |k| {
            matches!(k, K::NotAMethod(_))
        }),
        (rule(r#","hosts":["a***"]"#), "rules[0].hosts[0]", |k| {
            matches!(
                k,
                K::Pattern {
                    error: GlobError::TripleStar,
                    ..
                }
            )
        }),
        (r#"{"rules":[{"name":"a"},{"name":"a"}]}"#.into(), "rules[1].name", |k| {
            matches!(k, K::DuplicateRuleName(_))
        }),
        (r#"{"rules":[{"name":"a b"}]}"#.into(), "rules[0].name", |k| {
            matches!(k, K::NotARuleName { .. })
        }),
        (r#"{"rules":[{"name":""}]}"#.into(), "rules[0].name", |k| {
            matches!(k, K::NotARuleName { .. })
        }),
        (
            r#"{"rules":[{"name":"r"}],"deny":{"serials":["xyz"]}}"#.into(),
            "deny.serials[0]",
            |k| matches!(k, K::NotASerial(_)),
        ),
        (
            r#"{"rules":[{"name":"r"}],"deny":{"sha256":["abcd"]}}"#.into(),
            "deny.sha256[0]",
            |k| matches!(k, K::NotAFingerprint(_)),
        ),
        (
            r#"{"rules":[{"name":"r"}],"deny":{"crl":[]}}"#.into(),
            "deny.crl",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("unknown field")),
        ),
        (
            r#"{"rules":[{"name":"r"}],"deny_response":{"status":200}}"#.into(),
            "deny_response.status",
            |k| matches!(k, K::NotAnErrorStatus(200)),
        ),
        (
            r#"{"rules":[{"name":"r"}],"deny_response":{"status":70000}}"#.into(),
            "deny_response.status",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("invalid value")),
        ),
        (
            r#"{"rules":[{"name":"r"}],"expiry_warning_days":-1}"#.into(),
            "expiry_warning_days",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("invalid value")),
        ),
        (
            r#"{"rules":[{"name":"r"}],"expiry_warning_days":4000}"#.into(),
            "expiry_warning_days",
            |k| matches!(k, K::ExpiryWarningTooLong { max: 3650 }),
        ),
        (r#"{"rules":[{"name":"r"}],"cache_size":0}"#.into(), "cache_size", |k| {
            matches!(k, K::CacheSizeOutOfRange { max: 1_000_000 })
        }),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"rename":{"cn":"x user"}}}"#.into(),
            "headers.rename.cn",
            |k| matches!(k, K::NotAHeaderName(_)),
        ),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"rename":{"cn":"Host"}}}"#.into(),
            "headers.rename.cn",
            |k| matches!(k, K::ReservedHeader(_)),
        ),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"rename":{"nickname":"x"}}}"#.into(),
            "headers.rename",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("unknown variant `nickname`")),
        ),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"rename":{"cn":"x-client-subject"}}}"#.into(),
            "headers",
            |k| matches!(k, K::HeaderNamedTwice { .. }),
        ),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"preset":"apache"}}"#.into(),
            "headers.preset",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("unknown variant")),
        ),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"strip":[":path"]}}"#.into(),
            "headers.strip[0]",
            |k| matches!(k, K::NotAHeaderName(_)),
        ),
        (
            r#"{"rules":[{"name":"r"}],"default":"maybe"}"#.into(),
            "default",
            |k| matches!(k, K::Json { class: JsonErrorClass::Data, message } if message.contains("unknown variant")),
        ),
    ];
    let mut wrong = Vec::new();
    for (json, path, is_kind) in &cases {
        match parse_policy(json.as_bytes()) {
            Ok(_) => wrong.push(format!("{json}: accepted")),
            Err(e) => {
                if e.path != *path || !is_kind(&e.kind) {
                    wrong.push(format!("{json}: got `{}`: {:?}; want `{path}`", e.path, e.kind));
                }
                // the message a user sees names the path
                assert!(e.to_string().contains(&format!("`{}`", e.path)));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_smallest_policy_is_valid_and_denies_by_default() {
    let p = parse_policy(br#"{"rules":[{"name":"all"}]}"#).unwrap();
    assert_eq!(p.rules.len(), 1);
    assert_eq!(p.deny_status, 403);
    assert_eq!(p.cache_size, 1024);
    assert_eq!(p.expiry_warning_secs, 14 * 86_400);
}

#[test]
fn header_names_are_lowercased_renamed_and_omitted() {
    use certgate_core::headers::HeaderKind;
    let p = parse_policy(br#"{"rules":[{"name":"r"}],"headers":{"preset":"default","rename":{"cn":"X-USER"},"omit":["sha256","audit"]}}"#)
        .unwrap();
    assert_eq!(p.headers.name(HeaderKind::Cn), Some("x-user"));
    assert_eq!(p.headers.name(HeaderKind::Sha256), None);
    assert_eq!(p.headers.name(HeaderKind::Audit), None);
    assert_eq!(p.headers.name(HeaderKind::Issuer), Some("x-client-issuer"));
    // renamed-away and omitted names are still stripped from clients
    assert!(p.headers.strips("x-client-cn"));
    assert!(p.headers.strips("X_USER"));
    assert!(p.headers.strips("x-certgate-audit"));
}

#[test]
fn spiffe_patterns_some_valid_id_can_match_are_accepted() {
    for p in [
        "spiffe://example.org",
        "spiffe://example.org/**",
        "spiffe://example.org/ns/*/sa/web-*",
        "spiffe://a_b-c.9/X.y",
        "spiffe://example.org/*.*",
    ] {
        parse_policy(rule(&format!(r#","spiffe":["{p}"]"#)).as_bytes()).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
}
