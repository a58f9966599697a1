//! Revocation without a restart, on the oldest and newest Envoy (and the
//! dynamic module on the newest):
//! `envoy/required-mtls-sds.yaml` takes the trusted CAs and CRLs through SDS
//! from the file `certgate pki crl --sds` replaces by an atomic rename. While
//! Envoy runs, alice is revoked and the file published; then
//! - her next new handshake is refused (the delay is measured and printed);
//! - the TLS sessions she got before (1.2 and 1.3) no longer resume;
//! - a connection she opened before stays open and is served (Envoy checks a
//!   CRL at the handshake only), as README step 7 says;
//! - bob's requests, new connections and one kept alive, never fail.
//!
//! And certgate's own deny list, the instant path: an ECDS update denying
//! alice's serial refuses her next request on a connection that stays open.
//! Figures: `cargo nextest run -p certgate-tests --test system revocation:: --no-capture`.

use crate::common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_backend as backend;
use common::envoy::{config, ecds_config, ecds_resource, with_listener_verification, write_atomically, Build, Envoy};
use common::pki::{Pki, POLICY};
use common::{connect, connect_with, repo, Resumed, TempDir};

/// The oldest and the newest Envoy of the matrix.
const VERSIONS: [&str; 2] = ["1.36.4", "1.40.0"];

/// The builds and Envoys the revocation runs on: the Wasm build on the
/// oldest and newest, the dynamic module on the newest (it needs 1.38+).
const RUNS: [(&str, Build); 3] = [("1.36.4", Build::Wasm), ("1.40.0", Build::Wasm), ("1.40.0", Build::Module)];

/// `envoy/required-mtls-sds.yaml` on this PKI's files.
fn sds_yaml(pki: &Pki, backend: SocketAddr) -> String {
    let home = pki.dir.0.join("pki");
    let yaml = config("required-mtls-sds.yaml", backend, Some(&with_listener_verification(POLICY)))
        .replace("filename: pki/", &format!("filename: {}/", home.display()))
        .replace(
            "path: pki/client-validation.json",
            &format!("path: {}", home.join("client-validation.json").display()),
        );
    let unreplaced = yaml
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains(" pki/"))
        .count();
    assert_eq!(unreplaced, 0, "every path of the PKI replaced:\n{yaml}");
    yaml
}

/// `certgate pki crl --sds`: signs the CRLs and replaces the SDS file.
fn publish(pki: &Pki) {
    pki.run(&["crl", "--sds", "pki/client-validation.json", "--trusted-ca", "pki/root-ca/ca.pem"]);
}

/// One GET as `who` on a new connection: the status, or the handshake error.
async fn call(pki: &Pki, addr: SocketAddr, who: &str) -> Result<u16, String> {
    Ok(pki.connect(addr, who).await?.send("GET", "/hello", &[]).await?.status)
}

/// `resume_client.py` for alice: its first connection now, its second once
/// `go` exists (offering the first one's session).
struct Resumer {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Resumer {
    fn start(pki: &Pki, addr: SocketAddr, tls: &str, go: &std::path::Path) -> Resumer {
        let mut child = Command::new("python3")
            .arg(repo().join("tests/python/resume_client.py"))
            .args([addr.ip().to_string(), addr.port().to_string()])
            .arg(pki.path("root-ca/ca.pem"))
            .arg(pki.path("issued/alice-chain.pem"))
            .arg(pki.path("issued/alice.key"))
            .args([tls, "/hello", "2"])
            .arg(go)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Resumer { child, lines }
    }

    fn next(&mut self) -> Resumed {
        Resumed::from_line(&self.lines.next().expect("a line from resume_client.py").unwrap())
    }
}

impl Drop for Resumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bob's traffic while the CRL changes: a new connection per request, and one
/// connection kept alive. Counts requests and failures until stopped.
struct Bystander {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Bystander {
    async fn start(pki: &Pki, addr: SocketAddr) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tls = pki.client_tls("bob", None);
        let mut kept = connect_with(addr, tls.clone(), false).await.unwrap();
        let mut tasks = Vec::new();
        for keep_alive in [false, true] {
            let (stop, sent, failed, tls) = (stop.clone(), sent.clone(), failed.clone(), tls.clone());
            let mut kept = if keep_alive {
                Some(std::mem::replace(&mut kept, connect_with(addr, tls.clone(), false).await.unwrap()))
            } else {
                None
            };
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let result = match kept.as_mut() {
                        Some(conn) => conn.send("GET", "/hello", &[]).await.map(|r| r.status),
                        None => match connect_with(addr, tls.clone(), false).await {
                            Ok(mut c) => c.send("GET", "/hello", &[]).await.map(|r| r.status),
                            Err(e) => Err(e),
                        },
                    };
                    sent.fetch_add(1, Ordering::Relaxed);
                    if result != Ok(200) {
                        failed.lock().unwrap().push(format!("keep-alive {keep_alive}: {result:?}"));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }));
        }
        Bystander { stop, sent, failed, tasks }
    }

    /// Waits until `n` requests were sent in all (20 s at most).
    async fn until_sent(&self, n: usize) {
        let start = Instant::now();
        while self.sent.load(Ordering::Relaxed) < n && start.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops; (requests sent, failures).
    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.sent.load(Ordering::Relaxed), failed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_published_through_sds_refuses_new_and_resumed_handshakes_without_a_restart() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for (version, build) in RUNS {
        let pki = Pki::new(&["alice", "bob"]);
        publish(&pki);
        let envoy =
            Envoy::start_version(version, &build.config(&sds_yaml(&pki, backend.addr))).unwrap_or_else(|e| panic!("{version}: {e}"));
        let version = format!("{version} {}", build.name());
        let addr = envoy.listener;
        assert_eq!(
            call(&pki, addr, "alice").await,
            Ok(200),
            "{version}: alice before:\n{}",
            envoy.log_tail()
        );

        // alice's connection kept open, and her sessions to resume
        let mut open = pki.connect(addr, "alice").await.unwrap();
        assert_eq!(open.send("GET", "/hello", &[]).await.map(|r| r.status), Ok(200));
        let go = pki.dir.0.join("go");
        let mut resumers: Vec<(&str, Resumer)> = ["1.2", "1.3"]
            .into_iter()
            .map(|tls| (tls, Resumer::start(&pki, addr, tls, &go)))
            .collect();
        for (tls, r) in &mut resumers {
            let first = r.next();
            assert_eq!(
                (first.status, first.reused),
                (200, false),
                "{version} TLS {tls}: a full handshake first: {first:?}"
            );
        }
        let bob = Bystander::start(&pki, addr).await;
        bob.until_sent(20).await;

        // revoke and publish, Envoy running
        pki.run(&["revoke", "alice", "--reason", "keyCompromise"]);
        let updates = envoy
            .stat("sds.certgate-client-validation.update_success")
            .unwrap_or_else(|| panic!("{version}: no SDS stats:\n{}", envoy.log_tail()));
        publish(&pki);
        let published = Instant::now();
        let refused_after = loop {
            if call(&pki, addr, "alice").await.is_err() {
                break published.elapsed();
            }
            assert!(
                published.elapsed() < Duration::from_secs(20),
                "{version}: alice still admitted 20 s after the CRL:\n{}",
                envoy.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        println!(
            "{version}: alice's new handshake refused {} ms after `pki crl --sds` returned",
            refused_after.as_millis()
        );
        let counted = envoy.stat_eventually("sds.certgate-client-validation.update_success", |v| v > updates);
        assert!(counted.is_some(), "{version}: Envoy counts the SDS update (it was {updates})");

        // the sessions from before the CRL
        std::fs::write(&go, b"").unwrap();
        for (tls, r) in &mut resumers {
            let second = r.next();
            println!(
                "{version}: TLS {tls} session from before the CRL: resumed={} status={} error={:?}",
                second.reused, second.status, second.error
            );
            assert!(
                !second.reused,
                "{version} TLS {tls}: a session from before the CRL must not resume: {second:?}"
            );
            assert_ne!(
                second.status, 200,
                "{version} TLS {tls}: alice refused on the resumption attempt: {second:?}"
            );
        }

        // the connection she opened before: Envoy checks CRLs at handshakes only
        let still = open.send("GET", "/hello", &[]).await.map(|r| r.status);
        println!("{version}: alice's connection opened before the CRL: {still:?}");
        assert_eq!(
            still,
            Ok(200),
            "{version}: an open connection is not re-checked (README step 7 says so)"
        );

        // bob goes on for a while after the switch too
        let at_switch = bob.sent.load(Ordering::Relaxed);
        bob.until_sent(at_switch + 40).await;
        let (sent, failed) = bob.finish().await;
        println!("{version}: bob during the switch: {sent} requests, {} failed", failed.len());
        assert!(sent >= 60, "{version}: bob's traffic ran ({sent})");
        assert!(failed.is_empty(), "{version}: bob's requests failed during the switch: {failed:?}");
        assert_eq!(call(&pki, addr, "bob").await, Ok(200));
    }
}

/// SECURITY.md's question, measured: with `session_ticket_keys` set by the
/// operator (the same keys before and after the CRL), do alice's sessions
/// from before her revocation resume? They resume while nothing changes
/// (the control), and not after the CRL: the new validation context is a
/// new session context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_operator_ticket_keys_sessions_from_before_a_crl_do_not_resume() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for version in VERSIONS {
        let pki = Pki::new(&["alice", "bob"]);
        publish(&pki);
        let keys = pki.dir.0.join("ticket.key");
        std::fs::write(&keys, (0..80u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect::<Vec<u8>>()).unwrap();
        let yaml = sds_yaml(&pki, backend.addr).replacen(
            "          session_timeout: 600s",
            &format!(
                "          session_timeout: 600s\n          session_ticket_keys: {{ keys: [ {{ filename: {} }} ] }}",
                keys.display()
            ),
            1,
        );
        let envoy = Envoy::start_version(version, &yaml).unwrap_or_else(|e| panic!("{version}: {e}"));
        let addr = envoy.listener;
        let start = |go: &std::path::Path| -> Vec<(&str, Resumer)> {
            ["1.2", "1.3"]
                .into_iter()
                .map(|tls| (tls, Resumer::start(&pki, addr, tls, go)))
                .collect()
        };
        let (go_before, go_after) = (pki.dir.0.join("go-before"), pki.dir.0.join("go-after"));
        let (mut control, mut after) = (start(&go_before), start(&go_after));
        for (tls, r) in control.iter_mut().chain(after.iter_mut()) {
            let first = r.next();
            assert_eq!(
                (first.status, first.reused),
                (200, false),
                "{version} TLS {tls}: a full handshake first: {first:?}"
            );
        }
        // the control: the keys work, sessions resume while nothing changed
        std::fs::write(&go_before, b"").unwrap();
        for (tls, r) in &mut control {
            let second = r.next();
            assert_eq!(
                (second.status, second.reused),
                (200, true),
                "{version} TLS {tls}: with the operator's keys a session resumes: {second:?}"
            );
        }
        pki.run(&["revoke", "alice", "--reason", "keyCompromise"]);
        publish(&pki);
        let published = Instant::now();
        while call(&pki, addr, "alice").await.is_ok() {
            assert!(
                published.elapsed() < Duration::from_secs(20),
                "{version}: the CRL never applied:\n{}",
                envoy.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::write(&go_after, b"").unwrap();
        for (tls, r) in &mut after {
            let second = r.next();
            println!(
                "{version} with session_ticket_keys: TLS {tls} session from before the CRL: resumed={} status={} error={:?}",
                second.reused, second.status, second.error
            );
            assert!(
                !second.reused && second.status != 200,
                "{version} TLS {tls}: a session from before the CRL resumed: {second:?}"
            );
        }
    }
}

/// alice's certificate serial, as `deny.serials` takes it.
fn alice_serial() -> String {
    let pem = std::fs::read(common::pki("alice.pem")).unwrap();
    let der = certgate_x509::pem::first_certificate(&pem).unwrap();
    certgate_x509::text::hex(&certgate_x509::CertFacts::from_der(&der).unwrap().serial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecds_deny_list_update_refuses_a_serial_on_a_connection_that_stays_open() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let allow = r#"{"verification":"listener","rules":[{"name":"app","path_prefix":"/","issuer":["CN=Example Client CA,O=Example"]}]}"#;
    let deny = allow.replace(r#""rules""#, &format!(r#""deny":{{"serials":["{}"]}},"rules""#, alice_serial()));
    for version in VERSIONS {
        let dir = TempDir::new("ecds-deny").unwrap();
        let file = dir.0.join("certgate.yaml");
        std::fs::write(&file, ecds_resource(Some(allow))).unwrap();
        let envoy = Envoy::start_version(version, &ecds_config(backend.addr, &file)).unwrap_or_else(|e| panic!("{version}: {e}"));
        let mut alice = connect(envoy.listener, Some("alice"), false).await.unwrap();
        let mut bob = connect(envoy.listener, Some("bob"), false).await.unwrap();
        assert_eq!(
            alice.send("GET", "/app/", &[]).await.map(|r| r.status),
            Ok(200),
            "{version}:\n{}",
            envoy.log_tail()
        );

        write_atomically(&file, &ecds_resource(Some(&deny)));
        let written = Instant::now();
        let denied_after = loop {
            let status = alice
                .send("GET", "/app/", &[])
                .await
                .map(|r| r.status)
                .unwrap_or_else(|e| panic!("{version}: the connection stays open: {e}"));
            if status == 403 {
                break written.elapsed();
            }
            assert!(
                written.elapsed() < Duration::from_secs(20),
                "{version}: the deny list never applied:\n{}",
                envoy.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        println!(
            "{version}: alice's serial denied on her open connection {} ms after the ECDS file was renamed",
            denied_after.as_millis()
        );
        let body = alice.send("GET", "/app/", &[]).await.unwrap();
        assert_eq!(body.status, 403);
        assert!(body.body.contains("\"reason\":\"revoked\""), "{version}: {}", body.body);
        assert_eq!(
            bob.send("GET", "/app/", &[]).await.map(|r| r.status),
            Ok(200),
            "{version}: bob is not on the list"
        );
    }
}
