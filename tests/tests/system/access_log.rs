//! The decision in the access log, under a preset that sends neither the
//! rule nor the CN to the application (gunicorn): Envoy's log from the
//! filter state certgate publishes (`%FILTER_STATE(wasm.certgate:PLAIN)%`
//! in the committed configuration), and `certgate serve`'s own log.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certgate_backend as backend;
use common::envoy::{config, with_listener_verification, Build, Envoy};
use common::{certgate, get, KillOnDrop};

fn gunicorn_policy() -> String {
    std::fs::read_to_string(common::repo().join("fixtures/policies/gunicorn.json")).unwrap()
}

fn eventually(what: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Through each build: the Wasm filter's state is `wasm.certgate`, the
/// module's `certgate`; the committed configurations print the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoys_access_log_shows_rule_reason_and_cn() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let policy = with_listener_verification(&gunicorn_policy());
    for build in Build::BOTH {
        let envoy = Envoy::start(&build.config(&config("required-mtls.yaml", backend.addr, Some(&policy)))).unwrap();
        let allowed = get(envoy.listener, Some("alice"), "/api/v0.1/hello", &[]).await.unwrap();
        assert_eq!(allowed.status, 200, "{build:?}: {}", allowed.body);
        let denied = get(envoy.listener, Some("bob"), "/elsewhere", &[]).await.unwrap();
        assert_eq!(denied.status, 403, "{build:?}");
        let want_allow = r#"200 certgate={"decision":"allow","rule":"api","cn":"alice"}"#;
        let want_deny = r#"403 certgate={"decision":"deny","reason":"no_matching_rule","cn":"bob"}"#;
        assert!(
            eventually(|| envoy.access_log().contains(want_allow) && envoy.access_log().contains(want_deny)),
            "{build:?}: access log:\n{}",
            envoy.access_log()
        );
    }
}

#[test]
fn serves_access_log_shows_rule_reason_and_cn() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(backend::start("127.0.0.1:0".parse().unwrap())).unwrap();
    let mut serve = certgate();
    serve
        .args(["serve", "--policy", "fixtures/policies/gunicorn.json", "--listen", "127.0.0.1:0"])
        .args(["--upstream", &format!("http://{}", backend.addr)])
        .args(["--cert", "fixtures/pki/server.pem", "--key", "fixtures/pki/server.key"])
        .args(["--client-ca", "fixtures/pki/trusted-client-cas.pem"])
        .env("CERTGATE_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = KillOnDrop(serve.spawn().unwrap());
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.0.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first.trim().rsplit("https://").next().unwrap().parse().unwrap();
    rt.block_on(async {
        assert_eq!(get(addr, Some("alice"), "/api/v0.1/hello", &[]).await.unwrap().status, 200);
        assert_eq!(get(addr, Some("bob"), "/elsewhere", &[]).await.unwrap().status, 403);
    });
    let seen = |needle: &str| {
        log.lock()
            .unwrap()
            .lines()
            .any(|l| l.contains("certgate::access") && l.contains(needle))
    };
    assert!(
        eventually(|| seen("status=200 decision=allow rule=api reason=- cn=alice")
            && seen("status=403 decision=deny rule=- reason=no_matching_rule cn=bob")),
        "serve's log:\n{}",
        log.lock().unwrap()
    );
}
