//! What comes of a request: certificates, a wait, a refusal with its
//! status, or a failure whose cause goes to the log, not to the client.

use certgate_pki::enroll::audit::Outcome;
use certgate_pki::enroll::Issued;

/// What the authority answers.
#[derive(Debug)]
pub enum Answer {
    /// 200 with this body.
    Certificates {
        /// A certs-only PKCS#7, DER.
        der: Vec<u8>,
        /// The serial of the certificate issued (none for `cacerts`), for the log.
        serial: Option<String>,
    },
    /// 202: the request waits in the queue.
    Pending {
        /// Its id, for `pki requests approve`.
        id: String,
        /// When to ask again, seconds.
        retry_after: u32,
        /// Whether it was queued by this request; else this is a poll of a
        /// request that still waits, which is no new decision (it is not
        /// written to the audit log again).
        new: bool,
    },
    /// Refused; the sentence says why, to the client.
    Refused(Refusal, String),
    /// 403: an approver rejected the queued request; the reason is theirs.
    Rejected {
        /// The request.
        id: String,
        /// What the approver said.
        reason: String,
    },
    /// 500: the server failed and nothing was issued. The cause is for the
    /// log (with the operation, the CA and the requester), never the client.
    Failed(String),
}

/// The kinds of refusal, each one status code and one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the request cannot be read (bad CSR, bad signature, bad base64).
    BadRequest,
    /// 401: no usable credential (no token, an unknown, used or expired one).
    Unauthorized,
    /// 403: a credential, but not for this.
    Forbidden,
    /// 404: no such CA label.
    NotFound,
    /// 405: the wrong method for the operation.
    MethodNotAllowed,
    /// 408: a body that came too slowly.
    TooSlow,
    /// 413: a body over the limit.
    TooLarge,
    /// 415: not `application/pkcs10`.
    UnsupportedMediaType,
    /// 429: the requester's share of the queue is full.
    TooManyRequests,
    /// 503: the server cannot take it now (the queue is full).
    Unavailable,
}

impl Refusal {
    /// Its HTTP status code: the one mapping from a refusal to HTTP.
    pub fn status(self) -> u16 {
        match self {
            Refusal::BadRequest => 400,
            Refusal::Unauthorized => 401,
            Refusal::Forbidden => 403,
            Refusal::NotFound => 404,
            Refusal::MethodNotAllowed => 405,
            Refusal::TooSlow => 408,
            Refusal::TooLarge => 413,
            Refusal::UnsupportedMediaType => 415,
            Refusal::TooManyRequests => 429,
            Refusal::Unavailable => 503,
        }
    }

    /// What the audit log and the metrics call it.
    pub fn outcome(self) -> Outcome {
        match self {
            Refusal::BadRequest => Outcome::BadRequest,
            Refusal::Unauthorized => Outcome::Unauthorized,
            Refusal::Forbidden => Outcome::Forbidden,
            Refusal::NotFound => Outcome::NotFound,
            Refusal::MethodNotAllowed => Outcome::MethodNotAllowed,
            Refusal::TooSlow => Outcome::TooSlow,
            Refusal::TooLarge => Outcome::TooLarge,
            Refusal::UnsupportedMediaType => Outcome::UnsupportedMediaType,
            Refusal::TooManyRequests => Outcome::TooManyRequests,
            Refusal::Unavailable => Outcome::Unavailable,
        }
    }
}

/// What a client is told when the server failed.
pub const FAILED: &str = "the server could not complete the request; nothing was issued (its log says why)";

impl Answer {
    /// What the audit log and the metrics call it.
    pub fn outcome(&self) -> Outcome {
        match self {
            Answer::Certificates { .. } => Outcome::Issued,
            Answer::Pending { .. } => Outcome::Queued,
            Answer::Refused(kind, _) => kind.outcome(),
            Answer::Rejected { .. } => Outcome::Forbidden,
            Answer::Failed(_) => Outcome::Error,
        }
    }

    /// 200 with `certs` (DER) as a certs-only PKCS#7; `serial` for the log.
    pub fn certificates(certs: &[Vec<u8>], serial: Option<String>) -> Answer {
        match crate::wire::certs_only(certs) {
            Ok(der) => Answer::Certificates { der, serial },
            Err(e) => Answer::Failed(format!("cannot build the PKCS#7 reply: {e}")),
        }
    }

    /// 200 with the certificate just issued.
    pub fn issued(issued: Issued) -> Answer {
        Answer::certificates(std::slice::from_ref(&issued.der), Some(issued.serial))
    }
}

/// A refusal of `kind`, saying `why`.
pub fn refused(kind: Refusal, why: impl Into<String>) -> Answer {
    Answer::Refused(kind, why.into())
}

/// 404 for a label that names no CA here.
pub fn no_label(label: Option<&str>) -> Answer {
    refused(Refusal::NotFound, format!("no CA label {:?} here", label.unwrap_or("")))
}

/// 500 for an error of the PKI home.
pub fn failed(e: &certgate_pki::PkiError) -> Answer {
    Answer::Failed(e.to_string())
}
