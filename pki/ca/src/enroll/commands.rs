//! `pki token` and `pki requests`: the operator's side of enrollment, each
//! decision also a line in the audit log.

use super::audit::{self, Decision, Mode, Operation, Outcome};
use super::queue::{self, Status};
use super::tokens::{self, TokenGrant};
use crate::keys::Passphrase;
use crate::ops::Report;
use crate::profile::Sans;
use crate::store::Home;
use crate::PkiError;

fn operator() -> String {
    std::env::var("USER").unwrap_or_else(|_| "operator".into())
}

/// `pki token`: a one-time token for these names; printed once.
pub fn token(home: &Home, ca_name: &str, cn: Option<String>, sans: &Sans, hours: u32) -> Result<Report, PkiError> {
    let ca = home.open_ca(ca_name)?;
    audit::writable(home)?;
    let grant = TokenGrant::new(cn, sans, hours)?;
    let (token, path) = tokens::create(&ca, &grant)?;
    let names: Vec<String> = grant.cn.iter().map(|c| format!("CN={c}")).chain(sans.texts()).collect();
    audit::record(
        home,
        &Decision {
            operation: Operation::Token,
            ca: ca_name,
            mode: Mode::Cli,
            requester: &operator(),
            subject: grant.cn.as_deref().unwrap_or(""),
            sans: &names,
            outcome: Outcome::Created,
            request: None,
            serial: None,
            reason: None,
        },
    )?;
    // the token alone on stdout's first line, for scripts: TOKEN=$(certgate pki token ... | head -1)
    Ok(vec![
        token,
        format!(
            "one-time token for CA {ca_name}, allowing {}, until {} (only its hash is kept: {})",
            names.join(", "),
            grant.expires,
            path.display()
        ),
    ])
}

fn names_of(q: &queue::Queued) -> String {
    if q.sans.is_empty() {
        "-".into()
    } else {
        q.sans.join(",")
    }
}

/// What a requester wrote, safe to print: control characters, terminal
/// escapes, newlines and bidi overrides escaped, letters as they are.
fn shown(text: &str) -> String {
    certgate_x509::text::escape_deceptive(text).into_owned()
}

/// `pki requests list`: pending requests (every one with `all`); a pending
/// one that waited past `days` shows as expired. A request file that
/// cannot be read is set aside and named; the rest still list.
pub fn list(home: &Home, ca_name: Option<&str>, all: bool, days: u32) -> Result<Report, PkiError> {
    let names = match ca_name {
        Some(n) => vec![n.to_owned()],
        None => home.ca_names(),
    };
    let row =
        |id: &str, ca: &str, status: &str, received: &str, rest: &str| format!("{id:<24}  {ca:<10}  {status:<8}  {received:<20}  {rest}");
    let mut out = vec![row("ID", "CA", "STATUS", "RECEIVED", "REQUESTER (SAYS) / SUBJECT / NAMES")];
    let mut notes = Vec::new();
    let now = crate::profile::now();
    for name in names {
        let ca = home.open_ca(&name)?;
        let (requests, set_aside) = queue::list(&ca)?;
        notes.extend(
            set_aside
                .iter()
                .map(|f| format!("set aside {}: it cannot be read as a queued request", f.display())),
        );
        for q in requests {
            let expired = queue::expired(&q, days, now);
            if !all && (q.status != Status::Pending || expired) {
                continue;
            }
            let status = match &q.status {
                Status::Pending if expired => "expired",
                Status::Pending => "pending",
                Status::Issued { .. } => "issued",
                Status::Rejected { .. } => "rejected",
            };
            let says = q.says.as_deref().map(|s| format!(" (says {s:?})")).unwrap_or_default();
            out.push(row(
                &q.id,
                &q.ca,
                status,
                &q.received,
                &shown(&format!("{}{says} / {} / {}", q.requester, q.subject, names_of(&q))),
            ));
        }
    }
    out.extend(notes);
    Ok(out)
}

/// `pki requests show`.
pub fn show(home: &Home, ca_name: &str, id: &str) -> Result<Report, PkiError> {
    let ca = home.open_ca(ca_name)?;
    let q = queue::load(&ca, id)?.ok_or_else(|| PkiError::NotFound(format!("no request {id} at CA {ca_name}")))?;
    // JSON escapes control characters inside its strings; what it leaves
    // (bidi overrides) is escaped line by line, keeping the layout's newlines
    let json = serde_json::to_string_pretty(&q).map_err(|e| PkiError::Internal(e.to_string()))?;
    Ok(json.lines().map(shown).collect())
}

/// `pki requests purge`: removes rejected requests and those that waited
/// past `days`; each removal is a line of the audit log.
pub fn purge(home: &Home, ca_name: Option<&str>, days: u32) -> Result<Report, PkiError> {
    let names = match ca_name {
        Some(n) => vec![n.to_owned()],
        None => home.ca_names(),
    };
    let mut out = Vec::new();
    for name in names {
        let ca = home.open_ca(&name)?;
        for q in queue::purge(&ca, days)? {
            let why = match &q.status {
                Status::Rejected { reason, .. } => format!("rejected: {reason}"),
                _ => format!("waited more than {days} days"),
            };
            audit::record(
                home,
                &Decision {
                    operation: Operation::Purge,
                    ca: &name,
                    mode: Mode::Cli,
                    requester: &format!("{} for {}", operator(), q.requester),
                    subject: &q.subject,
                    sans: &q.sans,
                    outcome: Outcome::Purged,
                    request: Some(&q.id),
                    serial: None,
                    reason: Some(&why),
                },
            )?;
            out.push(shown(&format!("removed request {} ({}) from CA {name}: {why}", q.id, q.subject)));
        }
    }
    if out.is_empty() {
        out.push(format!(
            "nothing to remove: no rejected request, none waiting more than {days} days"
        ));
    }
    Ok(out)
}

/// `pki requests approve`: signs it now.
pub fn approve(home: &Home, ca_name: &str, id: &str, days: u32, pass: &Passphrase) -> Result<Report, PkiError> {
    let ca = home.open_ca(ca_name)?;
    audit::writable(home)?;
    let issuer = ca.issuer(pass)?;
    let (q, issued) = queue::approve(&ca, &issuer, id, days)?;
    audit::record(
        home,
        &Decision {
            operation: Operation::Approve,
            ca: ca_name,
            mode: Mode::Cli,
            requester: &format!("{} for {}", operator(), q.requester),
            subject: &q.subject,
            sans: &q.sans,
            outcome: Outcome::Issued,
            request: Some(id),
            serial: Some(&issued.serial),
            reason: None,
        },
    )?;
    Ok(vec![shown(&format!(
        "approved request {id} ({}, {}): issued serial {}; the requester's next poll gets it",
        q.subject,
        names_of(&q),
        issued.serial
    ))])
}

/// `pki requests reject`.
pub fn reject(home: &Home, ca_name: &str, id: &str, reason: &str) -> Result<Report, PkiError> {
    let ca = home.open_ca(ca_name)?;
    audit::writable(home)?;
    let q = queue::reject(&ca, id, reason)?;
    audit::record(
        home,
        &Decision {
            operation: Operation::Reject,
            ca: ca_name,
            mode: Mode::Cli,
            requester: &format!("{} for {}", operator(), q.requester),
            subject: &q.subject,
            sans: &q.sans,
            outcome: Outcome::Rejected,
            request: Some(id),
            serial: None,
            reason: Some(reason),
        },
    )?;
    Ok(vec![shown(&format!("rejected request {id} ({}): {reason}", q.subject))])
}
