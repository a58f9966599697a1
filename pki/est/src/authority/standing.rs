//! Whether a client certificate stands now: the very certificate its CA
//! recorded, and not revoked in that CA's index. The index is read at each
//! request, so `pki revoke` applies to the next request, before any CRL is
//! published, on connections already open too.

use certgate_pki::index::{timestamp, Entry, Reason};
use certgate_pki::profile;
use certgate_pki::PkiError;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::Authority;

/// A certificate its CA recorded.
#[derive(Debug, Clone)]
pub struct Standing {
    /// The CA that issued it.
    pub ca: String,
    /// Its index line.
    pub entry: Entry,
}

/// Why a certificate does not stand.
#[derive(Debug, thiserror::Error)]
pub enum NotStanding {
    /// Not a certificate.
    #[error("the client certificate cannot be read")]
    Unreadable,
    /// No CA here recorded it (a certificate with a recorded serial but other bytes counts as none).
    #[error("no CA of this server recorded the client certificate (serial {serial})")]
    NotRecorded {
        /// Its serial.
        serial: String,
    },
    /// Revoked in its CA's index.
    #[error("the client certificate (serial {serial}) was revoked on {} ({})", timestamp(*at), reason.name())]
    Revoked {
        /// Its serial.
        serial: String,
        /// When.
        at: time::OffsetDateTime,
        /// Why.
        reason: Reason,
    },
    /// The index could not be read.
    #[error("the CA's index cannot be read: {0}")]
    Failed(#[from] PkiError),
}

impl Authority {
    /// The record of a certificate, if it stands.
    pub fn standing(&self, der: &[u8]) -> Result<Standing, NotStanding> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| NotStanding::Unreadable)?;
        let serial = profile::cert_serial(&cert);
        for ca in self.home.cas_named(cert.issuer())? {
            let index = ca.index()?;
            let Some(entry) = index.find_serial(&serial) else { continue };
            // the very certificate this CA recorded, not one with the same serial from elsewhere
            let recorded = certgate_pki::store::cert_file(&ca.issued_copy(&serial));
            if !matches!(&recorded, Ok(certs) if certs.first().map(Vec::as_slice) == Some(der)) {
                continue;
            }
            if let Some((at, reason)) = entry.revoked {
                return Err(NotStanding::Revoked { serial, at, reason });
            }
            return Ok(Standing {
                ca: ca.name.clone(),
                entry: entry.clone(),
            });
        }
        Err(NotStanding::NotRecorded { serial })
    }
}
