//! `envoy/remote-code.yaml`: Envoy fetches certgate over HTTP from a server
//! on loopback, pinned by the module's SHA-256. With the right digest the
//! scenario smoke test passes through it; with a wrong one Envoy refuses the
//! module and no request reaches the application (fail closed).

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use certgate_backend as backend;
use common::envoy::{config, Envoy};
use common::{get, sha256_hex, wasm};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Serves `body` to every request on a loopback port; counts the requests.
async fn module_server(body: Vec<u8>) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let body = Arc::new(body);
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (body, counter) = (body.clone(), counter.clone());
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = tcp.read(&mut request).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/wasm\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tcp.write_all(head.as_bytes()).await;
                let _ = tcp.write_all(&body).await;
            });
        }
    });
    (addr, hits)
}

fn remote_config(backend: SocketAddr, server: SocketAddr, sha256: &str) -> String {
    let yaml = config("remote-code.yaml", backend, None);
    assert!(
        yaml.contains(PLACEHOLDER) && yaml.contains("port_value: 8081"),
        "the committed file's placeholder and port"
    );
    yaml.replace(PLACEHOLDER, sha256)
        .replace("port_value: 8081", &format!("port_value: {}", server.port()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_runs_the_fetched_module_and_refuses_one_with_another_digest() {
    let module = std::fs::read(wasm()).unwrap();
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (server, hits) = module_server(module.clone()).await;

    let envoy = Envoy::start(&remote_config(backend.addr, server, &sha256_hex(&module))).unwrap();
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 1, "Envoy fetched the module");
    let alice = get(envoy.listener, Some("alice"), "/app/", &[("x-client-cn", "root")])
        .await
        .unwrap();
    assert_eq!(alice.status, 200, "{}", alice.body);
    assert_eq!(alice.backend_header("x-client-cn"), ["alice"]);
    let bob = get(envoy.listener, Some("bob"), "/admin/", &[]).await.unwrap();
    assert_eq!((bob.status, bob.body.contains("subject_not_allowed")), (403, true), "{}", bob.body);
    let health = get(envoy.listener, Some("bob"), "/healthz", &[]).await.unwrap();
    assert_eq!(health.status, 200);
    drop(envoy);

    // another digest: the same bytes are refused, and nothing passes (Envoy
    // starts, and answers 503 where the filter would run: fail_open: false)
    let wrong = sha256_hex(b"not the module");
    let envoy = Envoy::start(&remote_config(backend.addr, server, &wrong)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (who, path) in [("alice", "/app/"), ("ops-anna", "/admin/"), ("bob", "/healthz")] {
        let r = get(envoy.listener, Some(who), path, &[]).await.unwrap();
        assert_eq!(
            (r.status, r.backend_headers.is_none()),
            (503, true),
            "{who} {path} must not reach the application: {}",
            r.body
        );
    }
    assert!(
        envoy.log_eventually_contains("Plugin configured to fail closed failed to load"),
        "{}",
        envoy.log_tail()
    );
}
