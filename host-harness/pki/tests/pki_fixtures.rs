//! The test PKI: the committed files and a fresh regeneration both hold the
//! certificates the other tests rely on, signed by the right keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use certgate_pki::{fixture_set, CLIENTS};
use x509_parser::prelude::*;

fn committed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pki")
}

fn der_of(dir: &Path, name: &str) -> Vec<u8> {
    let text = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text).unwrap();
    pem.contents
}

fn files_in(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in walk(dir) {
        out.insert(entry.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn cn(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name().next().map(|a| a.as_str().unwrap().to_owned())
}

/// Checks every promise the fixture set makes.
fn check(dir: &Path) {
    let root = der_of(dir, "root-ca.pem");
    let client_ca = der_of(dir, "client-ca.pem");
    let partner_ca = der_of(dir, "partner-ca.pem");
    let mallory_ca = der_of(dir, "mallory-ca.pem");
    let (_, root) = parse_x509_certificate(&root).unwrap();
    let (_, client_ca) = parse_x509_certificate(&client_ca).unwrap();
    let (_, partner_ca) = parse_x509_certificate(&partner_ca).unwrap();
    let (_, mallory_ca) = parse_x509_certificate(&mallory_ca).unwrap();

    root.verify_signature(None).expect("root is self-signed");
    client_ca.verify_signature(Some(root.public_key())).expect("client CA signed by root");
    assert!(client_ca.is_ca());
    assert_eq!(client_ca.basic_constraints().unwrap().unwrap().value.path_len_constraint, Some(0));
    // the look-alike CA has our client CA's name and another key
    assert_eq!(mallory_ca.subject(), client_ca.subject());
    assert_ne!(mallory_ca.public_key().raw, client_ca.public_key().raw);

    let server = der_of(dir, "server.pem");
    let (_, server) = parse_x509_certificate(&server).unwrap();
    server.verify_signature(Some(root.public_key())).unwrap();
    let sans: Vec<String> = server
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|g| g.to_string())
        .collect();
    assert!(sans.iter().any(|s| s.contains("localhost")), "{sans:?}");
    assert!(sans.iter().any(|s| s.contains("7f:00:00:01")), "127.0.0.1 in {sans:?}");

    let far_future = ASN1Time::from_timestamp(3_000_000_000).unwrap(); // 2065
    let today = ASN1Time::from_timestamp(1_795_305_600).unwrap(); // 2026-11-22
    for name in CLIENTS {
        let der = der_of(dir, &format!("{name}.pem"));
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        let issuer = match *name {
            "carol" => &partner_ca,
            "mallory" => &mallory_ca,
            _ => &client_ca,
        };
        cert.verify_signature(Some(issuer.public_key())).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        if *name != "mallory" {
            assert!(cert.verify_signature(Some(mallory_ca.public_key())).is_err(), "{name}");
        }
        assert!(!cert.is_ca(), "{name}");
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth, "{name}");
        let v = cert.validity();
        match *name {
            "expired" => assert!(v.not_after < today),
            "not-yet-valid" => assert!(v.not_before > far_future),
            _ => assert!(v.not_before < today && v.not_after > far_future, "{name} must outlive the tests"),
        }
        let key = std::fs::read_to_string(dir.join(format!("{name}.key"))).unwrap();
        assert!(key.contains("PRIVATE KEY"), "{name}.key");
        let chain = std::fs::read_to_string(dir.join(format!("{name}-chain.pem"))).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{name}-chain.pem");
    }
    let alice = der_of(dir, "alice.pem");
    let (_, alice) = parse_x509_certificate(&alice).unwrap();
    assert_eq!(cn(alice.subject()).as_deref(), Some("alice"));
    let no_cn = der_of(dir, "no-cn.pem");
    assert_eq!(cn(parse_x509_certificate(&no_cn).unwrap().1.subject()), None);
    let uni = der_of(dir, "unicode.pem");
    assert!(!cn(parse_x509_certificate(&uni).unwrap().1.subject()).unwrap().is_ascii());

    // the CRL, signed by the client CA, lists `revoked` and nobody else
    let crl_text = std::fs::read(dir.join("client-ca.crl.pem")).unwrap();
    let (_, crl_pem) = x509_parser::pem::parse_x509_pem(&crl_text).unwrap();
    let (_, crl) = parse_x509_crl(&crl_pem.contents).unwrap();
    crl.verify_signature(client_ca.public_key()).unwrap();
    let revoked = der_of(dir, "revoked.pem");
    let (_, revoked) = parse_x509_certificate(&revoked).unwrap();
    let listed: Vec<&[u8]> = crl.iter_revoked_certificates().map(|r| r.raw_serial()).collect();
    assert_eq!(listed, vec![revoked.raw_serial()]);
    assert!(crl.next_update().unwrap() > far_future);

    for (name, issuer) in [("root-ca.crl.pem", &root), ("partner-ca.crl.pem", &partner_ca)] {
        let text = std::fs::read(dir.join(name)).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&text).unwrap();
        let (_, crl) = parse_x509_crl(&pem.contents).unwrap();
        crl.verify_signature(issuer.public_key()).unwrap();
        assert_eq!(crl.iter_revoked_certificates().count(), 0, "{name}");
    }
    let crls = std::fs::read_to_string(dir.join("crls.pem")).unwrap();
    assert_eq!(crls.matches("BEGIN X509 CRL").count(), 3);

    let bundle = std::fs::read_to_string(dir.join("trusted-client-cas.pem")).unwrap();
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 3);
    assert!(dir.join("offline/root-ca.key").exists());
    assert!(!dir.join("root-ca.key").exists(), "the root key is kept apart");
}

#[test]
fn committed_fixtures_keep_their_promises() {
    check(&committed_dir());
}

#[test]
fn regenerated_fixtures_keep_the_same_promises_and_files() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let set = fixture_set().unwrap();
    set.write_to(dir).unwrap();
    check(&dir.join("pki"));
    assert_eq!(files_in(&dir.join("pki")), files_in(&committed_dir()), "regenerate with `certgate pki fixtures`");
    let crafted = |d: &Path| -> BTreeSet<String> { files_in(d).into_iter().filter(|f| !f.starts_with("xfcc-")).collect() };
    assert_eq!(crafted(&dir.join("bad-input")), crafted(&committed_dir().join("../bad-input")));
}
