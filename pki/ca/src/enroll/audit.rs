//! The audit log: one JSON line per enrollment decision in `audit.log` of the
//! PKI home, appended and never rewritten: who asked, for which names, in
//! which mode, and what came of it.

use std::io::Write;

use serde::Serialize;

use crate::index::timestamp;
use crate::store::Home;
use crate::PkiError;

/// One decision.
#[derive(Debug, Clone, Serialize)]
pub struct Decision<'a> {
    /// `simpleenroll`, `simplereenroll`, `approve`, `reject`, `token`.
    pub operation: &'a str,
    /// The CA concerned.
    pub ca: &'a str,
    /// `token`, `queue`, `renewal`, `cli`.
    pub mode: &'a str,
    /// Who asked (user, address, or the client certificate's subject).
    pub requester: &'a str,
    /// The requested subject.
    pub subject: &'a str,
    /// The requested SANs.
    pub sans: &'a [String],
    /// `issued`, `queued`, `pending`, `refused`, `rejected`, `created`.
    pub outcome: &'a str,
    /// The serial issued, if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<&'a str>,
    /// Why it was refused, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    #[serde(flatten)]
    decision: &'a Decision<'a>,
}

/// Appends the decision to `audit.log` (one `write` of one line, so lines
/// from concurrent writers never interleave).
pub fn record(home: &Home, decision: &Decision<'_>) -> Result<(), PkiError> {
    let path = home.dir.join("audit.log");
    let mut line = serde_json::to_string(&Line {
        time: timestamp(crate::profile::now()),
        decision,
    })
    .map_err(|e| PkiError::Invalid(format!("cannot write the audit line: {e}")))?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(PkiError::write(&path))?;
    file.write_all(line.as_bytes()).map_err(PkiError::write(&path))
}
