//! `simplereenroll`: the client's current certificate, verified at TLS,
//! renews itself: one this CA issued and recorded, not revoked, not
//! expired (or within the grace), for the same subject and names.

use certgate_pki::csr;
use certgate_pki::enroll::audit::{Mode, Operation};
use certgate_pki::enroll::{self, Grant};
use certgate_pki::index::{timestamp, IssuedBy};
use certgate_pki::profile::{self, Validity};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::answer::{failed, refused, Answer, Refusal};
use super::enroll::Checked;
use super::record::{subject_text, Asked};
use super::{Authority, NotStanding, Requester, Signer};

impl Authority {
    /// `simplereenroll`: the client's current certificate (verified at TLS)
    /// must be one this CA issued and has not revoked; the CSR must ask for
    /// the same subject and SANs (a new key is fine).
    pub fn reenroll(&self, label: Option<&str>, csr_der: &[u8], who: &Requester) -> Answer {
        let checked = match self.check_request(label, Operation::SimpleReenroll, Mode::Renewal, csr_der, who) {
            Ok(checked) => checked,
            Err(answer) => return answer,
        };
        let Checked { signer, ways, request } = &checked;
        let answer = if ways.renewal {
            self.renew(signer, csr_der, request, who)
        } else {
            refused(Refusal::Forbidden, "re-enrollment is not allowed here")
        };
        let asked = Asked {
            ca: &signer.ca.name,
            operation: Operation::SimpleReenroll,
            mode: Mode::Renewal,
            who,
            csr_der,
            request: Some(request),
        };
        self.record_decision(&asked, answer)
    }

    fn renew(&self, signer: &Signer, csr_der: &[u8], request: &csr::Request, who: &Requester) -> Answer {
        let Some(der) = &who.cert else {
            return refused(
                Refusal::Unauthorized,
                "re-enrollment needs the client's current certificate at the TLS handshake",
            );
        };
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return refused(Refusal::BadRequest, "the client certificate cannot be read");
        };
        let not_ours = || {
            refused(
                Refusal::Forbidden,
                format!("CA {} did not issue the client certificate", signer.ca.name),
            )
        };
        let entry = match self.standing(der) {
            Ok(standing) if standing.ca == signer.ca.name => standing.entry,
            Ok(_) | Err(NotStanding::NotRecorded { .. }) => return not_ours(),
            Err(revoked @ NotStanding::Revoked { .. }) => return refused(Refusal::Forbidden, format!("{revoked}: it cannot renew")),
            Err(NotStanding::Unreadable) => return refused(Refusal::BadRequest, "the client certificate cannot be read"),
            Err(NotStanding::Failed(e)) => return failed(&e),
        };
        let serial = entry.serial.clone();
        let grace = time::Duration::try_from(self.settings.renewal_grace).unwrap_or(time::Duration::ZERO);
        if entry.not_after + grace <= profile::now() {
            let why = if grace.is_zero() {
                " (no renewal grace is set)"
            } else {
                ", and its grace is over"
            };
            return refused(
                Refusal::Forbidden,
                format!(
                    "the client certificate (serial {serial}) expired on {}: it cannot renew{why}",
                    timestamp(entry.not_after)
                ),
            );
        }
        // the same attributes and values, whatever string type a client's library encoded them in
        if csr::subject_of(cert.subject()).as_ref() != Ok(&request.subject) {
            return refused(
                Refusal::Forbidden,
                format!(
                    "the CSR asks for subject {:?}; renewal keeps the certificate's, {:?}",
                    subject_text(csr_der),
                    certgate_x509::dn::Dn::from_x509(cert.subject()).text
                ),
            );
        }
        let current = csr::certificate_sans(&cert);
        if sorted(request.sans.texts()) != sorted(current.texts()) {
            return refused(
                Refusal::Forbidden,
                format!(
                    "the CSR asks for the names [{}]; renewal keeps the certificate's, [{}]",
                    request.sans.texts().join(", "),
                    current.texts().join(", ")
                ),
            );
        }
        let grant = Grant {
            name: entry.name.clone(),
            subject: request.subject.clone(),
            sans: current,
            validity: Validity::days(self.settings.days),
            issued_by: IssuedBy::EstRenewal,
        };
        match enroll::issue(&signer.ca, &signer.issuer, &request.public_key, &grant) {
            Ok(issued) => Answer::issued(issued),
            Err(e) => failed(&e),
        }
    }
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}
