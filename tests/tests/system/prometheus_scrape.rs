//! The operators' rules against the real thing: a real Prometheus (Debian's)
//! scrapes two real Envoys 1.40.0, one with the Wasm build and one with the
//! dynamic module (its test build, which panics on request), loads
//! `deploy/prometheus/certgate.rules.yml`, and after allowed, denied,
//! expiring-certificate, invalid-name and panicking requests every
//! recording rule returns the series it should, the alerts fire, and every
//! query of the Grafana dashboard (`deploy/grafana/certgate.json`) answers.

use crate::common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certgate_backend as backend;
use certgate_test_support::crafted::{client_certificate, client_certificate_until, Name};
use common::envoy::{admin_get, config, free_port, native_with, panicking_module, with_listener_verification, Envoy};
use common::{client_config, client_config_files, connect_with, pki, repo, TempDir};
use serde_json::Value;

const POLICY: &str = r#"{ "expiry_warning_days": 3650, "rules": [
    { "name": "app", "path_prefix": "/app/", "issuer": ["CN=Example Client CA,O=Example"] },
    { "name": "admin", "path_prefix": "/admin/", "subject_cn": ["nobody"] }
] }"#;

struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes each Envoy's `/stats/prometheus` every second, with the rules.
    fn start(envoys: &[SocketAddr]) -> Prometheus {
        let dir = TempDir::new("prometheus").unwrap();
        let targets: Vec<String> = envoys.iter().map(|a| format!("\"{a}\"")).collect();
        let config = format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             rule_files: [\"{}\"]\n\
             scrape_configs:\n\
             - job_name: envoy\n  metrics_path: /stats/prometheus\n  static_configs: [{{ targets: [{}] }}]\n",
            repo().join("deploy/prometheus/certgate.rules.yml").display(),
            targets.join(", ")
        );
        std::fs::write(dir.0.join("prometheus.yml"), config).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.0.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.0.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus: {e} (./dev test installs Debian's prometheus)"));
        let p = Prometheus { child, addr, _dir: dir };
        let start = Instant::now();
        while admin_get(p.addr, "/-/ready").is_none_or(|b| !b.contains("Ready")) {
            assert!(start.elapsed() < Duration::from_secs(30), "Prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> Vec<Value> {
        let encoded: String = promql
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let body = admin_get(self.addr, &format!("/api/v1/query?query={encoded}")).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{promql}: {e}: {body}"));
        assert_eq!(v["status"], "success", "{promql}: {body}");
        v["data"]["result"].as_array().unwrap().clone()
    }

    /// Waits until `promql` returns a sample whose value passes `want`.
    fn eventually(&self, promql: &str, want: impl Fn(f64) -> bool) -> Result<Vec<Value>, String> {
        let start = Instant::now();
        loop {
            let result = self.query(promql);
            let value = |s: &Value| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
            if result.iter().any(|s| want(value(s))) {
                return Ok(result);
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("{promql}: {result:?}"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_computes_every_rule_and_fires_the_alerts_from_real_envoys() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let yaml = config("optional-mtls.yaml", backend.addr, Some(&with_listener_verification(POLICY)));
    let wasm = Envoy::start(&yaml).unwrap();
    let module = Envoy::start(&native_with(&yaml, &panicking_module())).unwrap();
    let prometheus = Prometheus::start(&[wasm.admin, module.admin]);

    let dir = TempDir::new("scrape").unwrap();
    let write = |name: &str, c: &certgate_test_support::crafted::Crafted| {
        let (chain, key) = c.write_files(&dir.0, name).unwrap();
        client_config_files(&pki("root-ca.pem"), Some((&chain, &key)), &[b"http/1.1"])
    };
    let expiring = write("expiring", &client_certificate_until(&repo(), "soon", &[], (2030, 1, 1)).unwrap());
    // both Envoys scraped once before any traffic: a counter's rise is then seen
    prometheus.eventually(r#"count(up{job="envoy"} == 1)"#, |v| v == 2.0).unwrap();

    // traffic over several scrapes, so every counter rises between samples
    let until = Instant::now() + Duration::from_secs(8);
    let mut round = 0;
    while Instant::now() < until {
        // a new certificate each round: refused names are counted once per certificate
        round += 1;
        let bad = client_certificate(&repo(), &format!("odd-{round}"), &[Name::Dns("bad_name.example.org")]).unwrap();
        let bad_name = write(&format!("bad-name-{round}"), &bad);
        for envoy in [&wasm, &module] {
            let alice = connect_with(envoy.listener, client_config(Some("alice"), &[b"http/1.1"]), false).await;
            let mut alice = alice.unwrap();
            assert_eq!(alice.send("GET", "/app/x", &[]).await.unwrap().status, 200);
            assert_eq!(alice.send("GET", "/admin/x", &[]).await.unwrap().status, 403);
            let r = connect_with(envoy.listener, expiring.clone(), false)
                .await
                .unwrap()
                .send("GET", "/app/x", &[])
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            let r = connect_with(envoy.listener, bad_name.clone(), false)
                .await
                .unwrap()
                .send("GET", "/app/x", &[])
                .await
                .unwrap();
            assert_eq!(r.status, 200, "a refused name does not deny a rule that does not read it");
        }
        let mut panics = connect_with(module.listener, client_config(Some("alice"), &[b"http/1.1"]), false)
            .await
            .unwrap();
        assert_eq!(
            panics
                .send("GET", "/app/x", &[("x-certgate-test-panic", "1")])
                .await
                .unwrap()
                .status,
            500
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let mut failures = Vec::new();
    let mut expect = |promql: &str, want: fn(f64) -> bool| {
        if let Err(e) = prometheus.eventually(promql, want) {
            failures.push(e);
        }
    };
    // each build's own series, as Envoy names them
    expect(r#"certgate_requests_total{outcome="allowed",rule="app"}"#, |v| v > 0.0);
    expect(
        r#"envoy_dynamicmodulescustom_certgate_requests_total{outcome="allowed",rule="app"}"#,
        |v| v > 0.0,
    );
    // every recording rule
    expect(r#"certgate:requests:rate5m{outcome="allowed",rule="app"}"#, |v| v > 0.0);
    expect(
        r#"certgate:requests:rate5m{outcome="denied",reason="subject_not_allowed",rule="admin"}"#,
        |v| v > 0.0,
    );
    expect("certgate:denied:ratio5m", |v| v > 0.0 && v < 1.0);
    expect("certgate:expiring_certificates:rate1h", |v| v > 0.0);
    expect(r#"certgate:invalid_names:increase1h{kind="dns"}"#, |v| v > 0.0);
    expect(r#"certgate:invalid_names:increase1h{kind="spiffe_id"}"#, |v| v == 0.0);
    expect("certgate:failed_closed:rate5m", |v| v > 0.0);
    // the alerts without a `for` fire; failing closed is pending its minute
    for alert in [
        "CertgateCertificatesExpiring",
        "CertgateInvalidIdentityNames",
        "CertgateModulePanicked",
    ] {
        expect(&format!(r#"ALERTS{{alertname="{alert}",alertstate="firing"}}"#), |v| v == 1.0);
    }
    expect(r#"ALERTS{alertname="CertgateFailingClosed"}"#, |v| v == 1.0);
    // every panel of the dashboard has an answer (the reload count is 0: no VM trapped)
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(repo().join("deploy/grafana/certgate.json")).unwrap()).unwrap();
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(queries.len() >= 9, "{queries:?}");
    for q in &queries {
        expect(q, |v| v >= 0.0);
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
