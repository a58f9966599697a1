//! Debian's headless Chromium with a profile of its own: an NSS store
//! (`$HOME/.pki/nssdb`, where Chromium on Linux keeps certificates) trusting
//! a root, with or without a PKCS#12 bundle imported by `pk12util`, told to
//! pick a client certificate by itself for the given origins (a person would
//! click it in the prompt headless Chromium cannot show). `open` dumps a
//! page's DOM; `Browser::firefox` is Debian's Firefox ESR instead; `drive` runs a job of `tests/browser/registration.mjs`
//! (puppeteer-core, installed by `./dev setup`) in the same profile.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::TempDir;

pub const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    pub dir: TempDir,
    /// Firefox ESR instead of Chromium (`drive` only).
    firefox: bool,
}

/// Runs a command that must succeed (NSS's tools, ...).
pub fn run(cmd: &mut Command) {
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
    /// A profile trusting `root`, with `bundle` (a .p12 and its password
    /// file) imported, choosing a certificate issued by `issuer_cn` for `origins`.
    pub fn new(root: &Path, bundle: Option<(&Path, &Path)>, origins: &[SocketAddr], issuer_cn: &str) -> Browser {
        let browser = Browser {
            dir: TempDir::new("browser").unwrap(),
            firefox: false,
        };
        browser.new_store(root);
        if let Some((p12, password)) = bundle {
            browser.import(p12, password);
        }
        let exceptions: serde_json::Map<String, serde_json::Value> = origins
            .iter()
            .map(|o| {
                let setting = serde_json::json!({ "setting": { "filters": [ { "ISSUER": { "CN": issuer_cn } } ] } });
                (format!("https://{o},*"), setting)
            })
            .collect();
        let prefs = serde_json::json!({ "profile": { "content_settings": { "exceptions": { "auto_select_certificate": exceptions } } } });
        let default = browser.dir.0.join("profile/Default");
        std::fs::create_dir_all(&default).unwrap();
        std::fs::write(default.join("Preferences"), prefs.to_string()).unwrap();
        browser
    }

    /// Debian's Firefox ESR with a profile whose NSS store (in the profile
    /// itself, as Firefox keeps it) trusts `root`; it picks a client
    /// certificate by itself (`security.default_personal_cert`).
    pub fn firefox(root: &Path) -> Browser {
        let browser = Browser {
            dir: TempDir::new("firefox").unwrap(),
            firefox: true,
        };
        std::fs::create_dir_all(browser.dir.0.join("home")).unwrap();
        browser.new_store(root);
        browser
    }

    fn nssdb_dir(&self) -> std::path::PathBuf {
        self.dir.0.join(if self.firefox { "profile" } else { "home/.pki/nssdb" })
    }

    fn nssdb(&self) -> String {
        format!("sql:{}", self.nssdb_dir().display())
    }

    /// An empty NSS store that trusts `root`.
    fn new_store(&self, root: &Path) {
        std::fs::create_dir_all(self.nssdb_dir()).unwrap();
        let db = self.nssdb();
        run(Command::new("certutil").args(["-N", "--empty-password", "-d", &db]));
        run(Command::new("certutil")
            .args(["-A", "-n", "certgate test root", "-t", "C,,", "-d", &db])
            .arg("-i")
            .arg(root));
    }

    /// Imports a PKCS#12 file into the profile's NSS store, as a person
    /// does after downloading it.
    pub fn import(&self, p12: &Path, password_file: &Path) {
        let db = self.nssdb();
        run(Command::new("pk12util")
            .arg("-i")
            .arg(p12)
            .args(["-d", &db, "-K", ""])
            .arg("-w")
            .arg(password_file));
    }

    /// The page at `url` after it loaded, as the browser's DOM.
    pub fn open(&self, url: &str) -> String {
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

    /// Starts a job of `tests/browser/registration.mjs` in this profile
    /// (`job` gets `home` and `profile`); `finish` waits for its answer.
    pub fn start_job(&self, mut job: serde_json::Value) -> std::process::Child {
        job["home"] = self.dir.0.join("home").display().to_string().into();
        job["profile"] = self.dir.0.join("profile").display().to_string().into();
        if self.firefox {
            job["browser"] = "firefox".into();
        }
        let driver = super::repo().join("tests/browser/registration.mjs");
        Command::new("timeout")
            .args(["--kill-after=10", "240", "node"])
            .arg(driver)
            .arg(job.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("node: {e} (./dev test installs Node.js and tests/browser's puppeteer-core)"))
    }

    /// Runs a job to its end: its JSON answer (a job that failed has `error`).
    pub fn drive(&self, job: serde_json::Value) -> serde_json::Value {
        finish(self.start_job(job))
    }
}

/// The answer of a job started by `start_job`.
pub fn finish(child: std::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "the browser driver's answer is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
