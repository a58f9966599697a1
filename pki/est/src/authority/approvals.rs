//! The approval queue as the server uses it: a request without a token is
//! queued (and its requester told to ask again), listed for approvers, and
//! decided on the approvals page.

use certgate_pki::csr;
use certgate_pki::enroll::audit::{Decision, Mode};
use certgate_pki::enroll::queue::{self, Queued, Status};
use certgate_pki::index::timestamp;
use certgate_pki::profile;
use certgate_pki::PkiError;
use rcgen::{Issuer, KeyPair};

use super::answer::{failed, refused, Answer, Refusal};
use super::record::{subject_text, verdict_outcome};
use super::{Authority, Requester, Signer};

/// An approver's decision on a queued request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Sign it.
    Approve,
    /// Refuse it; the requester's page shows the reason.
    Reject(&'a str),
}

impl Authority {
    /// Queues a request (once: the same CSR from the same requester is the
    /// same request), runs the approval command on a new one, and answers
    /// where it stands.
    pub(super) fn enqueue(&self, signer: &Signer, csr_der: &[u8], request: &csr::Request, who: &Requester) -> Answer {
        // the same CSR from the same user (or, without one, the same address) is the same request
        let key = who
            .basic
            .as_ref()
            .map_or_else(|| who.addr.to_string(), |(user, _)| format!("user:{user}"));
        let id = queue::id(csr_der, &key);
        let existing = match queue::load(&signer.ca, &id) {
            Ok(q) => q,
            Err(e) => return failed(&e),
        };
        let new = existing.is_none();
        let current = match existing {
            Some(q) => q,
            None => {
                use base64::Engine;
                let queued = Queued {
                    id: id.clone(),
                    ca: signer.ca.name.clone(),
                    requester: who.name(),
                    subject: subject_text(csr_der),
                    sans: request.sans.texts(),
                    csr: base64::engine::general_purpose::STANDARD.encode(csr_der),
                    received: timestamp(profile::now()),
                    status: Status::Pending,
                };
                match queue::submit(&signer.ca, queued) {
                    Ok(q) => self.run_approve_command(signer, q),
                    Err(e) => return failed(&e),
                }
            }
        };
        match current.status {
            Status::Pending => Answer::Pending {
                id,
                retry_after: self.settings.retry_after,
                new,
            },
            Status::Rejected { reason, .. } => refused(Refusal::Forbidden, format!("request {id} was rejected: {reason}")),
            Status::Issued { serial, .. } => match certgate_pki::store::cert_file(&signer.ca.issued_copy(&serial)) {
                Ok(certs) => Answer::certificates(&certs, Some(serial)),
                Err(e) => failed(&e),
            },
        }
    }

    /// The requests waiting for a person, at every CA served, oldest first.
    pub fn pending(&self) -> Result<Vec<Queued>, PkiError> {
        let mut out = Vec::new();
        for signer in self.signers.values() {
            out.extend(queue::list(&signer.ca)?.into_iter().filter(|q| q.status == Status::Pending));
        }
        out.sort_by(|a, b| a.received.cmp(&b.received));
        Ok(out)
    }

    /// One queued request.
    pub fn queued_request(&self, ca: &str, id: &str) -> Result<Option<Queued>, PkiError> {
        queue::load(&self.signer_named(ca)?.ca, id)
    }

    /// The certificate CA `ca` would issue for a checked CSR, signed by a
    /// throwaway key under the CA's name (never the CA's key, and never
    /// kept): the approvals page asks the approvers' policy whether the
    /// person it makes would be an approver.
    pub fn as_issued(&self, ca: &str, csr: &csr::Request) -> Result<Vec<u8>, PkiError> {
        let signer = self.signer_named(ca)?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = csr.subject.clone();
        params.subject_alt_names = csr.sans.to_rcgen(false)?;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let failed = |e: rcgen::Error| PkiError::Internal(format!("a certificate like CA {ca}'s: {e}"));
        let throwaway = KeyPair::generate().map_err(failed)?;
        let issuer =
            Issuer::from_ca_cert_der(&signer.ca.cert_der.as_slice().into(), KeyPair::generate().map_err(failed)?).map_err(failed)?;
        Ok(params.signed_by(&throwaway, &issuer).map_err(failed)?.der().to_vec())
    }

    /// An approver's decision from the approvals page: signs the request (or
    /// rejects it with `reason`) and writes who decided to the audit log.
    pub fn decide_as(&self, ca: &str, id: &str, verdict: Verdict<'_>, approver: &str) -> Result<Queued, PkiError> {
        let signer = self.signer_named(ca)?;
        let (request, serial, reason) = match verdict {
            Verdict::Approve => {
                let (request, issued) = queue::approve(&signer.ca, &signer.issuer, id, self.settings.days)?;
                (request, Some(issued.serial), None)
            }
            Verdict::Reject(reason) => (queue::reject(&signer.ca, id, reason)?, None, Some(reason)),
        };
        let (operation, outcome) = verdict_outcome(verdict == Verdict::Approve);
        self.audit(&Decision {
            operation,
            ca,
            mode: Mode::Web,
            requester: &format!("{approver} for {}", request.requester),
            subject: &request.subject,
            sans: &request.sans,
            outcome,
            request: Some(id),
            serial: serial.as_deref(),
            reason,
        });
        tracing::info!(ca, request = %id, approver, %outcome, serial = ?serial, "approvals page decision");
        Ok(request)
    }
}
