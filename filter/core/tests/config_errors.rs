//! Every configuration mistake is refused with the JSON path at fault.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use certgate_core::config::parse_policy;

fn rule(extra: &str) -> String {
    format!(r#"{{"rules":[{{"name":"r"{extra}}}]}}"#)
}

#[test]
fn each_mistake_names_its_json_path() {
    let cases: Vec<(String, &str, &str)> = vec![
        ("".into(), ".", "empty"),
        ("   ".into(), ".", "empty"),
        ("{".into(), ".", "EOF"),
        ("[]".into(), ".", "must be a JSON object"),
        ("\"rules\"".into(), ".", "must be a JSON object"),
        ("{}".into(), ".", "missing field `rules`"),
        (r#"{"rules":[]}"#.into(), "rules", "no rules"),
        (r#"{"rules":[],"colour":"red"}"#.into(), "colour", "unknown field `colour`"),
        (r#"{"mode":"block","rules":[]}"#.into(), "mode", "unknown variant `block`"),
        (
            r#"{"identity_source":"header","rules":[]}"#.into(),
            "identity_source",
            "unknown variant",
        ),
        (rule(r#","isuer":["CN=x"]"#), "rules[0].isuer", "unknown field `isuer`"),
        (rule(r#","anonymous":"yes""#), "rules[0].anonymous", "invalid type"),
        (r#"{"rules":[{"path":"/"}]}"#.into(), "rules[0]", "missing field `name`"),
        (rule(r#","issuer":[]"#), "rules[0].issuer", "empty allow-list"),
        (rule(r#","spiffe":[]"#), "rules[0].spiffe", "empty allow-list"),
        (rule(r#","methods":[]"#), "rules[0].methods", "empty allow-list"),
        (rule(r#","subject_cn":["ops-***"]"#), "rules[0].subject_cn[0]", "***"),
        (rule(r#","san_dns":[""]"#), "rules[0].san_dns[0]", "must not be empty"),
        (rule(r#","issuer":["Example Client CA"]"#), "rules[0].issuer[0]", "`_cn` field"),
        (rule(r#","subject":["CN=a,\\q"]"#), "rules[0].subject[0]", "distinguished name"),
        (rule(r#","spiffe":["spiffe://*.org/x"]"#), "rules[0].spiffe[0]", "trust domain"),
        (
            rule(r#","spiffe":["https://example.org/x"]"#),
            "rules[0].spiffe[0]",
            "can match no valid SPIFFE ID: the scheme",
        ),
        (rule(r#","spiffe":["spiffe://Example.org/x"]"#), "rules[0].spiffe[0]", "lowercase"),
        // patterns no valid SPIFFE ID could match (SPIFFE-ID §2)
        (
            rule(r#","spiffe":["spiffe://example.org/ns/prod/sa/.."]"#),
            "rules[0].spiffe[0]",
            "`.` or `..`",
        ),
        (
            rule(r#","spiffe":["spiffe://example.org/ns/*?x=1"]"#),
            "rules[0].spiffe[0]",
            "query",
        ),
        (
            rule(r#","spiffe":["spiffe://example.org/ns/*#f"]"#),
            "rules[0].spiffe[0]",
            "fragment",
        ),
        (
            rule(r#","spiffe":["spiffe://example.org/ns%2F*"]"#),
            "rules[0].spiffe[0]",
            "percent-encoding",
        ),
        (
            rule(r#","spiffe":["spiffe://example.org/ns/"]"#),
            "rules[0].spiffe[0]",
            "ends with `/`",
        ),
        (rule(r#","spiffe":["spiffe://example.org/ns//*"]"#), "rules[0].spiffe[0]", "empty"),
        (rule(r#","spiffe":["spiffe://example.org:443/*"]"#), "rules[0].spiffe[0]", "port"),
        (rule(r#","spiffe":["spiffe://me@example.org/*"]"#), "rules[0].spiffe[0]", "userinfo"),
        (
            rule(r#","spiffe":["spiffe://example.org/ns/a b"]"#),
            "rules[0].spiffe[0]",
            "path segment has a character",
        ),
        (rule(r#","spiffe":["spiffe:///ns/*"]"#), "rules[0].spiffe[0]", "no trust domain"),
        (rule(r#","san_email":["example.org"]"#), "rules[0].san_email[0]", "`local@domain`"),
        (rule(r#","san_email":["@example.org"]"#), "rules[0].san_email[0]", "`local@domain`"),
        (rule(r#","anonymous":true,"subject_cn":["a"]"#), "rules[0]", "anonymous rule"),
        (rule(r#","path":"/a","path_prefix":"/a/""#), "rules[0]", "not both"),
        (rule(r#","path_prefix":"/a/../b/""#), "rules[0].path_prefix", "not a path"),
        (rule(r#","path_prefix":"a/""#), "rules[0].path_prefix", "not a path"),
        (rule(r#","path":"/a//b""#), "rules[0].path", "write `/a/b`"),
        (rule(r#","path_prefix":"/admin./""#), "rules[0].path_prefix", "not a path"),
        (rule(r#","path":"/a;b""#), "rules[0].path", "path parameter"),
        (
            r#"{"paths":{"case":"lower"},"rules":[]}"#.into(),
            "paths.case",
            "unknown variant `lower`",
        ),
        (
            r#"{"paths":{"parameters":"refuse"},"rules":[]}"#.into(),
            "paths.parameters",
            "unknown variant `refuse`",
        ),
        (
            r#"{"paths":{"slashes":"merge"},"rules":[]}"#.into(),
            "paths.slashes",
            "unknown field",
        ),
        (
            r#"{"headers":{"pass_overrides":["x-user"]},"rules":[{"name":"r"}]}"#.into(),
            "headers.pass_overrides[0]",
            "not an override header",
        ),
        (rule(r#","methods":["get"]"#), "rules[0].methods[0]", "uppercase"),
        (rule(r#","hosts":["a***"]"#), "rules[0].hosts[0]", "***"),
        (
            r#"{"rules":[{"name":"a"},{"name":"a"}]}"#.into(),
            "rules[1].name",
            "a second rule named `a`",
        ),
        (r#"{"rules":[{"name":"a b"}]}"#.into(), "rules[0].name", "not a rule name"),
        (r#"{"rules":[{"name":""}]}"#.into(), "rules[0].name", "not a rule name"),
        (
            r#"{"rules":[{"name":"r"}],"deny":{"serials":["xyz"]}}"#.into(),
            "deny.serials[0]",
            "hexadecimal",
        ),
        (
            r#"{"rules":[{"name":"r"}],"deny":{"sha256":["abcd"]}}"#.into(),
            "deny.sha256[0]",
            "64 hex",
        ),
        (r#"{"rules":[{"name":"r"}],"deny":{"crl":[]}}"#.into(), "deny.crl", "unknown field"),
        (
            r#"{"rules":[{"name":"r"}],"deny_response":{"status":200}}"#.into(),
            "deny_response.status",
            "not an error status",
        ),
        (
            r#"{"rules":[{"name":"r"}],"deny_response":{"status":70000}}"#.into(),
            "deny_response.status",
            "invalid value",
        ),
        (
            r#"{"rules":[{"name":"r"}],"expiry_warning_days":-1}"#.into(),
            "expiry_warning_days",
            "invalid value",
        ),
        (
            r#"{"rules":[{"name":"r"}],"expiry_warning_days":4000}"#.into(),
            "expiry_warning_days",
            "ten years",
        ),
        (r#"{"rules":[{"name":"r"}],"cache_size":0}"#.into(), "cache_size", "between 1"),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"rename":{"cn":"x user"}}}"#.into(),
            "headers.rename.cn",
            "not a valid header name",
        ),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"rename":{"cn":"Host"}}}"#.into(),
            "headers.rename.cn",
            "belongs to the proxy",
        ),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"rename":{"nickname":"x"}}}"#.into(),
            "headers.rename",
            "unknown variant `nickname`",
        ),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"rename":{"cn":"x-client-subject"}}}"#.into(),
            "headers",
            "two headers",
        ),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"preset":"apache"}}"#.into(),
            "headers.preset",
            "unknown variant",
        ),
        (
            r#"{"rules":[{"name":"r"}],"headers":{"strip":[":path"]}}"#.into(),
            "headers.strip[0]",
            "not a valid header name",
        ),
        (r#"{"rules":[{"name":"r"}],"default":"maybe"}"#.into(), "default", "unknown variant"),
    ];
    let mut wrong = Vec::new();
    for (json, path, fragment) in &cases {
        match parse_policy(json.as_bytes()) {
            Ok(_) => wrong.push(format!("{json}: accepted")),
            Err(e) => {
                if e.path != *path || !e.message.contains(fragment) {
                    wrong.push(format!("{json}: got `{}`: {}; want `{path}` with {fragment:?}", e.path, e.message));
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
