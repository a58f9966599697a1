//! Signing a requested key under the CA's own decision, recorded in its
//! index under the CA's lock.

use rcgen::{DistinguishedName, Issuer, KeyPair, SubjectPublicKeyInfo};

use crate::index::IssuedBy;
use crate::profile::{self, Sans, Validity};
use crate::store::Ca;
use crate::PkiError;

/// What the CA decided to certify for a key: the CSR only proposes.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The subject it will have.
    pub subject: DistinguishedName,
    /// Its SANs (checked by the same standards as the filter's).
    pub sans: Sans,
    /// Its validity, capped by the server's profile.
    pub validity: Validity,
    /// How it is issued, for the index and `pki list`.
    pub issued_by: IssuedBy,
    /// The name the index shows (its CN, or its first SAN).
    pub name: String,
}

/// A certificate just issued and recorded.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Upper-case hex.
    pub serial: String,
    /// DER.
    pub der: Vec<u8>,
}

/// Signs `key` as a client certificate under `grant` and records it (a new
/// line in `index.txt`, a copy under `certs/`; [`Ca::record`] holds the
/// CA's lock, so concurrent issuers never lose an index line). The serial
/// is random (128 bits); `Ca::record` refuses one already taken.
pub fn issue(ca: &Ca, issuer: &Issuer<'_, KeyPair>, key: &SubjectPublicKeyInfo, grant: &Grant) -> Result<Issued, PkiError> {
    let params = profile::client(grant.subject.clone(), &grant.sans, grant.validity, profile::random_serial()?)?;
    let params = profile::with_crl_url(params, ca.crl_url()?.as_deref());
    let cert = params.signed_by(key, issuer).map_err(PkiError::cert(&grant.name))?;
    let entry = crate::ops::entry_for(&params, &grant.name, cert.der(), grant.issued_by)?;
    let serial = entry.serial.clone();
    ca.record(entry, &cert.pem())?;
    Ok(Issued {
        serial,
        der: cert.der().to_vec(),
    })
}

/// The name an enrolled certificate has in the index: its CN, else its first SAN.
pub fn index_name(cn: Option<&str>, sans: &Sans) -> String {
    cn.map(str::to_owned)
        .or_else(|| sans.dns.first().cloned())
        .or_else(|| sans.uris.first().cloned())
        .or_else(|| sans.emails.first().cloned())
        .or_else(|| sans.ips.first().map(ToString::to_string))
        .unwrap_or_else(|| "-".to_owned())
}
