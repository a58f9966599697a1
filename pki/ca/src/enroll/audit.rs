//! The audit log: one JSON line per enrollment decision in `audit.log` of the
//! PKI home, appended and never rewritten: who asked, for which names, in
//! which mode, and what came of it.
//!
//! Its operations, modes and outcomes are the enums below: the EST server's
//! log lines and metrics take their names from the same ones, and the book's
//! reference page lists them from their doc comments.

use std::io::Write;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::index::timestamp;
use crate::store::Home;
use crate::PkiError;

/// Names an enum's values as serde writes them (one place for the audit
/// log, the log lines and the metrics' labels).
macro_rules! named {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in the order the reference lists them.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// As the audit log, the log lines and the metrics write it.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// What was asked of the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// EST `GET cacerts`: the CA's chain (counted, not audited).
    CaCerts,
    /// EST `POST simpleenroll`: a new certificate for a CSR.
    SimpleEnroll,
    /// EST `POST simplereenroll`: a renewal with the client's current certificate.
    SimpleReenroll,
    /// EST `GET csrattrs`: what a CSR should hold (counted, not audited).
    CsrAttrs,
    /// A queued request approved (on the command line, the approvals page or by the approval command).
    Approve,
    /// A queued request rejected.
    Reject,
    /// A one-time enrollment token made (`pki token`).
    Token,
    /// Expired or rejected requests removed from the queue (`pki requests purge`).
    Purge,
}

named!(Operation {
    CaCerts => "cacerts",
    SimpleEnroll => "simpleenroll",
    SimpleReenroll => "simplereenroll",
    CsrAttrs => "csrattrs",
    Approve => "approve",
    Reject => "reject",
    Token => "token",
    Purge => "purge",
});

impl Operation {
    /// The EST operation a URL's last segment names.
    pub fn from_est_name(s: &str) -> Option<Operation> {
        [
            Operation::CaCerts,
            Operation::SimpleEnroll,
            Operation::SimpleReenroll,
            Operation::CsrAttrs,
        ]
        .into_iter()
        .find(|o| o.name() == s)
    }
}

/// The way in that a decision went by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A one-time token as the HTTP Basic password.
    Token,
    /// No token: the request waits in the approval queue.
    Queue,
    /// The approval command (`--approve-command`) decided.
    Hook,
    /// An approver on the approvals page decided.
    Web,
    /// The client's current certificate at TLS (re-enrollment).
    Renewal,
    /// An operator on the command line (`pki token`, `pki requests`).
    Cli,
}

named!(Mode {
    Token => "token",
    Queue => "queue",
    Hook => "hook",
    Web => "web",
    Renewal => "renewal",
    Cli => "cli",
});

/// What came of a request: the audit log's `outcome`, and the metrics' label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A certificate was issued (or the CA's chain was sent).
    Issued,
    /// The request waits for approval (`202`).
    Queued,
    /// An approver rejected the request.
    Rejected,
    /// A token was made.
    Created,
    /// Queued requests were removed.
    Purged,
    /// `400`: the request cannot be read (a bad CSR, bad base64).
    BadRequest,
    /// `401`: no usable credential (no token; an unknown, used or expired one).
    Unauthorized,
    /// `403`: a credential, but not for this.
    Forbidden,
    /// `404`: no such CA label.
    NotFound,
    /// `405`: the wrong method for the operation.
    MethodNotAllowed,
    /// `408`: a body that came too slowly.
    TooSlow,
    /// `413`: a body over the limit.
    TooLarge,
    /// `415`: a body that is not `application/pkcs10`.
    UnsupportedMediaType,
    /// `429`: the requester's share of the queue is full.
    TooManyRequests,
    /// `503`: the queue is full, or the server cannot take more now.
    Unavailable,
    /// `204` for `csrattrs`: nothing is asked of a CSR.
    NoAttributes,
    /// `500`: the server failed; nothing was issued (its log says why).
    Error,
}

named!(Outcome {
    Issued => "issued",
    Queued => "queued",
    Rejected => "rejected",
    Created => "created",
    Purged => "purged",
    BadRequest => "bad_request",
    Unauthorized => "unauthorized",
    Forbidden => "forbidden",
    NotFound => "not_found",
    MethodNotAllowed => "method_not_allowed",
    TooSlow => "too_slow",
    TooLarge => "too_large",
    UnsupportedMediaType => "unsupported_media_type",
    TooManyRequests => "too_many_requests",
    Unavailable => "unavailable",
    NoAttributes => "no_attributes",
    Error => "error",
});

/// One decision.
#[derive(Debug, Clone, Serialize)]
pub struct Decision<'a> {
    /// What was asked.
    pub operation: Operation,
    /// The CA concerned.
    pub ca: &'a str,
    /// The way in.
    pub mode: Mode,
    /// Who asked (their address, and what they say they are or their
    /// certificate's subject; an approver "for" the requester).
    pub requester: &'a str,
    /// The requested subject.
    pub subject: &'a str,
    /// The requested SANs.
    pub sans: &'a [String],
    /// What came of it.
    pub outcome: Outcome,
    /// The queued request it concerns, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<&'a str>,
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

/// Whether `audit.log` can be written now; nothing is issued, approved or
/// made unless it can, so no decision goes unrecorded.
pub fn writable(home: &Home) -> Result<(), PkiError> {
    let path = home.dir.join("audit.log");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map(drop)
        .map_err(|cause| PkiError::Write { path, cause })
}

/// Appends the decision to `audit.log` (one `write` of one line, so lines
/// from concurrent writers never interleave).
pub fn record(home: &Home, decision: &Decision<'_>) -> Result<(), PkiError> {
    let path = home.dir.join("audit.log");
    let mut line = serde_json::to_string(&Line {
        time: timestamp(crate::profile::now()),
        decision,
    })
    .map_err(|e| PkiError::Internal(format!("cannot write the audit line: {e}")))?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(PkiError::write(&path))?;
    file.write_all(line.as_bytes()).map_err(PkiError::write(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the enums give are the names serde writes into the log.
    #[test]
    fn each_name_is_the_one_the_audit_log_writes() {
        for o in Operation::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.name());
        }
        for m in Mode::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), m.name());
        }
        for o in Outcome::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.name());
        }
        assert_eq!(Operation::from_est_name("simpleenroll"), Some(Operation::SimpleEnroll));
        assert_eq!(Operation::from_est_name("approve"), None, "not an EST operation");
    }
}
