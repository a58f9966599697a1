//! The `certgate serve` edge end to end: real TLS clients with the fixture
//! certificates, the real `.wasm`, the test backend, on loopback.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use certgate_edge::tls::ClientCertMode;
use certgate_test_support::scenarios::ScenarioTable;
use common::{connect, get, judge_scenario, repo, send_scenario, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_holds_through_real_tls() {
    let table = ScenarioTable::load(&repo().join("fixtures/scenarios.json")).unwrap();
    let mut stacks = HashMap::new();
    let mut failures = Vec::new();
    for s in &table.scenarios {
        let policy = table.policy_for(s).unwrap();
        if !stacks.contains_key(&policy) {
            stacks.insert(policy.clone(), stack(&policy, ClientCertMode::Optional).await);
        }
        let reply = send_scenario(stacks[&policy].edge.addr, s).await;
        judge_scenario("edge", s, &reply, &mut failures);
    }
    assert!(failures.is_empty(), "{} failed:\n{}", failures.len(), failures.join("\n"));
}

const EXAMPLE: &str = include_str!("../../../fixtures/policies/example.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_cases_alice_mallory_and_a_spoofed_header() {
    let st = stack(EXAMPLE, ClientCertMode::Required).await;
    // the seed app's endpoint; alice's SPIFFE ID fits the `api` rule
    let alice = get(
        st.edge.addr,
        Some("alice"),
        "/api/v0.1/headers",
        &[("x-client-cn", "admin"), ("x-forwarded-client-cert", "Hash=evil")],
    )
    .await
    .unwrap();
    assert_eq!(alice.status, 200, "{}", alice.body);
    assert_eq!(alice.backend_header("x-certgate-rule"), ["api"]);
    assert_eq!(alice.backend_header("x-client-cn"), ["alice"]);
    assert_eq!(alice.backend_header("x-client-issuer"), ["CN=Example Client CA,O=Example"]);
    assert_eq!(alice.backend_header("x-client-not-before"), ["1735689600"]);
    assert_eq!(alice.backend_header("x-client-not-after"), ["3313526400"]);
    let xfcc = alice.backend_header("x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1);
    assert!(
        xfcc[0].starts_with("Hash=") && xfcc[0] != "Hash=evil" && xfcc[0].contains("Cert=\""),
        "{xfcc:?}"
    );
    // the look-alike CA fails the handshake; so does no certificate here
    assert!(get(st.edge.addr, Some("mallory"), "/app/", &[]).await.is_err());
    assert!(get(st.edge.addr, None, "/healthz", &[]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_and_keep_alive_work() {
    let st = stack(EXAMPLE, ClientCertMode::Optional).await;
    let mut h2 = connect(st.edge.addr, Some("alice"), true).await.unwrap();
    for _ in 0..5 {
        let r = h2.send("GET", "/app/", &[]).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.backend_header("x-client-cn"), ["alice"]);
    }
    let mut h1 = connect(st.edge.addr, Some("bob"), false).await.unwrap();
    for i in 0..5 {
        let path = if i % 2 == 0 { "/app/" } else { "/admin/" };
        let r = h1.send("GET", path, &[]).await.unwrap();
        assert_eq!(r.status, if i % 2 == 0 { 200 } else { 403 }, "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_gives_502_with_a_reason() {
    let dir = common::TempDir::new("down").unwrap();
    let policy = dir.0.join("p.json");
    std::fs::write(&policy, EXAMPLE).unwrap();
    // a port nothing listens on
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let edge = certgate_edge::start(common::settings(&policy, ClientCertMode::Optional, &format!("http://{free}")))
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), get(edge.addr, Some("alice"), "/app/", &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 502);
    assert!(r.body.contains("upstream_unavailable"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_edits_apply_without_a_failed_request() {
    let st = stack(EXAMPLE, ClientCertMode::Optional).await;
    let addr = st.edge.addr;
    // bob on /app/ is allowed by the example; the edit allows only operators
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..3 {
        let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
        load.push(tokio::spawn(async move {
            let mut c = connect(addr, Some("bob"), false).await.unwrap();
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match c.send("GET", "/app/", &[]).await {
                    Ok(r) => seen.push(r.status),
                    Err(e) => panic!("a request failed during a reload: {e}"),
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
            seen
        }));
    }
    // Waits (at most 60 s, however slow the machine) until the load has had
    // `more` answers beyond `from`: each step below happens while requests run.
    let answers_past = |from: usize, more: usize| {
        let answered = Arc::clone(&answered);
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while answered.load(Ordering::Relaxed) < from + more && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answered.load(Ordering::Relaxed)
        }
    };
    // the old policy answers the load first
    let before = answers_past(0, 6).await;
    let ops_only = r#"{"rules":[{"name":"ops","subject_cn":["ops-*"]}]}"#;
    std::fs::write(&st.policy, ops_only).unwrap();
    // the edit applies when the file is next read: until bob is denied
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while get(addr, Some("bob"), "/app/", &[]).await.unwrap().status != 403 {
        assert!(std::time::Instant::now() < deadline, "the edit never took effect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = answers_past(before, 6).await;
    // an invalid edit is refused and changes nothing
    std::fs::write(&st.policy, r#"{"rules":[{"name":"ops","subject_cn":[]}]}"#).unwrap();
    // at least eight reload periods (100 ms) with requests running
    tokio::time::sleep(Duration::from_millis(800)).await;
    answers_past(after, 6).await;
    stop.store(true, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for l in load {
        statuses.extend(l.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 200 || *s == 403), "{statuses:?}");
    let first_deny = statuses.iter().position(|s| *s == 403).expect("the edit took effect");
    assert!(first_deny > 0, "the old policy allowed bob first");
    let r = get(addr, Some("bob"), "/app/", &[]).await.unwrap();
    assert_eq!(r.status, 403, "the refused edit left the second policy in force");
    let r = get(addr, Some("ops-anna"), "/app/", &[]).await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_errors_name_what_is_wrong() {
    let dir = common::TempDir::new("errors").unwrap();
    let policy = dir.0.join("p.json");
    std::fs::write(&policy, r#"{"rules":[]}"#).unwrap();
    let err = certgate_edge::start(common::settings(&policy, ClientCertMode::Required, "http://127.0.0.1:9"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("p.json") && err.to_string().contains("`rules`"), "{err}");

    std::fs::write(&policy, EXAMPLE).unwrap();
    let mut s = common::settings(&policy, ClientCertMode::Required, "http://127.0.0.1:9");
    s.tls.key = dir.0.join("missing.key");
    let err = certgate_edge::start(s).await.unwrap_err();
    assert!(err.to_string().contains("missing.key"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut s = common::settings(&policy, ClientCertMode::Required, "http://127.0.0.1:9");
    s.listen = taken.local_addr().unwrap();
    let err = certgate_edge::start(s).await.unwrap_err();
    assert!(err.to_string().contains(&taken.local_addr().unwrap().port().to_string()), "{err}");
}
