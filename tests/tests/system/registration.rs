//! Registration in a browser (`certgate pki serve --register`), with Debian's
//! headless Chromium driven by puppeteer-core (`tests/browser`): a person
//! with a token registers and downloads a PKCS#12 made in the browser, which
//! `pk12util` imports and which takes Chromium through Envoy and `certgate
//! serve` to a protected page; a person without one waits while an approver
//! approves on the approvals page, or rejects with a reason the person
//! sees; a non-approver gets 403, and forged posts change nothing; nothing
//! the server received or keeps holds a private key; both kinds of PKCS#12
//! open with OpenSSL; a page outside a secure context says WebCrypto is
//! missing. The screenshots of the book's tutorial are taken here
//! (target/screenshots/registration; `./dev docs` copies them).

use crate::common;
use crate::enrollment::{b64, envoy_in_front, piped, Est};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use certgate_backend as backend;
use certgate_edge as edge;
use certgate_edge::tls::ClientCertMode;
use common::browser::{finish, Browser};
use common::pki::Pki;
use serde_json::json;

/// What the gate in front and the server itself admit: EST and the pages
/// for anyone, `/approvals/` for carol alone.
const POLICY: &str = r#"{
  "verification": "listener",
  "headers": { "preset": "rfc9440" },
  "rules": [
    { "name": "est", "path_prefix": "/.well-known/est/", "anonymous": true },
    { "name": "approvers", "path_prefix": "/approvals/", "issuer_cn": ["certgate Client CA"], "subject": ["CN=carol,O=Example"] },
    { "name": "pages", "path_prefix": "/", "anonymous": true }
  ]
}"#;

const ISSUER: &str = "certgate Client CA";
const PASSWORD: &str = "correct horse battery";

fn shots() -> PathBuf {
    common::repo().join("target/screenshots/registration")
}

/// An EST server with the pages, over a PKI home with carol (approver) and bob.
struct Site {
    est: Est,
}

impl Site {
    fn start(allow: &[&str], extra: &[&str]) -> Site {
        let pki = Pki::new(&["carol", "bob"]);
        let approvers = pki.dir.0.join("approvers.json");
        std::fs::write(&approvers, POLICY).unwrap();
        let mut args = vec!["--register", "--approvers", approvers.to_str().unwrap()];
        args.extend_from_slice(extra);
        Site {
            est: Est::start_in(pki, allow, &args),
        }
    }

    fn password_file(&self) -> PathBuf {
        let file = self.est.pki.dir.0.join("p12-password");
        std::fs::write(&file, PASSWORD).unwrap();
        file
    }

    /// `who`'s bundle from `pki p12`.
    fn bundle(&self, who: &str) -> PathBuf {
        let pw = self.password_file();
        self.est.pki.run(&["p12", who, "--password-file", pw.to_str().unwrap()]);
        self.est.pki.path(&format!("issued/{who}.p12"))
    }

    /// A browser holding `who`'s certificate (none: a newcomer's) for `origins`.
    fn browser(&self, who: Option<&str>, origins: &[SocketAddr]) -> Browser {
        let bundle = who.map(|w| self.bundle(w));
        let pw = self.password_file();
        Browser::new(&self.est.root(), bundle.as_deref().map(|b| (b, pw.as_path())), origins, ISSUER)
    }

    /// curl to a page, with `who`'s certificate if given: status and body.
    fn curl(&self, who: Option<&str>, method: &str, path: &str, form: Option<&str>, headers: &[&str]) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-X", method, "--cacert"])
            .arg(self.est.root())
            .args(["-o", "-", "-w", "\n%{http_code}"]);
        if let Some(w) = who {
            cmd.arg("--cert")
                .arg(self.est.pki.path(&format!("issued/{w}-chain.pem")))
                .arg("--key")
                .arg(self.est.pki.path(&format!("issued/{w}.key")));
        }
        for h in headers {
            cmd.args(["-H", h]);
        }
        if let Some(f) = form {
            cmd.args(["--data-raw", f]);
        }
        let out = cmd.arg(format!("{}{path}", self.est.url())).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.trim().parse().unwrap(), body.to_owned())
    }

    fn status_of(&self, id: &str) -> String {
        let (code, out, err) = self.est.pki_cmd(&["requests", "show", id]);
        assert_eq!(code, 0, "{err}");
        let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
        shown["status"].as_str().unwrap().to_owned()
    }
}

fn job(site_url: &str, action: &str, prefix: &str) -> serde_json::Value {
    json!({ "action": action, "url": site_url, "shots": shots(), "prefix": prefix })
}

fn ok(answer: &serde_json::Value) -> &serde_json::Value {
    assert!(answer.get("error").is_none(), "the browser job failed: {}", answer["error"]);
    answer
}

/// The job's `register` answer must be `done`; the downloaded `.p12`.
fn downloaded(answer: &serde_json::Value, downloads: &Path) -> PathBuf {
    assert_eq!(answer["outcome"], "done", "{answer}");
    downloads.join(answer["p12"].as_str().expect("a .p12 was downloaded"))
}

/// The file a `register` job made for `subject`, of the legacy or the
/// modern kind, as OpenSSL reads it with the password.
fn made_file(answer: &serde_json::Value, downloads: &Path, subject: &str, legacy: bool) -> PathBuf {
    let p12 = downloaded(ok(answer), downloads);
    assert_eq!(answer["issuedTo"], subject, "{answer}");
    let info = openssl_info(&p12);
    let kind = if legacy {
        ["Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC", "MAC: sha1"]
    } else {
        ["Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC", "MAC: sha256"]
    };
    assert!(kind.iter().all(|k| info.contains(k)), "legacy {legacy}: {info}");
    p12
}

/// `openssl pkcs12 ARGS -in p12 -passin pass:PASSWORD`.
fn openssl_pkcs12(p12: &Path, args: &[&str], password: &str) -> std::process::Output {
    Command::new("openssl")
        .arg("pkcs12")
        .args(args)
        .arg("-in")
        .arg(p12)
        .args(["-passin", &format!("pass:{password}")])
        .output()
        .unwrap()
}

/// `openssl pkcs12 -info` of a browser-made file, opened with its password.
fn openssl_info(p12: &Path) -> String {
    let out = openssl_pkcs12(p12, &["-info", "-noout"], PASSWORD);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "openssl pkcs12 opens {}: {text}", p12.display());
    let wrong = openssl_pkcs12(p12, &["-info", "-noout"], "not the password");
    assert!(!wrong.status.success(), "a wrong password must not open it");
    text
}

/// The private key in a browser-made file: its PKCS#8 DER and its scalar.
fn private_key_of(p12: &Path) -> (Vec<u8>, Vec<u8>) {
    let pem = openssl_pkcs12(p12, &["-nocerts", "-nodes"], PASSWORD);
    assert!(pem.status.success());
    let pkcs8 = piped("openssl", &["pkey", "-outform", "DER"], &pem.stdout);
    let sec1 = piped("openssl", &["ec", "-outform", "DER"], &pem.stdout);
    assert!(pkcs8.status.success() && sec1.status.success());
    // SEC1 ECPrivateKey for P-256: 30 77 02 01 01 04 20 <32-byte scalar>
    let scalar = sec1.stdout.get(7..39).unwrap().to_vec();
    assert_eq!(sec1.stdout.get(5..7), Some(&[0x04u8, 0x20][..]), "a P-256 key");
    (pkcs8.stdout, scalar)
}

/// The forms a secret can take in text or files.
fn spellings(bytes: &[u8]) -> Vec<Vec<u8>> {
    let b64 = b64(bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        bytes.to_vec(),
        b64.into_bytes(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
    ]
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

/// Nothing the browser posted, and nothing the server keeps, holds the
/// private key of `p12` in any spelling; the public key is found in what was
/// posted (so the search can find what is there).
fn assert_no_private_key_left_the_browser(answer: &serde_json::Value, p12: &Path, home: &Path) {
    let (pkcs8, scalar) = private_key_of(p12);
    let secrets: Vec<Vec<u8>> = [spellings(&pkcs8), spellings(&scalar)].concat();
    let posted = answer["posted"].as_array().expect("the posted bodies");
    assert!(!posted.is_empty());
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for p in posted {
        let body = p["body"].as_str().unwrap();
        bodies.push(body.as_bytes().to_vec());
        if let Ok(der) = <base64ct::Base64 as base64ct::Encoding>::decode_vec(body.trim()) {
            bodies.push(der);
        }
    }
    // the CSR carries the public key: the point after the private key in SEC1
    let cert = openssl_pkcs12(p12, &["-nokeys", "-clcerts"], PASSWORD);
    let spki = piped("openssl", &["x509", "-noout", "-pubkey"], &cert.stdout);
    let spki_der = piped("openssl", &["pkey", "-pubin", "-outform", "DER"], &spki.stdout).stdout;
    assert!(bodies.iter().any(|b| holds(b, &spki_der)), "the CSR posted holds the public key");
    for body in &bodies {
        assert!(!holds(body, b"PRIVATE KEY"), "a posted body names a private key");
        for s in &secrets {
            assert!(!holds(body, s), "a posted body holds the private key");
        }
    }
    let files = files_under(home);
    assert!(files.len() > 10, "the PKI home was searched");
    for (path, bytes) in &files {
        for s in &secrets {
            assert!(!holds(bytes, s), "{} holds the browser's private key", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_with_a_token_registers_in_chromium_and_the_p12_takes_them_through_envoy_and_certgate_serve() {
    let site = Site::start(&["token"], &[]);
    let token = site.est.token(&["--cn", "Dana Example", "--email", "dana@example.org"]);
    let downloads = site.est.pki.dir.0.join("downloads");
    let newcomer = site.browser(None, &[]);
    let answer = tokio::task::block_in_place(|| {
        newcomer.drive(json!({
            "action": "register", "url": site.est.url(), "shots": shots(), "prefix": "token-",
            "way": "token", "token": token, "password": PASSWORD, "legacy": false, "downloads": downloads,
        }))
    });
    let p12 = made_file(&answer, &downloads, "CN=Dana Example", false);
    let ca = std::fs::read_to_string(downloads.join("ca.pem")).unwrap();
    assert_eq!(
        ca,
        std::fs::read_to_string(site.est.root()).unwrap(),
        "the CA certificate offered is the root"
    );
    assert_no_private_key_left_the_browser(&answer, &p12, &site.est.pki.dir.0);
    // the token is used up, and the index says how the certificate came
    let index = std::fs::read_to_string(site.est.pki.path("client-ca/index.txt")).unwrap();
    assert!(index.lines().last().unwrap().ends_with("\test-token"), "{index}");
    let again = tokio::task::block_in_place(|| {
        site.browser(None, &[]).drive(json!({
            "action": "register", "url": site.est.url(), "shots": null, "prefix": "",
            "way": "token", "token": token, "password": PASSWORD, "legacy": false, "downloads": downloads,
        }))
    });
    assert_eq!(ok(&again)["outcome"], "form-error", "{again}");
    assert!(again["reason"].as_str().unwrap().contains("the token was used already"), "{again}");

    // the file, imported with pk12util, takes Chromium to a protected page
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let pki = &site.est.pki;
    let envoy = common::envoy::Envoy::start(&pki.envoy_yaml("nginx-optional.yaml", backend.addr, crate::browser::POLICY)).unwrap();
    let policy = pki.dir.0.join("app-policy.json");
    std::fs::write(&policy, crate::browser::POLICY).unwrap();
    let edge = edge::start(pki.edge_settings(&policy, backend.addr, ClientCertMode::Optional))
        .await
        .unwrap();
    let pw = site.password_file();
    let member = Browser::new(&site.est.root(), None, &[envoy.listener, edge.addr, site.est.addr], ISSUER);
    member.import(&p12, &pw);
    for (front, addr) in [("Envoy", envoy.listener), ("certgate serve", edge.addr)] {
        let page = tokio::task::block_in_place(|| member.open(&format!("https://{addr}/private/account")));
        assert!(
            page.contains(r#"You are <strong id="who">CN=Dana Example</strong>"#),
            "{front}, with the registered file:\n{page}"
        );
    }
    // and "who am I" on the enrollment server shows the same certificate
    let whoami = tokio::task::block_in_place(|| {
        member
            .drive(json!({ "action": "open", "url": site.est.url(), "shots": shots(), "prefix": "", "path": "/whoami", "shot": "whoami" }))
    });
    let text = ok(&whoami)["text"].as_str().unwrap();
    assert!(
        text.contains("CN=Dana Example") && text.contains("email:dana@example.org"),
        "{text}"
    );
    assert!(text.contains("You may not approve requests"), "{text}");

    // the page on a phone, and outside a secure context
    let phone = tokio::task::block_in_place(|| {
        newcomer.drive(json!({ "action": "open", "url": site.est.url(), "shots": shots(), "prefix": "", "path": "/register/", "shot": "register-phone", "phone": true }))
    });
    assert_eq!(ok(&phone)["status"], 200);
    let insecure = tokio::task::block_in_place(|| {
        let mut j = job(&site.est.url(), "insecure", "");
        j["ca"] = site.est.root().display().to_string().into();
        newcomer.drive(j)
    });
    assert_eq!(ok(&insecure)["secure"], false, "{insecure}");
    assert_eq!(insecure["formShown"], false);
    assert!(
        insecure["text"].as_str().unwrap().contains("only on a secure connection"),
        "{insecure}"
    );
}

/// Through a gate at `front` (Envoy or `certgate serve`, with `POLICY`): a
/// person registers with a token, carol reaches the approvals page, and the
/// gate stops bob before the server hears of him.
fn through_the_gate(site: &Site, front: &str, approver: &Browser, other: &Browser, cn: &str) {
    let token = site.est.token(&["--cn", cn]);
    let downloads = site.est.pki.dir.0.join("downloads");
    let answer = site.browser(None, &[]).drive(json!({
        "action": "register", "url": front, "shots": null, "prefix": "",
        "way": "token", "token": token, "password": PASSWORD, "legacy": false, "downloads": downloads,
    }));
    made_file(&answer, &downloads, &format!("CN={cn}"), false);
    let page = approver.drive(json!({ "action": "open", "url": front, "shots": null, "prefix": "", "path": "/approvals/" }));
    assert_eq!(ok(&page)["status"], 200, "{page}");
    assert!(
        page["text"].as_str().unwrap().contains("You approve as CN=carol,O=Example"),
        "{page}"
    );
    let page = other.drive(json!({ "action": "open", "url": front, "shots": null, "prefix": "", "path": "/approvals/" }));
    assert_eq!(ok(&page)["status"], 403, "{page}");
    let log = std::fs::read_to_string(site.est.pki.dir.0.join("est.log")).unwrap();
    assert!(!log.contains("CN=bob"), "the gate answered bob, not the server:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_certgate_serve_the_gate_admits_only_approvers_and_the_server_hears_the_proxy_alone() {
    let plain = SocketAddr::from(([127, 0, 0, 1], common::envoy::free_port()));
    let me = my_uid().to_string();
    let site = Site::start(
        &["token", "queue"],
        &[
            "--proxy-listen",
            &plain.to_string(),
            "--proxy-user",
            &me,
            "--proxy-host",
            "127.0.0.1",
            "--proxy-host",
            "localhost",
        ],
    );
    common::wait_for_port(plain, "the proxy listener", Duration::from_secs(10));
    let policy = site.est.pki.dir.0.join("gate.json");
    std::fs::write(&policy, POLICY).unwrap();
    let gate = edge::start(site.est.pki.edge_settings(&policy, plain, ClientCertMode::Optional))
        .await
        .unwrap();
    let front = format!("https://{}", gate.addr);
    let (approver, other) = (site.browser(Some("carol"), &[gate.addr]), site.browser(Some("bob"), &[gate.addr]));
    tokio::task::block_in_place(|| through_the_gate(&site, &front, &approver, &other, "Ivy Example"));
    // the plain listener is the proxy's: a request there without the gate is anonymous
    let plain_curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .arg(format!("http://{plain}/approvals/"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(plain_curl(&[]), "403");
    // a page of another site that resolves to loopback (DNS rebinding) names its own host
    assert_eq!(plain_curl(&["-H", "Host: evil.example:8080"]), "421");
    // a forged Client-Cert from a local process of the proxy's user: it does not verify
    let forged = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example");
        params.distinguished_name.push(rcgen::DnType::CommonName, "carol");
        params.self_signed(&key).unwrap().der().to_vec()
    };
    assert_eq!(plain_curl(&["-H", &format!("Client-Cert: :{}:", b64(&forged))]), "403");
    // a process of another user is closed unanswered
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://{plain}/register/"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "000",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(site.est.pki.dir.0.join("est.log")).unwrap();
    assert!(log.contains("from another user's process: closed"), "{log}");
}

/// This process's user id (the owner of /proc/self).
fn my_uid() -> u32 {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap())
}

#[test]
fn firefox_esr_registers_with_a_token_makes_a_legacy_file_and_presents_it() {
    let site = Site::start(&["token"], &[]);
    let token = site.est.token(&["--cn", "Fiona Example"]);
    let downloads = site.est.pki.dir.0.join("downloads-firefox");
    let firefox = Browser::firefox(&site.est.root());
    let answer = firefox.drive(json!({
        "action": "register", "url": site.est.url(), "shots": null, "prefix": "",
        "way": "token", "token": token, "password": PASSWORD, "legacy": true, "downloads": downloads,
    }));
    let p12 = made_file(&answer, &downloads, "CN=Fiona Example", true);
    assert_no_private_key_left_the_browser(&answer, &p12, &site.est.pki.dir.0);
    // imported into Firefox's own store, the file is what Firefox presents
    firefox.import(&p12, &site.password_file());
    let page = firefox.drive(json!({ "action": "open", "url": site.est.url(), "shots": null, "prefix": "", "path": "/whoami" }));
    let text = ok(&page)["text"].as_str().unwrap();
    assert!(
        text.contains("CN=Fiona Example") && text.contains("CN=certgate Client CA,O=Example"),
        "{text}"
    );
}

/// Starts a person's registration through the queue; returns the running
/// job and the request's id once the page says it waits.
fn ask(site: &Site, browser: &Browser, name: &str, legacy: bool, prefix: &str, downloads: &Path) -> (std::process::Child, String) {
    let waiting = site.est.pki.dir.0.join(format!("waiting-{prefix}"));
    let child = browser.start_job(json!({
        "action": "register", "url": site.est.url(), "shots": shots(), "prefix": prefix,
        "way": "queue", "name": name, "email": format!("{}@example.org", name.split(' ').next().unwrap().to_lowercase()),
        "password": PASSWORD, "legacy": legacy, "downloads": downloads, "waitingFile": waiting,
    }));
    match said_it_waits(&waiting) {
        Some(id) => (child, id),
        None => {
            let mut child = child;
            let _killed = child.kill();
            panic!("{name}'s page never said it waits: {}", finish(child));
        }
    }
}

/// The request id the waiting page wrote to `file`, within two minutes.
fn said_it_waits(file: &Path) -> Option<String> {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if let Ok(text) = std::fs::read_to_string(file) {
            if let Some(id) = text.split(|c: char| !c.is_ascii_hexdigit()).find(|w| w.len() == 24) {
                return Some(id.to_owned());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

#[test]
fn an_approver_approves_in_the_browser_a_rejected_person_sees_why_and_nobody_else_can_decide() {
    let site = Site::start(&["queue"], &[]);
    let approver = site.browser(Some("carol"), &[site.est.addr]);
    let other = site.browser(Some("bob"), &[site.est.addr]);

    // Erin asks (the legacy kind of file); carol approves; Erin's page, still polling, gets it
    let downloads = site.est.pki.dir.0.join("downloads-erin");
    let erin = site.browser(None, &[]);
    let (running, id) = ask(&site, &erin, "Erin Example", true, "queue-", &downloads);
    assert_eq!(site.status_of(&id), "pending");
    let approved = approver
        .drive(json!({ "action": "approve", "url": site.est.url(), "shots": shots(), "prefix": "approve-", "id": id, "reject": null }));
    assert_eq!(ok(&approved)["status"], 200, "{approved}");
    assert!(approved["text"].as_str().unwrap().contains("was approved"), "{approved}");
    let answer = finish(running);
    let p12 = made_file(&answer, &downloads, "CN=Erin Example", true);
    assert_no_private_key_left_the_browser(&answer, &p12, &site.est.pki.dir.0);
    // NSS takes the legacy kind too
    site.browser(None, &[]).import(&p12, &site.password_file());
    let audit = std::fs::read_to_string(site.est.pki.path("audit.log")).unwrap();
    // the page polled every second while it waited: one decision, one line
    let queued = audit
        .lines()
        .filter(|l| l.contains(r#""subject":"CN=Erin Example""#) && l.contains(r#""outcome":"queued""#))
        .count();
    assert_eq!(queued, 1, "{audit}");
    assert!(
        audit.lines().any(|l| l.contains(r#""mode":"web""#)
            && l.contains("CN=carol,O=Example (web, rule approvers)")
            && l.contains(r#""outcome":"issued""#)),
        "{audit}"
    );
    common::pki::assert_audit_documented(&audit);

    // Mallory asks; nobody but carol, on carol's own page, can decide
    let downloads = site.est.pki.dir.0.join("downloads-mallory");
    let mallory = site.browser(None, &[]);
    let (running, id) = ask(&site, &mallory, "Mallory Example", false, "mallory-", &downloads);
    let refused = other.drive(json!({ "action": "open", "url": site.est.url(), "shots": shots(), "prefix": "", "path": "/approvals/", "shot": "approvals-forbidden" }));
    assert_eq!(ok(&refused)["status"], 403, "{refused}");
    assert!(
        refused["text"].as_str().unwrap().contains("CN=bob,O=Example is not an approver"),
        "{refused}"
    );
    let log = std::fs::read_to_string(site.est.pki.dir.0.join("est.log")).unwrap();
    assert!(
        log.contains("CN=bob,O=Example is not an approver"),
        "the server refused bob itself:\n{log}"
    );
    let (status, page) = site.curl(Some("carol"), "GET", "/approvals/", None, &[]);
    assert_eq!(status, 200);
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let form = |csrf: &str| format!("csrf={csrf}&ca=client-ca&id={id}");
    // from another origin, in carol's own browser (her certificate is sent): with no token, and with hers
    for csrf in ["", csrf.as_str()] {
        let fields = json!({ "csrf": csrf, "ca": "client-ca", "id": id });
        let forged = approver.drive(json!({ "action": "forge", "url": site.est.url(), "shots": null, "prefix": "", "fields": fields }));
        assert_eq!(ok(&forged)["status"], 403, "{forged}");
        assert!(forged["text"].as_str().unwrap().contains("nothing was changed"), "{forged}");
    }
    // without the token (no Origin either), with a wrong one, and bob with carol's
    let (status, body) = site.curl(Some("carol"), "POST", "/approvals/approve", Some(&form("")), &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("does not carry this page"), "{body}");
    let (status, _) = site.curl(Some("carol"), "POST", "/approvals/approve", Some(&form(&"0".repeat(64))), &[]);
    assert_eq!(status, 403);
    let (status, body) = site.curl(Some("bob"), "POST", "/approvals/approve", Some(&form(&csrf)), &[]);
    assert_eq!(status, 403, "{body}");
    let (status, _) = site.curl(None, "POST", "/approvals/approve", Some(&form(&csrf)), &[]);
    assert_eq!(status, 403);
    // a GET never decides
    let (status, _) = site.curl(Some("carol"), "GET", &format!("/approvals/approve?{}", form(&csrf)), None, &[]);
    assert_eq!(status, 405);
    assert_eq!(site.status_of(&id), "pending", "nothing above changed the request");

    // someone asks for carol's own name: the page will not make them an approver
    let key = site.est.pki.dir.0.join("impostor.key");
    let csr = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/O=Example/CN=carol",
        ])
        .arg("-keyout")
        .arg(&key)
        .args(["-outform", "DER"])
        .output()
        .unwrap();
    assert!(csr.status.success());
    let (status, body) = site.curl(
        None,
        "POST",
        "/.well-known/est/simpleenroll",
        Some(&b64(&csr.stdout)),
        &["Content-Type: application/pkcs10"],
    );
    assert_eq!(status, 202, "{body}");
    let impostor = body.split_whitespace().nth(1).unwrap().to_owned();
    let (_, page) = site.curl(Some("carol"), "GET", "/approvals/", None, &[]);
    let section = page
        .split(&format!(r#"id="request-{impostor}""#))
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap();
    assert!(
        section.contains("would make a new approver") && !section.contains("button type=\"submit\" class=\"approve\""),
        "{section}"
    );
    let impostor_form = format!("csrf={csrf}&ca=client-ca&id={impostor}");
    let (status, body) = site.curl(Some("carol"), "POST", "/approvals/approve", Some(&impostor_form), &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("does not make new approvers"), "{body}");
    assert_eq!(site.status_of(&impostor), "pending");

    let rejected = approver.drive(json!({ "action": "approve", "url": site.est.url(), "shots": shots(), "prefix": "reject-", "id": id, "reject": "We do not know you: ask your team lead" }));
    assert_eq!(ok(&rejected)["status"], 200, "{rejected}");
    let answer = finish(running);
    assert_eq!(ok(&answer)["outcome"], "refused", "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("We do not know you: ask your team lead"),
        "{answer}"
    );
    assert_eq!(site.status_of(&id), "rejected");
}

#[test]
fn a_person_who_closed_the_waiting_page_gets_the_certificate_on_coming_back() {
    let site = Site::start(&["queue"], &[]);
    let approver = site.browser(Some("carol"), &[site.est.addr]);
    let gina = site.browser(None, &[]);
    let waiting = site.est.pki.dir.0.join("waiting-gina");
    let asked = gina.drive(json!({
        "action": "register", "url": site.est.url(), "shots": null, "prefix": "",
        "way": "queue", "name": "Gina Example", "email": "",
        "password": PASSWORD, "legacy": false, "downloads": null, "waitingFile": waiting, "stopWhenWaiting": true,
    }));
    assert_eq!(ok(&asked)["outcome"], "waiting", "{asked}");
    let id = said_it_waits(&waiting).unwrap();
    let approved =
        approver.drive(json!({ "action": "approve", "url": site.est.url(), "shots": null, "prefix": "", "id": id, "reject": null }));
    assert_eq!(ok(&approved)["status"], 200, "{approved}");
    // the same browser, the page opened again: it still has the key and the request
    let downloads = site.est.pki.dir.0.join("downloads-gina");
    let back = gina.drive(json!({
        "action": "resume", "url": site.est.url(), "shots": shots(), "prefix": "", "password": PASSWORD, "downloads": downloads,
    }));
    let p12 = made_file(&back, &downloads, "CN=Gina Example", false);
    assert!(back["resumeText"].as_str().unwrap().contains(&id), "{back}");
    assert_no_private_key_left_the_browser(&asked, &p12, &site.est.pki.dir.0);
    // done: the page no longer offers to resume
    let again = gina.drive(json!({ "action": "open", "url": site.est.url(), "shots": null, "prefix": "", "path": "/register/" }));
    assert!(ok(&again)["text"].as_str().unwrap().contains("How do you join?"), "{again}");
    assert!(!again["text"].as_str().unwrap().contains("Keep waiting"), "{again}");
}

#[test]
fn behind_envoy_the_gate_admits_only_approvers_to_the_approvals_page_and_the_server_checks_them_again() {
    let site = Site::start(&["token", "queue"], &["--trusted-proxy-cert", crate::enrollment::PROXY_NAME]);
    let envoy = envoy_in_front(&site.est.pki, site.est.addr, POLICY);
    let front = format!("https://{}", envoy.listener);
    let approver = site.browser(Some("carol"), &[envoy.listener]);
    let other = site.browser(Some("bob"), &[envoy.listener]);

    // a person registers through Envoy with a token
    // bob is stopped by certgate in Envoy, before the server
    through_the_gate(&site, &front, &approver, &other, "Frank Example");
    // who am I, through the proxy: the certificate Envoy verified
    let page = approver.drive(json!({ "action": "open", "url": front, "shots": null, "prefix": "", "path": "/whoami" }));
    assert!(ok(&page)["text"].as_str().unwrap().contains("CN=carol,O=Example"), "{page}");
    assert!(page["text"].as_str().unwrap().contains("You may approve requests"), "{page}");

    // a client that is not the trusted proxy cannot hand the server carol's certificate
    let carol_pem = std::fs::read_to_string(site.est.pki.path("issued/carol.pem")).unwrap();
    let der = pem_rfc7468::decode_vec(carol_pem.as_bytes()).unwrap().1;
    let forged = format!("Client-Cert: :{}:", b64(&der));
    let (status, body) = site.curl(None, "GET", "/approvals/", None, &[&forged]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("only from the trusted proxy"), "{body}");
}

#[test]
fn the_page_offers_the_ways_in_of_its_ca_label() {
    let site = Site::start(&["token"], &["--label", "people=client-ca:queue"]);
    let settings = |query: &str| {
        let (status, body) = site.curl(None, "GET", &format!("/register/settings{query}"), None, &[]);
        (status, serde_json::from_str::<serde_json::Value>(&body).unwrap())
    };
    let (status, plain) = settings("");
    assert_eq!(
        (status, &plain["token"], &plain["queue"]),
        (200, &json!(true), &json!(false)),
        "{plain}"
    );
    let (status, people) = settings("?label=people");
    assert_eq!(
        (status, &people["token"], &people["queue"]),
        (200, &json!(false), &json!(true)),
        "{people}"
    );
    let (status, none) = settings("?label=nobody");
    assert_eq!(status, 404);
    assert!(none["error"].as_str().unwrap().contains("nobody"), "{none}");
    // the page for the label offers approval only, and asks under the label
    let browser = site.browser(None, &[]);
    let page =
        browser.drive(json!({ "action": "open", "url": site.est.url(), "shots": null, "prefix": "", "path": "/register/?label=people" }));
    let text = ok(&page)["text"].as_str().unwrap();
    assert!(
        text.contains("I ask for approval") && !text.contains("I have an invitation code"),
        "{text}"
    );
    let downloads = site.est.pki.dir.0.join("downloads");
    let waiting = site.est.pki.dir.0.join("waiting-label");
    let asked = browser.drive(json!({
        "action": "register", "url": site.est.url(), "shots": null, "prefix": "", "label": "people",
        "way": "queue", "name": "Hal Example", "email": "", "password": PASSWORD, "legacy": false,
        "downloads": downloads, "waitingFile": waiting, "stopWhenWaiting": true,
    }));
    assert_eq!(ok(&asked)["outcome"], "waiting", "{asked}");
    let posted = asked["posted"].as_array().unwrap();
    assert!(
        posted
            .iter()
            .any(|p| p["url"].as_str().unwrap().ends_with("/.well-known/est/people/simpleenroll")),
        "{asked}"
    );
}

#[test]
fn the_server_refuses_an_approvers_policy_that_lets_anyone_in_and_a_web_dir_without_its_files() {
    let pki = Pki::new(&[]);
    let open = pki.dir.0.join("open.json");
    std::fs::write(&open, r#"{"rules":[{"name":"all","path_prefix":"/","anonymous":true}]}"#).unwrap();
    let run = |extra: &[&std::ffi::OsStr]| {
        common::certgate()
            .args(["pki", "serve", "--listen", "127.0.0.1:0", "--allow", "queue", "--register"])
            .arg("--cert")
            .arg(pki.path("issued/localhost-chain.pem"))
            .arg("--key")
            .arg(pki.path("issued/localhost.key"))
            .args(extra)
            .current_dir(&pki.dir.0)
            .output()
            .unwrap()
    };
    let out = run(&["--approvers".as_ref(), open.as_os_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admits /approvals/ without a client certificate"), "{err}");
    let out = run(&["--web-dir".as_ref(), pki.dir.0.as_os_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("register.html cannot be read") && err.contains("npm run build"),
        "{err}"
    );
}

/// The page served by a `certgate` run from a directory with nothing of the
/// source tree: every file the page loads is built into the command.
#[test]
fn the_pages_come_from_the_command_alone() {
    let pki = Pki::new(&[]);
    let addr = SocketAddr::from(([127, 0, 0, 1], common::envoy::free_port()));
    let bin = common::certgate().get_program().to_owned();
    let copy = pki.dir.0.join("bin/certgate");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&bin, &copy).unwrap();
    let _server = common::KillOnDrop(
        Command::new(&copy)
            .args(["pki", "serve", "--listen", &addr.to_string(), "--allow", "queue", "--register"])
            .arg("--cert")
            .arg(pki.path("issued/localhost-chain.pem"))
            .arg("--key")
            .arg(pki.path("issued/localhost.key"))
            .current_dir(&pki.dir.0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_for_port(addr, "certgate pki serve", Duration::from_secs(20));
    let committed = std::fs::read(common::repo().join("pki/est/web/dist/vendor.js")).unwrap();
    for (path, size) in [
        ("/register/", None),
        ("/register/register.js", None),
        ("/register/certs.js", None),
        ("/register/pkcs12.js", None),
        ("/register/style.css", None),
        ("/register/vendor.js", Some(committed.len())),
    ] {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "--cacert"])
            .arg(pki.path("root-ca/ca.pem"))
            .arg(format!("https://localhost:{}{path}", addr.port()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (status, got) = text.split_once(' ').unwrap();
        assert_eq!(status, "200", "{path}: {text}");
        if let Some(size) = size {
            assert_eq!(got.parse::<usize>().unwrap(), size, "{path}: the committed bundle");
        }
    }
}

#[test]
fn names_with_accents_read_as_people_write_them_on_both_pages_and_in_the_file_name() {
    let site = Site::start(&["queue"], &[]);
    let approver = site.browser(Some("carol"), &[site.est.addr]);
    let mut asked = Vec::new();
    for (name, email, prefix) in [
        ("Zoë Example", "zoe@example.org", "zoe-"),
        ("José Müller", "jose@example.org", "jose-"),
    ] {
        let downloads = site.est.pki.dir.0.join(format!("downloads-{prefix}"));
        let waiting = site.est.pki.dir.0.join(format!("waiting-{prefix}"));
        let person = site.browser(None, &[]);
        let child = person.start_job(json!({
            "action": "register", "url": site.est.url(), "shots": null, "prefix": prefix,
            "way": "queue", "name": name, "email": email,
            "password": PASSWORD, "legacy": false, "downloads": downloads, "waitingFile": waiting,
        }));
        let id = said_it_waits(&waiting).expect("the page says it waits");
        asked.push((name, id, child, downloads));
    }
    // the approvals page: the names as written, not as RFC 2253 bytes
    let page = approver.drive(json!({ "action": "open", "url": site.est.url(), "shots": shots(), "prefix": "", "path": "/approvals/", "shot": "approvals-accents" }));
    let text = ok(&page)["text"].as_str().unwrap();
    assert!(text.contains("CN=Zoë Example") && text.contains("CN=José Müller"), "{text}");
    assert!(!text.contains("\\C3"), "no escaped bytes for letters: {text}");
    let mut asked = asked.into_iter();
    let (_, zoe, running, downloads) = asked.next().unwrap();
    let approved =
        approver.drive(json!({ "action": "approve", "url": site.est.url(), "shots": null, "prefix": "", "id": zoe, "reject": null }));
    assert_eq!(ok(&approved)["status"], 200, "{approved}");
    let answer = finish(running);
    let p12 = made_file(&answer, &downloads, "CN=Zoë Example", false);
    assert_eq!(
        answer["p12"], "Zoë-Example.p12",
        "the file is named after her, letters kept: {answer}"
    );
    // the reason for a rejection reaches the person whole, in any script
    let (_, jose, running, _) = asked.next().unwrap();
    let reason = "Nicht bekannt — bitte über Ihre Teamleitung";
    let rejected =
        approver.drive(json!({ "action": "approve", "url": site.est.url(), "shots": null, "prefix": "", "id": jose, "reject": reason }));
    assert_eq!(ok(&rejected)["status"], 200, "{rejected}");
    let answer = finish(running);
    assert_eq!(ok(&answer)["outcome"], "refused", "{answer}");
    assert_eq!(answer["reason"], format!("An approver rejected it: {reason}"), "{answer}");
    // who am I, with Zoë's file: her name as she writes it
    let zoe_browser = Browser::new(&site.est.root(), Some((&p12, &site.password_file())), &[site.est.addr], ISSUER);
    let page = zoe_browser.drive(json!({ "action": "open", "url": site.est.url(), "shots": null, "prefix": "", "path": "/whoami" }));
    let text = ok(&page)["text"].as_str().unwrap();
    assert!(text.contains("CN=Zoë Example") && !text.contains("\\C3"), "{text}");
    // pki requests list and the audit log keep their forms: readable and escaped, machine
    let (_, listed, _) = site.est.pki_cmd(&["requests", "list", "--all"]);
    assert!(listed.contains("CN=José Müller"), "{listed}");
    let audit = std::fs::read_to_string(site.est.pki.path("audit.log")).unwrap();
    assert!(
        audit.contains(r#""subject":"CN=Zo\\C3\\AB Example""#),
        "the audit log keeps RFC 2253 bytes: {audit}"
    );
}

#[test]
fn the_approvals_page_shows_twenty_requests_a_page() {
    let site = Site::start(&["queue"], &["--max-pending-per-address", "30"]);
    for i in 0..25 {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("person-{i:02}"));
        let csr = params.serialize_request(&key).unwrap().der().to_vec();
        let (status, body) = site.curl(
            None,
            "POST",
            "/.well-known/est/simpleenroll",
            Some(&b64(&csr)),
            &["Content-Type: application/pkcs10"],
        );
        assert_eq!(status, 202, "{body}");
    }
    let count = |page: &str| page.matches(r#"<section class="request""#).count();
    let (status, first) = site.curl(Some("carol"), "GET", "/approvals/", None, &[]);
    assert_eq!(status, 200);
    assert_eq!(count(&first), 20, "{first}");
    assert!(
        first.contains("25 waiting; page 1 of 2.") && first.contains(r#"href="/approvals/?page=2""#),
        "{first}"
    );
    let (_, second) = site.curl(Some("carol"), "GET", "/approvals/?page=2", None, &[]);
    assert_eq!(count(&second), 5, "{second}");
    // every request on one page or the other, none on both (oldest first,
    // to the second: requests of the same second may come in any order)
    let shown = (0..25)
        .filter(|i| {
            let name = format!(">CN=person-{i:02}</h2>");
            first.contains(&name) != second.contains(&name)
        })
        .count();
    assert_eq!(shown, 25, "{first}\n{second}");
}
