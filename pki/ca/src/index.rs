//! A CA's `index.txt`: one line per certificate it issued, fields separated by
//! tabs, meant to be read by a person as much as by certgate (like OpenSSL's
//! `index.txt`):
//!
//! ```text
//! # status  serial  not-after             revoked-at            reason         name   subject  issued-by
//! V         5A0F…   2027-11-23T05:00:00Z  -                     -              alice  CN=alice cli
//! R         19C2…   2027-11-23T05:00:00Z  2026-12-01T10:00:00Z  keyCompromise  bob    CN=bob   est-token
//! ```
//!
//! A line without the last field (written before enrollment existed) was
//! issued by the command line.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Why a certificate was revoked (RFC 5280 5.3.1), spelled as OpenSSL spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reason {
    #[value(name = "unspecified")]
    /// No reason given.
    Unspecified,
    #[value(name = "keyCompromise")]
    /// The key was lost or stolen.
    KeyCompromise,
    #[value(name = "caCompromise")]
    /// The CA's key was lost or stolen.
    CaCompromise,
    #[value(name = "affiliationChanged")]
    /// The holder's name or affiliation changed.
    AffiliationChanged,
    #[value(name = "superseded")]
    /// A newer certificate replaces it.
    Superseded,
    #[value(name = "cessationOfOperation")]
    /// It is no longer needed.
    CessationOfOperation,
    #[value(name = "certificateHold")]
    /// Suspended for now.
    CertificateHold,
    #[value(name = "privilegeWithdrawn")]
    /// The holder lost a privilege it certified.
    PrivilegeWithdrawn,
}

impl Reason {
    const ALL: [Reason; 8] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::CertificateHold,
        Reason::PrivilegeWithdrawn,
    ];

    /// The reason as OpenSSL and `index.txt` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "caCompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::CertificateHold => "certificateHold",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    fn from_name(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == s)
    }

    /// The reason as rcgen writes it into a CRL.
    pub fn to_rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            Reason::Unspecified => R::Unspecified,
            Reason::KeyCompromise => R::KeyCompromise,
            Reason::CaCompromise => R::CaCompromise,
            Reason::AffiliationChanged => R::AffiliationChanged,
            Reason::Superseded => R::Superseded,
            Reason::CessationOfOperation => R::CessationOfOperation,
            Reason::CertificateHold => R::CertificateHold,
            Reason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        }
    }
}

/// How a certificate came to be issued, as `pki list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssuedBy {
    /// By `certgate pki` on the command line (`client`, `server`, `sign-csr`, a CA).
    #[default]
    Cli,
    /// Over EST, with a one-time token.
    EstToken,
    /// Over EST, from the approval queue (`pki requests approve`, or the approval hook).
    EstApproved,
    /// Over EST, re-enrollment with the client's current certificate.
    EstRenewal,
}

impl IssuedBy {
    const ALL: [IssuedBy; 4] = [IssuedBy::Cli, IssuedBy::EstToken, IssuedBy::EstApproved, IssuedBy::EstRenewal];

    /// As the index and `pki list` write it.
    pub fn name(self) -> &'static str {
        match self {
            IssuedBy::Cli => "cli",
            IssuedBy::EstToken => "est-token",
            IssuedBy::EstApproved => "est-approved",
            IssuedBy::EstRenewal => "est-renewal",
        }
    }

    fn from_name(s: &str) -> Option<IssuedBy> {
        IssuedBy::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Upper-case hex, no separators: the form `serial_deny` and `openssl x509 -serial` use.
    pub serial: String,
    /// When it expires.
    pub not_after: OffsetDateTime,
    /// When it was revoked, and why; `None` while valid.
    pub revoked: Option<(OffsetDateTime, Reason)>,
    /// Its file name under `issued/`.
    pub name: String,
    /// Its subject DN.
    pub subject: String,
    /// How it was issued.
    pub issued_by: IssuedBy,
}

/// Every certificate a CA issued, in issue order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    /// The entries, in issue order.
    pub entries: Vec<Entry>,
}

const HEADER: &str = "# status\tserial\tnot-after\trevoked-at\treason\tname\tsubject\tissued-by\n";

/// RFC 3339, to the second.
pub fn timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Names and subjects may hold anything; tabs, newlines and backslashes are escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

impl Index {
    /// The entry with this serial (upper-case hex).
    pub fn find_serial(&self, serial: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.serial == serial)
    }

    /// [`Index::find_serial`], to change.
    pub fn find_serial_mut(&mut self, serial: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.serial == serial)
    }

    /// The certificates of that name that are still valid (not revoked), newest last.
    pub fn unrevoked_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.name == name && e.revoked.is_none())
    }

    /// Every revoked entry, with when and why.
    pub fn revoked(&self) -> impl Iterator<Item = (&Entry, OffsetDateTime, Reason)> {
        self.entries.iter().filter_map(|e| e.revoked.map(|(at, why)| (e, at, why)))
    }

    /// The index as `index.txt` holds it.
    pub fn to_text(&self) -> String {
        let mut out = String::from(HEADER);
        for e in &self.entries {
            let (status, at, why) = match e.revoked {
                Some((at, why)) => ("R", timestamp(at), why.name()),
                None => ("V", "-".to_owned(), "-"),
            };
            out.push_str(&format!(
                "{status}\t{}\t{}\t{at}\t{why}\t{}\t{}\t{}\n",
                e.serial,
                timestamp(e.not_after),
                escape(&e.name),
                escape(&e.subject),
                e.issued_by.name()
            ));
        }
        out
    }

    /// Parses an index; the error names the line (1-based) and what is wrong with it.
    pub fn parse(text: &str) -> Result<Index, String> {
        let (index, bad) = Index::parse_all(text);
        match bad.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(index),
        }
    }

    /// Parses every line it can; each line it cannot is named (1-based) with
    /// what is wrong with it, never skipped silently.
    pub fn parse_all(text: &str) -> (Index, Vec<String>) {
        let mut entries = Vec::new();
        let mut bad_lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            match parse_line(n + 1, line) {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => {}
                Err(e) => bad_lines.push(e),
            }
        }
        (Index { entries }, bad_lines)
    }
}

/// One line of an index: an entry, nothing (blank or a comment), or why not.
fn parse_line(line_no: usize, line: &str) -> Result<Option<Entry>, String> {
    if line.trim().is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let bad = |what: &str| format!("line {line_no}: {what}");
    let fields: Vec<&str> = line.splitn(8, '\t').collect();
    let (status, serial, not_after, at, why, name, subject, issued_by) = match fields.as_slice() {
        [status, serial, not_after, at, why, name, subject] => (status, serial, not_after, at, why, name, subject, IssuedBy::Cli),
        [status, serial, not_after, at, why, name, subject, by] => {
            let by = IssuedBy::from_name(by).ok_or_else(|| bad(&format!("unknown issued-by {by:?}")))?;
            (status, serial, not_after, at, why, name, subject, by)
        }
        _ => return Err(bad("expected 7 or 8 tab-separated fields")),
    };
    let time = |s: &str| OffsetDateTime::parse(s, &Rfc3339).map_err(|e| bad(&format!("bad time {s:?}: {e}")));
    let revoked = match *status {
        "V" => None,
        "R" => {
            let reason = Reason::from_name(why).ok_or_else(|| bad(&format!("unknown reason {why:?}")))?;
            Some((time(at)?, reason))
        }
        other => return Err(bad(&format!("status {other:?} is neither V nor R"))),
    };
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(&format!("serial {serial:?} is not hex")));
    }
    Ok(Some(Entry {
        serial: serial.to_ascii_uppercase(),
        not_after: time(not_after)?,
        revoked,
        name: unescape(name),
        subject: unescape(subject),
        issued_by,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_awkward_names() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let index = Index {
            entries: vec![
                Entry {
                    serial: "0A1B".into(),
                    not_after: t,
                    revoked: None,
                    name: "alice".into(),
                    subject: "CN=alice".into(),
                    issued_by: IssuedBy::Cli,
                },
                Entry {
                    serial: "FF".into(),
                    not_after: t,
                    revoked: Some((t, Reason::KeyCompromise)),
                    name: "tab\there".into(),
                    subject: "CN=a\\,b\nO=x".into(),
                    issued_by: IssuedBy::EstToken,
                },
            ],
        };
        let text = index.to_text();
        assert_eq!(text.lines().count(), 3);
        assert_eq!(Index::parse(&text).unwrap(), index);
    }

    #[test]
    fn errors_name_the_line() {
        let err = Index::parse("# header\nV\t0A\tnot-a-time\t-\t-\tn\ts\n").unwrap_err();
        assert!(err.starts_with("line 2: bad time"), "{err}");
        let err = Index::parse("X\t0A\t2026-01-01T00:00:00Z\t-\t-\tn\ts\n").unwrap_err();
        assert!(err.contains("neither V nor R"), "{err}");
        let err = Index::parse("V\tzz\t2026-01-01T00:00:00Z\t-\t-\tn\ts\n").unwrap_err();
        assert!(err.contains("not hex"), "{err}");
        assert!(Index::parse("V\t0A\n").unwrap_err().contains("7 or 8 tab-separated"));
        let old = Index::parse("V\t0A\t2026-01-01T00:00:00Z\t-\t-\tn\ts\n").unwrap();
        assert_eq!(old.entries[0].issued_by, IssuedBy::Cli, "a line from before enrollment");
        let err = Index::parse("V\t0A\t2026-01-01T00:00:00Z\t-\t-\tn\ts\tfax\n").unwrap_err();
        assert!(err.contains("unknown issued-by \"fax\""), "{err}");
    }
}
