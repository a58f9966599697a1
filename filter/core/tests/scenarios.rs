//! The scenario table (`fixtures/scenarios.json`) through the filter's whole
//! request flow, natively, with a simulated proxy. The same table runs on the
//! real `.wasm` in the harness tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod common;

use certgate_core::admission::admit;
use certgate_core::cache::IdentityCache;
use certgate_core::config::parse_policy;
use certgate_core::policy::Outcome;
use certgate_test_support::scenarios::{Observed, ScenarioTable};
use common::{fixtures_dir, FakeEnvoy, WithClientCert};

/// 2026-11-22, inside every good fixture's validity.
const NOW: i64 = 1_795_305_600;

#[test]
fn every_scenario_gets_its_expected_decision_and_headers() {
    let table = ScenarioTable::load(&fixtures_dir().join("scenarios.json")).unwrap();
    assert!(table.scenarios.len() >= 30);
    let mut failures = Vec::new();
    for s in &table.scenarios {
        let policy = parse_policy(table.policy_for(s).unwrap().as_bytes()).unwrap();
        let mut proxy = FakeEnvoy::from_headers(s.request_headers());
        if let Some(cert) = &s.cert {
            proxy = proxy.with_client_cert(cert, s.verified);
        }
        let admission = admit(&mut proxy, &policy, &mut IdentityCache::new(16), NOW);
        // the series it counts in was defined: only those that can count are
        for (name, _) in certgate_core::metrics::increments(&policy, &admission) {
            if name.starts_with("undefined") {
                failures.push(format!("{}: counted in a series the policy never defined", s.name));
            }
        }
        let seen = Observed {
            status: proxy.reply.as_ref().map_or(200, |r| r.status),
            reason: match admission.outcome {
                Outcome::Allow => None,
                Outcome::Deny(r) => Some(r.as_str().to_owned()),
            },
            rule: Some(admission.rule.clone()),
            upstream_headers: proxy
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect(),
            body: proxy.reply.as_ref().map(|r| String::from_utf8_lossy(&r.body).into_owned()),
        };
        // the reply body says the same as the decision
        if let Some(body) = &seen.body {
            let black = Observed::black_box(seen.status, Some(body.clone()), Vec::new());
            assert_eq!(
                (black.reason.clone(), black.rule.clone()),
                (seen.reason.clone(), seen.rule.clone()),
                "{}",
                s.name
            );
        }
        if let Err(why) = s.check(&seen) {
            failures.push(format!("{}: {why}", s.name));
        }
    }
    assert!(failures.is_empty(), "{} scenarios failed:\n{}", failures.len(), failures.join("\n"));
}
