//! The test PKI under `fixtures/pki/`: one function builds every certificate the
//! tests use, so the committed PEMs can always be regenerated with
//! `certgate pki fixtures --out fixtures/pki`.
//!
//! Layout of the output directory:
//! - `offline/root-ca.key`: the root key, kept apart; nothing day-to-day needs it.
//! - `root-ca.pem`, `client-ca.pem|key` (intermediate, signs clients and the CRL),
//!   `partner-ca.pem|key` (a second trusted root), `trusted-client-cas.pem` (bundle).
//! - `server.pem|key`: `localhost`, `127.0.0.1`, `::1`.
//! - `<client>.pem|key` and `<client>-chain.pem` (leaf + issuing CA) per client.
//! - `mallory-ca.pem`: a self-signed CA with the same name as the client CA.
//! - `client-ca.crl.pem`: revokes `revoked`; `root-ca.crl.pem` and
//!   `partner-ca.crl.pem` revoke nothing; `crls.pem` holds all three.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Something went wrong while building or writing the test PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot build certificate {name}: {source}")]
    Certificate { name: String, source: rcgen::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("bad date {0}")]
    Date(String),
}

/// The client certificates in the fixture set, and what makes each one special.
pub const CLIENTS: &[&str] = &[
    "alice",         // CN + SPIFFE URI SAN + email SAN, client CA
    "bob",           // another CN and SPIFFE path, a DNS SAN, client CA
    "carol",         // issued by the partner CA
    "ops-anna",      // an operator: CN matches `ops-*`
    "mallory",       // CN=alice, from a look-alike CA with the client CA's name
    "expired",       // validity over in 2021
    "not-yet-valid", // validity starts in 2080
    "no-cn",         // subject without CN; SANs only
    "unicode",       // a non-ASCII CN
    "comma-cn",      // a CN holding `,O=` and quotes: DN-injection attempts
    "revoked",       // listed in client-ca.crl.pem
];

/// A named certificate and its key, as PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub name: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The serial number, big-endian bytes.
    pub serial: Vec<u8>,
}

/// Every file of the fixture set, as (relative path, contents).
#[derive(Debug, Default)]
pub struct FixtureSet {
    pub files: Vec<(String, String)>,
}

impl FixtureSet {
    fn add(&mut self, path: impl Into<String>, contents: impl Into<String>) {
        self.files.push((path.into(), contents.into()));
    }

    /// The contents of one file, by relative path.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, c)| c.as_str())
    }

    /// Writes every file below `dir`, creating directories as needed.
    pub fn write_to(&self, dir: &Path) -> Result<(), PkiError> {
        for (rel, contents) in &self.files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|source| PkiError::Write {
                    path: parent.to_owned(),
                    source,
                })?;
            }
            fs::write(&path, contents).map_err(|source| PkiError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

fn date(year: i32, month: Month, day: u8) -> Result<OffsetDateTime, PkiError> {
    let d = Date::from_calendar_date(year, month, day)
        .map_err(|e| PkiError::Date(format!("{year}-{month}-{day}: {e}")))?;
    Ok(PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc())
}

fn dn(pairs: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in pairs {
        dn.push(ty.clone(), *value);
    }
    dn
}

fn ia5(name: &str, value: &str) -> Result<rcgen::string::Ia5String, PkiError> {
    value.try_into().map_err(|source| PkiError::Certificate {
        name: name.to_owned(),
        source,
    })
}

fn ca_params(subject: DistinguishedName, path_len: Option<u8>) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = subject;
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = date(2025, Month::January, 1)?;
    p.not_after = date(2080, Month::January, 1)?;
    p.key_identifier_method = KeyIdMethod::Sha256;
    Ok(p)
}

/// A CA: its certificate and what it takes to sign with it.
struct Authority {
    issued: Issued,
    issuer: Issuer<'static, KeyPair>,
}

fn issue(
    name: &str,
    params: &CertificateParams,
    key: &KeyPair,
    issuer: Option<&Issuer<'_, KeyPair>>,
) -> Result<Issued, PkiError> {
    let err = |source| PkiError::Certificate {
        name: name.to_owned(),
        source,
    };
    let cert = match issuer {
        Some(issuer) => params.signed_by(key, issuer).map_err(err)?,
        None => params.self_signed(key).map_err(err)?,
    };
    Ok(Issued {
        name: name.to_owned(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        serial: params
            .serial_number
            .as_ref()
            .map(SerialNumber::to_bytes)
            .unwrap_or_default(),
    })
}

fn authority(
    name: &str,
    params: CertificateParams,
    parent: Option<&Issuer<'_, KeyPair>>,
    serial: u64,
) -> Result<Authority, PkiError> {
    let mut params = params;
    params.serial_number = Some(serial_number(serial));
    let key = KeyPair::generate().map_err(|source| PkiError::Certificate {
        name: name.to_owned(),
        source,
    })?;
    let issued = issue(name, &params, &key, parent)?;
    Ok(Authority {
        issued,
        issuer: Issuer::new(params, key),
    })
}

/// Serial numbers are fixed per fixture (prefixed so they are 16 bytes long, as a
/// real CA's random serials would be) so deny-list examples stay valid after a
/// regeneration.
fn serial_number(n: u64) -> SerialNumber {
    let mut bytes = vec![0x4c, 0x1e, 0x7a, 0x5e, 0x00, 0x00, 0x00, 0x00];
    bytes.extend_from_slice(&n.to_be_bytes());
    SerialNumber::from_slice(&bytes)
}

struct ClientSpec<'a> {
    name: &'a str,
    subject: Vec<(DnType, &'a str)>,
    uris: &'a [&'a str],
    emails: &'a [&'a str],
    dns: &'a [&'a str],
    not_before: (i32, Month, u8),
    not_after: (i32, Month, u8),
    serial: u64,
}

impl ClientSpec<'_> {
    fn params(&self) -> Result<CertificateParams, PkiError> {
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(&self.subject);
        for uri in self.uris {
            p.subject_alt_names.push(SanType::URI(ia5(self.name, uri)?));
        }
        for email in self.emails {
            p.subject_alt_names
                .push(SanType::Rfc822Name(ia5(self.name, email)?));
        }
        for dns in self.dns {
            p.subject_alt_names.push(SanType::DnsName(ia5(self.name, dns)?));
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.use_authority_key_identifier_extension = true;
        let (y, m, d) = self.not_before;
        p.not_before = date(y, m, d)?;
        let (y, m, d) = self.not_after;
        p.not_after = date(y, m, d)?;
        p.serial_number = Some(serial_number(self.serial));
        Ok(p)
    }
}

const GOOD_FROM: (i32, Month, u8) = (2025, Month::January, 1);
const GOOD_UNTIL: (i32, Month, u8) = (2075, Month::January, 1);

fn client_specs() -> Vec<ClientSpec<'static>> {
    use DnType::{CommonName as CN, OrganizationName as O, OrganizationalUnitName as OU};
    let spec = |name, subject, uris, emails, dns, serial| ClientSpec {
        name,
        subject,
        uris,
        emails,
        dns,
        not_before: GOOD_FROM,
        not_after: GOOD_UNTIL,
        serial,
    };
    vec![
        spec(
            "alice",
            vec![(O, "Example"), (OU, "Engineering"), (CN, "alice")],
            &["spiffe://example.org/ns/default/sa/alice"],
            &["alice@example.org"],
            &[],
            0x1001,
        ),
        spec(
            "bob",
            vec![(O, "Example"), (CN, "bob")],
            &["spiffe://example.org/ns/billing/sa/bob"],
            &[],
            &["bob.svc.example.org"],
            0x1002,
        ),
        spec(
            "carol",
            vec![(O, "Partner"), (CN, "carol")],
            &[],
            &["carol@partner.example"],
            &[],
            0x2001,
        ),
        spec(
            "ops-anna",
            vec![(O, "Example"), (OU, "Operations"), (CN, "ops-anna")],
            &["spiffe://example.org/ns/ops/sa/anna"],
            &["anna@example.org"],
            &[],
            0x1003,
        ),
        spec(
            "mallory",
            vec![(O, "Example"), (OU, "Engineering"), (CN, "alice")],
            &["spiffe://example.org/ns/default/sa/alice"],
            &["alice@example.org"],
            &[],
            0x1001,
        ),
        ClientSpec {
            not_before: (2020, Month::January, 1),
            not_after: (2021, Month::January, 1),
            ..spec("expired", vec![(O, "Example"), (CN, "expired")], &[], &[], &[], 0x1004)
        },
        ClientSpec {
            not_before: (2080, Month::January, 1),
            not_after: (2090, Month::January, 1),
            ..spec(
                "not-yet-valid",
                vec![(O, "Example"), (CN, "not-yet-valid")],
                &[],
                &[],
                &[],
                0x1005,
            )
        },
        spec(
            "no-cn",
            vec![(O, "Example"), (OU, "Robots")],
            &["spiffe://example.org/ns/robots/sa/robot"],
            &[],
            &["robot.svc.example.org"],
            0x1006,
        ),
        spec(
            "unicode",
            vec![(O, "Example"), (CN, "Zoë Ünïcødé 日本")],
            &[],
            &["zoe@example.org"],
            &[],
            0x1007,
        ),
        spec(
            "comma-cn",
            vec![(O, "Evil"), (CN, "alice,O=Example\"; x=\\")],
            &[],
            &[],
            &[],
            0x1008,
        ),
        spec(
            "revoked",
            vec![(O, "Example"), (CN, "revoked")],
            &["spiffe://example.org/ns/default/sa/revoked"],
            &[],
            &[],
            0x1009,
        ),
    ]
}

/// Builds the whole fixture set in memory. Keys are fresh each time; names,
/// serials and dates are fixed.
pub fn fixture_set() -> Result<FixtureSet, PkiError> {
    use DnType::{CommonName as CN, OrganizationName as O};
    let mut out = FixtureSet::default();

    let root = authority(
        "root-ca",
        ca_params(dn(&[(O, "Example"), (CN, "Example Root CA")]), None)?,
        None,
        0x01,
    )?;
    let client_ca_dn = dn(&[(O, "Example"), (CN, "Example Client CA")]);
    let client_ca = authority(
        "client-ca",
        ca_params(client_ca_dn.clone(), Some(0))?,
        Some(&root.issuer),
        0x02,
    )?;
    let partner_ca = authority(
        "partner-ca",
        ca_params(dn(&[(O, "Partner"), (CN, "Partner Client CA")]), None)?,
        None,
        0x03,
    )?;
    // The seed's malicious CA: same name as ours, a different key.
    let mallory_ca = authority("mallory-ca", ca_params(client_ca_dn, None)?, None, 0x02)?;

    out.add("offline/root-ca.key", &root.issued.key_pem);
    out.add("root-ca.pem", &root.issued.cert_pem);
    for ca in [&client_ca, &partner_ca] {
        out.add(format!("{}.pem", ca.issued.name), &ca.issued.cert_pem);
        out.add(format!("{}.key", ca.issued.name), &ca.issued.key_pem);
    }
    out.add("mallory-ca.pem", &mallory_ca.issued.cert_pem);
    out.add(
        "trusted-client-cas.pem",
        [&root.issued.cert_pem, &client_ca.issued.cert_pem, &partner_ca.issued.cert_pem]
            .map(String::as_str)
            .concat(),
    );

    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).map_err(|source| {
        PkiError::Certificate {
            name: "server".into(),
            source,
        }
    })?;
    server.distinguished_name = dn(&[(O, "Example"), (CN, "localhost")]);
    for ip in ["127.0.0.1", "::1"] {
        let ip: IpAddr = ip.parse().map_err(|_| PkiError::Date(ip.into()))?;
        server.subject_alt_names.push(SanType::IpAddress(ip));
    }
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.not_before = date(2025, Month::January, 1)?;
    server.not_after = date(2075, Month::January, 1)?;
    server.serial_number = Some(serial_number(0x10));
    server.use_authority_key_identifier_extension = true;
    let server_key = new_key("server")?;
    let server = issue("server", &server, &server_key, Some(&root.issuer))?;
    out.add("server.pem", &server.cert_pem);
    out.add("server.key", &server.key_pem);

    let mut revoked_serials = Vec::new();
    for spec in client_specs() {
        let ca = match spec.name {
            "carol" => &partner_ca,
            "mallory" => &mallory_ca,
            _ => &client_ca,
        };
        let key = new_key(spec.name)?;
        let cert = issue(spec.name, &spec.params()?, &key, Some(&ca.issuer))?;
        if spec.name == "revoked" {
            revoked_serials.push(cert.serial.clone());
        }
        out.add(format!("{}.pem", cert.name), &cert.cert_pem);
        out.add(format!("{}.key", cert.name), &cert.key_pem);
        out.add(
            format!("{}-chain.pem", cert.name),
            format!("{}{}", cert.cert_pem, ca.issued.cert_pem),
        );
    }

    // A CRL for every CA, empty where nothing is revoked: Envoy (and rustls)
    // want one for each CA of a chain once any is given.
    let mut all_crls = String::new();
    for (ca, revoked, name) in [
        (&client_ca, revoked_serials, "client-ca.crl.pem"),
        (&root, Vec::new(), "root-ca.crl.pem"),
        (&partner_ca, Vec::new(), "partner-ca.crl.pem"),
    ] {
        let pem = crl_pem(ca, &revoked, name)?;
        all_crls.push_str(&pem);
        out.add(name, pem);
    }
    out.add("crls.pem", all_crls);
    Ok(out)
}

fn crl_pem(ca: &Authority, revoked: &[Vec<u8>], name: &str) -> Result<String, PkiError> {
    let params = CertificateRevocationListParams {
        this_update: date(2025, Month::January, 2)?,
        next_update: date(2075, Month::January, 1)?,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 55),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let err = |source| PkiError::Certificate { name: name.to_owned(), source };
    params.signed_by(&ca.issuer).map_err(err)?.pem().map_err(err)
}

fn new_key(name: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| PkiError::Certificate {
        name: name.to_owned(),
        source,
    })
}
