//! certgate's counters in Prometheus: the committed configurations' stats
//! tags make one labelled metric of the request counters. Known traffic goes
//! through Envoy; `/stats/prometheus` is parsed with Prometheus's own text
//! parser (Python's prometheus_client) and the labelled counts are checked.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use certgate_backend as backend;
use certgate_core::metrics::{stats_tags, MODULE_NAMESPACE, WASM_NAMESPACE};
use common::envoy::{admin_get, config, Build, Envoy};
use common::{get, repo, venv_python};
use serde_json::Value;

#[test]
fn every_committed_configuration_carries_the_stats_tags() {
    for (file, namespace) in [
        ("required-mtls.yaml", WASM_NAMESPACE),
        ("optional-mtls.yaml", WASM_NAMESPACE),
        ("nginx-optional.yaml", WASM_NAMESPACE),
        ("ecds.yaml", WASM_NAMESPACE),
        ("remote-code.yaml", WASM_NAMESPACE),
        ("required-mtls-sds.yaml", WASM_NAMESPACE),
        ("required-mtls-native.yaml", MODULE_NAMESPACE),
    ] {
        let yaml = std::fs::read_to_string(repo().join("envoy").join(file)).unwrap();
        for (tag, regex) in stats_tags(namespace) {
            assert!(
                yaml.contains(&format!("- tag_name: {tag}\n    regex: '{regex}'")),
                "{file}: the `{tag}` stats tag"
            );
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

/// The same traffic through each build: the same labelled counts. Envoy
/// names the module's `envoy_dynamicmodulescustom_certgate_...` here (it
/// drops the namespace of Wasm filters' stats only; README says how to
/// relabel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_labelled_certgate_counters() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for build in Build::BOTH {
        let envoy = Envoy::start(&build.config(&config("optional-mtls.yaml", backend.addr, None))).unwrap();
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
            assert_eq!(r.status, status, "{build:?} {who:?} {path}: {}", r.body);
        }
        let prefix = build.prometheus_prefix();
        let total = format!("{prefix}certgate_requests_total");
        let total = total.as_str();
        envoy.stat_eventually(
            &build.stat("certgate_requests_total.outcome.denied.reason.certificate_required.rule.app"),
            |v| v == 2,
        );
        let samples = parse(&admin_get(envoy.admin, "/stats/prometheus").unwrap());
        let count = |labels: &[(&str, &str)]| sample(&samples, total, labels).map(|s| s["value"].as_f64().unwrap());
        let nonzero: Vec<&Value> = samples.iter().filter(|s| s["value"].as_f64() != Some(0.0)).collect();
        assert_eq!(
            count(&[("outcome", "allowed"), ("rule", "app")]),
            Some(2.0),
            "{build:?}: {nonzero:?}"
        );
        assert_eq!(count(&[("outcome", "allowed"), ("rule", "health")]), Some(1.0), "{build:?}");
        assert_eq!(
            count(&[("outcome", "denied"), ("reason", "subject_not_allowed"), ("rule", "admin")]),
            Some(1.0),
            "{build:?}"
        );
        assert_eq!(
            count(&[("outcome", "denied"), ("reason", "certificate_required"), ("rule", "app")]),
            Some(2.0),
            "{build:?}"
        );
        assert_eq!(
            count(&[("outcome", "denied"), ("reason", "bad_path")]),
            Some(1.0),
            "{build:?}: no rule: no rule label"
        );
        assert_eq!(
            count(&[("outcome", "denied"), ("reason", "revoked"), ("rule", "app")]),
            Some(0.0),
            "{build:?}: defined up front"
        );
        let family = sample(&samples, total, &[("outcome", "allowed"), ("rule", "app")]).unwrap();
        assert_eq!(
            (family["family"].as_str(), family["type"].as_str()),
            (Some(format!("{prefix}certgate_requests").as_str()), Some("counter")),
            "{build:?}"
        );
        let spoofed = sample(&samples, &format!("{prefix}certgate_spoofed_headers_removed_total"), &[]).unwrap();
        assert_eq!(spoofed["value"].as_f64(), Some(7.0), "{build:?}");
    }
}
