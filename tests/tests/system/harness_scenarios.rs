//! The real release certgate `.wasm` through the harness: the whole scenario
//! table, and what only a real VM shows (configuration refused, metrics,
//! reconfiguration, failing closed).

use crate::common;

use certgate_decision::{Published, PROPERTY};
use certgate_host::{Action, Connection, Exchange, HarnessError, Plugin};
use certgate_test_support::scenarios::{Observed, ScenarioTable};
use certgate_wire::Pairs;
use common::plugin::{certgate, client, fixture, request, settings, with_peer_pem};
use common::repo;

/// The outcome from the decision the filter published, and, as a client
/// sees it, from the reply: both must say the same.
fn observe(out: &Exchange) -> Observed {
    let upstream: Vec<(String, String)> = out
        .upstream_headers
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    let (status, body) = match &out.local_response {
        Some(r) => (r.status as u16, Some(String::from_utf8_lossy(&r.body).into_owned())),
        None => (200, None),
    };
    let published = out
        .filter_state
        .get(PROPERTY)
        .and_then(|v| Published::from_bytes(v))
        .expect("a published decision");
    let seen = Observed::published(status, &published, body.clone(), upstream.clone());
    let client = Observed::black_box(status, body, upstream);
    assert_eq!(seen.reason, client.reason, "filter state and reply disagree");
    // a client sees the rule only where the preset sends it
    if client.rule.is_some() {
        assert_eq!(seen.rule, client.rule, "filter state and reply disagree");
    }
    seen
}

fn example() -> Plugin {
    certgate().start(settings(&fixture("policies/example.json"))).unwrap()
}

#[test]
fn every_scenario_runs_the_same_on_the_real_wasm() {
    let table = ScenarioTable::load(&repo().join("fixtures/scenarios.json")).unwrap();
    let mut failures = Vec::new();
    for s in &table.scenarios {
        let mut plugin = certgate().start(settings(&table.policy_for(s).unwrap())).unwrap();
        let conn = match &s.cert {
            Some(c) => Connection::local_tls()
                .with_client_cert_file(&table.cert_path(c), s.verified)
                .unwrap(),
            None => Connection::local_tls(),
        };
        let out = plugin.request(&conn, s.request_headers()).unwrap();
        if out.local_response.is_some() {
            assert_eq!(out.action, Action::Pause, "{}: a local reply pauses the stream", s.name);
        }
        if let Err(why) = s.check(&observe(&out)) {
            failures.push(format!("{}: {why}", s.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        table.scenarios.len(),
        failures.join("\n")
    );
}

#[test]
fn a_bad_configuration_is_refused_with_its_json_path() {
    for (config, path) in [
        (r#"{"rules":[]}"#, "`rules`"),
        (r#"{"rules":[{"name":"a","isuer":["CN=x"]}]}"#, "`rules[0].isuer`"),
        ("not json", "`.`"),
        ("", "`.`"),
    ] {
        match certgate().start(settings(config)) {
            Err(HarnessError::ConfigureRefused { logs }) => {
                assert!(logs.iter().any(|l| l.message.contains(path)), "{config}: {logs:?}");
            }
            other => panic!("{config}: {other:?}"),
        }
        let msg = certgate().start(settings(config)).unwrap_err().to_string();
        assert!(msg.contains(path), "{msg}");
    }
}

#[test]
fn metrics_count_each_decision() {
    let mut p = example();
    for (who, path) in [("alice", "/app/"), ("alice", "/app/"), ("bob", "/admin/x"), ("carol", "/app/")] {
        p.request(&client(who, true), request("GET", path)).unwrap();
    }
    p.request(
        &Connection::local_tls(),
        request("GET", "/healthz")
            .into_iter()
            .chain([("x-client-cn".into(), b"x".to_vec())])
            .collect(),
    )
    .unwrap();
    // counters reach the host on the tick
    let requests = |outcome_reason_rule: &str| format!("certgate_requests_total.outcome.{outcome_reason_rule}");
    assert_eq!(p.metric(&requests("allowed.rule.app")), Some(0));
    assert_eq!(p.tick_period_ms(), 1000);
    p.tick().unwrap();
    assert_eq!(p.metric(&requests("allowed.rule.app")), Some(2));
    assert_eq!(p.metric(&requests("allowed.rule.health")), Some(1));
    assert_eq!(p.metric(&requests("denied.reason.subject_not_allowed.rule.admin")), Some(1));
    assert_eq!(p.metric(&requests("denied.reason.issuer_not_allowed.rule.app")), Some(1));
    assert_eq!(p.metric("certgate_identity_cache_misses_total"), Some(3), "alice parsed once");
    assert_eq!(p.metric("certgate_spoofed_headers_removed_total"), Some(1));
    assert_eq!(p.metric(&requests("denied.reason.revoked.rule.app")), Some(0), "defined up front");
    assert_eq!(
        p.metric(&requests("denied.reason.no_matching_rule")),
        Some(0),
        "no rule, no rule label"
    );
}

#[test]
fn one_instance_serves_many_requests() {
    let mut p = example();
    for i in 0..200 {
        let who = ["alice", "bob", "ops-anna"][i % 3];
        let out = p.request(&client(who, true), request("GET", "/app/")).unwrap();
        assert!(out.forwarded());
        assert_eq!(out.header("x-client-cn").as_deref(), Some(who));
    }
    assert!(p.failure().is_none());
}

#[test]
fn a_new_configuration_applies_and_a_bad_one_changes_nothing() {
    let mut p = example();
    let alice = client("alice", true);
    assert!(p.request(&alice, request("GET", "/app/")).unwrap().forwarded());
    p.reconfigure(r#"{"rules":[{"name":"only-ops","subject_cn":["ops-*"]}]}"#).unwrap();
    let out = p.request(&alice, request("GET", "/app/")).unwrap();
    assert_eq!(out.local_response.unwrap().status, 403);
    let err = p.reconfigure(r#"{"rules":[{"name":"x","subject_cn":[]}]}"#).unwrap_err();
    assert!(err.to_string().contains("rules[0].subject_cn"), "{err}");
    // still the second policy
    assert!(!p.request(&alice, request("GET", "/app/")).unwrap().forwarded());
    assert!(p.request(&client("ops-anna", true), request("GET", "/app/")).unwrap().forwarded());
}

/// A connection as Envoy 1.36 and 1.37 give it: no `peer_certificate`, no
/// `peer_certificate_valid`, the certificate in the SANITIZE_SET XFCC.
fn envoy_1_36(name: &str) -> (Connection, Pairs) {
    let conn = client(name, true);
    let mut headers = request("GET", "/app/");
    headers.push(("x-forwarded-client-cert".into(), conn.xfcc.clone().unwrap().into_bytes()));
    (
        conn.without("connection.peer_certificate")
            .without("connection.peer_certificate_valid"),
        headers,
    )
}

#[test]
fn without_peer_certificate_valid_a_certificate_is_denied_as_verification_unknown_and_the_log_says_what_to_set() {
    let mut p = example();
    let (conn, headers) = envoy_1_36("alice");
    for _ in 0..3 {
        let reply = p.request(&conn, headers.clone()).unwrap().local_response.unwrap();
        assert_eq!(reply.status, 403);
        assert!(String::from_utf8_lossy(&reply.body).contains("verification_unknown"));
    }
    let advice: Vec<_> = p
        .logs()
        .iter()
        .filter(|l| l.message.contains(r#"set "verification": "listener""#))
        .collect();
    assert_eq!(advice.len(), 1, "the advice is logged once per worker: {:?}", p.logs());
}

#[test]
fn under_listener_verification_envoy_1_36_connections_get_the_full_identity() {
    let policy = fixture("policies/example.json").replacen('{', r#"{"verification": "listener","#, 1);
    let mut p = certgate().start(settings(&policy)).unwrap();
    let (conn, headers) = envoy_1_36("alice");
    let out = p.request(&conn, headers).unwrap();
    assert!(out.forwarded(), "{:?}", out.local_response);
    assert_eq!(out.header("x-client-cn").as_deref(), Some("alice"));
    assert_eq!(out.header("x-client-serial").as_deref(), Some("4c1e7a5e000000000000000000001001"));
    // a resumed session on Envoy 1.39+: the flag is 0
    let out = p.request(&client("alice", false), request("GET", "/app/")).unwrap();
    assert!(out.forwarded());
}

#[test]
fn the_filter_logs_denies_with_reason_and_an_encoded_cn() {
    let mut p = example();
    p.request(&client("unicode", true), request("GET", "/admin/")).unwrap();
    let line = p.logs().iter().find(|l| l.message.starts_with("deny")).unwrap();
    assert!(line.message.contains("reason=subject_not_allowed"), "{}", line.message);
    assert!(line.message.contains("cn=Zo%C3%AB"), "{}", line.message);
}

#[test]
fn audit_headers_and_identity_reach_the_upstream_in_audit_mode() {
    let config = fixture("policies/example.json").replacen("\"enforce\"", "\"audit\"", 1);
    let mut p = certgate().start(settings(&config)).unwrap();
    let out = p.request(&client("bob", true), request("GET", "/admin/x")).unwrap();
    assert!(out.forwarded());
    assert_eq!(
        out.header("x-certgate-audit").as_deref(),
        Some("deny; reason=subject_not_allowed; rule=admin")
    );
    p.tick().unwrap();
    assert_eq!(
        p.metric("certgate_requests_total.outcome.audit_would_deny.reason.subject_not_allowed.rule.admin"),
        Some(1)
    );
    // audit mode denies nothing for a rule: that series is not defined at all
    assert_eq!(
        p.metric("certgate_requests_total.outcome.denied.reason.subject_not_allowed.rule.admin"),
        None
    );
}

fn reason(out: &Exchange) -> String {
    let body = &out.local_response.as_ref().expect("a deny").body;
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    json["reason"].as_str().unwrap().to_owned()
}

#[test]
fn the_reasons_the_table_cannot_show() {
    // a verified certificate the filter cannot read
    let mut p = example();
    let conn = with_peer_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert_eq!(
        reason(&p.request(&conn, request("GET", "/app/")).unwrap()),
        "unparseable_certificate"
    );

    // Envoy's properties alone cannot prove an issuer
    let config = fixture("policies/example.json").replacen("\"auto\"", "\"properties\"", 1);
    let mut p = certgate().start(settings(&config)).unwrap();
    let out = p.request(&client("alice", true), request("GET", "/app/")).unwrap();
    assert_eq!(reason(&out), "identity_incomplete");
}

#[test]
fn xfcc_mode_reads_the_header_envoy_set() {
    let config = r#"{"identity_source":"xfcc","rules":[{"name":"ops","subject_cn":["ops-*"]}]}"#;
    let mut p = certgate().start(settings(config)).unwrap();
    let mut headers = request("GET", "/");
    // the element Envoy would set, arriving on a connection the filter is told
    // to ignore (a proxy in front terminated TLS)
    let xfcc = client("ops-anna", true).xfcc.unwrap();
    headers.push(("x-forwarded-client-cert".into(), xfcc.into_bytes()));
    let out = p.request(&Connection::local_tls(), headers).unwrap();
    assert!(out.forwarded(), "{:?}", out.local_response);
    assert_eq!(out.header("x-client-cn").as_deref(), Some("ops-anna"));
}

#[test]
fn host_calls_per_request_are_few_and_counted() {
    let mut p = example();
    let alice = client("alice", true);
    p.request(&alice, request("GET", "/app/")).unwrap(); // parses and caches alice
    let count = |p: &mut Plugin, headers| {
        let before = p.host_calls();
        p.request(&alice, headers).unwrap();
        p.host_calls() - before
    };
    let allowed = count(&mut p, request("GET", "/app/"));
    // alice: 3 reads (header pairs, digest, verified flag), 14 header adds
    // (13 identity headers she has values for, and the rule) and the
    // published decision = 18. The clock and the counters cost nothing per
    // request: they go by the tick.
    println!("host calls, allowed request, cached identity: {allowed}");
    assert_eq!(allowed, 18, "host calls per allowed request");
    // a header the client did not send costs no call; one it did costs one removal
    let mut spoofed = request("GET", "/app/");
    spoofed.push(("x-client-cn".into(), b"admin".to_vec()));
    assert_eq!(count(&mut p, spoofed), allowed + 1, "one removal");
    // the tick: a clock read and one increment per counter that moved
    let before = p.host_calls();
    p.tick().unwrap();
    println!("host calls, one tick after those requests: {}", p.host_calls() - before);
    let denied = count(&mut p, request("GET", "/admin/"));
    println!("host calls, denied request: {denied}");
    assert!(denied < allowed);
}
