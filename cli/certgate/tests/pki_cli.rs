//! `certgate pki` as a user runs it: every command's output is parsed back and
//! checked; PKCS#12 bundles are read by OpenSSL and by NSS (what Firefox and
//! Chromium use); bad input is refused with a message and changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use certgate_test_support::scratch::ScratchDir;
use x509_parser::prelude::*;

/// A scratch directory that is the working directory of the commands.
struct Dir(ScratchDir);

impl Dir {
    fn new(tag: &str) -> Dir {
        Dir(ScratchDir::new(&format!("pki-{tag}")).unwrap())
    }

    /// The directory itself.
    fn root(&self) -> &Path {
        &self.0 .0
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        std::fs::write(self.path(rel), contents).unwrap();
    }

    /// Runs `certgate pki ARGS` here; stdin is not a terminal, so nothing prompts.
    fn pki(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_certgate"))
            .arg("pki")
            .args(args)
            .current_dir(self.root())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.pki(args);
        assert!(out.status.success(), "pki {args:?} failed: {}", text(&out));
        text(&out)
    }

    /// The command must fail with exit code 2 and say `needle`.
    fn refused(&self, args: &[&str], needle: &str) -> String {
        let out = self.pki(args);
        assert_eq!(out.status.code(), Some(2), "pki {args:?} should fail: {}", text(&out));
        let t = text(&out);
        assert!(t.contains(needle), "pki {args:?}: expected {needle:?} in {t}");
        t
    }

    /// The quick start: root, client CA, server `localhost`, client `alice`.
    fn quick_start(tag: &str) -> Dir {
        let d = Dir::new(tag);
        d.ok(&["init-root"]);
        d.ok(&["init-client-ca"]);
        d.ok(&["server", "localhost", "--ip", "127.0.0.1"]);
        d.ok(&[
            "client",
            "alice",
            "--org",
            "Example",
            "--spiffe",
            "spiffe://example.org/ns/default/sa/alice",
            "--email",
            "alice@example.org",
            "--dns",
            "alice.svc.example.org",
        ]);
        d
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ders(pem: &[u8]) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(pem)
        .map(|p| p.unwrap())
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

fn der(d: &Dir, rel: &str) -> Vec<u8> {
    ders(&d.read(rel)).remove(0)
}

fn cert(der: &[u8]) -> X509Certificate<'_> {
    parse_x509_certificate(der).unwrap().1
}

fn days(c: &X509Certificate<'_>) -> i64 {
    (c.validity().not_after.to_datetime() - c.validity().not_before.to_datetime()).whole_days()
}

fn eku(c: &X509Certificate<'_>) -> (bool, bool, bool) {
    let e = c.extended_key_usage().unwrap().map(|e| e.value.clone());
    e.map_or((false, false, false), |e| (e.client_auth, e.server_auth, e.any))
}

fn sans(c: &X509Certificate<'_>) -> Vec<String> {
    c.subject_alternative_name()
        .unwrap()
        .map(|s| s.value.general_names.iter().map(|g| g.to_string()).collect())
        .unwrap_or_default()
}

fn serial_hex(c: &X509Certificate<'_>) -> String {
    c.raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<String>()
        .trim_start_matches("00")
        .to_owned()
}

fn is_p256(c: &X509Certificate<'_>) -> bool {
    let alg = &c.public_key().algorithm;
    alg.parameters.as_ref().and_then(|p| p.as_oid().ok()) == Some(x509_parser::oid_registry::OID_EC_P256)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn from_nothing_to_a_root_a_client_ca_a_server_and_a_client() {
    let d = Dir::quick_start("start");
    let root_der = der(&d, "pki/root-ca/ca.pem");
    let ca_der = der(&d, "pki/client-ca/ca.pem");
    let server_der = der(&d, "pki/issued/localhost.pem");
    let alice_der = der(&d, "pki/issued/alice.pem");
    let (root, ca, server, alice) = (cert(&root_der), cert(&ca_der), cert(&server_der), cert(&alice_der));

    root.verify_signature(None).expect("the root is self-signed");
    assert!(root.is_ca());
    assert_eq!(root.basic_constraints().unwrap().unwrap().value.path_len_constraint, None);
    let ku = root.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert!((3649..=3650).contains(&days(&root)), "root valid {} days", days(&root));

    ca.verify_signature(Some(root.public_key()))
        .expect("the client CA is signed by the root");
    assert!(ca.is_ca());
    assert_eq!(ca.basic_constraints().unwrap().unwrap().value.path_len_constraint, Some(0));
    assert_eq!(eku(&ca), (true, false, false), "the client CA is for client authentication only");
    assert!((1824..=1825).contains(&days(&ca)));

    server.verify_signature(Some(root.public_key())).unwrap();
    assert!(!server.is_ca());
    assert_eq!(eku(&server), (false, true, false));
    assert_eq!(sans(&server), ["DNSName(localhost)", "IPAddress(7f:00:00:01)"]);

    alice
        .verify_signature(Some(ca.public_key()))
        .expect("alice is signed by the client CA");
    assert!(!alice.is_ca());
    assert_eq!(eku(&alice), (true, false, false), "clientAuth only");
    assert!(alice.key_usage().unwrap().unwrap().value.digital_signature());
    assert_eq!(
        sans(&alice),
        [
            "DNSName(alice.svc.example.org)",
            "URI(spiffe://example.org/ns/default/sa/alice)",
            "RFC822Name(alice@example.org)"
        ]
    );
    assert_eq!(alice.subject().to_string(), "O=Example, CN=alice");
    assert_eq!(alice.raw_serial().len(), 16, "a random 128-bit serial");
    assert!((365..=366).contains(&days(&alice)));
    for c in [&root, &ca, &server, &alice] {
        assert!(is_p256(c), "ECDSA P-256 keys by default");
    }
    assert_eq!(ders(&d.read("pki/issued/alice-chain.pem")), vec![alice_der.clone(), ca_der.clone()]);

    // Each key belongs to its certificate and only its owner can read it.
    for (key, c) in [
        ("pki/root-ca/ca.key", &root),
        ("pki/client-ca/ca.key", &ca),
        ("pki/issued/alice.key", &alice),
    ] {
        let pair = rcgen::KeyPair::from_pem(&String::from_utf8(d.read(key)).unwrap()).unwrap();
        assert_eq!(rcgen::PublicKeyData::subject_public_key_info(&pair), c.public_key().raw, "{key}");
        #[cfg(unix)]
        assert_eq!(mode(&d.path(key)), 0o600, "{key}");
    }

    // The indexes say who issued what; a copy of each certificate is kept by serial.
    let index = String::from_utf8(d.read("pki/client-ca/index.txt")).unwrap();
    let line = index.lines().find(|l| l.contains("\talice\t")).unwrap();
    assert!(line.starts_with(&format!("V\t{}\t", serial_hex(&alice))), "{line}");
    assert_eq!(der(&d, &format!("pki/client-ca/certs/{}.pem", serial_hex(&alice))), alice_der);
    let root_index = String::from_utf8(d.read("pki/root-ca/index.txt")).unwrap();
    assert!(
        root_index.contains("\tclient-ca\t") && root_index.contains("\tlocalhost\t"),
        "{root_index}"
    );

    // A second client gets another serial; explicit dates are honoured.
    d.ok(&["client", "bob", "--not-before", "2030-01-01", "--not-after", "2030-06-30"]);
    let bob_der = der(&d, "pki/issued/bob.pem");
    let bob = cert(&bob_der);
    assert_ne!(bob.raw_serial(), alice.raw_serial());
    assert_eq!(bob.validity().not_before.to_datetime().unix_timestamp(), 1_893_456_000);
    assert_eq!(days(&bob), 180);
}

#[test]
fn nothing_is_overwritten_without_force_and_a_ca_never() {
    let d = Dir::quick_start("force");
    let before = (d.read("pki/issued/alice.pem"), d.read("pki/issued/alice.key"));
    d.refused(&["client", "alice"], "pki/issued/alice");
    assert_eq!(
        before,
        (d.read("pki/issued/alice.pem"), d.read("pki/issued/alice.key")),
        "a refusal changes nothing"
    );
    d.ok(&["client", "alice", "--force"]);
    assert_ne!(before.0, d.read("pki/issued/alice.pem"));
    assert_ne!(before.1, d.read("pki/issued/alice.key"));
    #[cfg(unix)]
    assert_eq!(mode(&d.path("pki/issued/alice.key")), 0o600);

    let root = (
        d.read("pki/root-ca/ca.pem"),
        d.read("pki/root-ca/ca.key"),
        d.read("pki/root-ca/index.txt"),
    );
    d.refused(&["init-root"], "already holds a CA");
    d.refused(&["init-client-ca", "--name", "root-ca"], "already holds a CA");
    assert_eq!(
        root,
        (
            d.read("pki/root-ca/ca.pem"),
            d.read("pki/root-ca/ca.key"),
            d.read("pki/root-ca/index.txt")
        )
    );
}

#[test]
fn a_p12_is_read_by_openssl_and_by_nss_and_a_wrong_password_is_named() {
    let d = Dir::quick_start("p12");
    d.write("pw", "correct horse\n");
    d.write("wrong", "battery staple\n");
    d.ok(&["p12", "alice", "--password-file", "pw"]);
    d.ok(&["p12", "alice", "--password-file", "pw", "--legacy", "--out", "alice-legacy.p12"]);
    #[cfg(unix)]
    assert_eq!(mode(&d.path("pki/issued/alice.p12")), 0o600, "a bundle holds the key");
    d.refused(&["p12", "alice", "--password-file", "pw"], "already exists");

    let alice = d.read("pki/issued/alice.pem");
    let alice_der = ders(&alice).remove(0);
    for file in ["pki/issued/alice.p12", "alice-legacy.p12"] {
        // OpenSSL: the certificate and the key come back out.
        let out = Command::new("openssl")
            .args(["pkcs12", "-in", file, "-passin", "file:pw", "-nodes"])
            .current_dir(d.root())
            .output()
            .expect("openssl is on the machine");
        assert!(out.status.success(), "openssl pkcs12 {file}: {}", text(&out));
        let pem = String::from_utf8(out.stdout).unwrap();
        assert!(pem.contains("PRIVATE KEY"), "{file}: no key");
        let certs = ders(pem.as_bytes());
        assert!(certs.contains(&alice_der), "{file}: alice's certificate is in it");
        assert!(certs.contains(&der(&d, "pki/client-ca/ca.pem")), "{file}: so is her CA");
        let bad = Command::new("openssl")
            .args(["pkcs12", "-in", file, "-passin", "file:wrong", "-nodes"])
            .current_dir(d.root())
            .output()
            .unwrap();
        assert!(!bad.status.success(), "{file}: a wrong password must not open it");

        // NSS, the key store of Firefox and Chromium on Linux, imports it.
        let db = d.path(&format!("nssdb-{}", file.replace('/', "_")));
        std::fs::create_dir_all(&db).unwrap();
        let nss = |args: &[&str]| {
            Command::new(args[0])
                .args(&args[1..])
                .current_dir(d.root())
                .output()
                .expect("pk12util (NSS tools) is installed by ./dev")
        };
        let db_arg = format!("sql:{}", db.display());
        let o = nss(&["certutil", "-N", "-d", &db_arg, "--empty-password"]);
        assert!(o.status.success(), "{}", text(&o));
        let o = nss(&["pk12util", "-i", file, "-d", &db_arg, "-w", "wrong"]);
        assert!(!o.status.success(), "NSS must refuse a wrong password: {}", text(&o));
        let o = nss(&["pk12util", "-i", file, "-d", &db_arg, "-w", "pw"]);
        assert!(o.status.success(), "NSS import of {file}: {}", text(&o));
        let keys = nss(&["certutil", "-K", "-d", &db_arg]);
        assert!(text(&keys).contains("alice"), "NSS holds alice's key: {}", text(&keys));
        // `u,u,u`: a user certificate, one whose private key NSS holds.
        let list = text(&nss(&["certutil", "-L", "-d", &db_arg]));
        let line = list.lines().find(|l| l.contains("alice")).unwrap_or_else(|| panic!("{list}"));
        let (nick, trust) = line.rsplit_once(char::is_whitespace).unwrap();
        assert_eq!(trust, "u,u,u", "{list}");
        let o = nss(&["certutil", "-L", "-d", &db_arg, "-n", nick.trim(), "-a"]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(ders(&o.stdout), vec![alice_der.clone()]);
    }

    // certgate's own reader tells a wrong password from a damaged file.
    let data = d.read("pki/issued/alice.p12");
    let (alias, chain) = certgate_pki::p12::open(&data, "correct horse").unwrap();
    assert_eq!((alias.as_str(), chain.len()), ("alice", 2));
    assert!(certgate_pki::p12::open(&data, "nope").unwrap_err().contains("wrong password"));
    assert!(certgate_pki::p12::open(&data[..data.len() / 2], "correct horse")
        .unwrap_err()
        .contains("not a PKCS#12"));
    d.refused(&["p12", "nobody", "--password-file", "pw"], "no certificate named nobody");
    d.refused(&["p12", "alice", "--out", "x.p12"], "--password-file");
}

fn csr(params: rcgen::CertificateParams) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = params.serialize_request(&key).unwrap();
    (csr.pem().unwrap(), key)
}

fn csr_params(cn: &str) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::OrganizationName, "Example");
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p
}

#[test]
fn sign_csr_keeps_the_users_key_and_refuses_what_a_client_must_not_have() {
    let d = Dir::quick_start("csr");
    let mut good = csr_params("dave");
    good.subject_alt_names
        .push(rcgen::SanType::URI("spiffe://example.org/ns/default/sa/dave".try_into().unwrap()));
    good.extended_key_usages.push(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let (pem, key) = csr(good);
    d.write("dave.csr", &pem);
    d.ok(&["sign-csr", "dave.csr", "--email", "dave@example.org"]);
    let dave_der = der(&d, "pki/issued/dave.pem");
    let dave = cert(&dave_der);
    assert_eq!(
        dave.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key),
        "the user's own key"
    );
    assert!(!d.path("pki/issued/dave.key").exists(), "the CA never had the key");
    assert_eq!(dave.subject().to_string(), "O=Example, CN=dave");
    assert_eq!(
        sans(&dave),
        ["URI(spiffe://example.org/ns/default/sa/dave)", "RFC822Name(dave@example.org)"]
    );
    assert_eq!(eku(&dave), (true, false, false));
    assert!(!dave.is_ca());
    dave.verify_signature(Some(cert(&der(&d, "pki/client-ca/ca.pem")).public_key()))
        .unwrap();

    // A request for a CA certificate.
    let mut ca = csr_params("sneaky");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    d.write("ca.csr", csr(ca).0);
    d.refused(&["sign-csr", "ca.csr"], "asks for a CA certificate");
    // A request for a server certificate.
    let mut server = csr_params("web");
    server.extended_key_usages.push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    d.write("server.csr", csr(server).0);
    d.refused(&["sign-csr", "server.csr"], "other than clientAuth");
    // A request altered after signing: the CN `dave` becomes `eve!`.
    let (pem, _) = csr(csr_params("dave"));
    let mut bytes = Pem::iter_from_buffer(pem.as_bytes()).next().unwrap().unwrap().contents;
    let at = bytes.windows(4).position(|w| w == b"dave").unwrap();
    bytes[at..at + 4].copy_from_slice(b"eve!");
    d.write("tampered.csr", &bytes);
    d.refused(&["sign-csr", "tampered.csr", "--name", "eve"], "signature does not verify");
    // Not a CSR at all, and one naming nobody.
    d.write("cert.csr", d.read("pki/issued/alice.pem"));
    d.refused(&["sign-csr", "cert.csr"], "not a CERTIFICATE REQUEST");
    let mut nobody = rcgen::CertificateParams::new(vec![]).unwrap();
    nobody.distinguished_name = rcgen::DistinguishedName::new();
    d.write("nobody.csr", csr(nobody).0);
    d.refused(&["sign-csr", "nobody.csr", "--name", "x"], "names nobody");
    for refused in ["sneaky", "web", "eve", "x"] {
        assert!(!d.path(&format!("pki/issued/{refused}.pem")).exists(), "{refused} was not signed");
    }
    let index = String::from_utf8(d.read("pki/client-ca/index.txt")).unwrap();
    assert_eq!(
        index.lines().filter(|l| !l.starts_with('#')).count(),
        2,
        "only alice and dave: {index}"
    );
}

#[test]
fn revoke_then_crl_publishes_the_serial_with_its_reason() {
    let d = Dir::quick_start("crl");
    d.ok(&["client", "bob"]);
    let alice_der = der(&d, "pki/issued/alice.pem");
    let alice = cert(&alice_der);
    let ca_der = der(&d, "pki/client-ca/ca.pem");
    let ca = cert(&ca_der);

    d.ok(&["revoke", "alice", "--reason", "keyCompromise"]);
    d.refused(&["revoke", "alice"], "revoked already");
    d.refused(&["revoke", "--serial", "0BADC0DE"], "serial 0BADC0DE is not in the index");
    d.ok(&["revoke", "--cert", "pki/issued/bob.pem", "--reason", "superseded"]);
    let out = d.ok(&["crl", "--ca", "client-ca", "--days", "7"]);
    assert!(out.contains("2 revoked"), "{out}");

    let crl_pem = d.read("pki/client-ca/crl.pem");
    let crl_der = Pem::iter_from_buffer(&crl_pem).next().unwrap().unwrap().contents;
    let (_, crl) = parse_x509_crl(&crl_der).unwrap();
    crl.verify_signature(ca.public_key()).expect("signed by the client CA");
    assert_eq!(crl.issuer(), ca.subject());
    assert_eq!(
        crl.crl_number().map(|n| n.to_string()),
        Some("2".into()),
        "the CRL at init was number 1"
    );
    let next = crl.next_update().unwrap().to_datetime() - crl.last_update().to_datetime();
    assert_eq!(next.whole_days(), 7);
    let revoked: Vec<_> = crl.iter_revoked_certificates().collect();
    assert_eq!(revoked.len(), 2);
    let entry = revoked
        .iter()
        .find(|r| r.raw_serial() == alice.raw_serial())
        .expect("alice is listed");
    assert_eq!(entry.reason_code().map(|(_, r)| r.0), Some(1), "keyCompromise");

    // The bundle for Envoy and `certgate serve` holds every CA's latest CRL.
    let bundle = d.read("pki/crls.pem");
    let blocks: Vec<_> = Pem::iter_from_buffer(&bundle).map(|p| p.unwrap().contents).collect();
    assert_eq!(blocks.len(), 2);
    assert!(blocks.contains(&crl_der));
    let index = String::from_utf8(d.read("pki/client-ca/index.txt")).unwrap();
    assert!(
        index
            .lines()
            .any(|l| l.starts_with("R\t") && l.contains("\tkeyCompromise\talice\t")),
        "{index}"
    );
}

/// `pki crl --sds`: the SDS file Envoy watches holds the CA bundle named and
/// every CRL, is replaced by a rename (a new inode, never rewritten in place),
/// and the trusted CAs are never guessed.
#[test]
fn crl_sds_writes_the_validation_secret_by_an_atomic_rename() {
    use std::os::unix::fs::MetadataExt;
    let d = Dir::quick_start("sds");
    d.refused(&["crl", "--sds", "pki/v.json"], "--trusted-ca");
    d.write("empty.pem", "");
    d.refused(
        &["crl", "--sds", "pki/v.json", "--trusted-ca", "empty.pem"],
        "empty.pem: no CERTIFICATE",
    );
    assert!(!d.path("pki/v.json").exists(), "nothing written for a refused bundle");

    let out = d.ok(&["crl", "--sds", "pki/v.json", "--trusted-ca", "pki/root-ca/ca.pem"]);
    assert!(out.contains("SDS secret certgate-client-validation"), "{out}");
    let read = || -> serde_json::Value { serde_json::from_slice(&d.read("pki/v.json")).unwrap() };
    let first = read();
    let secret = &first["resources"][0];
    assert_eq!(
        secret["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    );
    assert_eq!(secret["name"], "certgate-client-validation");
    let ca = secret["validation_context"]["trusted_ca"]["inline_string"].as_str().unwrap();
    assert_eq!(ca.as_bytes(), d.read("pki/root-ca/ca.pem").as_slice());
    let crls = secret["validation_context"]["crl"]["inline_string"].as_str().unwrap();
    assert_eq!(crls.as_bytes(), d.read("pki/crls.pem").as_slice());
    assert_eq!(Pem::iter_from_buffer(crls.as_bytes()).count(), 2, "one CRL per CA");
    let inode = std::fs::metadata(d.path("pki/v.json")).unwrap().ino();

    d.ok(&["revoke", "alice"]);
    d.ok(&[
        "crl",
        "--sds",
        "pki/v.json",
        "--trusted-ca",
        "pki/root-ca/ca.pem",
        "--sds-name",
        "edge-ca",
    ]);
    assert_ne!(
        std::fs::metadata(d.path("pki/v.json")).unwrap().ino(),
        inode,
        "replaced by a rename"
    );
    let second = read();
    assert_eq!(second["resources"][0]["name"], "edge-ca");
    assert_ne!(
        second["resources"][0]["validation_context"]["crl"], secret["validation_context"]["crl"],
        "the new CRL is in"
    );
    let leftovers: Vec<_> = std::fs::read_dir(d.path("pki"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".certgate-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file left");
}

#[test]
fn an_encrypted_ca_key_needs_its_passphrase_and_an_offline_root_is_not_needed_every_day() {
    let d = Dir::new("enc");
    d.write("root-pw", "root secret\n");
    d.write("wrong", "guess\n");
    d.ok(&["init-root", "--ca-password-file", "root-pw"]);
    let key = String::from_utf8(d.read("pki/root-ca/ca.key")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"), "{key}");
    let o = Command::new("openssl")
        .args(["pkey", "-in", "pki/root-ca/ca.key", "-passin", "file:root-pw", "-noout"])
        .current_dir(d.root())
        .output()
        .unwrap();
    assert!(o.status.success(), "OpenSSL reads the encrypted key: {}", text(&o));

    d.refused(&["init-client-ca"], "give --root-password-file");
    d.refused(&["init-client-ca", "--root-password-file", "wrong"], "wrong passphrase");
    assert!(!d.path("pki/client-ca").exists(), "nothing was created");
    d.ok(&["init-client-ca", "--root-password-file", "root-pw"]);

    // The root key goes offline: clients and the client CA's CRL still work.
    std::fs::rename(d.path("pki/root-ca/ca.key"), d.path("root-ca.key.offline")).unwrap();
    d.ok(&["client", "carol"]);
    let out = d.ok(&["crl"]);
    assert!(out.contains("skipped root-ca"), "{out}");
    d.refused(&["server", "www"], "cannot sign without its key");
}

#[test]
fn bad_input_names_what_is_wrong() {
    let d = Dir::quick_start("bad");
    d.refused(&["client", "x", "--ca", "nosuch"], "no CA named nosuch");
    d.refused(
        &["client", "x", "--spiffe", "spiffe://Example.org/x"],
        "not a SPIFFE ID: the trust domain has a character other than lowercase",
    );
    d.refused(
        &["client", "x", "--spiffe", "spiffe://example.org/ns/prod/sa/.."],
        "not a SPIFFE ID: a path segment is `.` or `..`",
    );
    d.refused(&["client", "x", "--email", "nobody"], "not a mailbox");
    d.refused(&["client", "x", "--dns", "*.example.org"], "a wildcard is not a client's name");
    d.refused(&["client", "x", "--serial", "xyz"], "serial \"xyz\"");
    d.refused(&["client", "x", "--not-before", "2030-01-02", "--not-after", "2030-01-01"], "ends");
    d.refused(&["client", "../escape"], "certificate name");
    d.refused(&["client", "x", "--no-cn"], "needs a --cn or at least one SAN");
    d.refused(&["server", "web", "--ca", "client-ca"], "signs client certificates only");
    d.refused(&["init-client-ca", "--name", "second", "--days", "4000"], "would outlive its root");
    let serial = serial_hex(&cert(&der(&d, "pki/issued/alice.pem")));
    d.refused(&["client", "x", "--serial", &serial], "already issued serial");
    for x in ["x.pem", "x.key", "x-chain.pem"] {
        assert!(!d.path(&format!("pki/issued/{x}")).exists(), "{x} was not written");
    }
    d.write("pki/client-ca/index.txt", "V\tnot-hex\n");
    d.refused(&["client", "y"], "index.txt: line 1");
}

/// A directory served over HTTP on loopback (Python's `http.server`), for
/// `openssl verify -crl_download`; stopped on drop.
struct Served(std::process::Child);

impl Served {
    fn start(dir: &Path, port: u16) -> Served {
        let child = Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < std::time::Duration::from_secs(10), "http.server did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Served(child)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn crl_urls(c: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for ext in c.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for point in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                    out.extend(names.iter().filter_map(|n| match n {
                        GeneralName::URI(u) => Some((*u).to_owned()),
                        _ => None,
                    }));
                }
            }
        }
    }
    out
}

/// `openssl verify -crl_check -crl_download` on a client certificate, with
/// the root trusted and the client CA as the intermediate.
fn openssl_verify(d: &Dir, leaf: &str) -> String {
    let out = Command::new("openssl")
        .args([
            "verify",
            "-crl_check",
            "-crl_download",
            "-CAfile",
            "pki/root-ca/ca.pem",
            "-untrusted",
            "pki/client-ca/ca.pem",
            leaf,
        ])
        .current_dir(d.root())
        .output()
        .unwrap();
    text(&out)
}

#[test]
fn crl_urls_go_into_what_a_ca_signs_and_openssl_follows_them() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = |file: &str| format!("http://127.0.0.1:{port}/{file}");
    let d = Dir::new("crl-url");
    d.refused(&["init-root", "--crl-url", "ftp://x/crl"], "give an http:// URL");
    d.refused(&["init-root", "--crl-url", "http://a b/crl"], "give an http:// URL");
    assert!(!d.path("pki/root-ca").exists(), "nothing written for a bad URL");
    d.ok(&["init-root", "--org", "Example", "--crl-url", &url("root.crl")]);
    d.ok(&["init-client-ca", "--org", "Example", "--crl-url", &url("client.crl")]);
    d.ok(&["client", "alice"]);
    let out = d.ok(&["crl"]);
    assert!(
        out.contains(&format!("publish pki/client-ca/crl.der at {}", url("client.crl"))),
        "{out}"
    );

    // each certificate names its issuer's CRL; a root names none
    assert_eq!(crl_urls(&cert(&der(&d, "pki/issued/alice.pem"))), [url("client.crl")]);
    assert_eq!(crl_urls(&cert(&der(&d, "pki/client-ca/ca.pem"))), [url("root.crl")]);
    assert!(crl_urls(&cert(&der(&d, "pki/root-ca/ca.pem"))).is_empty());
    let shown = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", "pki/issued/alice.pem"])
        .current_dir(d.root())
        .output()
        .unwrap();
    let shown = text(&shown);
    assert!(
        shown.contains("X509v3 CRL Distribution Points") && shown.contains(&format!("URI:{}", url("client.crl"))),
        "{shown}"
    );

    // openssl fetches the CRL from the URL: valid, then revoked
    let www = d.path("www");
    std::fs::create_dir_all(&www).unwrap();
    let publish = || std::fs::copy(d.path("pki/client-ca/crl.der"), www.join("client.crl")).unwrap();
    publish();
    let _server = Served::start(&www, port);
    let before = openssl_verify(&d, "pki/issued/alice.pem");
    assert!(before.contains("pki/issued/alice.pem: OK"), "{before}");
    d.ok(&["revoke", "alice", "--reason", "keyCompromise"]);
    d.ok(&["crl", "--ca", "client-ca"]);
    publish();
    let after = openssl_verify(&d, "pki/issued/alice.pem");
    assert!(after.contains("certificate revoked"), "{after}");

    // a later URL goes into what is signed from then on; alice keeps hers
    d.ok(&["set-crl-url", "client-ca", &url("client-v2.crl")]);
    d.refused(&["set-crl-url", "client-ca", "not a url"], "give an http:// URL");
    d.ok(&["client", "bob"]);
    assert_eq!(crl_urls(&cert(&der(&d, "pki/issued/bob.pem"))), [url("client-v2.crl")]);
    assert_eq!(crl_urls(&cert(&der(&d, "pki/issued/alice.pem"))), [url("client.crl")]);
}

#[test]
fn renewing_a_ca_keeps_its_key_and_subject_and_asks_only_for_the_key_it_needs() {
    let d = Dir::quick_start("renew");
    let old_client_ca = der(&d, "pki/client-ca/ca.pem");
    let old_root = der(&d, "pki/root-ca/ca.pem");
    let today = d.ok(&["renew", "client-ca", "--days", "400"]);
    assert!(today.contains("kept the old certificate as pki/client-ca/ca.pem."), "{today}");
    let kept: Vec<_> = std::fs::read_dir(d.path("pki/client-ca"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ca.pem."))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        der(&d, &format!("pki/client-ca/{}", kept[0])),
        old_client_ca,
        "the old certificate is kept as it was"
    );
    let new_der = der(&d, "pki/client-ca/ca.pem");
    let (old, new) = (cert(&old_client_ca), cert(&new_der));
    assert_eq!(new.subject().as_raw(), old.subject().as_raw(), "the same subject, byte for byte");
    assert_eq!(new.public_key().raw, old.public_key().raw, "the same key");
    assert_ne!(new.raw_serial(), old.raw_serial(), "a new serial");
    assert_eq!(days(&new), 400);
    assert_eq!(eku(&new), eku(&old), "the same extended key usage");
    assert_eq!(new.basic_constraints().unwrap(), old.basic_constraints().unwrap());
    assert_eq!(
        new.key_usage().unwrap().map(|k| k.value.flags),
        old.key_usage().unwrap().map(|k| k.value.flags)
    );
    new.verify_signature(Some(cert(&old_root).public_key()))
        .expect("signed by the root");
    // alice, signed before, verifies against the renewed client CA
    cert(&der(&d, "pki/issued/alice.pem"))
        .verify_signature(Some(new.public_key()))
        .expect("alice still verifies");

    // the client CA's own key is not needed to renew it; the root's is
    std::fs::rename(d.path("pki/client-ca/ca.key"), d.path("client-ca.key.away")).unwrap();
    d.ok(&["renew", "client-ca", "--days", "300"]);
    std::fs::rename(d.path("pki/root-ca/ca.key"), d.path("root-ca.key.away")).unwrap();
    d.refused(&["renew", "client-ca"], "cannot sign without its key");
    d.refused(&["renew", "root-ca"], "cannot sign without its key");
    std::fs::rename(d.path("root-ca.key.away"), d.path("pki/root-ca/ca.key")).unwrap();
    d.refused(&["renew", "client-ca", "--days", "4000"], "would outlive its root");
    let root = d.ok(&["renew", "root-ca"]);
    assert!(root.contains("give pki/root-ca/ca.pem to every verifier"), "{root}");
    let renewed_der = der(&d, "pki/root-ca/ca.pem");
    let renewed_root = cert(&renewed_der);
    assert_eq!(renewed_root.subject().as_raw(), cert(&old_root).subject().as_raw());
    assert_eq!(days(&renewed_root), 3650);
    renewed_root.verify_signature(None).expect("self-signed with the same key");
    d.refused(&["renew", "nosuch"], "no CA named nosuch");
}

#[test]
fn an_encrypted_root_key_asks_for_its_passphrase_to_renew() {
    let d = Dir::new("renew-pw");
    d.write("root-pw", "correct horse\n");
    d.ok(&["init-root", "--ca-password-file", "root-pw"]);
    d.ok(&["init-client-ca", "--root-password-file", "root-pw"]);
    d.refused(&["renew", "client-ca"], "--ca-password-file");
    d.ok(&["renew", "client-ca", "--ca-password-file", "root-pw"]);
    d.ok(&["renew", "root-ca", "--ca-password-file", "root-pw"]);
}

#[test]
fn list_shows_what_was_issued_and_its_exit_status_tells_cron() {
    let d = Dir::quick_start("list");
    d.ok(&["client", "bob", "--days", "10"]);
    d.ok(&["client", "old", "--not-before", "2020-01-01", "--not-after", "2021-01-01"]);
    d.ok(&["revoke", "alice", "--reason", "superseded"]);
    let table = d.ok(&["list"]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name} in {table}"))
            .to_owned()
    };
    assert!(table.lines().next().unwrap().starts_with("CA"), "{table}");
    assert!(
        row("alice").contains("revoked ") && row("alice").contains("(superseded)"),
        "{table}"
    );
    assert!(
        row("bob").contains(" valid") && (row("bob").contains(" 9 ") || row("bob").contains(" 10 ")),
        "{table}"
    );
    assert!(row("old").contains("expired"), "{table}");
    assert!(row("root-ca").starts_with("root-ca"), "the root lists itself: {table}");

    // --expiring: the valid ones ending within the window, and exit 1
    let out = d.pki(&["list", "--expiring", "30"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("bob") && !t.contains("alice") && !t.contains(" old "), "{t}");
    let out = d.pki(&["list", "--expiring", "5"]);
    assert_eq!(out.status.code(), Some(0), "nothing ends within 5 days: {}", text(&out));

    // --json for scripts
    let json: serde_json::Value = serde_json::from_slice(&d.pki(&["list", "--json", "--ca", "client-ca"]).stdout).unwrap();
    let certs = json["certificates"].as_array().unwrap();
    let alice = certs.iter().find(|c| c["name"] == "alice").unwrap();
    assert_eq!(
        (alice["status"].as_str(), alice["reason"].as_str()),
        (Some("revoked"), Some("superseded"))
    );
    assert!(alice["revoked_at"].as_str().is_some() && alice["days_left"].as_i64().unwrap() > 300);
    assert!(certs.iter().all(|c| c["ca"] == "client-ca"));

    // a hand-edited line is named, and the rest still listed; exit 2
    let index = String::from_utf8(d.read("pki/client-ca/index.txt")).unwrap();
    d.write(
        "pki/client-ca/index.txt",
        format!("{index}V\tnot-hex\t2030-01-01T00:00:00Z\t-\t-\tx\tCN=x\n"),
    );
    let out = d.pki(&["list"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    let lines = index.lines().count() + 1;
    assert!(
        t.contains(&format!("index.txt: line {lines}: serial \"not-hex\" is not hex")),
        "{t}"
    );
    assert!(t.contains("bob"), "the readable entries are listed: {t}");
}

/// `TOKEN=$(certgate pki token ... | head -1)`: the reader stops after the
/// first line; the command must still succeed, not panic on the closed pipe.
#[test]
fn a_reader_that_stops_reading_is_not_an_error() {
    let d = Dir::new("broken-pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_certgate"))
        .args(["pki", "init-root"])
        .current_dir(d.root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the read end closed before the command writes a line
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert!(d.path("pki/root-ca/ca.pem").is_file(), "the work is done");
}
