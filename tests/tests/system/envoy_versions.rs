//! certgate through every Envoy of `envoy/versions.txt`, 1.36 to 1.40: the
//! Envoys inside released Istio and Envoy Gateway. Each runs the scenario
//! table under the committed configurations' verification setting, the
//! committed configurations as written with clients that resume their TLS
//! session (TLS 1.2 and 1.3, Python's `ssl`), a listener that accepts
//! unverified certificates, and the nginx pattern (`envoy/nginx-optional.yaml`).
//! From 1.38, where the dynamic module runs, the scenario table and the
//! nginx pattern go through both builds, which must give the same answers,
//! and the resumed sessions through `required-mtls-native.yaml` too. The full
//! suite (`envoy.rs` and the rest) runs on the default, 1.40.

use crate::common;

use std::collections::HashMap;

use certgate_backend as backend;
use certgate_test_support::scenarios::ScenarioTable;
use common::comparable;
use common::envoy::{config, matrix, with_listener_verification, Build, Envoy, MODULE_VERSIONS};
use common::{judge_scenario, repo, resume_client, send_scenario};

macro_rules! per_version {
    ($($test:ident => $version:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                compatibility($version).await;
            }
        )*
        #[test]
        fn the_tests_cover_every_version_of_envoy_versions_txt() {
            assert_eq!(matrix(), [$($version),*]);
        }
    };
}

per_version! {
    envoy_1_36_4 => "1.36.4",
    envoy_1_37_0 => "1.37.0",
    envoy_1_38_2 => "1.38.2",
    envoy_1_39_3 => "1.39.3",
    envoy_1_40_0 => "1.40.0",
}

/// Whether an Envoy runs the dynamic module (from 1.38).
fn runs_the_module(version: &str) -> bool {
    MODULE_VERSIONS.contains(&version)
}

/// The builds of certgate an Envoy runs.
fn builds(version: &str) -> &'static [Build] {
    if runs_the_module(version) {
        &Build::BOTH
    } else {
        &[Build::Wasm]
    }
}

/// Whether an Envoy says if it verified a certificate
/// (`connection.peer_certificate_valid`, from 1.39).
fn has_validity_flag(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap()) >= (1, 39)
}

async fn compatibility(version: &str) {
    let mut failures = Vec::new();
    scenario_table(version, &mut failures).await;
    resumed_sessions(version, &mut failures).await;
    unverified_certificates(version, &mut failures).await;
    nginx_pattern(version, &mut failures).await;
    assert!(
        failures.is_empty(),
        "Envoy {version}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every scenario through the committed optional-mTLS configuration, its
/// policy given the committed verification setting, through each build:
/// each meets the table, and the two give the same answers.
async fn scenario_table(version: &str, failures: &mut Vec<String>) {
    let table = ScenarioTable::load(&repo().join("fixtures/scenarios.json")).unwrap();
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut envoys: HashMap<(String, Build), Envoy> = HashMap::new();
    for s in &table.scenarios {
        let policy = with_listener_verification(&table.policy_for(s).unwrap());
        let mut answers = Vec::new();
        for build in builds(version) {
            let key = (policy.clone(), *build);
            if !envoys.contains_key(&key) {
                let yaml = build.config(&config("optional-mtls.yaml", backend.addr, Some(&policy)));
                envoys.insert(key.clone(), Envoy::start_version(version, &yaml).unwrap());
            }
            let reply = send_scenario(envoys[&key].listener, s).await;
            judge_scenario(&format!("{version} {}", build.name()), s, &reply, failures);
            answers.push(comparable(&reply));
        }
        if answers.windows(2).any(|w| w[0] != w[1]) {
            failures.push(format!("{}: the builds disagree:\n  {}", s.name, answers.join("\n  ")));
        }
    }
}

/// The committed configurations as written: session resumption on, and a
/// returning client keeps its whole identity, over TLS 1.2 and 1.3.
async fn resumed_sessions(version: &str, failures: &mut Vec<String>) {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut files = vec!["required-mtls.yaml", "optional-mtls.yaml"];
    if runs_the_module(version) {
        files.push("required-mtls-native.yaml");
    }
    for file in files {
        let envoy = Envoy::start_version(version, &config(file, backend.addr, None)).unwrap();
        for tls in ["1.2", "1.3"] {
            let at = format!("{file}, TLS {tls}");
            let replies = resume_client(envoy.listener, tls, "alice", "/app/", 3);
            if !replies.iter().skip(1).all(|r| r.reused) {
                failures.push(format!("{at}: the session was not resumed: {replies:?}"));
            }
            for (i, r) in replies.iter().enumerate() {
                let identity = [
                    "x-client-cn",
                    "x-client-issuer",
                    "x-client-serial",
                    "x-client-verified",
                    "x-client-spiffe-id",
                ]
                .map(|h| r.backend_header(h));
                let want = [
                    "alice",
                    "CN=Example Client CA,O=Example",
                    "4c1e7a5e000000000000000000001001",
                    "SUCCESS",
                    "spiffe://example.org/ns/default/sa/alice",
                ]
                .map(|v| vec![v.to_owned()]);
                if r.status != 200 || identity != want {
                    failures.push(format!("{at}, connection {i} (resumed: {}): {} {}", r.reused, r.status, r.body));
                }
            }
        }
    }
}

/// A listener that lets unverified certificates through
/// (`trust_chain_verification: ACCEPT_UNTRUSTED`): under the default
/// setting certgate admits no unverified certificate on any version, with
/// `certificate_not_verified` where Envoy says so and `verification_unknown`
/// where it cannot; under `verification: listener`, which must never be
/// combined with such a listener, it would (SECURITY.md). The module, where
/// it runs, the same: it reads the flag from the connection's filter state.
async fn unverified_certificates(version: &str, failures: &mut Vec<String>) {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let policy = r#"{"rules":[{"name":"app","issuer_cn":["Example Client CA"]}]}"#;
    let untrusted = |policy: &str| {
        let yaml = config("optional-mtls.yaml", backend.addr, Some(policy));
        let trusted = "trusted_ca: { filename: ";
        assert!(yaml.contains(trusted));
        yaml.replacen(
            trusted,
            &format!("trust_chain_verification: ACCEPT_UNTRUSTED\n              {trusted}"),
            1,
        )
    };
    for build in builds(version) {
        let at = build.name();
        let envoy = Envoy::start_version(version, &build.config(&untrusted(policy))).unwrap();
        let (mallory_reason, alice_status) = if has_validity_flag(version) {
            ("certificate_not_verified", 200)
        } else {
            ("verification_unknown", 403)
        };
        let mallory = common::get(envoy.listener, Some("mallory"), "/app/", &[]).await.unwrap();
        if mallory.status != 403 || !mallory.body.contains(mallory_reason) {
            failures.push(format!(
                "{at}, default setting, untrusted listener: mallory got {} {}",
                mallory.status, mallory.body
            ));
        }
        let alice = common::get(envoy.listener, Some("alice"), "/app/", &[]).await.unwrap();
        if alice.status != alice_status {
            failures.push(format!(
                "{at}, default setting, untrusted listener: alice got {} {}",
                alice.status, alice.body
            ));
        }
        if !has_validity_flag(version) && !envoy.log_eventually_contains(r#"set "verification": "listener""#) {
            failures.push(format!(
                "{at}: the log does not say which setting would admit verified clients:\n{}",
                envoy.log_tail()
            ));
        }
        drop(envoy);
        let envoy = Envoy::start_version(version, &build.config(&untrusted(&with_listener_verification(policy)))).unwrap();
        let mallory = common::get(envoy.listener, Some("mallory"), "/app/", &[]).await.unwrap();
        if mallory.status != 200 {
            failures.push(format!(
                "{at}, listener setting on an untrusted listener: expected the documented hole, got {}",
                mallory.status
            ));
        }
    }
}

/// `envoy/nginx-optional.yaml` as written: visitors without a certificate get
/// Envoy's page, certificate holders the application with `verified` and
/// `dn`; a visitor's own `verified: SUCCESS` changes nothing.
async fn nginx_pattern(version: &str, failures: &mut Vec<String>) {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for build in builds(version) {
        let at = format!("nginx pattern, {}", build.name());
        let envoy = Envoy::start_version(version, &build.config(&config("nginx-optional.yaml", backend.addr, None))).unwrap();
        for spoof in [&[][..], &[("verified", "SUCCESS"), ("dn", "CN=admin")][..]] {
            let visitor = common::get(envoy.listener, None, "/account", spoof).await.unwrap();
            if visitor.status != 200 || visitor.backend_headers.is_some() || !visitor.body.contains("Welcome, visitor") {
                failures.push(format!(
                    "{at}, no certificate, headers {spoof:?}: {} {}",
                    visitor.status, visitor.body
                ));
            }
            let alice = common::get(envoy.listener, Some("alice"), "/account", spoof).await.unwrap();
            if alice.backend_header("verified") != ["SUCCESS"] || alice.backend_header("dn") != ["CN=alice,OU=Engineering,O=Example"] {
                failures.push(format!("{at}, alice, headers {spoof:?}: {} {}", alice.status, alice.body));
            }
        }
    }
}
