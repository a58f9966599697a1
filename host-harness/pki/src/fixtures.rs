//! The test PKI under `fixtures/pki/` and the crafted certificates under
//! `fixtures/bad-input/`: one function builds every certificate the tests use,
//! so the committed PEMs can always be regenerated with `certgate pki fixtures`.
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
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, CustomExtension, SanType};
use time::{Month, OffsetDateTime};

use super::index::Reason;
use super::keys::{KeyKind, Passphrase};
use super::ops::{self, CaSpec, LeafSpec, Target};
use super::profile::{parse_date, Sans, Subject, Validity};
use super::store::Home;
use super::PkiError;

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

/// Every file of the fixture set, as (relative path, contents).
#[derive(Debug, Default)]
pub struct FixtureSet {
    pub files: Vec<(String, String)>,
}

impl FixtureSet {
    fn add(&mut self, path: impl Into<String>, contents: impl Into<String>) {
        let path = path.into();
        let path = if path.starts_with("bad-input/") { path } else { format!("pki/{path}") };
        self.files.push((path, contents.into()));
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
                fs::create_dir_all(parent).map_err(PkiError::write(parent))?;
            }
            fs::write(&path, contents).map_err(PkiError::write(&path))?;
        }
        Ok(())
    }
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

/// The attributes of a fixture subject (each at most once), in C, O, OU, CN order.
#[derive(Clone, Copy)]
enum DnType {
    Cn,
    O,
    Ou,
}

fn subject(pairs: &[(DnType, &str)]) -> Subject {
    let mut s = Subject::default();
    for (ty, v) in pairs {
        let slot = match ty {
            DnType::Cn => &mut s.cn,
            DnType::O => &mut s.org,
            DnType::Ou => &mut s.ou,
        };
        *slot = Some((*v).to_owned());
    }
    s
}

fn date(year: i32, month: Month, day: u8) -> Result<OffsetDateTime, PkiError> {
    parse_date(&format!("{year:04}-{:02}-{day:02}", month as u8))
}

fn validity(from: (i32, Month, u8), until: (i32, Month, u8)) -> Result<Validity, PkiError> {
    Ok(Validity { not_before: date(from.0, from.1, from.2)?, not_after: date(until.0, until.1, until.2)? })
}

/// Serial numbers are fixed per fixture (prefixed so they are 16 bytes long, as a
/// real CA's random serials would be) so deny-list examples stay valid after a
/// regeneration.
fn serial(n: u64) -> Option<String> {
    Some(format!("4C1E7A5E00000000{n:016X}"))
}

impl ClientSpec<'_> {
    fn leaf(&self) -> Result<LeafSpec, PkiError> {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Ok(LeafSpec {
            name: self.name.to_owned(),
            subject: subject(&self.subject),
            sans: Sans { dns: own(self.dns), ips: Vec::new(), uris: own(self.uris), emails: own(self.emails) },
            validity: validity(self.not_before, self.not_after)?,
            key: KeyKind::P256,
            serial: serial(self.serial),
            force: false,
        })
    }
}

const GOOD_FROM: (i32, Month, u8) = (2025, Month::January, 1);
const GOOD_UNTIL: (i32, Month, u8) = (2075, Month::January, 1);

fn client_specs() -> Vec<ClientSpec<'static>> {
    use DnType::{Cn as CN, Ou as OU, O};
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

/// The bad-input corpus's crafted certificates (`fixtures/bad-input/`), signed
/// by the client CA so a proxy passes them on: what each holds is in its name.
pub const CRAFTED: [&str; 8] =
    ["nul-cn", "crlf-cn", "quotes-cn", "huge-extension", "duplicate-san", "many-sans", "long-uri", "comma-san"];

fn crafted_params(name: &str) -> Result<CertificateParams, PkiError> {
    let bad = |e: rcgen::Error| PkiError::Certificate { name: name.to_owned(), cause: e };
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::OrganizationName, "Example");
    let cn = match name {
        "nul-cn" => "alice\0admin",
        "crlf-cn" => "alice\r\nx-client-cn: admin",
        "quotes-cn" => "\"alice\", CN=admin; x=\"y\"",
        other => other,
    };
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = date(2025, Month::January, 1)?;
    p.not_after = date(2075, Month::January, 1)?;
    let ia5 = |s: String| rcgen::string::Ia5String::try_from(s).map_err(bad);
    match name {
        "huge-extension" => p.custom_extensions.push(CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x04; 60_000])),
        "duplicate-san" => {
            p.subject_alt_names.push(SanType::DnsName(ia5("a.example.org".into())?));
            // a second SubjectAltName extension, raw: SEQUENCE { [2] "b.example.org" }
            let mut san = vec![0x30, 15, 0x82, 13];
            san.extend_from_slice(b"b.example.org");
            p.custom_extensions.push(CustomExtension::from_oid_content(&[2, 5, 29, 17], san));
        }
        "many-sans" => {
            for i in 0..2000 {
                p.subject_alt_names.push(SanType::DnsName(ia5(format!("host-{i}.example.org"))?));
            }
        }
        "long-uri" => p.subject_alt_names.push(SanType::URI(ia5(format!("spiffe://example.org/{}", "a".repeat(30_000)))?)),
        "comma-san" => p.subject_alt_names.push(SanType::URI(ia5("spiffe://example.org/ns/a,URI=spiffe://example.org/ns/admin".into())?)),
        _ => {}
    }
    Ok(p)
}

/// The crafted certificates, signed by the client CA of `home`: (file, contents).
fn crafted_files(home: &Home) -> Result<Vec<(String, String)>, PkiError> {
    let ca = home.open_ca("client-ca")?;
    let issuer = ca.issuer(&Passphrase::default())?;
    let mut out = Vec::new();
    for name in CRAFTED {
        let key = KeyKind::P256.generate(name)?;
        let cert = crafted_params(name)?.signed_by(&key, &issuer).map_err(PkiError::cert(name))?;
        out.push((format!("{name}.pem"), cert.pem()));
        out.push((format!("{name}.key"), key.serialize_pem()));
    }
    Ok(out)
}

/// Builds the whole fixture set with the same operations as `certgate pki`
/// (in a scratch PKI home), then lays the files out flat. Keys are fresh each
/// time; names, serials and dates are fixed.
pub fn fixture_set() -> Result<FixtureSet, PkiError> {
    use DnType::{Cn as CN, O};
    let scratch = tempfile::Builder::new().prefix("certgate-fixtures-").tempdir().map_err(PkiError::write(&std::env::temp_dir()))?;
    let home = Home::new(scratch.path());
    let no_pass = Passphrase::default();
    let ca_validity = validity((2025, Month::January, 1), (2080, Month::January, 1))?;
    let crl_days = u32::try_from((date(2075, Month::January, 1)? - OffsetDateTime::now_utc()).whole_days()).unwrap_or(1);
    let ca = |name: &str, pairs: &[(DnType, &str)], n: u64| CaSpec {
        name: name.to_owned(),
        subject: subject(pairs),
        validity: ca_validity,
        key: KeyKind::P256,
        serial: serial(n),
        encrypt: None,
        crl_days,
    };
    ops::init_root(&home, &ca("root-ca", &[(O, "Example"), (CN, "Example Root CA")], 0x01))?;
    let client_ca_dn = [(O, "Example"), (CN, "Example Client CA")];
    ops::init_client_ca(&home, &ca("client-ca", &client_ca_dn, 0x02), "root-ca", &no_pass)?;
    ops::init_root(&home, &ca("partner-ca", &[(O, "Partner"), (CN, "Partner Client CA")], 0x03))?;
    // The seed's malicious CA: same name as ours, a different key.
    ops::init_root(&home, &ca("mallory-ca", &client_ca_dn, 0x02))?;

    let server = LeafSpec {
        name: "server".into(),
        subject: subject(&[(O, "Example"), (CN, "localhost")]),
        sans: Sans {
            dns: vec!["localhost".into()],
            ips: vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()],
            ..Sans::default()
        },
        validity: validity(GOOD_FROM, GOOD_UNTIL)?,
        key: KeyKind::P256,
        serial: serial(0x10),
        force: false,
    };
    ops::server(&home, "root-ca", &no_pass, &server)?;
    for spec in client_specs() {
        let issuer = match spec.name {
            "carol" => "partner-ca",
            "mallory" => "mallory-ca",
            _ => "client-ca",
        };
        ops::client(&home, issuer, &no_pass, &spec.leaf()?)?;
    }
    ops::revoke(&home, Some("client-ca"), &Target::Name("revoked".into()), Reason::KeyCompromise)?;
    ops::crl(&home, None, crl_days, &no_pass)?;

    let mut out = FixtureSet::default();
    let read = |path: PathBuf| fs::read_to_string(&path).map_err(PkiError::read(&path));
    let [root, client_ca, partner_ca, mallory_ca] = ["root-ca", "client-ca", "partner-ca", "mallory-ca"].map(|n| home.open_ca(n));
    let (root, client_ca, partner_ca, mallory_ca) = (root?, client_ca?, partner_ca?, mallory_ca?);
    out.add("offline/root-ca.key", read(root.key_path())?);
    out.add("root-ca.pem", root.cert_pem.clone());
    for ca in [&client_ca, &partner_ca] {
        out.add(format!("{}.pem", ca.name), ca.cert_pem.clone());
        out.add(format!("{}.key", ca.name), read(ca.key_path())?);
    }
    out.add("mallory-ca.pem", mallory_ca.cert_pem.clone());
    out.add("trusted-client-cas.pem", [&root, &client_ca, &partner_ca].map(|ca| ca.cert_pem.as_str()).concat());
    for name in std::iter::once("server").chain(CLIENTS.iter().copied()) {
        out.add(format!("{name}.pem"), read(home.issued(&format!("{name}.pem")))?);
        out.add(format!("{name}.key"), read(home.issued(&format!("{name}.key")))?);
        if name != "server" {
            out.add(format!("{name}-chain.pem"), read(home.issued(&format!("{name}-chain.pem")))?);
        }
    }
    // A CRL for every CA, empty where nothing is revoked: Envoy (and rustls)
    // want one for each CA of a chain once any is given.
    let mut all_crls = String::new();
    for ca in [&client_ca, &root, &partner_ca] {
        let pem = read(ca.crl_path())?;
        all_crls.push_str(&pem);
        out.add(format!("{}.crl.pem", ca.name), pem);
    }
    out.add("crls.pem", all_crls);
    for (file, contents) in crafted_files(&home)? {
        out.add(format!("bad-input/{file}"), contents);
    }
    Ok(out)
}
