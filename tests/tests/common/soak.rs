//! The soak run: Envoy with certgate (ECDS, so the policy can change under
//! load), a mix of allowed, denied, anonymous and spoofing requests from
//! several certificates on keep-alive connections, policy reloads in the
//! middle. Every reply is checked against what the policy in force says.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_backend as backend;

use super::envoy::{ecds_config, ecds_resource, write_atomically, Envoy};
use super::{connect, TempDir};

/// What a soak run saw.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub requests: u64,
    /// Transport errors (a failed connection or request).
    pub errors: u64,
    /// Replies that contradict both the old and the new policy.
    pub misdecisions: u64,
    pub reloads: u64,
    /// Replies only policy A gives (bob allowed) and only B gives (carol allowed):
    /// both non-zero shows the reloads took effect under load.
    pub only_a: u64,
    pub only_b: u64,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub first_misdecisions: Vec<String>,
}

/// Two policies that differ on bob and carol only, so a request is judged
/// against the policy it may have met while a reload was in flight.
const POLICY_A: &str = r#"{ "rules": [
  { "name": "health", "path": "/healthz", "anonymous": true },
  { "name": "admin", "path_prefix": "/admin/", "subject_cn": ["ops-*"] },
  { "name": "app", "path_prefix": "/", "issuer": ["CN=Example Client CA,O=Example"] } ] }"#;
const POLICY_B: &str = r#"{ "rules": [
  { "name": "health", "path": "/healthz", "anonymous": true },
  { "name": "admin", "path_prefix": "/admin/", "subject_cn": ["ops-*"] },
  { "name": "app", "path_prefix": "/", "subject_cn": ["alice", "ops-*", "carol"] } ] }"#;

/// (client, path) → allowed under A, allowed under B.
fn expected(cert: Option<&str>, path: &str) -> (bool, bool) {
    match (cert, path) {
        (_, "/healthz") => (true, true),
        (Some("ops-anna"), _) => (true, true),
        (_, "/admin/x") => (false, false),
        (Some("alice"), _) => (true, true),
        (Some("bob"), _) => (true, false),
        (Some("carol"), _) => (false, true),
        _ => (false, false),
    }
}

/// Runs `clients` keep-alive connections for `duration`, swapping the policy
/// every `reload_every`.
pub async fn soak(duration: Duration, clients: usize, reload_every: Duration) -> SoakReport {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = TempDir::new("soak").unwrap();
    let file = dir.0.join("certgate.yaml");
    std::fs::write(&file, ecds_resource(Some(POLICY_A))).unwrap();
    let envoy = Envoy::start(&ecds_config(backend.addr, &file)).unwrap();
    // Wait for the first policy (ECDS delivers it after start).
    let started = Instant::now();
    while connect(envoy.listener, Some("alice"), false).await.unwrap().send("GET", "/app/", &[]).await.map(|r| r.status) != Ok(200) {
        assert!(started.elapsed() < Duration::from_secs(20), "the first policy never arrived:\n{}", envoy.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut report = SoakReport { rss_start_kib: envoy.rss_kib(), ..SoakReport::default() };

    let stop = Arc::new(AtomicBool::new(false));
    let (requests, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (only_a, only_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let misdecisions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let certs = [Some("alice"), Some("bob"), Some("carol"), Some("ops-anna"), None];
    let paths = ["/app/x", "/admin/x", "/healthz"];
    for i in 0..clients {
        let (stop, requests, errors, misdecisions) = (stop.clone(), requests.clone(), errors.clone(), misdecisions.clone());
        let (only_a, only_b) = (only_a.clone(), only_b.clone());
        let addr = envoy.listener;
        let cert = certs[i % certs.len()];
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut conn) = connect(addr, cert, false).await else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                // a fresh connection every 200 requests, as real clients come and go
                for _ in 0..200 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let path = paths[n % paths.len()];
                    let spoof = n % 4 == 0;
                    n += 1;
                    let headers: &[(&str, &str)] = if spoof { &[("x-client-cn", "ops-anna"), ("X_USER", "ops-anna")] } else { &[] };
                    let reply = conn.send("GET", path, headers).await;
                    requests.fetch_add(1, Ordering::Relaxed);
                    let Ok(r) = reply else {
                        errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    };
                    let allowed = r.status == 200;
                    let (under_a, under_b) = expected(cert, path);
                    if under_a != under_b {
                        let counter = if allowed == under_a { &only_a } else { &only_b };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    let spoof_leaked = r.backend_header("x-client-cn").iter().any(|v| Some(v.as_str()) != cert)
                        || !r.backend_header("x-user").is_empty();
                    if (allowed != under_a && allowed != under_b) || spoof_leaked || !(allowed || r.status == 403) {
                        misdecisions.lock().unwrap().push(format!("{cert:?} {path} spoof={spoof}: {} {}", r.status, r.body));
                    }
                }
            }
        }));
    }

    let begin = Instant::now();
    let mut use_b = false;
    while begin.elapsed() < duration {
        tokio::time::sleep(reload_every.min(duration.saturating_sub(begin.elapsed()))).await;
        if begin.elapsed() < duration {
            use_b = !use_b;
            write_atomically(&file, &ecds_resource(Some(if use_b { POLICY_B } else { POLICY_A })));
            report.reloads += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    report.rss_end_kib = envoy.rss_kib();
    report.requests = requests.load(Ordering::Relaxed);
    report.errors = errors.load(Ordering::Relaxed);
    report.only_a = only_a.load(Ordering::Relaxed);
    report.only_b = only_b.load(Ordering::Relaxed);
    let all = misdecisions.lock().unwrap();
    report.misdecisions = all.len() as u64;
    report.first_misdecisions = all.iter().take(10).cloned().collect();
    report
}
