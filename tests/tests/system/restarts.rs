//! Restarts under load lose nothing, on the oldest and newest Envoy: with a
//! keep-alive load of mixed clients (allowed, denied, anonymous, spoofing;
//! five identities), each of
//! - an ECDS policy swap,
//! - a listener update (LDS from a watched file: the old filter chain drains),
//! - a hot restart to a new epoch with the same configuration,
//!
//! gives zero failed requests and zero misdecisions, with the Wasm build and
//! (on 1.40.0) the dynamic module. A connection the server
//! closes after answering (a drain's `connection: close`) is replaced before
//! the next request, as browsers and `requests` do.
//! Figures: `cargo nextest run -p certgate-tests --test system restarts:: --no-capture`.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use certgate_backend as backend;
use common::envoy::{config, free_port, write_atomically, Build, Envoy};
use common::soak::{ecds_envoy, swap_policy, Load, Policies, SoakReport, POLICY_A};
use common::TempDir;

/// Each restart runs the Wasm build on the oldest and newest Envoy, and the
/// dynamic module on the newest (it needs 1.38+).
const RUNS: [(&str, Build); 3] = [("1.36.4", Build::Wasm), ("1.40.0", Build::Wasm), ("1.40.0", Build::Module)];
const CLIENTS: usize = 6;

fn judge(version: &str, what: &str, r: &SoakReport) {
    println!(
        "{version} {what}: {} requests, {} failed, {} misdecisions",
        r.requests, r.errors, r.misdecisions
    );
    assert_eq!(r.errors, 0, "{version} {what}: failed requests: {:#?}", r.first_errors);
    assert_eq!(r.misdecisions, 0, "{version} {what}: {:#?}", r.first_misdecisions);
    assert!(r.requests > 100, "{version} {what}: the load ran ({} requests)", r.requests);
}

/// certgate's build under test counted requests in this Envoy (its counters
/// are under the build's stats namespace).
fn assert_answered_by(envoy: &Envoy, build: Build, at: &str) {
    let stat = build.stat("certgate_requests_total.outcome.allowed.rule.app");
    assert!(envoy.stat_eventually(&stat, |v| v > 0).is_some(), "{at}: {stat} counted nothing");
}

/// Waits until the load has sent `more` requests beyond what it had.
async fn run_for(load: &Load, more: u64) {
    let target = load.requests() + more;
    let start = Instant::now();
    while load.requests() < target && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecds_policy_swap_under_load_fails_nothing() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for (version, build) in RUNS {
        let at = format!("{version} {}", build.name());
        let dir = TempDir::new("swap").unwrap();
        let file = dir.0.join("certgate.yaml");
        let envoy = ecds_envoy(version, build, backend.addr, &file).await;
        let load = Load::start(envoy.listener, CLIENTS, Policies::Both);
        for to_b in [true, false, true] {
            run_for(&load, 200).await;
            swap_policy(&file, build, to_b);
        }
        run_for(&load, 200).await;
        let r = load.finish().await;
        judge(&at, "ECDS swap", &r);
        assert!(r.only_a > 0 && r.only_b > 0, "{at}: both policies were in force");
        assert_answered_by(&envoy, build, &at);
    }
}

/// `envoy/optional-mtls.yaml` (the load's anonymous client connects too)
/// with policy A, its listener on `port`.
fn on_port(backend: SocketAddr, port: u16) -> String {
    let yaml = config("optional-mtls.yaml", backend, Some(POLICY_A));
    let at = yaml.find("- name: mtls").unwrap();
    let (head, tail) = yaml.split_at(at);
    format!("{head}{}", tail.replacen("port_value: 0", &format!("port_value: {port}"), 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_restart_under_load_fails_nothing() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for (version, build) in RUNS {
        let at = format!("{version} {}", build.name());
        let port = free_port();
        let yaml = build.config(&on_port(backend.addr, port));
        // a base id of its own, so parallel tests never share Envoy's shared memory
        let base_id = 10_000 + u32::from(port);
        let drain = Duration::from_secs(2);
        let parent = Envoy::start_hot(version, &yaml, base_id, 0, drain).unwrap_or_else(|e| panic!("{at}: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(parent.listener, addr);
        let load = Load::start(addr, CLIENTS, Policies::OnlyA);
        run_for(&load, 200).await;
        let restarted = Instant::now();
        let child = Envoy::start_hot(version, &yaml, base_id, 1, drain)
            .unwrap_or_else(|e| panic!("{at} epoch 1: {e}\nparent:\n{}", parent.log_tail()));
        // the parent drains, then the child tells it to exit
        let mut parent = parent;
        let exited = loop {
            if parent.exited() {
                break restarted.elapsed();
            }
            assert!(
                restarted.elapsed() < Duration::from_secs(30),
                "{at}: the parent never exited:\n{}",
                parent.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        run_for(&load, 300).await;
        let r = load.finish().await;
        println!(
            "{at}: hot restart: the parent exited {} ms after epoch 1 started",
            exited.as_millis()
        );
        judge(&at, "hot restart", &r);
        let served = child.stat("http.ingress.downstream_rq_completed").unwrap_or(0);
        assert!(served > 0, "{at}: the new epoch served requests");
        assert_answered_by(&child, build, &at);
    }
}

/// The bootstrap of `on_port` with its listener moved to an LDS file Envoy
/// watches, and that file's text.
fn with_lds(yaml: &str, lds: &std::path::Path) -> (String, serde_json::Value) {
    let mut boot: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
    let listeners = boot["static_resources"].as_object_mut().unwrap().remove("listeners").unwrap();
    let mut listener = listeners[0].clone();
    listener
        .as_object_mut()
        .unwrap()
        .insert("@type".into(), "type.googleapis.com/envoy.config.listener.v3.Listener".into());
    boot["dynamic_resources"] = serde_json::json!({
        "lds_config": { "path_config_source": { "path": lds.display().to_string() }, "resource_api_version": "V3" }
    });
    (serde_json::to_string(&boot).unwrap(), listener)
}

fn lds_file(listener: &serde_json::Value) -> String {
    serde_json::json!({ "resources": [listener] }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_update_under_load_fails_nothing() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for (version, build) in RUNS {
        let at = format!("{version} {}", build.name());
        let dir = TempDir::new("lds").unwrap();
        let lds = dir.0.join("lds.json");
        let port = free_port();
        let (bootstrap, listener) = with_lds(&build.config(&on_port(backend.addr, port)), &lds);
        std::fs::write(&lds, lds_file(&listener)).unwrap();
        let envoy = Envoy::start_version(version, &bootstrap).unwrap_or_else(|e| panic!("{at}: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let load = Load::start(addr, CLIENTS, Policies::OnlyA);
        run_for(&load, 200).await;
        // the same listener with another HTTP stat prefix: a new filter chain,
        // the old one drains its connections
        let mut updated = listener.clone();
        let text = updated
            .to_string()
            .replace("\"stat_prefix\":\"ingress\"", "\"stat_prefix\":\"ingress_v2\"");
        assert_ne!(text, updated.to_string());
        updated = serde_json::from_str(&text).unwrap();
        write_atomically(&lds, &lds_file(&updated));
        let applied = envoy.stat_eventually("http.ingress_v2.downstream_rq_completed", |v| v > 0);
        assert!(applied.is_some(), "{at}: the updated listener serves:\n{}", envoy.log_tail());
        run_for(&load, 300).await;
        let r = load.finish().await;
        judge(&at, "listener update", &r);
        let drained = envoy.stat("listener_manager.total_filter_chains_draining").unwrap_or(0)
            + envoy.stat("listener_manager.listener_modified").unwrap_or(0);
        assert!(drained > 0, "{at}: Envoy says the listener changed");
        assert_answered_by(&envoy, build, &at);
    }
}
