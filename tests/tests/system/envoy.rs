//! certgate in a real Envoy 1.40 (V8): the committed configurations, the
//! scenario table, the same outcome as `certgate serve` for every scenario,
//! a refused configuration, and a policy change through ECDS.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use certgate_backend as backend;
use certgate_edge::tls::ClientCertMode;
use certgate_test_support::scenarios::ScenarioTable;
use common::envoy::{config, ecds_config, ecds_resource, write_atomically, Envoy};
use common::{comparable_headers, get, judge_scenario, repo, send_scenario, stack, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_holds_in_envoy_and_matches_the_edge() {
    let table = ScenarioTable::load(&repo().join("fixtures/scenarios.json")).unwrap();
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut envoys: HashMap<String, Envoy> = HashMap::new();
    let mut edges = HashMap::new();
    let mut failures = Vec::new();
    for s in &table.scenarios {
        let policy = table.policy_for(s).unwrap();
        if !envoys.contains_key(&policy) {
            let yaml = config("optional-mtls.yaml", backend.addr, Some(&policy));
            envoys.insert(policy.clone(), Envoy::start(&yaml).unwrap());
            edges.insert(policy.clone(), stack(&policy, ClientCertMode::Optional).await);
        }
        let envoy = send_scenario(envoys[&policy].listener, s).await;
        let edge = send_scenario(edges[&policy].edge.addr, s).await;
        let seen_envoy = judge_scenario("Envoy", s, &envoy, &mut failures);
        let seen_edge = judge_scenario("edge", s, &edge, &mut failures);
        if let (Some(envoy), Some(edge)) = (seen_envoy, seen_edge) {
            let (a, b) = (envoy.observed(), edge.observed());
            if (a.status, &a.reason, &a.rule) != (b.status, &b.reason, &b.rule) {
                failures.push(format!(
                    "{}: Envoy {:?} vs edge {:?}",
                    s.name,
                    (a.status, a.reason, a.rule),
                    (b.status, b.reason, b.rule)
                ));
            }
            if comparable_headers(envoy) != comparable_headers(edge) {
                failures.push(format!(
                    "{}: headers at the backend differ\n  Envoy: {:?}\n  edge:  {:?}",
                    s.name,
                    comparable_headers(envoy),
                    comparable_headers(edge)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_required_mtls_configuration_works_as_written() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let envoy = Envoy::start(&config("required-mtls.yaml", backend.addr, None)).unwrap();
    let alice = get(envoy.listener, Some("alice"), "/app/", &[("x-client-cn", "root")])
        .await
        .unwrap();
    assert_eq!(alice.status, 200, "{}", alice.body);
    assert_eq!(alice.backend_header("x-client-cn"), ["alice"]);
    let bob = get(envoy.listener, Some("bob"), "/admin/", &[]).await.unwrap();
    assert_eq!(bob.status, 403);
    assert!(bob.body.contains("subject_not_allowed"), "{}", bob.body);
    for who in [None, Some("mallory"), Some("revoked"), Some("expired")] {
        assert!(
            get(envoy.listener, who, "/healthz", &[]).await.is_err(),
            "{who:?} must fail the handshake"
        );
    }
    // clients that resume TLS sessions (browsers do) are still admitted:
    // Envoy reports a resumed session's certificate as not validated, and the
    // committed policy's `verification: listener` vouches for the listener
    let shared = common::client_config(Some("alice"), &[b"http/1.1"]);
    for _ in 0..3 {
        let r = common::connect_with(envoy.listener, shared.clone(), false)
            .await
            .unwrap()
            .send("GET", "/app/", &[])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // the filter's counters are Envoy stats
    assert_eq!(
        envoy.stat_eventually("wasmcustom.certgate_requests_total.outcome.allowed.rule.app", |v| v == 4),
        Some(4)
    );
    assert_eq!(
        envoy.stat_eventually(
            "wasmcustom.certgate_requests_total.outcome.denied.reason.subject_not_allowed.rule.admin",
            |v| v == 1
        ),
        Some(1)
    );
    assert_eq!(
        envoy.stat_eventually("wasmcustom.certgate_spoofed_headers_removed_total", |v| v == 1),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_refuses_a_policy_the_filter_refuses() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // An allow-list that can never match (empty), an empty policy, an unknown
    // field, text that is not JSON: each stops Envoy (fail_open: false) with
    // the JSON path in its log, as the harness shows for the same policies.
    for (bad, path) in [
        (r#"{"rules":[{"name":"a","issuer":[]}]}"#, "rules[0].issuer"),
        (r#"{"rules":[]}"#, "`rules`"),
        (r#"{"rules":[{"name":"a","isuer":["CN=x"]}]}"#, "rules[0].isuer"),
        ("not json", "`.`"),
    ] {
        let err = match Envoy::start(&config("required-mtls.yaml", backend.addr, Some(bad))) {
            Err(e) => e,
            Ok(e) => panic!("Envoy started with a refused policy {bad}; log:\n{}", e.log_tail()),
        };
        assert!(err.contains(path), "{bad}: the log names the JSON path {path}:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecds_policy_edit_applies_without_a_restart_and_a_bad_one_is_rejected() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = TempDir::new("ecds").unwrap();
    let resource = ecds_resource(None);
    let file = dir.0.join("certgate.yaml");
    std::fs::write(&file, &resource).unwrap();
    let envoy = Envoy::start(&ecds_config(backend.addr, &file)).unwrap();
    let wait_for = |want: u16, who: &'static str| {
        let addr = envoy.listener;
        async move {
            let start = Instant::now();
            loop {
                let r = get(addr, Some(who), "/app/", &[]).await.unwrap();
                if r.status == want || start.elapsed() > Duration::from_secs(20) {
                    return r.status;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(
        wait_for(200, "bob").await,
        200,
        "the first policy allows bob:\n{}",
        envoy.log_tail()
    );

    let ops_only = resource.replace(
        r#"{ "name": "app", "path_prefix": "/", "issuer": ["CN=Example Client CA,O=Example"] }"#,
        r#"{ "name": "app", "path_prefix": "/", "subject_cn": ["ops-*"] }"#,
    );
    assert_ne!(ops_only, resource);
    write_atomically(&file, &ops_only);
    assert_eq!(wait_for(403, "bob").await, 403, "the edit applies:\n{}", envoy.log_tail());
    assert_eq!(get(envoy.listener, Some("ops-anna"), "/app/", &[]).await.unwrap().status, 200);

    let refused = resource.replace(r#""issuer": ["CN=Example Client CA,O=Example"]"#, r#""issuer": []"#);
    write_atomically(&file, &refused);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        get(envoy.listener, Some("bob"), "/app/", &[]).await.unwrap().status,
        403,
        "the refused edit changed nothing"
    );
    assert_eq!(get(envoy.listener, Some("ops-anna"), "/app/", &[]).await.unwrap().status, 200);
    assert!(
        envoy.log_text().contains("rules[0]") || envoy.log_text().contains("rules[1]"),
        "{}",
        envoy.log_tail()
    );
}
