//! Enrollment: what the EST server (`certgate-est`) and `pki token` /
//! `pki requests` share. A request is signed only under a [`Grant`] the CA
//! decided on (from a one-time token, an approval, or the client's current
//! certificate), never as the CSR asks; each decision is a line in the audit
//! log. Everything is kept in the PKI home, beside the CA it concerns:
//!
//! ```text
//! client-ca/tokens/<sha256 of the token>.json   a token not used yet
//! client-ca/tokens/used/<sha256>.json          one that was (moved there once, atomically)
//! client-ca/requests/<id>.json                 the approval queue: pending, issued, rejected
//! client-ca/certs/<serial>.pem, index.txt       what was issued, as for `pki client`
//! audit.log                                     one JSON line per decision
//! ```

pub mod audit;
pub mod commands;
pub mod grant;
pub mod queue;
pub mod tokens;

pub use grant::{issue, Grant, Issued};

/// Lifetime of an enrolled certificate when the server or approver names none (days).
pub const DEFAULT_DAYS: u32 = 90;

/// Days a queued request waits for a decision before it expires, unless the server says otherwise.
pub const PENDING_DAYS: u32 = 14;
