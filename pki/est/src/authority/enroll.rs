//! `simpleenroll`: a one-time token, else the approval queue (where each
//! is allowed); and the check of label and CSR both enroll operations share.

use certgate_pki::csr;
use certgate_pki::enroll::audit::{Mode, Operation};
use certgate_pki::enroll::tokens::{self, TokenRefused};
use certgate_pki::enroll::{self, Grant};
use certgate_pki::index::IssuedBy;
use certgate_pki::profile::Validity;

use super::answer::{failed, no_label, refused, Answer, Refusal};
use super::record::Asked;
use super::{Authority, Requester, Signer, Ways};

/// A request whose label names a CA here and whose CSR passed the CA's check.
pub(super) struct Checked<'a> {
    pub signer: &'a Signer,
    pub ways: Ways,
    pub request: csr::Request,
}

impl Authority {
    /// `simpleenroll`: a token, else the queue (where allowed), else 401.
    pub fn enroll(&self, label: Option<&str>, csr_der: &[u8], who: &Requester) -> Answer {
        let token = who.token();
        let mode = if token.is_some() { Mode::Token } else { Mode::Queue };
        let checked = match self.check_request(label, Operation::SimpleEnroll, mode, csr_der, who) {
            Ok(checked) => checked,
            Err(answer) => return answer,
        };
        let Checked { signer, ways, request } = &checked;
        let answer = match token {
            Some(token) if ways.tokens => self.issue_with_token(signer, request, token),
            Some(_) => refused(Refusal::Unauthorized, "this server does not take enrollment tokens"),
            None if ways.queue => self.enqueue(signer, csr_der, request, who),
            None => refused(
                Refusal::Unauthorized,
                "enrollment needs a one-time token as the HTTP Basic password (`certgate pki token`)",
            ),
        };
        let asked = Asked {
            ca: &signer.ca.name,
            operation: Operation::SimpleEnroll,
            mode,
            who,
            csr_der,
            request: Some(request),
        };
        self.record_decision(&asked, answer)
    }

    /// The CA a label names and the request's CSR as checked; a refusal
    /// (no such label, a CSR that does not pass) is logged and audited.
    pub(super) fn check_request(
        &self,
        label: Option<&str>,
        operation: Operation,
        mode: Mode,
        csr_der: &[u8],
        who: &Requester,
    ) -> Result<Checked<'_>, Answer> {
        let (signer, ways) = self.signer_for(label).ok_or_else(|| no_label(label))?;
        // nothing is decided that the audit log could not record
        if let Err(e) = certgate_pki::enroll::audit::writable(&self.home) {
            tracing::error!(%operation, ca = %signer.ca.name, error = %e, "the audit log cannot be written: nothing is issued until it can");
            return Err(refused(
                Refusal::Unavailable,
                "the CA cannot record decisions now (its audit log cannot be written); nothing was issued",
            ));
        }
        let checked = csr::check(csr_der).map_err(|why| format!("the CSR is refused: {why}"));
        let reserved = |request: &csr::Request| {
            request
                .sans
                .texts()
                .into_iter()
                .find(|name| self.settings.reserved.iter().any(|r| r.eq_ignore_ascii_case(name)))
        };
        let refusal = match checked {
            Ok(request) => match reserved(&request) {
                None => return Ok(Checked { signer, ways, request }),
                Some(name) => (
                    Refusal::Forbidden,
                    format!("{name} is the trusted proxy's name (--trusted-proxy-cert): no one enrolls for it"),
                ),
            },
            Err(why) => (Refusal::BadRequest, why),
        };
        let asked = Asked {
            ca: &signer.ca.name,
            operation,
            mode,
            who,
            csr_der,
            request: None,
        };
        Err(self.record_decision(&asked, refused(refusal.0, refusal.1)))
    }
}

impl Authority {
    /// Signs under what the token allows, and uses it up: exactly once,
    /// and only once the names are known to be signable.
    fn issue_with_token(&self, signer: &Signer, request: &csr::Request, token: &str) -> Answer {
        let grant = match tokens::find(&signer.ca, token) {
            Ok(Ok(grant)) => grant,
            Ok(Err(why)) => return refused(Refusal::Unauthorized, why.to_string()),
            Err(e) => return failed(&e),
        };
        if let Err(why) = grant.allows(request.cn.as_deref(), &request.sans) {
            return refused(Refusal::Forbidden, why);
        }
        let mut subject = rcgen::DistinguishedName::new();
        if let Some(cn) = &grant.cn {
            subject.push(rcgen::DnType::CommonName, cn.as_str());
        }
        let grant = Grant {
            name: enroll::grant::index_name(grant.cn.as_deref(), &request.sans),
            subject,
            sans: request.sans.clone(),
            validity: Validity::days(self.settings.days),
            issued_by: IssuedBy::EstToken,
        };
        // the names are checked before the token is used up
        if let Err(e) = grant.sans.to_rcgen(false) {
            return refused(Refusal::Forbidden, e.to_string());
        }
        match tokens::claim(&signer.ca, token) {
            Ok(true) => {}
            Ok(false) => return refused(Refusal::Unauthorized, TokenRefused::Used.to_string()),
            Err(e) => return failed(&e),
        }
        match enroll::issue(&signer.ca, &signer.issuer, &request.public_key, &grant) {
            Ok(issued) => Answer::issued(issued),
            Err(e) => {
                // nothing was issued: the token works again
                if let Err(back) = tokens::unclaim(&signer.ca, token) {
                    tracing::error!(ca = %signer.ca.name, error = %back, "the token could not be put back");
                }
                failed(&e)
            }
        }
    }
}
