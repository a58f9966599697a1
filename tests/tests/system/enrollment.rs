//! Enrollment over EST (`certgate pki serve`) with real clients: strongSwan's
//! `pki --est` (token, approval queue with 202 polling, re-enrollment with
//! its certificate; TLS 1.2 and 1.3), curl with coreutils' base64 for every
//! status code of the wire, `certgate pki enroll` / `reenroll`; the certificate
//! enrolled is admitted by `certgate serve` and by certgate in Envoy, renewal
//! stops at revocation, the PKI home stays whole under concurrent enrollments
//! and a kill -9, and behind Envoy the server believes `Client-Cert` only from
//! the proxy it is told to trust.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use certgate_backend as backend;
use certgate_edge as edge;
use certgate_edge::tls::ClientCertMode;
use common::pki::Pki;
use common::{certgate, wait_for_port, KillOnDrop};

/// An EST server over a fresh PKI home (root, client CA, a server
/// certificate for localhost and 127.0.0.1).
pub(crate) struct Est {
    pub(crate) pki: Pki,
    pub(crate) addr: SocketAddr,
    _server: KillOnDrop,
}

impl Est {
    fn start(allow: &[&str], extra: &[&str]) -> Est {
        Est::start_in(Pki::new(&[]), allow, extra)
    }

    /// The server over a PKI home made by the caller.
    pub(crate) fn start_in(pki: Pki, allow: &[&str], extra: &[&str]) -> Est {
        let (addr, server) = serve(&pki, allow, extra);
        Est {
            pki,
            addr,
            _server: server,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.pki.path("root-ca/ca.pem")
    }

    /// `certgate pki token ARGS`: the token (its first line).
    pub(crate) fn token(&self, args: &[&str]) -> String {
        let (code, out, err) = self.pki_cmd(&[&["token"], args].concat());
        assert_eq!(code, 0, "{err}");
        out.lines().next().unwrap().to_owned()
    }

    /// `certgate pki ARGS` in the home: status, stdout, stderr.
    pub(crate) fn pki_cmd(&self, args: &[&str]) -> (i32, String, String) {
        let out = certgate().arg("pki").args(args).current_dir(&self.pki.dir.0).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn index_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.pki.path("client-ca/index.txt"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }
}

fn serve(pki: &Pki, allow: &[&str], extra: &[&str]) -> (SocketAddr, KillOnDrop) {
    let addr = SocketAddr::from(([127, 0, 0, 1], common::envoy::free_port()));
    let mut cmd = certgate();
    cmd.args(["pki", "serve", "--listen", &addr.to_string()])
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
    for a in allow {
        cmd.args(["--allow", a]);
    }
    let child = KillOnDrop(cmd.spawn().unwrap());
    wait_for_port(addr, "certgate pki serve", Duration::from_secs(20));
    (addr, child)
}

/// A CSR (DER) for `cn` and DNS names, with a new P-256 key.
fn csr(cn: Option<&str>, dns: &[&str]) -> (Vec<u8>, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(dns.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    }
    (params.serialize_request(&key).unwrap().der().to_vec(), key)
}

pub(crate) fn b64(der: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(der)
}

/// Wrapped at 64 columns with CRLF, as some clients send it.
fn b64_wrapped(der: &[u8]) -> String {
    b64(der)
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}

/// One answer as curl saw it.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// curl (a real HTTP client): `method` to the EST path, the body from a file.
fn curl(est: &Est, method: &str, path: &str, body: Option<&[u8]>, headers: &[&str]) -> Answer {
    curl_as(est, None, method, path, body, headers)
}

/// [`curl`] presenting `who`'s certificate (`issued/WHO-chain.pem`) at the handshake.
fn curl_as(est: &Est, who: Option<&str>, method: &str, path: &str, body: Option<&[u8]>, headers: &[&str]) -> Answer {
    let dir = est
        .pki
        .dir
        .0
        .join(format!("curl-{:?}", std::thread::current().id()).replace(['(', ')'], ""));
    std::fs::create_dir_all(&dir).unwrap();
    let body_file = dir.join("body");
    let head_file = dir.join("headers");
    let mut cmd = Command::new("curl");
    if let Some(who) = who {
        cmd.arg("--cert")
            .arg(est.pki.path(&format!("issued/{who}-chain.pem")))
            .arg("--key")
            .arg(est.pki.path(&format!("issued/{who}.key")));
    }
    cmd.args(["-sS", "-X", method, "--cacert"])
        .arg(est.root())
        .arg("-D")
        .arg(&head_file)
        .args(["-o", "-", "-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        std::fs::write(&body_file, b).unwrap();
        cmd.arg("--data-binary").arg(format!("@{}", body_file.display()));
    }
    let out = cmd.arg(format!("{}/.well-known/est/{path}", est.url())).output().unwrap();
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    Answer {
        status: status.trim().parse().unwrap(),
        headers: std::fs::read_to_string(&head_file).unwrap_or_default(),
        body: body.to_owned(),
    }
}

const PKCS10: &str = "Content-Type: application/pkcs10";

/// `program ARGS` with `input` on its standard input.
pub(crate) fn piped(program: &str, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The certificates of a 200 answer, decoded by coreutils' base64 and read by OpenSSL.
fn openssl_subjects(body: &str) -> String {
    let der = piped("base64", &["-d"], body.as_bytes());
    assert!(der.status.success(), "coreutils base64 -d takes the body");
    let out = piped("openssl", &["pkcs7", "-inform", "DER", "-print_certs", "-noout"], &der.stdout);
    assert!(out.status.success(), "openssl reads a certs-only PKCS#7");
    String::from_utf8_lossy(&out.stdout).replace(" = ", "=")
}

#[test]
fn every_status_code_of_the_wire_from_a_request_that_earns_it() {
    let metrics = SocketAddr::from(([127, 0, 0, 1], common::envoy::free_port()));
    let est = Est::start(
        &["token", "queue"],
        &["--label", "people=client-ca", "--metrics-listen", &metrics.to_string()],
    );

    // cacerts: no authentication, the chain up to the root, base64 on one line
    let cacerts = curl(&est, "GET", "cacerts", None, &[]);
    assert_eq!(cacerts.status, 200, "{cacerts:?}");
    assert!(cacerts.header("content-type").unwrap().starts_with("application/pkcs7-mime"));
    assert!(!cacerts.body.trim_end().contains('\n'), "one line");
    let subjects = openssl_subjects(&cacerts.body);
    assert!(
        subjects.contains("certgate Client CA") && subjects.contains("certgate Root CA"),
        "{subjects}"
    );
    assert_eq!(curl(&est, "GET", "people/cacerts", None, &[]).status, 200, "a label");
    assert_eq!(curl(&est, "GET", "csrattrs", None, &[]).status, 204);

    let before = est.index_lines().len();
    let token = est.token(&["--cn", "svc", "--dns", "svc.example.org"]);
    let auth = format!("Authorization: Basic {}", b64(format!("svc:{token}").as_bytes()));
    let (good, _) = csr(Some("svc"), &["svc.example.org"]);

    // refused, and nothing written: the token is still good afterwards
    let (admin, _) = csr(Some("admin"), &["svc.example.org"]);
    let r = curl(&est, "POST", "simpleenroll", Some(b64(&admin).as_bytes()), &[PKCS10, &auth]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        r.body.contains("\"admin\"") && r.header("content-type").unwrap().starts_with("text/plain"),
        "{r:?}"
    );
    let (more, _) = csr(Some("svc"), &["svc.example.org", "evil.example.org"]);
    let r = curl(&est, "POST", "simpleenroll", Some(b64(&more).as_bytes()), &[PKCS10, &auth]);
    assert_eq!(r.status, 403, "a name the token does not allow: {r:?}");
    assert!(r.body.contains("evil.example.org"), "{r:?}");
    let ca_true = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["svc.example.org".to_owned()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "svc");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.serialize_request(&key).unwrap().der().to_vec()
    };
    let r = curl(&est, "POST", "simpleenroll", Some(b64(&ca_true).as_bytes()), &[PKCS10, &auth]);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("CA:TRUE"), "{r:?}");
    let r = curl(
        &est,
        "POST",
        "simpleenroll",
        Some(b64(&good[..good.len() - 9]).as_bytes()),
        &[PKCS10, &auth],
    );
    assert_eq!(r.status, 400, "truncated DER: {r:?}");
    let mut forged = good.clone();
    let last = forged.len() - 3;
    forged[last] ^= 0x55;
    let r = curl(&est, "POST", "simpleenroll", Some(b64(&forged).as_bytes()), &[PKCS10, &auth]);
    assert_eq!(r.status, 400, "a signature that does not verify: {r:?}");
    assert!(r.body.contains("signature"), "{r:?}");
    let r = curl(&est, "POST", "simpleenroll", Some(b"!!! not base64 !!!"), &[PKCS10, &auth]);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("base64"), "{r:?}");
    let r = curl(
        &est,
        "POST",
        "simpleenroll",
        Some(b64(&good).as_bytes()),
        &["Content-Type: text/plain", &auth],
    );
    assert_eq!(r.status, 415, "{r:?}");
    let huge = vec![b'A'; 70 * 1024];
    let r = curl(&est, "POST", "simpleenroll", Some(&huge), &[PKCS10, &auth]);
    assert_eq!(r.status, 413, "{r:?}");
    let r = curl(&est, "GET", "simpleenroll", None, &[]);
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow").as_deref(), Some("POST"));
    assert_eq!(
        curl(&est, "POST", "nope/simpleenroll", Some(b64(&good).as_bytes()), &[PKCS10, &auth]).status,
        404
    );
    assert_eq!(
        curl(&est, "POST", "serverkeygen", Some(b64(&good).as_bytes()), &[PKCS10, &auth]).status,
        404
    );
    let bogus = format!("Authorization: Basic {}", b64(b"svc:cgt_not-a-token"));
    let r = curl(&est, "POST", "simpleenroll", Some(b64(&good).as_bytes()), &[PKCS10, &bogus]);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"), "{r:?}");
    assert_eq!(est.index_lines().len(), before, "no refused request wrote anything");

    // the token, line-wrapped base64 with a Content-Transfer-Encoding header: issued once
    let r = curl(
        &est,
        "POST",
        "simpleenroll",
        Some(b64_wrapped(&good).as_bytes()),
        &[PKCS10, "Content-Transfer-Encoding: base64", &auth],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(openssl_subjects(&r.body).contains("subject=CN=svc\n"), "{r:?}");
    let r = curl(&est, "POST", "simpleenroll", Some(b64(&good).as_bytes()), &[PKCS10, &auth]);
    assert_eq!(r.status, 401, "a used token: {r:?}");
    assert!(r.body.contains("used already"), "{r:?}");
    let lines = est.index_lines();
    assert_eq!(lines.len(), before + 1);
    assert!(lines.last().unwrap().ends_with("\test-token"), "{lines:?}");

    // no token: the queue answers 202 with Retry-After in whole seconds
    let (queued, _) = csr(Some("visitor"), &[]);
    let r = curl(&est, "POST", "simpleenroll", Some(b64(&queued).as_bytes()), &[PKCS10]);
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    let (code, list, err) = est.pki_cmd(&["requests", "list"]);
    assert_eq!(code, 0, "{err}");
    let id = list.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let (code, _, err) = est.pki_cmd(&["requests", "reject", &id, "--reason", "unknown visitor"]);
    assert_eq!(code, 0, "{err}");
    let r = curl(&est, "POST", "simpleenroll", Some(b64(&queued).as_bytes()), &[PKCS10]);
    assert_eq!(r.status, 403, "rejected: {r:?}");
    assert!(r.body.contains("unknown visitor"), "{r:?}");

    // counted by operation and outcome, in a format Prometheus' own checker takes
    let scraped = Command::new("curl")
        .args(["-sS", &format!("http://{metrics}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&scraped.stdout).into_owned();
    for (operation, outcome, n) in [
        ("cacerts", "issued", 2),
        ("csrattrs", "no_attributes", 1),
        ("simpleenroll", "issued", 1),
        ("simpleenroll", "queued", 1),
        ("simpleenroll", "forbidden", 3),
        ("simpleenroll", "bad_request", 4),
        ("simpleenroll", "unauthorized", 2),
        ("simpleenroll", "unsupported_media_type", 1),
        ("simpleenroll", "too_large", 1),
        ("simpleenroll", "method_not_allowed", 1),
        ("simpleenroll", "not_found", 1),
    ] {
        let line = format!("certgate_est_requests_total{{operation=\"{operation}\",outcome=\"{outcome}\"}} {n}");
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    let checked = piped("promtool", &["check", "metrics"], text.as_bytes());
    assert!(
        checked.status.success(),
        "promtool check metrics: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(common::pki::assert_metrics_documented(&text) >= 11, "{text}");

    // pki list says how each certificate was issued
    let (code, listed, err) = est.pki_cmd(&["list", "--ca", "client-ca", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let by: Vec<&str> = listed["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["issued_by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["est-token"], "{listed}");

    // every decision is in the audit log
    let audit = std::fs::read_to_string(est.pki.path("audit.log")).unwrap();
    for outcome in [
        "\"forbidden\"",
        "\"bad_request\"",
        "\"unauthorized\"",
        "\"issued\"",
        "\"queued\"",
        "\"rejected\"",
        "\"created\"",
    ] {
        assert!(audit.contains(outcome), "{outcome} in {audit}");
    }
    // and each name it wrote is the book's
    assert!(common::pki::assert_audit_documented(&audit) >= 7, "{audit}");
}

/// strongSwan's `pki` with its TLS stack at `version_max` (1.2 is its default).
fn strongswan(tls13: bool, dir: &Path) -> Command {
    let mut cmd = Command::new("pki");
    if tls13 {
        let conf = dir.join("strongswan.conf");
        std::fs::write(&conf, "libtls {\n  version_max = 1.3\n}\n").unwrap();
        cmd.env("STRONGSWAN_CONF", conf);
    }
    cmd
}

fn run_ok(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn subject_and_issuer(der_file: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-subject", "-issuer", "-in"])
        .arg(der_file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).replace(" = ", "=")
}

#[test]
fn strongswan_enrolls_with_a_token_and_through_the_queue_and_renews_over_tls_1_2_and_1_3() {
    let est = Est::start(&["token", "queue", "renewal"], &[]);
    for tls13 in [false, true] {
        let dir = est.pki.dir.0.join(if tls13 { "swan13" } else { "swan12" });
        std::fs::create_dir_all(&dir).unwrap();
        let name = if tls13 { "svc13" } else { "svc12" };
        let key = dir.join("key.der");
        std::fs::write(
            &key,
            run_ok(
                strongswan(tls13, &dir).args(["--gen", "--type", "ecdsa", "--size", "256"]),
                "pki --gen",
            ),
        )
        .unwrap();
        let req = dir.join("req.der");
        let dn = format!("CN={name}");
        let dns = format!("{name}.example.org");
        std::fs::write(
            &req,
            run_ok(
                strongswan(tls13, &dir)
                    .args(["--req", "--type", "priv", "--in"])
                    .arg(&key)
                    .args(["--dn", &dn, "--san", &dns]),
                "pki --req",
            ),
        )
        .unwrap();

        // a token
        let token = est.token(&["--cn", name, "--dns", &dns]);
        let cert = dir.join("cert.der");
        let issued = run_ok(
            strongswan(tls13, &dir)
                .args(["--est", "--url", &est.url(), "--cacert"])
                .arg(est.root())
                .arg("--in")
                .arg(&req)
                .args(["--userpass", &format!("{name}:{token}")]),
            "pki --est with a token",
        );
        std::fs::write(&cert, issued).unwrap();
        let names = subject_and_issuer(&cert);
        assert!(
            names.contains(&format!("CN={name}")) && names.contains("certgate Client CA"),
            "{names}"
        );

        // re-enrollment with that certificate and key: the same names, a new certificate
        let renewed = dir.join("renewed.der");
        let out = run_ok(
            strongswan(tls13, &dir)
                .args(["--est", "--url", &est.url(), "--cacert"])
                .arg(est.root())
                .arg("--in")
                .arg(&req)
                .arg("--cert")
                .arg(&cert)
                .arg("--key")
                .arg(&key),
            "pki --est --cert (simplereenroll)",
        );
        std::fs::write(&renewed, &out).unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), out, "a new certificate");
        assert!(subject_and_issuer(&renewed).contains(&format!("CN={name}")));

        // the queue: strongSwan polls (every second) until an approval
        let queued_req = dir.join("queued.der");
        std::fs::write(
            &queued_req,
            run_ok(
                strongswan(tls13, &dir)
                    .args(["--req", "--type", "priv", "--in"])
                    .arg(&key)
                    .args(["--dn", &format!("CN={name}-queued")]),
                "pki --req",
            ),
        )
        .unwrap();
        let polling = strongswan(tls13, &dir)
            .args(["--est", "--url", &est.url(), "--cacert"])
            .arg(est.root())
            .arg("--in")
            .arg(&queued_req)
            .args(["--userpass", &format!("{name}:"), "--interval", "1", "--maxpolltime", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let id = wait_for_pending(&est, &format!("CN={name}-queued"));
        let (code, out, err) = est.pki_cmd(&["requests", "approve", &id]);
        assert_eq!(code, 0, "{out}{err}");
        let done = polling.wait_with_output().unwrap();
        assert!(
            done.status.success(),
            "strongSwan got the approved certificate: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        let approved = dir.join("approved.der");
        std::fs::write(&approved, &done.stdout).unwrap();
        assert!(subject_and_issuer(&approved).contains(&format!("CN={name}-queued")));
    }
    // strongSwan spoke TLS 1.2 by default and 1.3 when told
    let log = std::fs::read_to_string(est.pki.dir.0.join("est.log")).unwrap();
    for (version, name) in [("TLSv1.2", "svc12"), ("TLSv1.3", "svc13")] {
        let decisions: Vec<&str> = log.lines().filter(|l| l.contains("est decision") && l.contains(name)).collect();
        assert!(decisions.len() >= 3, "{name}: {log}");
        assert!(
            decisions.iter().all(|l| l.contains(&format!("tls=\"{version}\""))),
            "{name} over {version}: {decisions:?}"
        );
    }
    let index = est.index_lines();
    for by in ["est-token", "est-renewal", "est-approved"] {
        assert_eq!(
            index.iter().filter(|l| l.ends_with(&format!("\t{by}"))).count(),
            2,
            "{by}: {index:?}"
        );
    }
}

/// The id of the pending request for `subject`, once it is queued.
fn wait_for_pending(est: &Est, subject: &str) -> String {
    for _ in 0..100 {
        let (code, list, err) = est.pki_cmd(&["requests", "list"]);
        assert_eq!(code, 0, "{err}");
        if let Some(line) = list.lines().find(|l| l.contains(subject)) {
            return line.split_whitespace().next().unwrap().to_owned();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no pending request for {subject}");
}

/// A request as `who` (its files under the home's `issued/`): the status and the CN the backend was told.
async fn seen_as(pki: &Pki, addr: SocketAddr, who: &str) -> (u16, Vec<String>) {
    let reply = pki.connect(addr, who).await.unwrap().send("GET", "/hello", &[]).await.unwrap();
    (reply.status, reply.backend_header("x-client-cn"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_enrolled_by_certgate_is_admitted_renewed_and_stops_renewing_once_revoked() {
    let est = Est::start(&["token", "renewal"], &[]);
    let token = est.token(&["--cn", "svc", "--spiffe", "spiffe://example.org/ns/default/sa/svc"]);
    let out = est.pki.path("issued/svc");
    let enroll = certgate()
        .args(["pki", "enroll", "--server", &est.url(), "--cacert"])
        .arg(est.root())
        .arg("--out")
        .arg(&out)
        .args([
            "--cn",
            "svc",
            "--spiffe",
            "spiffe://example.org/ns/default/sa/svc",
            "--token",
            &token,
        ])
        .output()
        .unwrap();
    assert!(enroll.status.success(), "{}", String::from_utf8_lossy(&enroll.stderr));
    let key_mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(est.pki.path("issued/svc.key")).unwrap().permissions());
    assert_eq!(key_mode & 0o777, 0o600);

    // certgate serve admits it, with its identity
    let backend = backend::start(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let policy = est.pki.dir.0.join("policy.json");
    std::fs::write(&policy, common::pki::POLICY).unwrap();
    let serve = edge::start(est.pki.edge_settings(&policy, backend.addr, ClientCertMode::Required))
        .await
        .unwrap();
    assert_eq!(seen_as(&est.pki, serve.addr, "svc").await, (200, vec!["svc".to_owned()]));

    // renew: not due yet; forced, a new key and certificate for the same names
    let renew = |force: bool| {
        let mut cmd = certgate();
        cmd.args(["pki", "reenroll", "--server", &est.url(), "--cacert"])
            .arg(est.root())
            .arg("--files")
            .arg(&out);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let not_due = renew(false);
    assert!(not_due.status.success());
    assert!(String::from_utf8_lossy(&not_due.stdout).contains("not due for renewal"));
    let old_cert = std::fs::read(est.pki.path("issued/svc.pem")).unwrap();
    let renewed = renew(true);
    assert!(renewed.status.success(), "{}", String::from_utf8_lossy(&renewed.stderr));
    assert_ne!(std::fs::read(est.pki.path("issued/svc.pem")).unwrap(), old_cert);
    assert_eq!(
        seen_as(&est.pki, serve.addr, "svc").await,
        (200, vec!["svc".to_owned()]),
        "the renewed certificate is admitted"
    );
    // and by certgate in Envoy, with its identity
    let envoy = common::envoy::Envoy::start(&est.pki.envoy_yaml("required-mtls.yaml", backend.addr, common::pki::POLICY)).unwrap();
    assert_eq!(seen_as(&est.pki, envoy.listener, "svc").await, (200, vec!["svc".to_owned()]));
    drop(envoy);

    // revoked: renewal is refused at once (the index), whatever the CRL the server loaded
    let (code, _, err) = est.pki_cmd(&["revoke", "--cert", "pki/issued/svc.pem", "--reason", "keyCompromise"]);
    assert_eq!(code, 0, "{err}");
    let refused = renew(true);
    assert!(!refused.status.success());
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("403") && text.contains("revoked"), "{text}");
    serve.shutdown().await;
}

#[test]
fn one_token_used_by_twenty_requests_at_once_issues_exactly_one_certificate() {
    let est = Est::start(&["token"], &[]);
    let token = est.token(&["--cn", "svc"]);
    let auth = format!("Authorization: Basic {}", b64(format!("svc:{token}").as_bytes()));
    let before = est.index_lines().len();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let auth = auth.clone();
                let est = &est;
                s.spawn(move || {
                    let (der, _) = csr(Some("svc"), &[]);
                    curl(est, "POST", "simpleenroll", Some(b64(&der).as_bytes()), &[PKCS10, &auth]).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 19, "{statuses:?}");
    assert_eq!(est.index_lines().len(), before + 1);
}

#[test]
fn two_hundred_concurrent_enrollments_keep_every_serial_distinct_and_recorded() {
    let est = Est::start(&["token"], &[]);
    let ca = certgate_pki::store::Home::new(est.pki.path("")).open_ca("client-ca").unwrap();
    let tokens: Vec<String> = (0..200)
        .map(|i| {
            let grant = certgate_pki::enroll::tokens::TokenGrant::new(Some(format!("svc{i}")), &Default::default(), 1).unwrap();
            certgate_pki::enroll::tokens::create(&ca, &grant).unwrap().0
        })
        .collect();
    let before = est.index_lines().len();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let est = &est;
                s.spawn(move || {
                    let auth = format!("Authorization: Basic {}", b64(format!("svc{i}:{token}").as_bytes()));
                    let (der, _) = csr(Some(&format!("svc{i}")), &[]);
                    curl(est, "POST", "simpleenroll", Some(b64(&der).as_bytes()), &[PKCS10, &auth]).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let lines = est.index_lines();
    assert_eq!(lines.len(), before + 200, "an index line for every certificate");
    let serials: std::collections::BTreeSet<&str> = lines.iter().map(|l| l.split('\t').nth(1).unwrap()).collect();
    assert_eq!(serials.len(), lines.len(), "every serial distinct");
    for serial in &serials {
        assert!(
            est.pki.path(&format!("client-ca/certs/{serial}.pem")).is_file(),
            "{serial} has its copy"
        );
    }
}

/// `date -u -d WHEN` as RFC 3339.
fn date(when: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", when, "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn an_expired_certificate_renews_only_within_a_grace_period_that_is_set() {
    // CAs older than the certificates (a verifier checks the chain as of the certificate's last second)
    let pki = Pki {
        dir: common::TempDir::new("est-grace").unwrap(),
    };
    let since = date("500 days ago");
    pki.run(&["init-root", "--org", "Example", "--not-before", &since]);
    pki.run(&["init-client-ca", "--org", "Example", "--not-before", &since]);
    pki.run(&["server", "localhost", "--ip", "127.0.0.1"]);
    for (name, expired) in [("lately", "2 days ago"), ("long-ago", "60 days ago")] {
        pki.run(&["client", name, "--not-before", &date("400 days ago"), "--not-after", &date(expired)]);
    }
    let reenroll = |addr: SocketAddr, name: &str| {
        certgate()
            .args(["pki", "reenroll", "--server", &format!("https://{addr}"), "--cacert"])
            .arg(pki.path("root-ca/ca.pem"))
            .arg("--files")
            .arg(pki.path(&format!("issued/{name}")))
            .output()
            .unwrap()
    };
    // no grace: the handshake refuses an expired certificate
    let (addr, server) = serve(&pki, &["renewal"], &[]);
    let out = reenroll(addr, "lately");
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the client certificate"), "{err}");
    drop(server);
    let log = std::fs::read_to_string(pki.dir.0.join("est.log")).unwrap();
    assert!(
        log.contains("TLS handshake refused") && log.contains("certificate expired"),
        "{log}"
    );
    // 30 days of grace: two days late renews, sixty days late does not
    let (addr, _server) = serve(&pki, &["renewal"], &["--renewal-grace", "30"]);
    let out = reenroll(addr, "lately");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = reenroll(addr, "long-ago");
    assert!(!out.status.success());
    let index = std::fs::read_to_string(pki.path("client-ca/index.txt")).unwrap();
    assert_eq!(index.lines().filter(|l| l.ends_with("\test-renewal")).count(), 1, "{index}");
}

/// Enrollments in the burst the server is killed in: enough that some are
/// still in flight when 20 are recorded, even on a slow machine.
const BURST: usize = 300;

#[test]
fn a_server_killed_in_a_burst_leaves_an_index_and_store_that_agree_after_restart() {
    let mut est = Est::start(&["token", "queue"], &[]);
    // a request waiting in the queue before the crash
    let (waiting, _) = csr(Some("patient"), &[]);
    assert_eq!(
        curl(&est, "POST", "simpleenroll", Some(b64(&waiting).as_bytes()), &[PKCS10]).status,
        202
    );
    let ca = certgate_pki::store::Home::new(est.pki.path("")).open_ca("client-ca").unwrap();
    let tokens: Vec<String> = (0..BURST)
        .map(|i| {
            let grant = certgate_pki::enroll::tokens::TokenGrant::new(Some(format!("burst{i}")), &Default::default(), 1).unwrap();
            certgate_pki::enroll::tokens::create(&ca, &grant).unwrap().0
        })
        .collect();
    let pid = est._server.0.id().to_string();
    std::thread::scope(|s| {
        for (i, token) in tokens.iter().enumerate() {
            let est = &est;
            s.spawn(move || {
                let auth = format!("Authorization: Basic {}", b64(format!("burst{i}:{token}").as_bytes()));
                let (der, _) = csr(Some(&format!("burst{i}")), &[]);
                // curl fails once the server is gone: that is the point
                let _ = Command::new("curl")
                    .args(["-sS", "-o", "/dev/null", "--cacert"])
                    .arg(est.root())
                    .args(["-H", PKCS10, "-H", &auth, "--data-binary", &b64(&der)])
                    .arg(format!("{}/.well-known/est/simpleenroll", est.url()))
                    .output();
            });
        }
        // kill -9 once some have been issued and others are in flight
        let start = std::time::Instant::now();
        while est.index_lines().len() < 20 && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    });
    let _ = est._server.0.wait();
    let issued_before = est.index_lines().len();
    assert!((20..BURST).contains(&issued_before), "killed mid-burst: {issued_before} issued");

    // restart: it sets aside what was signed but never recorded, and serves again
    let (addr, server) = serve(&est.pki, &["token", "queue"], &[]);
    est.addr = addr;
    est._server = server;
    let index = certgate_pki::index::Index::parse(&std::fs::read_to_string(est.pki.path("client-ca/index.txt")).unwrap()).unwrap();
    let serials: std::collections::BTreeSet<String> = index.entries.iter().map(|e| e.serial.clone()).collect();
    assert_eq!(serials.len(), index.entries.len(), "no serial twice");
    let stored: std::collections::BTreeSet<String> = std::fs::read_dir(est.pki.path("client-ca/certs"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".pem").map(str::to_owned))
        .collect();
    assert_eq!(
        stored, serials,
        "every index line has its certificate and every stored certificate its line"
    );
    let unrecorded: Vec<String> = std::fs::read_dir(est.pki.path("client-ca/certs/unrecorded"))
        .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    assert!(
        unrecorded.iter().all(|u| !serials.contains(u.trim_end_matches(".pem"))),
        "{unrecorded:?}"
    );
    eprintln!(
        "killed with {issued_before} of {BURST} issued; {} signed but unrecorded, set aside",
        unrecorded.len()
    );
    // the queue is intact, the audit log is whole lines, and enrollment goes on with new serials
    let (code, list, err) = est.pki_cmd(&["requests", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(list.contains("CN=patient"), "{list}");
    for line in std::fs::read_to_string(est.pki.path("audit.log")).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    let token = est.token(&["--cn", "after"]);
    let auth = format!("Authorization: Basic {}", b64(format!("after:{token}").as_bytes()));
    let (der, _) = csr(Some("after"), &[]);
    assert_eq!(
        curl(&est, "POST", "simpleenroll", Some(b64(&der).as_bytes()), &[PKCS10, &auth]).status,
        200
    );
    let after = est.index_lines();
    assert_eq!(after.len(), issued_before + 1);
    let new_serial = after.last().unwrap().split('\t').nth(1).unwrap();
    assert!(!serials.contains(new_serial) && !unrecorded.contains(&format!("{new_serial}.pem")));
}

const EST_POLICY: &str = r#"{"verification":"listener","headers":{"preset":"rfc9440"},"rules":[{"name":"est","path_prefix":"/.well-known/est/","anonymous":true}]}"#;

/// The name `envoy/est.yaml`'s proxy certificate carries, as `--trusted-proxy-cert` gives it.
pub(crate) const PROXY_NAME: &str = "DNS:est-proxy.example.org";

/// `envoy/est.yaml` with `pki`'s files and `policy`, in front of the EST
/// server at `server`; Envoy's own client certificate is `pki`'s
/// `est-proxy` (issued here the first time).
pub(crate) fn envoy_in_front(pki: &Pki, server: SocketAddr, policy: &str) -> common::envoy::Envoy {
    if !pki.path("issued/est-proxy.pem").exists() {
        pki.run(&["client", "est-proxy", "--org", "Example", "--dns", "est-proxy.example.org"]);
    }
    let fixtures = format!("{}/fixtures/pki/", common::repo().display());
    let yaml = pki
        .envoy_yaml("est.yaml", server, policy)
        .replace(&format!("{fixtures}root-ca.pem"), &pki.path("root-ca/ca.pem").display().to_string())
        .replace(
            &format!("{fixtures}est-proxy-chain.pem"),
            &pki.path("issued/est-proxy-chain.pem").display().to_string(),
        )
        .replace(
            &format!("{fixtures}est-proxy.key"),
            &pki.path("issued/est-proxy.key").display().to_string(),
        )
        .replace("port_value: 8443", &format!("port_value: {}", server.port()));
    common::envoy::Envoy::start(&yaml).unwrap()
}

fn through(est: &Est, envoy: &common::envoy::Envoy, args: &[&str]) -> std::process::Output {
    certgate()
        .arg("pki")
        .args(args)
        .args(["--server", &format!("https://{}", envoy.listener), "--cacert"])
        .arg(est.root())
        .output()
        .unwrap()
}

#[test]
fn behind_envoy_the_client_certificate_comes_from_client_cert_only_from_the_proxy_its_certificate_names() {
    let est = Est::start(&["token", "renewal"], &["--trusted-proxy-cert", PROXY_NAME]);
    let envoy = envoy_in_front(&est.pki, est.addr, EST_POLICY);
    let files = est.pki.path("issued/svc");
    let files = files.to_str().unwrap();
    let token = est.token(&["--cn", "svc"]);
    let out = through(&est, &envoy, &["enroll", "--out", files, "--cn", "svc", "--token", &token]);
    assert!(
        out.status.success(),
        "enrolled through Envoy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = through(&est, &envoy, &["reenroll", "--files", files, "--force"]);
    assert!(
        out.status.success(),
        "renewed through Envoy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(est.index_lines().last().unwrap().ends_with("\test-renewal"));

    let cert_b64 = |name: &str| {
        let pem = std::fs::read_to_string(est.pki.path(&format!("issued/{name}.pem"))).unwrap();
        b64(&pem_rfc7468::decode_vec(pem.as_bytes()).unwrap().1)
    };
    let (der, _) = csr(Some("svc"), &[]);
    let svc = format!("Client-Cert: :{}:", cert_b64("svc"));
    // a renewal of svc's names, presenting `who` at TLS and `header`: refused, saying `why`
    let refused = |who: Option<&str>, header: &str, why: &str| {
        let r = curl_as(&est, who, "POST", "simplereenroll", Some(b64(&der).as_bytes()), &[PKCS10, header]);
        assert_eq!(r.status, 403, "{who:?}: {r:?}");
        assert!(r.body.contains(why), "{who:?}: {why:?} not in {r:?}");
    };
    // a local process, straight to the server, with a Client-Cert of its own
    refused(None, &svc, "only from the trusted proxy");
    // with a real client certificate that is not the proxy's: the same
    est.pki.run(&["client", "bystander", "--org", "Example"]);
    refused(Some("bystander"), &svc, "only from the trusted proxy");
    // from the proxy's own certificate, a forged Client-Cert (self-signed,
    // svc's names) does not verify: no certificate with an attacker's key
    let forged = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, "svc");
        params.self_signed(&key).unwrap().der().to_vec()
    };
    refused(
        Some("est-proxy"),
        &format!("Client-Cert: :{}:", b64(&forged)),
        "does not verify here",
    );
    // and a revoked one stands no more, CRL or not: the index says so at once
    est.pki.run(&["revoke", "--serial", &serial_of(&est, "svc")]);
    refused(Some("est-proxy"), &svc, "was revoked on");

    // a server that trusts no proxy refuses the header Envoy sets
    let (addr, _trusting_none) = serve(&est.pki, &["renewal"], &[]);
    let envoy = envoy_in_front(&est.pki, addr, EST_POLICY);
    let out = through(&est, &envoy, &["reenroll", "--files", files, "--force"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") && err.contains("trusted proxy"), "{err}");
}

/// The serial of `issued/NAME.pem`, as the index writes it.
fn serial_of(est: &Est, name: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(est.pki.path(&format!("issued/{name}.pem")))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().trim_start_matches("serial=").to_owned()
}

#[test]
fn a_label_has_its_own_ways_in_and_an_approval_command_decides_at_once() {
    let est = Est::start(
        &["token"],
        &[
            "--label",
            "robots=client-ca:queue",
            "--label",
            "people=client-ca:queue,renewal",
            // tlsauth's scrutinizer: the request (JSON) on stdin, exit 0 approves
            "--approve-command",
            r#"grep -q '"subject":"CN=robot-'"#,
        ],
    );
    let ask = |path: &str, cn: &str| {
        let (der, _) = csr(Some(cn), &[]);
        curl(&est, "POST", path, Some(b64(&der).as_bytes()), &[PKCS10])
    };
    let r = ask("simpleenroll", "robot-1");
    assert_eq!(r.status, 401, "no queue without a label here: {r:?}");
    let r = ask("robots/simpleenroll", "robot-1");
    assert_eq!(r.status, 200, "approved by the command at once: {r:?}");
    assert!(openssl_subjects(&r.body).contains("subject=CN=robot-1\n"));
    let r = ask("people/simpleenroll", "alice");
    assert_eq!(r.status, 202, "the command left it for a person: {r:?}");
    let r = ask("robots/simplereenroll", "robot-1");
    assert_eq!(r.status, 403, "no renewal on this label: {r:?}");
    let r = ask("people/simplereenroll", "alice");
    assert_eq!(r.status, 401, "renewal here, but it needs the client's certificate: {r:?}");
    // certgate's own client with a label: approved by the command, no waiting
    let out = certgate()
        .args(["pki", "enroll", "--label", "robots", "--server", &est.url(), "--cacert"])
        .arg(est.root())
        .arg("--out")
        .arg(est.pki.path("issued/robot-2"))
        .args(["--cn", "robot-2", "--wait", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(est.index_lines().last().unwrap().ends_with("\test-approved"));
    let audit = std::fs::read_to_string(est.pki.path("audit.log")).unwrap();
    assert!(audit.contains(r#""operation":"approve","ca":"client-ca","mode":"hook""#), "{audit}");
}
