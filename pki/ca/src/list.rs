//! `pki list`: every certificate each CA issued, from its index, with what
//! an operator acts on (days left, revoked or expired); `--expiring DAYS`
//! keeps the valid ones that end within the window and sets the exit status
//! a cron job acts on. A line of an index that cannot be read is reported
//! with its number, never skipped.

use time::OffsetDateTime;

use super::index::{timestamp, IssuedBy};
use super::profile;
use super::store::{parse_cert, Home};
use super::PkiError;

/// Exit status: a valid certificate ends within `--expiring DAYS`.
pub const EXPIRING: u8 = 1;
/// Exit status: a line of an index could not be read (reported).
pub const BAD_INDEX: u8 = 2;

/// One certificate as `pki list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    /// The CA that issued it (a root lists itself).
    pub ca: String,
    /// Its name under `issued/` (or the CA's name).
    pub name: String,
    /// Upper-case hex.
    pub serial: String,
    /// Its subject DN.
    pub subject: String,
    /// RFC 3339.
    pub not_after: String,
    /// Whole days until it ends; negative once it has.
    pub days_left: i64,
    /// `valid`, `expired` or `revoked`.
    pub status: &'static str,
    /// When it was revoked (RFC 3339), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Why, as OpenSSL spells it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// How it was issued: `cli`, `est-token`, `est-approved`, `est-renewal`.
    pub issued_by: &'static str,
}

/// What `pki list` found: the certificates, and the index lines it could not read.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Listing {
    /// The certificates, by CA in name order, each CA's in issue order.
    pub certificates: Vec<Listed>,
    /// `path: line N: what is wrong`.
    pub errors: Vec<String>,
}

/// Lists what the CAs here (or one of them) issued; `expiring`: only the
/// valid certificates that end within that many days.
pub fn list(home: &Home, ca_name: Option<&str>, expiring: Option<u32>) -> Result<Listing, PkiError> {
    let names = match ca_name {
        Some(n) => vec![n.to_owned()],
        None => home.ca_names(),
    };
    let now = profile::now();
    let days_left = |t: OffsetDateTime| (t - now).whole_days();
    let mut listing = Listing::default();
    for name in names {
        let ca = home.open_ca(&name)?;
        // a root is in no index: it lists itself
        if ca.facts()?.self_signed {
            let cert = parse_cert(&ca.cert_path(), &ca.cert_der)?;
            let not_after = cert.validity().not_after.to_datetime();
            listing.certificates.push(Listed {
                ca: name.clone(),
                name: name.clone(),
                serial: profile::cert_serial(&cert),
                subject: cert.subject().to_string(),
                not_after: timestamp(not_after),
                days_left: days_left(not_after),
                status: if not_after <= now { "expired" } else { "valid" },
                revoked_at: None,
                reason: None,
                issued_by: IssuedBy::Cli.name(),
            });
        }
        let (index, bad) = ca.index_lenient()?;
        listing.errors.extend(bad);
        for e in index.entries {
            let status = match (e.revoked, e.not_after <= now) {
                (Some(_), _) => "revoked",
                (None, true) => "expired",
                (None, false) => "valid",
            };
            listing.certificates.push(Listed {
                ca: name.clone(),
                name: e.name,
                serial: e.serial,
                subject: e.subject,
                not_after: timestamp(e.not_after),
                days_left: days_left(e.not_after),
                status,
                revoked_at: e.revoked.map(|(at, _)| timestamp(at)),
                reason: e.revoked.map(|(_, why)| why.name()),
                issued_by: e.issued_by.name(),
            });
        }
    }
    if let Some(window) = expiring {
        listing
            .certificates
            .retain(|c| c.status == "valid" && c.days_left <= i64::from(window));
    }
    Ok(listing)
}

impl Listing {
    /// The exit status: [`BAD_INDEX`] if an index line could not be read,
    /// else [`EXPIRING`] if `--expiring` found any, else 0.
    pub fn status(&self, expiring: bool) -> u8 {
        if !self.errors.is_empty() {
            BAD_INDEX
        } else if expiring && !self.certificates.is_empty() {
            EXPIRING
        } else {
            0
        }
    }

    /// As a table, one line per certificate, then the errors.
    pub fn to_lines(&self) -> Vec<String> {
        let rows: Vec<[String; 8]> = self
            .certificates
            .iter()
            .map(|c| {
                let status = match (c.revoked_at.as_deref(), c.reason) {
                    (Some(at), Some(why)) => format!("revoked {at} ({why})"),
                    _ => c.status.to_owned(),
                };
                [
                    c.ca.clone(),
                    c.name.clone(),
                    c.serial.clone(),
                    c.subject.clone(),
                    c.not_after.clone(),
                    c.days_left.to_string(),
                    c.issued_by.to_owned(),
                    status,
                ]
            })
            .collect();
        let header = ["CA", "NAME", "SERIAL", "SUBJECT", "NOT AFTER", "DAYS LEFT", "ISSUED BY", "STATUS"].map(str::to_owned);
        let mut widths = header.clone().map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String; 8]| {
            let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            padded.join("  ").trim_end().to_owned()
        };
        let mut out = vec![line(&header)];
        out.extend(rows.iter().map(line));
        out.extend(self.errors.iter().map(|e| format!("error: {e}")));
        out
    }
}
