//! The soak run: Envoy with certgate (ECDS, so the policy can change under
//! load), a mix of allowed, denied, anonymous and spoofing requests from
//! several certificates on keep-alive connections, policy reloads in the
//! middle. Every reply is checked against what the policy in force says.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_backend as backend;

use super::envoy::{write_atomically, Build, Envoy};
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
    /// The first failures, as the client saw them.
    pub first_errors: Vec<String>,
}

/// Two policies that differ on bob and carol only, so a request is judged
/// against the policy it may have met while a reload was in flight.
pub const POLICY_A: &str = r#"{ "verification": "listener", "rules": [
  { "name": "health", "path": "/healthz", "anonymous": true },
  { "name": "admin", "path_prefix": "/admin/", "subject_cn": ["ops-*"] },
  { "name": "app", "path_prefix": "/", "issuer": ["CN=Example Client CA,O=Example"] } ] }"#;
pub const POLICY_B: &str = r#"{ "verification": "listener", "rules": [
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

/// Which policies a reply may have met: both (the soak swaps them) or A alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policies {
    /// A reply is right under A or under B.
    Both,
    /// A reply is right under A.
    OnlyA,
}

/// Mixed keep-alive load on one address: allowed, denied, anonymous and
/// spoofing requests from five identities, a fresh connection every 200
/// requests. A connection the server closed (after a `connection: close`
/// reply or a GOAWAY: a drain) is replaced before the next request is sent,
/// as browsers and `requests` do; every request sent that fails is an error.
pub struct Load {
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    only_a: Arc<AtomicU64>,
    only_b: Arc<AtomicU64>,
    misdecisions: Arc<std::sync::Mutex<Vec<String>>>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(addr: SocketAddr, clients: usize, policies: Policies) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (requests, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (only_a, only_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let misdecisions = Arc::new(std::sync::Mutex::new(Vec::new()));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let certs = [Some("alice"), Some("bob"), Some("carol"), Some("ops-anna"), None];
        let paths = ["/app/x", "/admin/x", "/healthz"];
        for i in 0..clients {
            let (stop, requests, errors, misdecisions) = (stop.clone(), requests.clone(), errors.clone(), misdecisions.clone());
            let (only_a, only_b, failures) = (only_a.clone(), only_b.clone(), failures.clone());
            let cert = certs[i % certs.len()];
            let failed = move |what: String| {
                let mut f = failures.lock().unwrap();
                if f.len() < 10 {
                    f.push(what);
                }
            };
            tasks.push(tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let mut conn = match connect(addr, cert, false).await {
                        Ok(c) => c,
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            failed(format!("{cert:?} connect: {e}"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    // a fresh connection every 200 requests, as real clients come and go
                    for _ in 0..200 {
                        if stop.load(Ordering::Relaxed) || !conn.ready().await {
                            break;
                        }
                        let path = paths[n % paths.len()];
                        let spoof = n.is_multiple_of(4);
                        n += 1;
                        let headers: &[(&str, &str)] = if spoof {
                            &[("x-client-cn", "ops-anna"), ("X_USER", "ops-anna")]
                        } else {
                            &[]
                        };
                        let reply = conn.send("GET", path, headers).await;
                        requests.fetch_add(1, Ordering::Relaxed);
                        let r = match reply {
                            Ok(r) => r,
                            Err(e) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                failed(format!("{cert:?} {path}: {e}"));
                                break;
                            }
                        };
                        let allowed = r.status == 200;
                        let (under_a, mut under_b) = expected(cert, path);
                        if policies == Policies::OnlyA {
                            under_b = under_a;
                        }
                        if under_a != under_b {
                            let counter = if allowed == under_a { &only_a } else { &only_b };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        let spoof_leaked = r.backend_header("x-client-cn").iter().any(|v| Some(v.as_str()) != cert)
                            || !r.backend_header("x-user").is_empty();
                        if (allowed != under_a && allowed != under_b) || spoof_leaked || !(allowed || r.status == 403) {
                            misdecisions
                                .lock()
                                .unwrap()
                                .push(format!("{cert:?} {path} spoof={spoof}: {} {}", r.status, r.body));
                        }
                    }
                }
            }));
        }
        Load {
            stop,
            requests,
            errors,
            only_a,
            only_b,
            misdecisions,
            failures,
            tasks,
        }
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops the clients; what they saw.
    pub async fn finish(self) -> SoakReport {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let all = self.misdecisions.lock().unwrap();
        SoakReport {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            only_a: self.only_a.load(Ordering::Relaxed),
            only_b: self.only_b.load(Ordering::Relaxed),
            misdecisions: all.len() as u64,
            first_misdecisions: all.iter().take(10).cloned().collect(),
            first_errors: self.failures.lock().unwrap().clone(),
            ..SoakReport::default()
        }
    }
}

/// Envoy `version` with certgate by ECDS, with policy A; ready once A applies.
pub async fn ecds_envoy(version: &str, build: Build, backend: SocketAddr, file: &std::path::Path) -> Envoy {
    std::fs::write(file, build.ecds_resource(Some(POLICY_A))).unwrap();
    let envoy = Envoy::start_version(version, &build.ecds_config(backend, file)).unwrap();
    // Wait for the first policy (ECDS delivers it after start).
    let started = Instant::now();
    while connect(envoy.listener, Some("alice"), false)
        .await
        .unwrap()
        .send("GET", "/app/", &[])
        .await
        .map(|r| r.status)
        != Ok(200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the first policy never arrived:\n{}",
            envoy.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    envoy
}

/// Writes policy B (or A) to the ECDS file, by a rename.
pub fn swap_policy(file: &std::path::Path, build: Build, to_b: bool) {
    write_atomically(file, &build.ecds_resource(Some(if to_b { POLICY_B } else { POLICY_A })));
}

/// Runs `clients` keep-alive connections for `duration` against Envoy
/// `version`, swapping the policy every `reload_every`.
pub async fn soak(version: &str, duration: Duration, clients: usize, reload_every: Duration) -> SoakReport {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = TempDir::new("soak").unwrap();
    let file = dir.0.join("certgate.yaml");
    let envoy = ecds_envoy(version, Build::Wasm, backend.addr, &file).await;
    let rss_start_kib = envoy.rss_kib();
    let load = Load::start(envoy.listener, clients, Policies::Both);
    let begin = Instant::now();
    let mut use_b = false;
    let mut reloads = 0;
    while begin.elapsed() < duration {
        tokio::time::sleep(reload_every.min(duration.saturating_sub(begin.elapsed()))).await;
        if begin.elapsed() < duration {
            use_b = !use_b;
            swap_policy(&file, Build::Wasm, use_b);
            reloads += 1;
        }
    }
    let report = load.finish().await;
    SoakReport {
        reloads,
        rss_start_kib,
        rss_end_kib: envoy.rss_kib(),
        ..report
    }
}
