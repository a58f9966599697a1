//! The approval queue: a request that came without a token (where the
//! server allows it) waits here, keyed by its CSR and its requester, until
//! `pki requests approve` signs it or `reject` refuses it. The requester's
//! next poll with the same CSR gets the certificate, or a refusal.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::index::timestamp;
use crate::keys::{write_atomically, write_new};
use crate::store::Ca;
use crate::PkiError;

/// Where a queued request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Waiting for someone to act.
    Pending,
    /// Signed: the certificate is `certs/<serial>.pem`.
    Issued {
        /// Upper-case hex.
        serial: String,
        /// RFC 3339.
        at: String,
    },
    /// Refused: the next poll gets 403 with the reason.
    Rejected {
        /// Said to the requester.
        reason: String,
        /// RFC 3339.
        at: String,
    },
}

/// One queued request, as kept in `requests/<id>.json` (serde cannot deny
/// unknown fields beside a flattened one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// Its id: from the CSR and the requester's address.
    pub id: String,
    /// The CA it asks.
    pub ca: String,
    /// Who asked: their address (the client's, as the trusted proxy says).
    pub requester: String,
    /// Who they say they are (the HTTP Basic user name, never checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub says: Option<String>,
    /// The requested subject, as the CSR has it.
    pub subject: String,
    /// The requested SANs, `DNS:…`, `URI:…`, `email:…`, `IP:…`.
    pub sans: Vec<String>,
    /// The CSR, DER in base64.
    pub csr: String,
    /// RFC 3339.
    pub received: String,
    /// Where it stands.
    #[serde(flatten)]
    pub status: Status,
}

impl Queued {
    /// Its CSR, DER, as it was received.
    pub fn csr_der(&self) -> Result<Vec<u8>, PkiError> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.csr)
            .map_err(|e| PkiError::Internal(format!("request {}: its stored CSR is not base64: {e}", self.id)))
    }
}

/// The id of a request: the same CSR from the same address is the same request.
pub fn id(csr_der: &[u8], requester_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(csr_der);
    h.update([0]);
    h.update(requester_key.as_bytes());
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn path(ca: &Ca, id: &str) -> PathBuf {
    ca.dir.join("requests").join(format!("{id}.json"))
}

fn check_id(id: &str) -> Result<(), PkiError> {
    if id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(PkiError::Usage(format!(
            "request id {id:?}: 24 hex digits, as `pki requests list` shows"
        )))
    }
}

/// The request as kept, if there is one.
pub fn load(ca: &Ca, id: &str) -> Result<Option<Queued>, PkiError> {
    check_id(id)?;
    let path = path(ca, id);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| PkiError::bad_file(&path, format!("not a queued request: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(PkiError::Read { path, cause }),
    }
}

/// Queues a new request; an existing one with the same id stays as it is and is returned.
pub fn submit(ca: &Ca, request: Queued) -> Result<Queued, PkiError> {
    let json = serde_json::to_string_pretty(&request).map_err(|e| PkiError::Internal(format!("cannot write the request: {e}")))?;
    match write_new(&path(ca, &request.id), json.as_bytes(), false, false) {
        Ok(()) => Ok(request),
        Err(PkiError::Exists { .. }) => {
            load(ca, &request.id)?.ok_or_else(|| PkiError::Conflict(format!("request {} vanished", request.id)))
        }
        Err(e) => Err(e),
    }
}

/// Changes a pending request's status (under the CA's lock, so two
/// approvers cannot both act on it); a decided one is an error naming how.
pub fn decide(ca: &Ca, id: &str, decision: impl FnOnce(&Queued) -> Result<Status, PkiError>) -> Result<Queued, PkiError> {
    let _lock = ca.lock_queue()?;
    let mut request = load(ca, id)?.ok_or_else(|| PkiError::NotFound(format!("no request {id} at CA {}", ca.name)))?;
    if request.status != Status::Pending {
        return Err(PkiError::Conflict(format!(
            "request {id} was decided already ({}); nothing changed",
            describe(&request.status)
        )));
    }
    request.status = decision(&request)?;
    let json = serde_json::to_string_pretty(&request).map_err(|e| PkiError::Internal(format!("cannot write the request: {e}")))?;
    write_atomically(&path(ca, id), json.as_bytes())?;
    Ok(request)
}

/// `pending`, `issued serial …`, `rejected: …`.
pub fn describe(status: &Status) -> String {
    match status {
        Status::Pending => "pending".into(),
        Status::Issued { serial, at } => format!("issued serial {serial} at {at}"),
        Status::Rejected { reason, at } => format!("rejected at {at}: {reason}"),
    }
}

/// Every request at `ca` that can be read, oldest first. A file that
/// cannot be read is moved to `requests/unreadable/` and named in the second
/// list; it does not stop the rest from listing.
pub fn list(ca: &Ca) -> Result<(Vec<Queued>, Vec<PathBuf>), PkiError> {
    let mut out = Vec::new();
    let mut set_aside = Vec::new();
    for entry in fs::read_dir(ca.dir.join("requests")).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else { continue };
        if check_id(id).is_err() {
            continue;
        }
        match load(ca, id) {
            Ok(Some(q)) => out.push(q),
            Ok(None) => {}
            Err(PkiError::BadFile { path, .. }) => set_aside.push(set_aside_file(ca, &path)?),
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.received.cmp(&b.received).then(a.id.cmp(&b.id)));
    Ok((out, set_aside))
}

/// Moves a request file that cannot be read to `requests/unreadable/`.
fn set_aside_file(ca: &Ca, path: &std::path::Path) -> Result<PathBuf, PkiError> {
    let dir = ca.dir.join("requests").join("unreadable");
    fs::create_dir_all(&dir).map_err(PkiError::write(&dir))?;
    let to = dir.join(path.file_name().unwrap_or_default());
    fs::rename(path, &to).map_err(PkiError::write(&to))?;
    Ok(to)
}

/// When a request was received, if its time reads.
pub fn received_at(q: &Queued) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(&q.received, &time::format_description::well_known::Rfc3339).ok()
}

/// Whether a pending request has waited longer than `days` (it is no
/// longer decided, nor counted in the queue's bounds).
pub fn expired(q: &Queued, days: u32, now: time::OffsetDateTime) -> bool {
    q.status == Status::Pending && received_at(q).is_none_or(|at| now - at > time::Duration::days(i64::from(days)))
}

/// Removes rejected requests and those that waited past `days`; returns
/// what it removed (issued ones stay: their certificate's record).
pub fn purge(ca: &Ca, days: u32) -> Result<Vec<Queued>, PkiError> {
    let _lock = ca.lock_queue()?;
    let now = crate::profile::now();
    let mut removed = Vec::new();
    for q in list(ca)?.0 {
        if matches!(q.status, Status::Rejected { .. }) || expired(&q, days, now) {
            let file = path(ca, &q.id);
            fs::remove_file(&file).map_err(PkiError::write(&file))?;
            removed.push(q);
        }
    }
    Ok(removed)
}

/// Signs a pending request as its CSR asks (subject and SANs, checked as
/// `sign-csr` checks them; the CA sets everything else) for `days`, and
/// marks it issued. `pki requests approve` and the server's approval hook.
pub fn approve(ca: &Ca, issuer: &rcgen::Issuer<'_, rcgen::KeyPair>, id: &str, days: u32) -> Result<(Queued, super::Issued), PkiError> {
    let mut issued = None;
    let request = decide(ca, id, |request| {
        let der = request.csr_der()?;
        let csr = crate::csr::check(&der).map_err(|e| PkiError::bad_file(&path(ca, id), format!("its CSR: {e}")))?;
        let grant = super::Grant {
            name: super::grant::index_name(csr.cn.as_deref(), &csr.sans),
            subject: csr.subject.clone(),
            sans: csr.sans.clone(),
            validity: crate::profile::Validity::days(days),
            issued_by: crate::index::IssuedBy::EstApproved,
        };
        let done = super::issue(ca, issuer, &csr.public_key, &grant)?;
        let status = Status::Issued {
            serial: done.serial.clone(),
            at: timestamp(crate::profile::now()),
        };
        issued = Some(done);
        Ok(status)
    })?;
    let issued = issued.ok_or_else(|| PkiError::Internal(format!("request {id}: nothing was issued")))?;
    Ok((request, issued))
}

/// Marks a pending request rejected; the requester's next poll gets 403 with `reason`.
pub fn reject(ca: &Ca, id: &str, reason: &str) -> Result<Queued, PkiError> {
    decide(ca, id, |_| {
        Ok(Status::Rejected {
            reason: reason.to_owned(),
            at: timestamp(crate::profile::now()),
        })
    })
}
