//! Client certificates made by a test, signed by the fixtures' client CA,
//! with the names the test needs: what a CA that signs its users' CSRs
//! could issue, so a proxy verifies them like any other.

use std::path::{Path, PathBuf};

use rcgen::string::Ia5String;
use rcgen::{date_time_ymd, CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};

/// A subject alternative name, written as the certificate carries it.
#[derive(Debug, Clone, Copy)]
pub enum Name<'a> {
    /// A URI SAN.
    Uri(&'a str),
    /// A DNS SAN.
    Dns(&'a str),
    /// An e-mail (RFC 822) SAN.
    Email(&'a str),
}

/// A crafted client's certificate and key.
#[derive(Debug, Clone)]
pub struct Crafted {
    /// The leaf alone.
    pub cert_pem: String,
    /// The leaf, then the client CA: what the client sends.
    pub chain_pem: String,
    /// Its PKCS#8 key.
    pub key_pem: String,
}

impl Crafted {
    /// Writes the chain and the key into `dir` as `<name>-chain.pem` and
    /// `<name>.key`, what a TLS client loads; their paths.
    pub fn write_files(&self, dir: &Path, name: &str) -> std::io::Result<(PathBuf, PathBuf)> {
        let (chain, key) = (dir.join(format!("{name}-chain.pem")), dir.join(format!("{name}.key")));
        std::fs::write(&chain, &self.chain_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((chain, key))
    }
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CraftError {
    /// The fixture CA could not be read.
    #[error("reading the fixture client CA: {0}")]
    Fixture(#[from] std::io::Error),
    /// rcgen refused.
    #[error("making the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// A certificate for `O=Example, CN=<cn>` with `names`, valid 2025 to 2075,
/// signed by `fixtures/pki/client-ca` of the repository at `repo`.
pub fn client_certificate(repo: &Path, cn: &str, names: &[Name<'_>]) -> Result<Crafted, CraftError> {
    client_certificate_until(repo, cn, names, (2075, 1, 1))
}

/// [`client_certificate`] valid from 2025 until `(year, month, day)`.
pub fn client_certificate_until(repo: &Path, cn: &str, names: &[Name<'_>], until: (i32, u8, u8)) -> Result<Crafted, CraftError> {
    let pki = repo.join("fixtures/pki");
    let ca_pem = std::fs::read_to_string(pki.join("client-ca.pem"))?;
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(pki.join("client-ca.key"))?)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::OrganizationName, "Example");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(until.0, until.1, until.2);
    for name in names {
        p.subject_alt_names.push(match name {
            Name::Uri(u) => SanType::URI(Ia5String::try_from(*u)?),
            Name::Dns(d) => SanType::DnsName(Ia5String::try_from(*d)?),
            Name::Email(e) => SanType::Rfc822Name(Ia5String::try_from(*e)?),
        });
    }
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    let cert_pem = cert.pem();
    Ok(Crafted {
        chain_pem: format!("{cert_pem}{ca_pem}"),
        cert_pem,
        key_pem: key.serialize_pem(),
    })
}
