//! One function per `certgate pki` subcommand. Each checks everything it can
//! before it writes anything, and returns the lines to show the user.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, PublicKeyData, RevokedCertParams, SerialNumber,
};
use time::Duration;

use super::index::{timestamp, Entry, IssuedBy, Reason};
use super::keys::{key_pem, load_key, write_atomically, write_new, KeyKind, Passphrase};
use super::p12::{self, Protection};
use super::profile::{self, Sans, Subject, Validity};
use super::store::{cert_file, check_name, parse_cert, Ca, Home, CERT_FILE, KEY_FILE};
use super::{csr, PkiError};

/// What a subcommand did, line by line.
pub type Report = Vec<String>;

/// A new CA.
#[derive(Debug, Clone)]
pub struct CaSpec {
    /// The CA's directory name.
    pub name: String,
    /// Its subject.
    pub subject: Subject,
    /// Its validity.
    pub validity: Validity,
    /// Its key's algorithm.
    pub key: KeyKind,
    /// A fixed serial in hex; `None` for a random one.
    pub serial: Option<String>,
    /// Encrypt the CA key under this passphrase.
    pub encrypt: Option<Passphrase>,
    /// Days until the first (empty) CRL's next update.
    pub crl_days: u32,
    /// Where this CA's CRL will be published: every certificate it signs names it.
    pub crl_url: Option<String>,
}

/// A new server or client certificate.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Its file name under `issued/`.
    pub name: String,
    /// Its subject.
    pub subject: Subject,
    /// Its SANs.
    pub sans: Sans,
    /// Its validity.
    pub validity: Validity,
    /// Its key's algorithm.
    pub key: KeyKind,
    /// A fixed serial in hex; `None` for a random one.
    pub serial: Option<String>,
    /// Replace existing files of the same name.
    pub force: bool,
}

/// Which certificate to revoke.
#[derive(Debug, Clone)]
pub enum Target {
    /// By serial, in hex.
    Serial(String),
    /// By file name under `issued/`.
    Name(String),
    /// By certificate file.
    Cert(PathBuf),
}

fn serial_of(spec: Option<&str>) -> Result<SerialNumber, PkiError> {
    match spec {
        Some(hex) => profile::serial_from_hex(hex),
        None => profile::random_serial(),
    }
}

/// The index line of a certificate just signed from `params`.
pub(crate) fn entry_for(params: &CertificateParams, name: &str, cert_der: &[u8], issued_by: IssuedBy) -> Result<Entry, PkiError> {
    let cert = parse_cert(Path::new(name), cert_der)?;
    Ok(Entry {
        serial: params.serial_number.as_ref().map(profile::serial_hex).unwrap_or_default(),
        not_after: params.not_after,
        revoked: None,
        name: name.to_owned(),
        subject: cert.subject().to_string(),
        issued_by,
    })
}

fn init_ca(home: &Home, spec: &CaSpec, parent: Option<(&Ca, &Issuer<'_, KeyPair>)>) -> Result<Report, PkiError> {
    check_name("CA name", &spec.name)?;
    let ca_dir = home.ca_dir(&spec.name);
    if ca_dir.join(CERT_FILE).exists() || ca_dir.join(KEY_FILE).exists() {
        return Err(PkiError::Conflict(format!(
            "{} already holds a CA: init never replaces one, not even with --force (move the directory away to start over)",
            ca_dir.display()
        )));
    }
    if spec.subject.is_empty() {
        return Err(PkiError::Usage(format!("CA {}: give it a name with --cn", spec.name)));
    }
    if let Some(url) = &spec.crl_url {
        profile::check_crl_url(url)?;
    }
    let serial = serial_of(spec.serial.as_deref())?;
    let params = match parent {
        None => profile::root_ca(spec.subject.to_dn(), spec.validity, serial),
        // the root's CRL lists this CA if it is ever revoked
        Some((parent_ca, _)) => profile::with_crl_url(
            profile::client_ca(spec.subject.to_dn(), spec.validity, serial),
            parent_ca.crl_url()?.as_deref(),
        ),
    };
    let passphrase = match &spec.encrypt {
        Some(p) => Some(p.get(&format!("the new key of CA {}", spec.name), true)?),
        None => None,
    };
    let key = spec.key.generate(&spec.name)?;
    let cert = match parent {
        None => params.self_signed(&key),
        Some((_, issuer)) => params.signed_by(&key, issuer),
    }
    .map_err(PkiError::cert(&spec.name))?;
    let mut report = Vec::new();
    if let Some((parent_ca, _)) = parent {
        parent_ca.record(entry_for(&params, &spec.name, cert.der(), IssuedBy::Cli)?, &cert.pem())?;
        report.push(format!("recorded {} in {}", spec.name, parent_ca.index_path().display()));
    }
    let key_path = ca_dir.join(KEY_FILE);
    write_new(&key_path, key_pem(&key, passphrase.as_deref())?.as_bytes(), false, true)?;
    let cert_path = ca_dir.join(CERT_FILE);
    write_new(&cert_path, cert.pem().as_bytes(), false, false)?;
    let ca = home.open_ca(&spec.name)?;
    ca.save_index(&Default::default())?;
    if let Some(url) = &spec.crl_url {
        report.push(format!(
            "wrote {} (certificates it signs name {url} as where its CRL is)",
            ca.set_crl_url(url)?.display()
        ));
    }
    let issuer = Issuer::new(params, key);
    let crl = write_crl(home, &ca, &issuer, spec.crl_days)?;
    report.push(format!("wrote {} (the CA certificate)", cert_path.display()));
    report.push(format!(
        "wrote {} (its private key, mode 0600{})",
        key_path.display(),
        if passphrase.is_some() { ", encrypted" } else { "" }
    ));
    report.push(format!("wrote {crl}"));
    Ok(report)
}

/// `pki init-root`: a self-signed root CA.
pub fn init_root(home: &Home, spec: &CaSpec) -> Result<Report, PkiError> {
    let mut report = init_ca(home, spec, None)?;
    report.push(format!(
        "next: `certgate pki init-client-ca --root {}`, then move {}/ca.key offline",
        spec.name,
        home.ca_dir(&spec.name).display()
    ));
    Ok(report)
}

/// `pki init-client-ca`: an intermediate signed by a root, for everyday issuing.
pub fn init_client_ca(home: &Home, spec: &CaSpec, root: &str, root_pass: &Passphrase) -> Result<Report, PkiError> {
    let parent = home.open_ca(root)?;
    let issuer = parent.issuer(root_pass)?;
    let facts = parent.facts()?;
    if spec.validity.not_after > facts.not_after {
        return Err(PkiError::Conflict(format!(
            "CA {} would outlive its root {} (valid until {}): give fewer --days",
            spec.name,
            root,
            timestamp(facts.not_after)
        )));
    }
    init_ca(home, spec, Some((&parent, &issuer)))
}

/// What a leaf is signed from: a key generated here, or a user's CSR.
enum LeafKey {
    Generated(Box<KeyPair>),
    Requested(rcgen::SubjectPublicKeyInfo),
}

fn issue_leaf(
    home: &Home,
    ca: &Ca,
    issuer: &Issuer<'_, KeyPair>,
    name: &str,
    params: &CertificateParams,
    key: LeafKey,
    force: bool,
) -> Result<Report, PkiError> {
    let cert_path = home.issued(&format!("{name}.pem"));
    let chain_path = home.issued(&format!("{name}-chain.pem"));
    let key_path = home.issued(&format!("{name}.key"));
    let mut targets = vec![&cert_path, &chain_path];
    if matches!(key, LeafKey::Generated(_)) {
        targets.push(&key_path);
    }
    if !force {
        if let Some(existing) = targets.iter().find(|p| p.exists()) {
            return Err(PkiError::Exists { path: (*existing).clone() });
        }
    }
    let mut report = Vec::new();
    let facts = ca.facts()?;
    if params.not_after > facts.not_after {
        report.push(format!(
            "warning: {name} is valid until {}, after its CA {} ({}): verifiers refuse it from then on",
            timestamp(params.not_after),
            ca.name,
            timestamp(facts.not_after)
        ));
    }
    let params = &profile::with_crl_url(params.clone(), ca.crl_url()?.as_deref());
    let cert = match &key {
        LeafKey::Generated(k) => params.signed_by(k.as_ref(), issuer),
        LeafKey::Requested(k) => params.signed_by(k, issuer),
    }
    .map_err(PkiError::cert(name))?;
    ca.record(entry_for(params, name, cert.der(), IssuedBy::Cli)?, &cert.pem())?;
    if let LeafKey::Generated(k) = &key {
        write_new(&key_path, k.serialize_pem().as_bytes(), force, true)?;
        report.push(format!("wrote {} (private key, mode 0600)", key_path.display()));
    }
    write_new(&cert_path, cert.pem().as_bytes(), force, false)?;
    write_new(&chain_path, format!("{}{}", cert.pem(), ca.cert_pem).as_bytes(), force, false)?;
    let serial = params.serial_number.as_ref().map(profile::serial_hex).unwrap_or_default();
    report.push(format!(
        "wrote {} (serial {serial}, signed by {}, valid until {})",
        cert_path.display(),
        ca.name,
        timestamp(params.not_after)
    ));
    report.push(format!(
        "wrote {} (certificate + issuing CA: what a TLS peer sends)",
        chain_path.display()
    ));
    Ok(report)
}

/// `pki server`: a TLS server certificate.
pub fn server(home: &Home, ca_name: &str, pass: &Passphrase, spec: &LeafSpec) -> Result<Report, PkiError> {
    check_name("certificate name", &spec.name)?;
    let ca = home.open_ca(ca_name)?;
    if ca.facts()?.client_only {
        return Err(PkiError::Conflict(format!(
            "CA {ca_name} signs client certificates only (its extended key usage is clientAuth): sign servers with the root, e.g. --ca root-ca"
        )));
    }
    let params = profile::server(spec.subject.to_dn(), &spec.sans, spec.validity, serial_of(spec.serial.as_deref())?)?;
    let issuer = ca.issuer(pass)?;
    issue_leaf(
        home,
        &ca,
        &issuer,
        &spec.name,
        &params,
        LeafKey::Generated(Box::new(spec.key.generate(&spec.name)?)),
        spec.force,
    )
}

/// `pki client`: a client certificate with a key generated here.
pub fn client(home: &Home, ca_name: &str, pass: &Passphrase, spec: &LeafSpec) -> Result<Report, PkiError> {
    check_name("certificate name", &spec.name)?;
    let ca = home.open_ca(ca_name)?;
    let params = profile::client(spec.subject.to_dn(), &spec.sans, spec.validity, serial_of(spec.serial.as_deref())?)?;
    let issuer = ca.issuer(pass)?;
    issue_leaf(
        home,
        &ca,
        &issuer,
        &spec.name,
        &params,
        LeafKey::Generated(Box::new(spec.key.generate(&spec.name)?)),
        spec.force,
    )
}

/// What `pki sign-csr` is asked to sign, beside the CSR's own subject,
/// names and key.
#[derive(Debug, Clone)]
pub struct CsrSpec<'a> {
    /// The CSR file (PEM or DER).
    pub csr: &'a Path,
    /// Its file name under `issued/`; `None`: the CSR's CN.
    pub name: Option<&'a str>,
    /// Names added to the CSR's.
    pub extra: Sans,
    /// Its validity.
    pub validity: Validity,
    /// A fixed serial in hex; `None` for a random one.
    pub serial: Option<&'a str>,
    /// Replace existing files of the same name.
    pub force: bool,
}

/// `pki sign-csr`: a client certificate for a key the user keeps. The CSR
/// gives the subject, names and key; `extra` adds names; the CA sets the rest.
pub fn sign_csr(home: &Home, ca_name: &str, pass: &Passphrase, spec: &CsrSpec<'_>) -> Result<Report, PkiError> {
    let CsrSpec {
        csr: csr_path,
        name,
        ref extra,
        validity,
        serial,
        force,
    } = *spec;
    let data = fs::read(csr_path).map_err(PkiError::read(csr_path))?;
    let request = csr::check(&data).map_err(|cause| PkiError::CsrRefused {
        path: csr_path.to_owned(),
        cause,
    })?;
    let name = match (name, &request.cn) {
        (Some(n), _) => n.to_owned(),
        (None, Some(cn)) if check_name("", cn).is_ok() => cn.clone(),
        _ => return Err(PkiError::Usage("the CSR's CN cannot be a file name: give --name".into())),
    };
    check_name("certificate name", &name)?;
    let ca = home.open_ca(ca_name)?;
    let mut sans = request.sans.clone();
    sans.dns.extend(extra.dns.iter().cloned());
    sans.ips.extend(extra.ips.iter().copied());
    sans.uris.extend(extra.uris.iter().cloned());
    sans.emails.extend(extra.emails.iter().cloned());
    let params = profile::client(request.subject.clone(), &sans, validity, serial_of(serial)?)?;
    let issuer = ca.issuer(pass)?;
    let mut report: Report = request
        .ignored
        .iter()
        .map(|e| format!("note: the CSR's requested extension {e} was not copied"))
        .collect();
    report.extend(issue_leaf(
        home,
        &ca,
        &issuer,
        &name,
        &params,
        LeafKey::Requested(request.public_key),
        force,
    )?);
    Ok(report)
}

/// Signs and writes a CA's CRL from its index, then the bundle of all CRLs.
fn write_crl(home: &Home, ca: &Ca, issuer: &Issuer<'_, KeyPair>, days: u32) -> Result<String, PkiError> {
    let index = ca.index()?;
    let now = profile::now();
    let mut revoked_certs = Vec::new();
    for (entry, at, reason) in index.revoked() {
        revoked_certs.push(RevokedCertParams {
            serial_number: profile::serial_from_hex(&entry.serial)?,
            revocation_time: at,
            reason_code: Some(reason.to_rcgen()),
            invalidity_date: None,
        });
    }
    let count = revoked_certs.len();
    let number = ca.next_crl_number()?;
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + Duration::days(i64::from(days)),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(issuer).map_err(PkiError::cert(&ca.name))?;
    let pem = crl.pem().map_err(PkiError::cert(&ca.name))?;
    write_atomically(&ca.crl_path(), pem.as_bytes())?;
    write_atomically(&ca.crl_der_path(), crl.der())?;
    let bundle = home.rebuild_crl_bundle()?;
    let publish = match ca.crl_url()? {
        Some(url) => format!("; publish {} at {url} (the URL its certificates name)", ca.crl_der_path().display()),
        None => String::new(),
    };
    Ok(format!(
        "{} (CRL number {number}, {count} revoked, next update {}) and {}{publish}",
        ca.crl_path().display(),
        timestamp(params.next_update),
        bundle.display()
    ))
}

/// `pki crl`: re-signs the CRL of one CA, or of every CA whose key is here.
pub fn crl(home: &Home, ca_name: Option<&str>, days: u32, pass: &Passphrase) -> Result<Report, PkiError> {
    let names = match ca_name {
        Some(n) => vec![n.to_owned()],
        None => home.ca_names(),
    };
    if names.is_empty() {
        return Err(PkiError::NotFound(format!("no CA under {}: nothing to sign", home.dir.display())));
    }
    let mut report = Vec::new();
    for name in names {
        let ca = home.open_ca(&name)?;
        if ca_name.is_none() && !ca.key_path().exists() {
            report.push(format!("skipped {name}: its key is not here (offline?); its CRL stays as it was"));
            continue;
        }
        let issuer = ca.issuer(pass)?;
        report.push(format!("wrote {}", write_crl(home, &ca, &issuer, days)?));
    }
    Ok(report)
}

/// The subject certgate wrote into a CA certificate, read back (C, O, OU, CN).
fn subject_of(path: &Path, cert: &x509_parser::certificate::X509Certificate<'_>) -> Result<Subject, PkiError> {
    use x509_parser::oid_registry::{
        OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME, OID_X509_ORGANIZATIONAL_UNIT, OID_X509_ORGANIZATION_NAME,
    };
    let mut subject = Subject::default();
    for attr in cert.subject().iter_attributes() {
        let value = attr
            .as_str()
            .map_err(|_| PkiError::bad_file(path, "its subject holds a value that is not text"))?
            .to_owned();
        let slot = match attr.attr_type() {
            t if *t == OID_X509_COMMON_NAME => &mut subject.cn,
            t if *t == OID_X509_ORGANIZATION_NAME => &mut subject.org,
            t if *t == OID_X509_ORGANIZATIONAL_UNIT => &mut subject.ou,
            t if *t == OID_X509_COUNTRY_NAME => &mut subject.country,
            t => {
                return Err(PkiError::bad_file(
                    path,
                    format!("its subject has an attribute ({t}) certgate does not write: renew it with the tool that made it"),
                ))
            }
        };
        *slot = Some(value);
    }
    Ok(subject)
}

/// `pki renew CA`: a new certificate for the CA's own key and subject, with
/// a new validity and serial and the same extensions, so every certificate
/// it signed before keeps verifying. A root signs its own (its key is
/// needed); a client CA is signed by its root (the root's key is needed, not
/// the client CA's). The old certificate stays beside it as `ca.pem.<date>`.
pub fn renew(home: &Home, ca_name: &str, validity: Validity, serial: Option<&str>, pass: &Passphrase) -> Result<Report, PkiError> {
    let ca = home.open_ca(ca_name)?;
    let path = ca.cert_path();
    let old = parse_cert(&path, &ca.cert_der)?;
    let subject = subject_of(&path, &old)?;
    let serial = serial_of(serial)?;
    let mut report = Vec::new();
    let cert = if ca.facts()?.self_signed {
        let issuer = ca.issuer(pass)?;
        profile::root_ca(subject.to_dn(), validity, serial.clone())
            .self_signed(issuer.key())
            .map_err(PkiError::cert(ca_name))?
    } else {
        // its issuer: the root in this home with that subject
        let mut roots = Vec::new();
        for candidate in home.cas_named(old.issuer())? {
            let facts = candidate.facts()?;
            if facts.self_signed {
                roots.push((candidate, facts));
            }
        }
        let Some((root, root_facts)) = roots.pop() else {
            return Err(PkiError::NotFound(format!(
                "CA {ca_name} is signed by {}, and no root here has that name: renew it where its root is",
                old.issuer()
            )));
        };
        if validity.not_after > root_facts.not_after {
            return Err(PkiError::Conflict(format!(
                "CA {ca_name} would outlive its root {} (valid until {}): give fewer --days, or renew the root first",
                root.name,
                timestamp(root_facts.not_after)
            )));
        }
        let issuer = root.issuer(pass)?;
        let params = profile::with_crl_url(
            profile::client_ca(subject.to_dn(), validity, serial.clone()),
            root.crl_url()?.as_deref(),
        );
        let key = rcgen::SubjectPublicKeyInfo::from_der(old.public_key().raw)
            .map_err(|e| PkiError::bad_file(&path, format!("its public key: {e}")))?;
        let cert = params.signed_by(&key, &issuer).map_err(PkiError::cert(ca_name))?;
        root.record(entry_for(&params, ca_name, cert.der(), IssuedBy::Cli)?, &cert.pem())?;
        report.push(format!("recorded the renewed {ca_name} in {}", root.index_path().display()));
        cert
    };
    // the same name, byte for byte, or nothing it signed would chain to it
    let new = parse_cert(&path, cert.der())?;
    if new.subject().as_raw() != old.subject().as_raw() || new.public_key().raw != old.public_key().raw {
        return Err(PkiError::Conflict(format!(
            "the renewed {ca_name} would not carry the same subject and key: nothing was written"
        )));
    }
    let today = profile::now();
    let mut kept = ca.dir.join(format!("{CERT_FILE}.{}", today.date()));
    if kept.exists() {
        kept = ca.dir.join(format!("{CERT_FILE}.{}", today.unix_timestamp()));
    }
    write_new(&kept, ca.cert_pem.as_bytes(), false, false)?;
    write_atomically(&path, cert.pem().as_bytes())?;
    report.push(format!("kept the old certificate as {}", kept.display()));
    report.push(format!(
        "wrote {} (same key and subject, serial {}, valid until {})",
        path.display(),
        profile::serial_hex(&serial),
        timestamp(validity.not_after)
    ));
    report.push(if ca.facts()?.self_signed {
        format!(
            "next: give {} to every verifier that trusts {ca_name} (Envoy's trusted_ca, certgate serve --client-ca, browsers' authorities)",
            path.display()
        )
    } else {
        format!(
            "next: give {} to the clients it signed, as the second certificate of their chain (issued/<name>-chain.pem)",
            path.display()
        )
    });
    Ok(report)
}

/// `pki set-crl-url CA URL`: where the CA's CRL is published, named in every
/// certificate it signs from now on (those signed before keep what they had).
pub fn set_crl_url(home: &Home, ca_name: &str, url: &str) -> Result<Report, PkiError> {
    let ca = home.open_ca(ca_name)?;
    let path = ca.set_crl_url(url)?;
    Ok(vec![
        format!("wrote {}: certificates {ca_name} signs from now on name {url}", path.display()),
        format!("publish {} there after each `certgate pki crl`", ca.crl_der_path().display()),
    ])
}

/// The name of the SDS secret `pki crl --sds` writes, as Envoy's
/// `validation_context_sds_secret_config` names it (`envoy/required-mtls-sds.yaml`).
pub const SDS_SECRET: &str = "certgate-client-validation";

/// `pki crl --sds FILE --trusted-ca CA`: the trusted client CAs and every
/// CA's latest CRL (`crls.pem`) as one Envoy SDS resource file (a
/// `Secret` with a `validation_context`, both inline), replaced by an atomic
/// rename. Envoy watches the file (`path_config_source`) and applies it to
/// new handshakes without a restart. The trusted CAs are named, never
/// guessed: a PKI home can hold roots that must not be trusted.
pub fn write_sds_validation(home: &Home, sds: &Path, trusted_ca: &Path, name: &str) -> Result<String, PkiError> {
    let ca_pem = fs::read_to_string(trusted_ca).map_err(PkiError::read(trusted_ca))?;
    let cas = cert_file(trusted_ca)?;
    for der in &cas {
        parse_cert(trusted_ca, der)?;
    }
    let bundle = home.crl_bundle();
    let crls = match fs::read_to_string(&bundle) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(cause) => return Err(PkiError::Read { path: bundle, cause }),
    };
    let mut validation = serde_json::Map::new();
    validation.insert("trusted_ca".into(), serde_json::json!({ "inline_string": ca_pem }));
    if !crls.trim().is_empty() {
        validation.insert("crl".into(), serde_json::json!({ "inline_string": crls }));
    }
    let resource = serde_json::json!({
        "resources": [{
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            "name": name,
            "validation_context": validation,
        }]
    });
    let text = serde_json::to_string_pretty(&resource).map_err(|e| PkiError::Internal(format!("cannot write {}: {e}", sds.display())))?;
    write_atomically(sds, format!("{text}\n").as_bytes())?;
    Ok(format!(
        "wrote {} (SDS secret {name}: {} trusted CA certificate(s) from {}, the CRLs of {})",
        sds.display(),
        cas.len(),
        trusted_ca.display(),
        bundle.display()
    ))
}

/// `pki revoke`: marks a certificate revoked in its CA's index. The next
/// `pki crl` publishes it.
pub fn revoke(home: &Home, ca_name: Option<&str>, target: &Target, reason: Reason) -> Result<Report, PkiError> {
    let cas: Vec<Ca> = match ca_name {
        Some(n) => vec![home.open_ca(n)?],
        None => home.ca_names().iter().map(|n| home.open_ca(n)).collect::<Result<_, _>>()?,
    };
    let (serial, issuers) = match target {
        Target::Serial(s) => (Some(profile::serial_hex(&profile::serial_from_hex(s)?)), None),
        Target::Name(_) => (None, None),
        Target::Cert(path) => {
            let der = cert_file(path)?.into_iter().next().unwrap_or_default();
            let cert = parse_cert(path, &der)?;
            let issuers: Vec<String> = home.cas_named(cert.issuer())?.into_iter().map(|c| c.name).collect();
            (Some(profile::cert_serial(&cert)), Some(issuers))
        }
    };
    // Each CA's index is read once: to search it, and to change the one that matches.
    let mut indexes = Vec::new();
    for ca in &cas {
        if issuers.as_ref().is_some_and(|names| !names.contains(&ca.name)) {
            continue;
        }
        indexes.push((ca, ca.index()?));
    }
    let mut matches: Vec<(usize, String)> = Vec::new();
    for (i, (_, index)) in indexes.iter().enumerate() {
        let found: Vec<String> = match (target, &serial) {
            (Target::Name(n), _) => index.unrevoked_named(n).map(|e| e.serial.clone()).collect(),
            (_, Some(s)) => index.find_serial(s).map(|e| e.serial.clone()).into_iter().collect(),
            _ => Vec::new(),
        };
        matches.extend(found.into_iter().map(|s| (i, s)));
    }
    let what = match target {
        Target::Serial(s) => format!("serial {s}"),
        Target::Name(n) => format!("a valid certificate named {n}"),
        Target::Cert(p) => format!("the certificate in {}", p.display()),
    };
    let searched = cas.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    let [(found_in, serial)] = matches.as_slice() else {
        if matches.is_empty() {
            if let Target::Name(n) = target {
                let revoked: Vec<&str> = indexes
                    .iter()
                    .flat_map(|(_, i)| i.entries.iter().filter(|e| &e.name == n && e.revoked.is_some()))
                    .map(|e| e.serial.as_str())
                    .collect();
                if !revoked.is_empty() {
                    return Err(PkiError::Conflict(format!(
                        "every certificate named {n} is revoked already (serials {}); nothing changed",
                        revoked.join(", ")
                    )));
                }
            }
            return Err(PkiError::NotFound(format!(
                "{what} is not in the index of any CA searched ({searched})"
            )));
        }
        let list: Vec<String> = matches
            .iter()
            .map(|(i, s)| format!("{s} by {}", indexes.get(*i).map_or("?", |(c, _)| c.name.as_str())))
            .collect();
        return Err(PkiError::Conflict(format!(
            "{what} matches {} certificates ({}): give --serial (and --ca)",
            matches.len(),
            list.join(", ")
        )));
    };
    let Some((ca, _)) = indexes.get(*found_in) else {
        return Err(PkiError::NotFound(format!("serial {serial}: its CA was lost")));
    };
    // changed in the index as it is now, under the CA's lock (an enrollment may have added a line)
    let line = ca.update_index(|index| {
        let Some(entry) = index.find_serial_mut(serial) else {
            return Err(PkiError::NotFound(format!(
                "serial {serial} vanished from {}",
                ca.index_path().display()
            )));
        };
        if let Some((at, why)) = entry.revoked {
            return Err(PkiError::Conflict(format!(
                "serial {serial} ({}) was already revoked on {} ({}); nothing changed",
                entry.name,
                timestamp(at),
                why.name()
            )));
        }
        entry.revoked = Some((profile::now(), reason));
        Ok(format!(
            "revoked serial {serial} ({}, {}) in {}",
            entry.name,
            reason.name(),
            ca.index_path().display()
        ))
    })?;
    Ok(vec![
        line,
        format!(
            "next: `certgate pki crl --ca {}` publishes it; reload Envoy's CRL (or restart `certgate serve`)",
            ca.name
        ),
    ])
}

/// `pki p12`: the client's key, certificate and issuing CA in one file a
/// browser imports.
pub fn p12(
    home: &Home,
    name: &str,
    password: &Passphrase,
    protection: Protection,
    out: Option<&Path>,
    force: bool,
) -> Result<Report, PkiError> {
    check_name("certificate name", name)?;
    let key_path = home.issued(&format!("{name}.key"));
    let chain_path = home.issued(&format!("{name}-chain.pem"));
    let out = out.map_or_else(|| home.issued(&format!("{name}.p12")), Path::to_path_buf);
    if out.exists() && !force {
        return Err(PkiError::Exists { path: out });
    }
    if !chain_path.exists() {
        return Err(PkiError::NotFound(format!(
            "no certificate named {name}: {} is missing (issue one with `certgate pki client {name}`)",
            chain_path.display()
        )));
    }
    let chain = cert_file(&chain_path)?;
    let key = load_key(&key_path, &Passphrase::default())?;
    let leaf = parse_cert(&chain_path, chain.first().map(Vec::as_slice).unwrap_or_default())?;
    if key.subject_public_key_info() != leaf.public_key().raw {
        return Err(PkiError::bad_file(
            &key_path,
            format!("is not the key of the first certificate in {}", chain_path.display()),
        ));
    }
    let alias = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map_or_else(|| name.to_owned(), str::to_owned);
    let password = password.get(&format!("the PKCS#12 bundle {}", out.display()), true)?;
    let data = p12::bundle(&alias, &key.serialize_der(), &chain, &password, protection)
        .map_err(|m| PkiError::Internal(format!("cannot build {}: {m}", out.display())))?;
    write_new(&out, &data, force, true)?;
    Ok(vec![format!(
        "wrote {} ({} certificates and the key, {}; mode 0600)",
        out.display(),
        chain.len(),
        match protection {
            Protection::Modern => "AES-256 / HMAC-SHA-256",
            Protection::Legacy => "3DES / HMAC-SHA-1 for older systems",
        }
    )])
}
