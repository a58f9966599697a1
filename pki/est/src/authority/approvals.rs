//! The approval queue as the server uses it: a request without a token is
//! queued within the queue's bounds (and its requester told to ask again),
//! listed for approvers, and decided on the approvals page.

use certgate_pki::csr;
use certgate_pki::enroll::audit::{Decision, Mode};
use certgate_pki::enroll::queue::{self, Queued, Status};
use certgate_pki::index::timestamp;
use certgate_pki::profile;
use certgate_pki::PkiError;
use rcgen::{Issuer, KeyPair};
use x509_parser::prelude::FromDer;

use super::answer::{failed, refused, Answer, Refusal};
use super::record::verdict_outcome;
use super::{Authority, Requester, Signer};

/// A CSR's subject as people read it (RFC 4514, letters as they are), as
/// the queue keeps it; empty if unreadable.
pub(super) fn readable_subject(csr_der: &[u8]) -> String {
    x509_parser::certification_request::X509CertificationRequest::from_der(csr_der)
        .map(|(_, c)| certgate_x509::dn::Dn::from_x509(&c.certification_request_info.subject).readable())
        .unwrap_or_default()
}

/// An approver's decision on a queued request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Sign it.
    Approve,
    /// Refuse it; the requester's page shows the reason.
    Reject(&'a str),
}

impl Authority {
    /// Queues a request (once: the same CSR from the same address is the
    /// same request), within the queue's bounds, runs the approval command
    /// on a new one, and answers where it stands. Past a bound the answer is
    /// 429 (this address) or 503 (the whole queue), and nothing is written.
    pub(super) fn enqueue(&self, signer: &Signer, csr_der: &[u8], request: &csr::Request, who: &Requester) -> Answer {
        let address = who.addr.to_string();
        let id = queue::id(csr_der, &address);
        // the bounds are counted and kept by one enqueue at a time
        let Ok(_one_at_a_time) = self.enqueue_lock.lock() else {
            return Answer::Failed("the queue's lock is poisoned".into());
        };
        let now = profile::now();
        let limits = self.settings.queue;
        let existing = match queue::load(&signer.ca, &id) {
            Ok(q) => q.filter(|q| !queue::expired(q, limits.days, now)),
            Err(e) => return failed(&e),
        };
        let new = existing.is_none();
        let current = match existing {
            Some(q) => q,
            None => {
                let (total, mine) = match self.pending_counts(&address) {
                    Ok(counts) => counts,
                    Err(e) => return failed(&e),
                };
                if mine >= limits.per_address {
                    return refused(
                        Refusal::TooManyRequests,
                        format!("{address} has {mine} requests waiting for approval already, the most one address may have; ask again once they are decided"),
                    );
                }
                if total >= limits.total {
                    return refused(
                        Refusal::Unavailable,
                        format!("the approval queue is full ({total} requests wait); ask again later"),
                    );
                }
                use base64::Engine;
                let queued = Queued {
                    id: id.clone(),
                    ca: signer.ca.name.clone(),
                    requester: address,
                    says: who.basic.as_ref().map(|(user, _)| user.clone()).filter(|u| !u.is_empty()),
                    subject: readable_subject(csr_der),
                    sans: request.sans.texts(),
                    csr: base64::engine::general_purpose::STANDARD.encode(csr_der),
                    received: timestamp(now),
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
            Status::Rejected { reason, .. } => Answer::Rejected { id, reason },
            Status::Issued { serial, .. } => match certgate_pki::store::cert_file(&signer.ca.issued_copy(&serial)) {
                Ok(certs) => Answer::certificates(&certs, Some(serial)),
                Err(e) => failed(&e),
            },
        }
    }

    /// Pending requests that have not expired: in all, and from `address`.
    fn pending_counts(&self, address: &str) -> Result<(usize, usize), PkiError> {
        let waiting = self.pending()?;
        let mine = waiting.iter().filter(|q| q.requester == address).count();
        Ok((waiting.len(), mine))
    }

    /// The requests waiting for a person (not expired), at every CA served,
    /// oldest first. A request file that cannot be read is set aside (and
    /// logged); the rest still list.
    pub fn pending(&self) -> Result<Vec<Queued>, PkiError> {
        let now = profile::now();
        let mut out = Vec::new();
        for signer in self.signers.values() {
            let (requests, set_aside) = queue::list(&signer.ca)?;
            for file in set_aside {
                tracing::error!(ca = %signer.ca.name, file = %file.display(), "a queued request cannot be read: set aside");
            }
            out.extend(
                requests
                    .into_iter()
                    .filter(|q| q.status == Status::Pending && !queue::expired(q, self.settings.queue.days, now)),
            );
        }
        out.sort_by(|a, b| a.received.cmp(&b.received));
        Ok(out)
    }

    /// Whether the certificate a request would get passes the approvers'
    /// policy, so approving it would make a new approver; when that cannot
    /// be told, it is taken as yes. Without approvers, no.
    pub fn makes_approver(&self, request: &Queued, host: &str) -> bool {
        let Some(approvers) = &self.approvers else {
            return false;
        };
        let would_be = request
            .csr_der()
            .and_then(|der| csr::check(&der).map_err(|e| PkiError::Internal(e.to_string())))
            .and_then(|checked| self.as_issued(&request.ca, &checked));
        match would_be {
            Ok(der) => approvers.check(Some(&der), "POST", host).is_ok(),
            Err(e) => {
                tracing::warn!(request = %request.id, error = %e, "cannot tell what the request would get");
                true
            }
        }
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
        certgate_pki::enroll::audit::writable(&self.home)?;
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
