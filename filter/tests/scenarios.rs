//! The scenario table (`fixtures/scenarios.json`) through the filter's whole
//! request flow, with a simulated proxy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use certgate_filter::admission::admit;
use certgate_filter::cache::IdentityCache;
use certgate_filter::config::parse_policy;
use certgate_filter::policy::Outcome;
use common::{fixture, patched, FakeProxy};
use serde_json::Value;

/// 2026-11-22, inside every good fixture's validity.
const NOW: i64 = 1_795_305_600;

#[test]
fn every_scenario_gets_its_expected_decision_and_headers() {
    let table: Value = serde_json::from_str(&fixture("scenarios.json")).unwrap();
    let policies = table["policies"].as_object().unwrap();
    let scenarios = table["scenarios"].as_array().unwrap();
    assert!(scenarios.len() >= 30);
    let mut failures = Vec::new();
    for s in scenarios {
        let name = s["name"].as_str().unwrap();
        if let Err(why) = run(s, policies) {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{} scenarios failed:\n{}", failures.len(), failures.join("\n"));
}

fn run(s: &Value, policies: &serde_json::Map<String, Value>) -> Result<(), String> {
    let policy_file = policies[s["policy"].as_str().unwrap()].as_str().unwrap();
    let base: Value = serde_json::from_str(&fixture(policy_file)).unwrap();
    let json = patched(&base, s.get("patch"));
    let policy = parse_policy(json.to_string().as_bytes()).map_err(|e| e.to_string())?;

    let method = s.get("method").and_then(Value::as_str).unwrap_or("GET");
    let authority = s.get("authority").and_then(Value::as_str).unwrap_or("localhost:8443");
    let mut proxy = FakeProxy::request(method, s["path"].as_str().unwrap(), authority);
    for h in s.get("headers").and_then(Value::as_array).into_iter().flatten() {
        proxy = proxy.with_header(h[0].as_str().unwrap(), h[1].as_str().unwrap());
    }
    if let Some(cert) = s["cert"].as_str() {
        let verified = s.get("verified").and_then(Value::as_bool).unwrap_or(true);
        proxy = proxy.with_client_cert(cert, verified);
    }

    let mut cache = IdentityCache::new(16);
    let admission = admit(&mut proxy, &policy, &mut cache, NOW);

    let expect = &s["expect"];
    let want_status = expect["status"].as_u64().unwrap() as u16;
    let got_status = proxy.reply.as_ref().map_or(200, |r| r.status);
    if got_status != want_status {
        return Err(format!("status {got_status}, want {want_status} ({admission:?})"));
    }
    let want_reason = expect.get("reason").and_then(Value::as_str);
    let got_reason = match admission.outcome {
        Outcome::Allow => None,
        Outcome::Deny(r) => Some(r.as_str()),
    };
    if got_reason != want_reason {
        return Err(format!("reason {got_reason:?}, want {want_reason:?}"));
    }
    let want_rule = expect.get("rule").and_then(Value::as_str);
    if admission.rule.as_deref() != want_rule {
        return Err(format!("rule {:?}, want {want_rule:?}", admission.rule));
    }
    if let Some(reply) = &proxy.reply {
        let body: Value = serde_json::from_slice(&reply.body).map_err(|e| format!("reply body: {e}"))?;
        if body["reason"].as_str() != want_reason || body["rule"].as_str() != want_rule {
            return Err(format!("reply body {body}"));
        }
        let text = String::from_utf8_lossy(&reply.body);
        if text.contains("BEGIN CERTIFICATE") {
            return Err("the reply carries the certificate".into());
        }
    }
    for (name, want) in expect.get("headers").and_then(Value::as_object).into_iter().flatten() {
        let values = proxy.header_values(name);
        let exact: Vec<&String> = proxy
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(n, _)| n)
            .collect();
        match want.as_str() {
            None if !values.is_empty() && !exact.is_empty() => {
                return Err(format!("header {name} present: {values:?}, want absent"));
            }
            None if !values.is_empty() => return Err(format!("header {name} (other case) present: {values:?}")),
            None => {}
            Some(w) if values.len() != 1 || values[0] != w => {
                return Err(format!("header {name} = {values:?}, want {w:?}"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}
