//! `certgate pki serve` under abuse, as the edge is tested (`edge_abuse`):
//! idle and half-open connections, a slow header, a trickled body, an idle
//! kept-alive connection, a body over the limit, a descriptor-starved
//! process, a queue flood; on the EST listener and on the plain proxy
//! listener. Each is closed or refused with its answer, the server neither
//! stops nor spins, and a well-behaved client is served all along. Also: a
//! revoked approver is refused on the next request, without a restart.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::{certgate, wait_for_port, KillOnDrop};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::enrollment::b64;

/// A running `certgate pki serve` and its process id.
struct Server {
    pki: Pki,
    addr: SocketAddr,
    plain: SocketAddr,
    child: KillOnDrop,
}

impl Server {
    /// Over a new PKI home with carol; `nofile`: the descriptor limit it runs under.
    fn start(extra: &[&str], nofile: Option<u32>) -> Server {
        Server::start_in(Pki::new(&["carol"]), extra, nofile)
    }

    fn start_in(pki: Pki, extra: &[&str], nofile: Option<u32>) -> Server {
        let addr = SocketAddr::from(([127, 0, 0, 1], common::envoy::free_port()));
        let plain = SocketAddr::from(([127, 0, 0, 1], common::envoy::free_port()));
        let bin = certgate().get_program().to_owned();
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let me = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()).to_string();
        cmd.args([
            "pki",
            "serve",
            "--listen",
            &addr.to_string(),
            "--allow",
            "queue",
            "--allow",
            "renewal",
        ])
        .args([
            "--proxy-listen",
            &plain.to_string(),
            "--proxy-user",
            &me,
            "--proxy-host",
            "localhost",
        ])
        .arg("--cert")
        .arg(pki.path("issued/localhost-chain.pem"))
        .arg("--key")
        .arg(pki.path("issued/localhost.key"))
        .args(["--retry-after", "1"])
        .args(extra)
        .current_dir(&pki.dir.0)
        .env("CERTGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(pki.dir.0.join("est.log")).unwrap());
        let child = KillOnDrop(cmd.spawn().unwrap());
        wait_for_port(addr, "certgate pki serve", Duration::from_secs(20));
        wait_for_port(plain, "its plain proxy listener", Duration::from_secs(20));
        Server { pki, addr, plain, child }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.pki.dir.0.join("est.log")).unwrap_or_default()
    }

    /// The process's CPU time so far (user and system), from /proc.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.0.id())).unwrap();
        // the fields after the command's name, in parentheses
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }

    async fn tls(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let config = common::client_config_files(&self.pki.path("root-ca/ca.pem"), None, &[b"http/1.1"]);
        TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }
}

/// A well-behaved client: curl asks for the CA certificates.
fn served(server: &Server) -> Result<Duration, String> {
    Server::curl_cacerts(&server.pki.path("root-ca/ca.pem"), server.addr.port())
}

/// Whether the server closed a connection within `wait`; what it sent first.
async fn closed_within<S: AsyncReadExt + Unpin>(s: &mut S, wait: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(wait, s.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

const FAST: &[&str] = &[
    "--handshake-timeout",
    "1",
    "--header-timeout",
    "1",
    "--idle-timeout",
    "2",
    "--body-timeout",
    "1",
    "--body-min-rate",
    "100",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_half_open_and_silent_tls_connections_are_closed_after_their_timeouts() {
    let server = Server::start(FAST, None);
    for (listener, addr) in [("EST", server.addr), ("plain proxy", server.plain)] {
        let mut idle = Vec::new();
        for i in 0..40 {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            if i % 2 == 1 {
                // half a ClientHello (or half a request line): more promised than comes
                tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
            }
            idle.push(tcp);
        }
        let started = Instant::now();
        assert!(
            served(&server).is_ok(),
            "a client is served while 40 connections idle on {listener}"
        );
        for (i, tcp) in idle.iter_mut().enumerate() {
            assert!(
                closed_within(tcp, Duration::from_secs(5)).await.is_some(),
                "{listener}: connection {i} still open"
            );
        }
        let after = started.elapsed();
        println!(
            "{listener}: 40 idle or half-open connections closed {} ms after they opened (timeout 1 s)",
            after.as_millis()
        );
        assert!(after >= Duration::from_millis(900), "not before the timeout: {after:?}");
    }
    // a TLS connection that says nothing once its handshake is done
    let mut silent = server.tls().await;
    let started = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await.is_some());
    println!(
        "a silent TLS connection closed after {} ms (header timeout 1 s)",
        started.elapsed().as_millis()
    );
    assert!(served(&server).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_a_trickled_body_and_an_idle_connection_are_closed_and_others_served() {
    let server = Server::start(FAST, None);
    // one byte of a header every 200 ms: never done
    let mut slow = server.tls().await;
    let started = Instant::now();
    slow.write_all(b"GET /.well-known/est/cacerts HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    let (mut reader, mut writer) = tokio::io::split(slow);
    let trickle = tokio::spawn(async move {
        for b in b"x-slow: 1234567890".iter().cycle() {
            if writer.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    for _ in 0..3 {
        assert!(served(&server).is_ok(), "served while a client trickles its header");
    }
    let reply = closed_within(&mut reader, Duration::from_secs(6))
        .await
        .expect("the slow header is cut off");
    let header_after = started.elapsed();
    trickle.abort();
    assert_eq!(reply, "", "no reply to a request that never ended");
    println!(
        "a trickled header was cut off after {} ms (header timeout 1 s)",
        header_after.as_millis()
    );
    assert!(
        header_after >= Duration::from_millis(900) && header_after < Duration::from_secs(5),
        "{header_after:?}"
    );

    // a body of 100 bytes, a byte every 200 ms: given 1 s and 1 s per 100 bytes
    let mut body = server.tls().await;
    let started = Instant::now();
    body.write_all(
        b"POST /.well-known/est/simpleenroll HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/pkcs10\r\ncontent-length: 100\r\n\r\n",
    )
    .await
    .unwrap();
    let (mut reader, mut writer) = tokio::io::split(body);
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b"A").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let reply = closed_within(&mut reader, Duration::from_secs(8))
        .await
        .expect("the slow body is cut off");
    let body_after = started.elapsed();
    trickle.abort();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    println!(
        "a trickled body was answered 408 after {} ms (1 s + 1 s per 100 bytes)",
        body_after.as_millis()
    );

    // a kept-alive connection that asks once, then nothing
    let mut idle = server.tls().await;
    idle.write_all(b"GET /.well-known/est/cacerts HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let reply = closed_within(&mut idle, Duration::from_secs(8))
        .await
        .expect("the idle connection is closed");
    let idle_after = started.elapsed();
    assert!(reply.starts_with("HTTP/1.1 200"), "it was answered first: {reply:?}");
    println!(
        "an idle kept-alive connection closed after {} ms (idle timeout 2 s)",
        idle_after.as_millis()
    );
    assert!(idle_after >= Duration::from_millis(1900), "{idle_after:?}");
    let log = server.log();
    assert!(log.contains("header timeout") && log.contains("idle timeout"), "{log}");
}

/// `count` POSTs of a 2 MiB body, each on a new connection: how many got
/// `want`. `args`: headers, and curl's own flags (`--http2`).
fn big_bodies(url: &str, root: &Path, args: &[&str], count: usize, want: &str) -> usize {
    let body = std::env::temp_dir().join(format!("certgate-2mib-{}", std::process::id()));
    std::fs::write(&body, vec![b'A'; 2 * 1024 * 1024]).unwrap();
    let mut got = 0;
    for _ in 0..count {
        let mut cmd = Command::new("curl");
        // no Expect: 100-continue: the whole body is on its way when the answer comes
        cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:", "--cacert"])
            .arg(root)
            .arg("--data-binary")
            .arg(format!("@{}", body.display()));
        for a in args {
            if a.starts_with("--") {
                cmd.arg(a);
            } else {
                cmd.args(["-H", a]);
            }
        }
        let out = cmd.arg(url).output().unwrap();
        if String::from_utf8_lossy(&out.stdout) == want {
            got += 1;
        } else {
            println!(
                "instead: {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let _ = std::fs::remove_file(body);
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_its_413_every_time_here_and_its_403_in_certgate_serve() {
    let server = Server::start(&[], None);
    let root = server.pki.path("root-ca/ca.pem");
    let url = format!("https://localhost:{}/.well-known/est/simpleenroll", server.addr.port());
    let got = big_bodies(&url, &root, &["Content-Type: application/pkcs10"], 50, "413");
    println!("certgate pki serve: a 2 MiB body got its 413 in {got} of 50 tries");
    assert_eq!(got, 50);

    // certgate serve refuses a request its policy denies while the body still comes
    let backend = certgate_backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let policy = server.pki.dir.0.join("gate.json");
    std::fs::write(&policy, r#"{"rules":[{"name":"app","path_prefix":"/app/","anonymous":true}]}"#).unwrap();
    let gate = certgate_edge::start(
        server
            .pki
            .edge_settings(&policy, backend.addr, certgate_edge::tls::ClientCertMode::Optional),
    )
    .await
    .unwrap();
    let url = format!("https://localhost:{}/elsewhere", gate.addr.port());
    for version in ["--http1.1", "--http2"] {
        let (url, root) = (url.clone(), server.pki.path("root-ca/ca.pem"));
        let got = tokio::task::spawn_blocking(move || big_bodies(&url, &root, &[version], 50, "403"))
            .await
            .unwrap();
        println!("certgate serve ({version}): a 2 MiB body to a denied path got its 403 in {got} of 50 tries");
        assert_eq!(got, 50, "{version}");
    }
}

/// Opens `n` TCP connections to `addr` that never say anything.
async fn hold(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        if let Ok(c) = TcpStream::connect(addr).await {
            held.push(c);
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_1024_descriptors_1100_idle_connections_neither_stop_the_server_nor_spin_it() {
    // the defaults: a 256-connection cap under systemd's 1,024 descriptors
    let server = Server::start(&[], Some(1024));
    let cpu_before = server.cpu();
    let _held = hold(server.addr, 1100).await;
    let root = server.pki.path("root-ca/ca.pem");
    let port = server.addr.port();
    let served_in = tokio::task::spawn_blocking(move || Server::curl_cacerts(&root, port))
        .await
        .unwrap()
        .expect("a real client is served");
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = server.cpu() - cpu_before;
    println!(
        "1,100 idle connections under 1,024 descriptors (cap 256): a client served in {} ms; the server used {} ms of CPU in {} ms",
        served_in.as_millis(),
        cpu.as_millis(),
        window.elapsed().as_millis() + served_in.as_millis()
    );
    assert!(served_in < Duration::from_secs(2), "{served_in:?}");
    assert!(cpu < Duration::from_millis(1500), "the server spins: {cpu:?} of CPU");

    // caps above the descriptors: accept runs out of them, backs off, and still serves
    let starved = Server::start(&["--max-connections", "5000"], Some(1024));
    let cpu_before = starved.cpu();
    let _held = hold(starved.addr, 1100).await;
    let root = starved.pki.path("root-ca/ca.pem");
    let port = starved.addr.port();
    let served_in = tokio::task::spawn_blocking(move || Server::curl_cacerts(&root, port))
        .await
        .unwrap()
        .expect("served after the backoff made room");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = starved.cpu() - cpu_before;
    let log = starved.log();
    let bursts = log.matches("cannot accept: out of file descriptors").count();
    println!(
        "caps over the descriptors: EMFILE logged {bursts} times, a client served in {} ms, {} ms of CPU",
        served_in.as_millis(),
        cpu.as_millis()
    );
    assert!((1..=10).contains(&bursts), "logged once per burst: {bursts}\n{log}");
    assert!(served_in < Duration::from_secs(2), "{served_in:?}");
    assert!(cpu < Duration::from_millis(1500), "the server spins: {cpu:?} of CPU");
}

impl Server {
    /// curl's `cacerts` against `port`: how long it took, or why it failed.
    fn curl_cacerts(root: &Path, port: u16) -> Result<Duration, String> {
        let started = Instant::now();
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert"])
            .arg(root)
            .arg(format!("https://localhost:{port}/.well-known/est/cacerts"))
            .output()
            .unwrap();
        match String::from_utf8_lossy(&out.stdout).as_ref() {
            "200" => Ok(started.elapsed()),
            code => Err(format!("{code}: {}", String::from_utf8_lossy(&out.stderr))),
        }
    }
}

#[test]
fn a_queue_flood_from_one_address_is_bounded_and_nothing_is_written_past_the_cap() {
    let server = Server::start(&["--max-pending-per-address", "5", "--max-pending", "8"], None);
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    let mut retry_after = 0;
    for i in 0..40 {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("flood-{i}"));
        let csr = params.serialize_request(&key).unwrap().der().to_vec();
        let out = Command::new("curl")
            .args(["-sS", "-D", "-", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(server.pki.path("root-ca/ca.pem"))
            .args(["-H", "Content-Type: application/pkcs10", "--data-binary", &b64(&csr)])
            // the user name is what they say: it makes no new request
            .args(["-u", &format!("user-{i}:")])
            .arg(format!("https://localhost:{}/.well-known/est/simpleenroll", server.addr.port()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = text.lines().last().unwrap_or_default().to_owned();
        if code == "429" && text.to_ascii_lowercase().contains("retry-after: 1") {
            retry_after += 1;
        }
        *codes.entry(code).or_default() += 1;
    }
    let files = std::fs::read_dir(server.pki.path("client-ca/requests")).unwrap().count();
    println!("a flood of 40 requests from one address: {codes:?}; {files} written (cap 5 an address)");
    assert_eq!(codes.get("202"), Some(&5), "{codes:?}");
    assert_eq!(codes.get("429"), Some(&35), "{codes:?}");
    assert_eq!(retry_after, 35, "every 429 says when to ask again");
    assert_eq!(files, 5, "nothing written past the cap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_approver_is_refused_on_the_next_request_without_a_restart() {
    let pki = Pki::new(&["carol", "bob"]);
    let approvers = pki.dir.0.join("approvers.json");
    std::fs::write(
        &approvers,
        r#"{"rules":[{"name":"approvers","path_prefix":"/approvals/","issuer_cn":["certgate Client CA"],"subject":["CN=carol,O=Example"]}]}"#,
    )
    .unwrap();
    let server = Server::start_in(pki, &["--register", "--approvers", approvers.to_str().unwrap()], None);
    // carol's connection stays open across her revocation
    let mut carol = server.pki.connect(server.addr, "carol").await.unwrap();
    let page = carol.send("GET", "/approvals/", &[]).await.unwrap();
    assert_eq!(page.status, 200, "{page:?}");
    server.pki.run(&["revoke", "carol", "--ca", "client-ca"]);
    let page = carol.send("GET", "/approvals/", &[]).await.unwrap();
    assert_eq!(page.status, 403, "refused on the next request, on the same connection: {page:?}");
    assert!(page.body.contains("was revoked on"), "{page:?}");
    // the CRL published, a new handshake with carol's certificate is refused too, with no restart
    server.pki.run(&["crl"]);
    let started = Instant::now();
    loop {
        // TLS 1.3: a refused client certificate shows at the first request
        let refused = match server.pki.connect(server.addr, "carol").await {
            Err(_) => true,
            Ok(mut c) => c.send("GET", "/whoami", &[]).await.is_err(),
        };
        if refused {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the new CRL is never read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "the CRL read again and carol's handshake refused {} ms after `pki crl`",
        started.elapsed().as_millis()
    );
    // bob, never revoked, is served all along
    let mut bob = server.pki.connect(server.addr, "bob").await.unwrap();
    assert_eq!(bob.send("GET", "/whoami", &[]).await.unwrap().status, 200);
    assert!(server.log().contains("CRLs read again"), "{}", server.log());
}

#[test]
fn a_request_in_flight_when_the_server_is_told_to_stop_is_answered_before_it_stops() {
    // the approval command takes 2 s: the request is in flight that long
    let mut server = Server::start(&["--approve-command", "sleep 2; exit 1", "--drain-timeout", "10"], None);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "late");
    let csr = params.serialize_request(&key).unwrap().der().to_vec();
    let asking = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(server.pki.path("root-ca/ca.pem"))
        .args(["-H", "Content-Type: application/pkcs10", "--data-binary", &b64(&csr)])
        .arg(format!("https://localhost:{}/.well-known/est/simpleenroll", server.addr.port()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let stopped = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let answer = asking.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&answer.stdout), "202", "answered while stopping");
    let status = server.child.0.wait().unwrap();
    let took = stopped.elapsed();
    println!(
        "SIGTERM with a request in flight: answered, and the server stopped {} ms later",
        took.as_millis()
    );
    assert!(status.success(), "a clean stop: {status}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // no new connection is taken once it stops
    assert!(served(&server).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_blocks_and_header_counts_are_answered_431() {
    let server = Server::start(&[], None);
    let big = format!(
        "GET /.well-known/est/cacerts HTTP/1.1\r\nhost: localhost\r\nx-big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let many = format!(
        "GET /.well-known/est/cacerts HTTP/1.1\r\nhost: localhost\r\n{}\r\n",
        (0..150).map(|i| format!("x-h{i}: {i}\r\n")).collect::<String>()
    );
    for (what, request) in [("a 70 KiB header", big), ("150 headers", many)] {
        let mut s = server.tls().await;
        s.write_all(request.as_bytes()).await.unwrap();
        let reply = closed_within(&mut s, Duration::from_secs(10)).await.unwrap_or_default();
        assert!(reply.starts_with("HTTP/1.1 431"), "{what}: {reply:?}");
        assert!(served(&server).is_ok(), "after {what}");
    }
}
