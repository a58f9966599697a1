//! A real browser: headless Chromium (Debian's, installed by `./dev test`)
//! with a `certgate pki p12` bundle imported into its NSS store, as the
//! README tells people to do. Through Envoy (`envoy/nginx-optional.yaml`)
//! and through `certgate serve`, the browser with the bundle sees its own
//! identity on the backend's page; one without it sees Envoy's visitors'
//! page, and a readable deny page where the policy wants a certificate.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use certgate_backend as backend;
use certgate_edge as edge;
use certgate_edge::tls::ClientCertMode;
use common::envoy::Envoy;
use common::pki::Pki;
use common::TempDir;

const POLICY: &str = r#"{
  "verification": "listener",
  "headers": { "preset": "nginx" },
  "rules": [
    { "name": "private", "path_prefix": "/private/", "issuer_cn": ["certgate Client CA"] },
    { "name": "site", "path_prefix": "/", "anonymous": true }
  ]
}"#;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A browser profile: its own NSS store (`$HOME/.pki/nssdb`, where Chromium
/// on Linux keeps certificates) trusting the PKI's root, with or without
/// alice's bundle, told to pick a client certificate by itself for the
/// given origins (a person would click it in the prompt headless Chromium
/// cannot show).
struct Browser {
    dir: TempDir,
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (./dev test installs libnss3-tools and chromium)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Browser {
    fn new(pki: &Pki, bundle: Option<(&Path, &Path)>, origins: &[SocketAddr]) -> Browser {
        let dir = TempDir::new("browser").unwrap();
        let nssdb = dir.0.join("home/.pki/nssdb");
        std::fs::create_dir_all(&nssdb).unwrap();
        let db = format!("sql:{}", nssdb.display());
        run(Command::new("certutil").args(["-N", "--empty-password", "-d", &db]));
        run(Command::new("certutil")
            .args(["-A", "-n", "certgate test root", "-t", "C,,", "-d", &db])
            .arg("-i")
            .arg(pki.path("root-ca/ca.pem")));
        if let Some((p12, password)) = bundle {
            run(Command::new("pk12util")
                .arg("-i")
                .arg(p12)
                .args(["-d", &db, "-K", ""])
                .arg("-w")
                .arg(password));
        }
        let exceptions: serde_json::Map<String, serde_json::Value> = origins
            .iter()
            .map(|o| {
                let setting = serde_json::json!({ "setting": { "filters": [ { "ISSUER": { "CN": "certgate Client CA" } } ] } });
                (format!("https://{o},*"), setting)
            })
            .collect();
        let prefs = serde_json::json!({ "profile": { "content_settings": { "exceptions": { "auto_select_certificate": exceptions } } } });
        let default = dir.0.join("profile/Default");
        std::fs::create_dir_all(&default).unwrap();
        std::fs::write(default.join("Preferences"), prefs.to_string()).unwrap();
        Browser { dir }
    }

    /// The page at `url` after it loaded, as the browser's DOM.
    fn open(&self, url: &str) -> String {
        // bounded: a browser waiting for a person (a certificate prompt) must
        // fail the test, not hang it
        let out = Command::new("timeout")
            .args(["--kill-after=10", "90", CHROMIUM])
            .env("HOME", self.dir.0.join("home"))
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
            .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
            .arg(format!("--user-data-dir={}", self.dir.0.join("profile").display()))
            .args(["--dump-dom", url])
            .output()
            .unwrap_or_else(|e| panic!("{CHROMIUM}: {e} (./dev test installs Debian's chromium)"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn bundle(pki: &Pki) -> (PathBuf, PathBuf) {
    let password = pki.dir.0.join("p12-password");
    std::fs::write(&password, "correct horse").unwrap();
    pki.run(&["p12", "alice", "--password-file", password.to_str().unwrap()]);
    (pki.path("issued/alice.p12"), password)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_with_an_imported_p12_sees_its_identity_through_envoy_and_the_edge() {
    let pki = Pki::new(&["alice"]);
    let (p12, password) = bundle(&pki);
    let backend = backend::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let envoy = Envoy::start(&pki.envoy_yaml("nginx-optional.yaml", backend.addr, POLICY)).unwrap();
    let policy = pki.dir.0.join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();
    let edge = edge::start(pki.edge_settings(&policy, backend.addr, ClientCertMode::Optional))
        .await
        .unwrap();
    let origins = [envoy.listener, edge.addr];
    let member = Browser::new(&pki, Some((&p12, &password)), &origins);
    let visitor = Browser::new(&pki, None, &origins);

    for (front, addr) in [("Envoy", envoy.listener), ("certgate serve", edge.addr)] {
        let page = tokio::task::block_in_place(|| member.open(&format!("https://{addr}/private/account")));
        assert!(
            page.contains(r#"You are <strong id="who">CN=alice,O=Example</strong>"#),
            "{front}, with the bundle:\n{page}"
        );
        assert!(page.contains("<tr><th>verified</th><td>SUCCESS</td></tr>"), "{front}:\n{page}");
    }
    let page = tokio::task::block_in_place(|| visitor.open(&format!("https://{}/", envoy.listener)));
    assert!(
        page.contains("Welcome, visitor"),
        "Envoy, no certificate: the visitors' page\n{page}"
    );
    for (front, addr) in [("Envoy", envoy.listener), ("certgate serve", edge.addr)] {
        let page = tokio::task::block_in_place(|| visitor.open(&format!("https://{addr}/private/account")));
        assert!(
            page.contains("<title>403 Forbidden</title>") && page.contains("needs a client certificate"),
            "{front}, no certificate:\n{page}"
        );
    }
}
