//! Every decision is logged and written to the audit log, with one set of
//! names (the audit module's enums) for both.

use certgate_pki::csr;
use certgate_pki::enroll::audit::{self, Decision, Mode, Operation, Outcome};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::answer::Answer;
use super::{Authority, Requester};

/// What was asked, of which CA, by whom: what a decision is recorded with.
#[derive(Debug)]
pub(super) struct Asked<'a> {
    /// The CA's name.
    pub ca: &'a str,
    pub operation: Operation,
    pub mode: Mode,
    pub who: &'a Requester,
    /// The CSR as received.
    pub csr_der: &'a [u8],
    /// The CSR as checked, if it passed.
    pub request: Option<&'a csr::Request>,
}

/// The subject a CSR asks for, in certgate's machine form (RFC 2253, as its
/// headers and rules write a DN; empty if unreadable).
pub(super) fn subject_text(csr_der: &[u8]) -> String {
    x509_parser::certification_request::X509CertificationRequest::from_der(csr_der)
        .map(|(_, c)| certgate_x509::dn::Dn::from_x509(&c.certification_request_info.subject).text)
        .unwrap_or_default()
}

impl Requester {
    /// How the log and the audit log name them: the client certificate's
    /// subject names a renewing client best; else what they say they are.
    pub fn describe(&self) -> String {
        match &self.cert {
            Some(der) => {
                X509Certificate::from_der(der).map_or_else(|_| self.name(), |(_, c)| format!("{} from {}", c.subject(), self.addr))
            }
            None => self.name(),
        }
    }
}

impl Authority {
    /// Logs and audits a decision, and hands the answer on. A poll of a
    /// request that still waits is no new decision: logged at debug only.
    pub(super) fn record_decision(&self, asked: &Asked<'_>, answer: Answer) -> Answer {
        let requester = asked.who.describe();
        let (operation, mode, ca) = (asked.operation, asked.mode, asked.ca);
        if let Answer::Pending { new: false, id, .. } = &answer {
            tracing::debug!(%operation, ca, request = %id, requester = %requester, "still waiting for approval");
            return answer;
        }
        let sans = asked.request.map(|r| r.sans.texts()).unwrap_or_default();
        let subject = subject_text(asked.csr_der);
        let outcome = answer.outcome();
        let (serial, request, reason) = match &answer {
            Answer::Certificates { serial, .. } => (serial.as_deref(), None, None),
            Answer::Pending { id, .. } => (None, Some(id.as_str()), None),
            Answer::Refused(_, why) => (None, None, Some(why.as_str())),
            Answer::Rejected { id, reason } => (None, Some(id.as_str()), Some(reason.as_str())),
            Answer::Failed(cause) => {
                tracing::error!(%operation, ca, %mode, requester = %requester, subject = %subject, error = %cause, "enrollment failed; nothing was issued");
                (None, None, Some(super::answer::FAILED))
            }
        };
        tracing::info!(%operation, ca, %mode, tls = asked.who.tls, requester = %requester, subject = %subject, sans = ?sans, %outcome, serial = ?serial, request = ?request, reason = ?reason, "est decision");
        self.audit(&Decision {
            operation,
            ca,
            mode,
            requester: &requester,
            subject: &subject,
            sans: &sans,
            outcome,
            request,
            serial,
            reason,
        });
        answer
    }

    /// Writes a line of the audit log; a failure is logged.
    pub(super) fn audit(&self, decision: &Decision<'_>) {
        if let Err(e) = audit::record(&self.home, decision) {
            tracing::error!(error = %e, operation = %decision.operation, ca = decision.ca, "the audit log could not be written");
        }
    }
}

/// What an approver's decision is recorded as.
pub(super) fn verdict_outcome(approve: bool) -> (Operation, Outcome) {
    if approve {
        (Operation::Approve, Outcome::Issued)
    } else {
        (Operation::Reject, Outcome::Rejected)
    }
}
