//! certgate's counters in Prometheus: the committed configurations' stats
//! tags make one labelled metric of the request counters. Known traffic goes
//! through Envoy; `/stats/prometheus` is parsed with Prometheus's own text
//! parser (Python's prometheus_client) and the labelled counts are checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use certgate_filter::metrics::STATS_TAGS;
use certgate_test_support::backend;
use common::envoy::{admin_get, config, Envoy};
use common::{get, repo, venv_python};
use serde_json::Value;

#[test]
fn every_committed_configuration_carries_the_stats_tags() {
    for file in ["required-mtls.yaml", "optional-mtls.yaml", "nginx-optional.yaml", "ecds.yaml", "remote-code.yaml"] {
        let yaml = std::fs::read_to_string(repo().join("envoy").join(file)).unwrap();
        for (tag, regex) in STATS_TAGS {
            assert!(yaml.contains(&format!("- tag_name: {tag}\n    regex: '{regex}'")), "{file}: the `{tag}` stats tag");
        }
    }
}

/// The certgate samples a Prometheus server would store from this text.
fn parse(exposition: &str) -> Vec<Value> {
    let mut child = Command::new(venv_python())
        .arg(repo().join("tests/python/prometheus_samples.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the Prometheus parser refused Envoy's exposition");
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn sample<'a>(samples: &'a [Value], name: &str, labels: &[(&str, &str)]) -> Option<&'a Value> {
    samples.iter().find(|s| {
        let l = s["labels"].as_object().unwrap();
        s["name"] == name && l.len() == labels.len() && labels.iter().all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(*v))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_labelled_certgate_counters() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let envoy = Envoy::start(&config("optional-mtls.yaml", backend.addr, None)).unwrap();
    for (who, path, status) in [
        (Some("alice"), "/app/", 200),
        (Some("alice"), "/app/x", 200),
        (Some("bob"), "/admin/", 403),
        (None, "/healthz", 200),
        (None, "/app/", 403),
        (None, "/app/", 403),
        (Some("alice"), "/app./x", 400),
    ] {
        let r = get(envoy.listener, who, path, &[("x-client-cn", "spoof")]).await.unwrap();
        assert_eq!(r.status, status, "{who:?} {path}: {}", r.body);
    }
    // Envoy drops its `envoy_` prefix and the `wasmcustom` namespace of custom stats
    let total = "certgate_requests_total";
    envoy.stat_eventually("wasmcustom.certgate_requests_total.outcome.denied.reason.certificate_required.rule.app", |v| v == 2);
    let samples = parse(&admin_get(envoy.admin, "/stats/prometheus").unwrap());
    let count = |labels: &[(&str, &str)]| sample(&samples, total, labels).map(|s| s["value"].as_f64().unwrap());
    let nonzero: Vec<&Value> = samples.iter().filter(|s| s["value"].as_f64() != Some(0.0)).collect();
    assert_eq!(count(&[("outcome", "allowed"), ("rule", "app")]), Some(2.0), "{nonzero:?}");
    assert_eq!(count(&[("outcome", "allowed"), ("rule", "health")]), Some(1.0));
    assert_eq!(count(&[("outcome", "denied"), ("reason", "subject_not_allowed"), ("rule", "admin")]), Some(1.0));
    assert_eq!(count(&[("outcome", "denied"), ("reason", "certificate_required"), ("rule", "app")]), Some(2.0));
    assert_eq!(count(&[("outcome", "denied"), ("reason", "bad_path")]), Some(1.0), "no rule: no rule label");
    assert_eq!(count(&[("outcome", "denied"), ("reason", "revoked"), ("rule", "app")]), Some(0.0), "defined up front");
    let family = sample(&samples, total, &[("outcome", "allowed"), ("rule", "app")]).unwrap();
    assert_eq!((family["family"].as_str(), family["type"].as_str()), (Some("certgate_requests"), Some("counter")));
    let spoofed = sample(&samples, "certgate_spoofed_headers_removed_total", &[]).unwrap();
    assert_eq!(spoofed["value"].as_f64(), Some(7.0));
}
