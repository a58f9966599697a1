//! `certgate serve` under abuse: idle and half-open connections, oversized
//! header blocks, a slow client and a connection flood. Each is refused with
//! a clear answer or closed, the edge does not crash, and a well-behaved
//! client is served all along.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use certgate_backend as backend;
use certgate_edge as edge;
use certgate_edge::tls::ClientCertMode;
use common::{client_config, connect, settings, TempDir};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const POLICY: &str = r#"{"rules":[{"name":"app","path_prefix":"/","issuer":["CN=Example Client CA,O=Example"]}]}"#;

/// An edge with these limits, and its backend.
async fn edge_with(limits: impl FnOnce(&mut edge::EdgeSettings)) -> (edge::RunningEdge, backend::RunningBackend, TempDir) {
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = TempDir::new("abuse").unwrap();
    let policy = dir.0.join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();
    let mut s = settings(&policy, ClientCertMode::Required, &format!("http://{}", backend.addr));
    limits(&mut s);
    (edge::start(s).await.unwrap(), backend, dir)
}

/// A well-behaved client: a new connection, one GET.
async fn served(addr: SocketAddr) -> Result<u16, String> {
    connect(addr, Some("alice"), false)
        .await?
        .send("GET", "/hello", &[])
        .await
        .map(|r| r.status)
}

/// A TLS connection as alice, for writing raw HTTP/1.1.
async fn tls(addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(client_config(Some("alice"), &[b"http/1.1"]))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Everything the server sends until it closes (10 s at most).
async fn read_to_close<S: AsyncReadExt + Unpin>(s: &mut S) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the server closed a raw TCP connection within `wait`.
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(wait, tcp.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_open_connections_are_closed_after_the_handshake_timeout() {
    let (edge, _backend, _dir) = edge_with(|s| s.handshake_timeout = Duration::from_secs(1)).await;
    let mut idle = Vec::new();
    for i in 0..60 {
        let mut tcp = TcpStream::connect(edge.addr).await.unwrap();
        if i % 2 == 1 {
            // half a ClientHello: a record header promising more than comes
            tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
        }
        idle.push(tcp);
    }
    let started = Instant::now();
    assert_eq!(served(edge.addr).await, Ok(200), "a client is served while 60 connections idle");
    for (i, tcp) in idle.iter_mut().enumerate() {
        assert!(closed_within(tcp, Duration::from_secs(5)).await, "connection {i} still open");
    }
    let closed_after = started.elapsed();
    println!(
        "60 idle or half-open connections closed {} ms after they opened (timeout 1 s)",
        closed_after.as_millis()
    );
    assert!(
        closed_after >= Duration::from_millis(900),
        "not before the timeout: {closed_after:?}"
    );
    assert_eq!(served(edge.addr).await, Ok(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_blocks_and_header_counts_are_answered_431() {
    let (edge, _backend, _dir) = edge_with(|_| {}).await;
    let big = format!("GET /hello HTTP/1.1\r\nhost: localhost\r\nx-big: {}\r\n\r\n", "a".repeat(70 * 1024));
    let many = format!(
        "GET /hello HTTP/1.1\r\nhost: localhost\r\n{}\r\n",
        (0..150).map(|i| format!("x-h{i}: {i}\r\n")).collect::<String>()
    );
    for (what, request) in [("a 70 KiB header", big), ("150 headers", many)] {
        let mut s = tls(edge.addr).await;
        s.write_all(request.as_bytes()).await.unwrap();
        let reply = read_to_close(&mut s).await;
        assert!(reply.starts_with("HTTP/1.1 431"), "{what}: {reply:?}");
        assert_eq!(served(edge.addr).await, Ok(200), "after {what}");
    }
    // just under the limits: served
    let fits = format!("x{}", "a".repeat(50 * 1024));
    let r = connect(edge.addr, Some("alice"), false)
        .await
        .unwrap()
        .send("GET", "/hello", &[("x-big", &fits)])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // HTTP/2: a header list over 60 KiB is refused, the connection's next request served
    let mut h2 = connect(edge.addr, Some("alice"), true).await.unwrap();
    let huge = "a".repeat(70 * 1024);
    let refused = h2.send("GET", "/hello", &[("x-big", &huge)]).await;
    assert!(
        refused.as_ref().map_or(true, |r| r.status == 431),
        "HTTP/2 over the limit: {:?}",
        refused.map(|r| r.status)
    );
    assert_eq!(served(edge.addr).await, Ok(200));
}

/// A client trickling its headers is disconnected after the header timeout
/// (hyper closes it; the log says why), and others are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_disconnected_and_others_are_served_meanwhile() {
    let (edge, _backend, _dir) = edge_with(|s| s.header_timeout = Duration::from_secs(1)).await;
    let (mut reader, mut writer) = tokio::io::split(tls(edge.addr).await);
    let started = Instant::now();
    writer.write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\n").await.unwrap();
    // one byte of a header every 200 ms: never done
    let trickle = async {
        for b in b"x-slow: 1234567890".iter().cycle() {
            if writer.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        std::future::pending::<()>().await;
    };
    let closed = async { (read_to_close(&mut reader).await, started.elapsed()) };
    let slow = async {
        tokio::select! {
            r = closed => r,
            _ = trickle => unreachable!(),
        }
    };
    let others = async {
        for _ in 0..5 {
            assert_eq!(served(edge.addr).await, Ok(200), "served while a client trickles");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let ((reply, after), ()) = tokio::join!(slow, others);
    println!(
        "a client trickling its headers was disconnected after {} ms (header timeout 1 s)",
        after.as_millis()
    );
    assert_eq!(reply, "", "no response to a request that never ended");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(5), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_bounded_by_max_connections_and_idle_ones_make_room() {
    let (edge, _backend, _dir) = edge_with(|s| s.max_connections = 4).await;
    // four connections each in the middle of a request: a body still coming
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut s = tls(edge.addr).await;
        s.write_all(b"POST /echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: 1000\r\n\r\nstill coming")
            .await
            .unwrap();
        busy.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // the flood: with every connection busy, each one beyond four is closed at once
    let mut refused = 0;
    for _ in 0..50 {
        if served(edge.addr).await.is_err() {
            refused += 1;
        }
    }
    println!("with 4 busy connections and --max-connections 4: {refused} of 50 more refused");
    assert_eq!(refused, 50, "over the limit nothing is served while all are busy");
    // the busy ones finish their requests all the same
    for s in &mut busy {
        s.write_all(&[b'x'; 988]).await.unwrap();
    }
    for s in &mut busy {
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "a busy connection is never the one closed");
    }
    // now all four are idle between requests: a new client makes room
    let started = Instant::now();
    assert_eq!(served(edge.addr).await, Ok(200), "an idle connection made room");
    println!(
        "at the cap with 4 idle connections, a new client was served in {} ms",
        started.elapsed().as_millis()
    );
    let mut closed = 0;
    for s in &mut busy {
        // what is left of the reply, then the end of the evicted one
        let mut rest = Vec::new();
        if matches!(
            tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await,
            Ok(Ok(_) | Err(_))
        ) {
            closed += 1;
        }
    }
    assert!(closed >= 1, "the idle longest was closed to make room");
}

#[test]
fn max_connections_zero_is_refused_by_name() {
    let options = edge::settings::ServeOptions {
        upstream: Some("http://127.0.0.1:1".into()),
        policy: Some("p.json".into()),
        cert: Some("c.pem".into()),
        key: Some("k.pem".into()),
        client_ca: Some("ca.pem".into()),
        wasm: Some("f.wasm".into()),
        max_connections: Some(0),
        ..Default::default()
    };
    let err = options.resolve().unwrap_err().to_string();
    assert!(err.contains("--max-connections 0"), "{err}");
}
