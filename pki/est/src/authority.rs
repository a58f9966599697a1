//! What the EST server decides, apart from HTTP and TLS: which CA a label
//! names, who may enroll (a one-time token, the approval queue, the
//! client's current certificate), and what gets signed. Every decision is
//! logged, counted and written to the PKI home's audit log.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use certgate_pki::csr;
use certgate_pki::enroll::audit::{self, Decision};
use certgate_pki::enroll::queue::{self, Queued, Status};
use certgate_pki::enroll::tokens::{self, TokenRefused};
use certgate_pki::enroll::{self, Grant, Issued};
use certgate_pki::index::IssuedBy;
use certgate_pki::keys::Passphrase;
use certgate_pki::profile::Validity;
use certgate_pki::store::{Ca, Home};
use certgate_pki::PkiError;
use rcgen::{Issuer, KeyPair};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The ways in to enrollment, each off unless set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ways {
    /// One-time tokens (`pki token`) as the HTTP Basic password.
    pub tokens: bool,
    /// Requests without a token wait in the approval queue.
    pub queue: bool,
    /// `simplereenroll` with the client's current certificate at TLS.
    pub renewal: bool,
}

impl Ways {
    fn any(self) -> bool {
        self.tokens || self.queue || self.renewal
    }
}

/// A CA label: the CA it names and, if it says so, its own ways in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The CA.
    pub ca: String,
    /// Its ways in; `None`: the server's.
    pub ways: Option<Ways>,
}

/// Who may enroll, and what they get.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The ways in without a label, and for a label that names none of its own.
    pub ways: Ways,
    /// How long after its expiry a certificate may still renew (zero: not at all).
    pub renewal_grace: std::time::Duration,
    /// The proxy (Envoy with certgate) whose RFC 9440 `Client-Cert` header is
    /// taken as the client's verified certificate; from any other address
    /// that header is refused.
    pub trusted_proxy: Option<IpAddr>,
    /// The lifetime of what is issued, days.
    pub days: u32,
    /// What `Retry-After` says while a request waits, seconds.
    pub retry_after: u32,
    /// The CA without a label (`/.well-known/est/simpleenroll`).
    pub default_ca: String,
    /// Labels (`/.well-known/est/<label>/...`): the CA each names, and its ways in.
    pub labels: BTreeMap<String, Label>,
    /// A command that decides queued requests at once: it reads the request
    /// (JSON) on standard input; exit status 0 approves, anything else leaves
    /// it queued for a person.
    pub approve_command: Option<Vec<String>>,
}

/// One CA the server issues for: its directory, key and chain.
struct Signer {
    ca: Ca,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate and those above it up to the root, DER.
    chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("ca", &self.ca.name).finish_non_exhaustive()
    }
}

/// The operations of RFC 7030 certgate serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// `GET cacerts`.
    CaCerts,
    /// `POST simpleenroll`.
    SimpleEnroll,
    /// `POST simplereenroll`.
    SimpleReenroll,
    /// `GET csrattrs`.
    CsrAttrs,
}

impl Operation {
    /// As the URL and the metrics spell it.
    pub fn name(self) -> &'static str {
        match self {
            Operation::CaCerts => "cacerts",
            Operation::SimpleEnroll => "simpleenroll",
            Operation::SimpleReenroll => "simplereenroll",
            Operation::CsrAttrs => "csrattrs",
        }
    }

    /// The operation a path segment names.
    pub fn from_name(s: &str) -> Option<Operation> {
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

/// Who is asking, as the connection and the request show it.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The peer's address.
    pub addr: IpAddr,
    /// HTTP Basic user and password, if sent.
    pub basic: Option<(String, String)>,
    /// The client certificate the TLS handshake verified (DER), if any.
    pub cert: Option<Vec<u8>>,
    /// The TLS version of the connection, for the log.
    pub tls: &'static str,
}

impl Requester {
    /// `user from address`, or the address alone without an HTTP Basic user.
    fn name(&self) -> String {
        match &self.basic {
            Some((user, _)) if !user.is_empty() => format!("{user} from {}", self.addr),
            _ => self.addr.to_string(),
        }
    }
}

/// An approver's decision on a queued request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Sign it.
    Approve,
    /// Refuse it; the requester's page shows the reason.
    Reject(&'a str),
}

/// What comes of a request.
#[derive(Debug)]
pub enum Outcome {
    /// 200 with this body.
    Issued {
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
    /// Refused; the sentence says why.
    Refused(Refusal, String),
}

/// The kinds of refusal, each one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the request cannot be read (bad CSR, bad signature).
    BadRequest,
    /// 401: no usable credential (no token, an unknown, used or expired one).
    Unauthorized,
    /// 403: a credential, but not for this.
    Forbidden,
    /// 404: no such CA label.
    NotFound,
    /// 500: the server failed (the log says how); nothing was issued.
    Internal,
}

impl Refusal {
    /// Its HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Refusal::BadRequest => 400,
            Refusal::Unauthorized => 401,
            Refusal::Forbidden => 403,
            Refusal::NotFound => 404,
            Refusal::Internal => 500,
        }
    }

    /// `bad_request`, ... for the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad_request",
            Refusal::Unauthorized => "unauthorized",
            Refusal::Forbidden => "forbidden",
            Refusal::NotFound => "not_found",
            Refusal::Internal => "error",
        }
    }
}

/// The EST server's CAs, settings and counters.
#[derive(Debug)]
pub struct Authority {
    home: Home,
    settings: Settings,
    signers: BTreeMap<String, Signer>,
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

fn refused(kind: Refusal, why: impl Into<String>) -> Outcome {
    Outcome::Refused(kind, why.into())
}

/// The CA certificate's chain up to its root, from the CAs of the home.
fn chain_of(home: &Home, ca: &Ca) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut chain = vec![ca.cert_der.clone()];
    let mut current = ca.clone();
    for _ in 0..8 {
        let facts = current.facts()?;
        if facts.self_signed {
            break;
        }
        let cert = certgate_pki::store::parse_cert(&current.cert_path(), &current.cert_der)?;
        let issuer = cert.issuer().to_string();
        let mut parent = None;
        for name in home.ca_names() {
            let other = home.open_ca(&name)?;
            if other.name != current.name && other.facts()?.subject == issuer {
                parent = Some(other);
                break;
            }
        }
        let Some(parent) = parent else { break };
        chain.push(parent.cert_der.clone());
        current = parent;
    }
    Ok(chain)
}

impl Authority {
    /// Opens every CA the settings name (each must have its key here),
    /// sets aside what a crash left half-recorded, and checks the settings.
    pub fn open(home: Home, settings: Settings, pass: &Passphrase) -> Result<(Authority, Vec<String>), PkiError> {
        if !settings.ways.any() {
            return Err(PkiError::Invalid(
                "no way to enroll is allowed: give --allow token, --allow queue and/or --allow renewal".into(),
            ));
        }
        if let Some((label, _)) = settings.labels.iter().find(|(_, l)| l.ways.is_some_and(|w| !w.any())) {
            return Err(PkiError::Invalid(format!("label {label}: it allows no way to enroll")));
        }
        if settings.days == 0 {
            return Err(PkiError::Invalid("--days must be at least 1".into()));
        }
        let mut report = Vec::new();
        let mut signers = BTreeMap::new();
        let names = std::iter::once(&settings.default_ca).chain(settings.labels.values().map(|l| &l.ca));
        for name in names {
            if signers.contains_key(name) {
                continue;
            }
            let ca = home.open_ca(name)?;
            if ca.facts()?.self_signed {
                report.push(format!(
                    "warning: CA {name} is a root; enrolled clients are better issued by a client CA (`pki init-client-ca`)"
                ));
            }
            for moved in ca.reconcile()? {
                report.push(format!(
                    "set aside {} (signed, never recorded: the server stopped in between)",
                    moved.display()
                ));
            }
            let issuer = ca.issuer(pass)?;
            let chain = chain_of(&home, &ca)?;
            signers.insert(name.clone(), Signer { ca, issuer, chain });
        }
        for label in settings.labels.keys() {
            let ok = !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && Operation::from_name(label).is_none();
            if !ok {
                return Err(PkiError::Invalid(format!(
                    "label {label:?}: use letters, digits, '-', '_' or '.', and not an operation's name"
                )));
            }
        }
        Ok((
            Authority {
                home,
                settings,
                signers,
                counts: Mutex::default(),
            },
            report,
        ))
    }

    /// Every CA certificate the TLS handshake trusts for client certificates (DER).
    pub fn client_cas(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self.signers.values().flat_map(|s| s.chain.iter().cloned()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The CRL files of the CAs it issues for (those that exist).
    pub fn crl_files(&self) -> Vec<std::path::PathBuf> {
        self.signers.values().map(|s| s.ca.crl_path()).filter(|p| p.is_file()).collect()
    }

    /// Whether a label (none: the default CA) names a CA here.
    pub fn has_label(&self, label: Option<&str>) -> bool {
        self.signer(label).is_some()
    }

    /// The CA a label names (none: the default one), and the ways in there.
    fn signer(&self, label: Option<&str>) -> Option<(&Signer, Ways)> {
        let (name, ways) = match label {
            None => (&self.settings.default_ca, self.settings.ways),
            Some(l) => {
                let label = self.settings.labels.get(l)?;
                (&label.ca, label.ways.unwrap_or(self.settings.ways))
            }
        };
        Some((self.signers.get(name)?, ways))
    }

    /// The proxy whose `Client-Cert` header is believed, if one is set.
    pub fn trusted_proxy(&self) -> Option<IpAddr> {
        self.settings.trusted_proxy
    }

    /// Counts an answer, for the metrics.
    pub fn count(&self, operation: Operation, outcome: &'static str) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry((operation.name(), outcome)).or_default() += 1;
        }
    }

    /// The counters in Prometheus' text format.
    pub fn metrics(&self) -> String {
        let mut out = String::from(
            "# HELP certgate_est_requests_total EST requests by operation and outcome.\n# TYPE certgate_est_requests_total counter\n",
        );
        if let Ok(counts) = self.counts.lock() {
            for ((op, outcome), n) in counts.iter() {
                out.push_str(&format!(
                    "certgate_est_requests_total{{operation=\"{op}\",outcome=\"{outcome}\"}} {n}\n"
                ));
            }
        }
        out
    }

    /// `cacerts`: the CA's chain up to its root, certs-only PKCS#7 (DER).
    pub fn cacerts(&self, label: Option<&str>) -> Outcome {
        let Some((signer, _)) = self.signer(label) else {
            return no_label(label);
        };
        match crate::wire::certs_only(&signer.chain) {
            Ok(der) => Outcome::Issued { der, serial: None },
            Err(e) => refused(Refusal::Internal, format!("cannot build the CA certificates: {e}")),
        }
    }

    /// `simpleenroll`: a token, else the queue (where allowed), else 401.
    pub fn enroll(&self, label: Option<&str>, csr_der: &[u8], who: &Requester) -> Outcome {
        let (signer, ways, request) = match self.checked(label, "simpleenroll", csr_der, who) {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
        let token = who
            .basic
            .as_ref()
            .map(|(_, password)| password.as_str())
            .filter(|p| p.starts_with(tokens::PREFIX));
        let outcome = match token {
            Some(token) if ways.tokens => self.with_token(signer, &request, token),
            Some(_) => refused(Refusal::Unauthorized, "this server does not take enrollment tokens"),
            None if ways.queue => self.queued(signer, csr_der, &request, who),
            None => refused(
                Refusal::Unauthorized,
                "enrollment needs a one-time token as the HTTP Basic password (`certgate pki token`)",
            ),
        };
        let mode = if token.is_some() { "token" } else { "queue" };
        self.decided(signer, "simpleenroll", mode, who, csr_der, Some(&request), outcome)
    }

    fn with_token(&self, signer: &Signer, request: &csr::Request, token: &str) -> Outcome {
        let grant = match tokens::find(&signer.ca, token) {
            Ok(Ok(grant)) => grant,
            Ok(Err(why)) => return refused(Refusal::Unauthorized, why.to_string()),
            Err(e) => return internal(&e),
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
            Err(e) => return internal(&e),
        }
        match enroll::issue(&signer.ca, &signer.issuer, &request.public_key, &grant) {
            Ok(issued) => issued_certificate(issued),
            Err(e) => {
                // nothing was issued: the token works again
                if let Err(back) = tokens::unclaim(&signer.ca, token) {
                    tracing::error!(error = %back, "the token could not be put back");
                }
                internal(&e)
            }
        }
    }

    fn queued(&self, signer: &Signer, csr_der: &[u8], request: &csr::Request, who: &Requester) -> Outcome {
        let requester = who.name();
        // the same CSR from the same user (or, without one, the same address) is the same request
        let key = who
            .basic
            .as_ref()
            .map_or_else(|| who.addr.to_string(), |(user, _)| format!("user:{user}"));
        let id = queue::id(csr_der, &key);
        let existing = match queue::load(&signer.ca, &id) {
            Ok(q) => q,
            Err(e) => return internal(&e),
        };
        let new = existing.is_none();
        let current = match existing {
            Some(q) => q,
            None => {
                use base64::Engine;
                let queued = Queued {
                    id: id.clone(),
                    ca: signer.ca.name.clone(),
                    requester,
                    subject: subject_text(csr_der),
                    sans: request.sans.texts(),
                    csr: base64::engine::general_purpose::STANDARD.encode(csr_der),
                    received: queue::now(),
                    status: Status::Pending,
                };
                match queue::submit(&signer.ca, queued) {
                    Ok(q) => self.hook(signer, q),
                    Err(e) => return internal(&e),
                }
            }
        };
        match current.status {
            Status::Pending => Outcome::Pending {
                id,
                retry_after: self.settings.retry_after,
                new,
            },
            Status::Rejected { reason, .. } => refused(Refusal::Forbidden, format!("request {id} was rejected: {reason}")),
            Status::Issued { serial, .. } => match certgate_pki::store::cert_file(&signer.ca.issued_copy(&serial)) {
                Ok(certs) => certificate(&certs, serial),
                Err(e) => internal(&e),
            },
        }
    }

    /// Runs the approval command on a new request; its exit status 0 approves it.
    fn hook(&self, signer: &Signer, request: Queued) -> Queued {
        let Some(command) = &self.settings.approve_command else {
            return request;
        };
        let Some((program, args)) = command.split_first() else {
            return request;
        };
        let json = serde_json::to_string(&request).unwrap_or_default();
        let run = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut stdin) = child.stdin.take() {
                    use std::io::Write;
                    // a command that does not read its input still decides
                    let _ignored = stdin.write_all(json.as_bytes());
                }
                wait_at_most(&mut child, APPROVE_COMMAND_TIMEOUT)
            });
        match run {
            Ok(status) if status.success() => match queue::approve(&signer.ca, &signer.issuer, &request.id, self.settings.days) {
                Ok((approved, issued)) => {
                    let _logged = audit::record(
                        &self.home,
                        &Decision {
                            operation: "approve",
                            ca: &signer.ca.name,
                            mode: "hook",
                            requester: &approved.requester,
                            subject: &approved.subject,
                            sans: &approved.sans,
                            outcome: "issued",
                            serial: Some(&issued.serial),
                            reason: None,
                        },
                    );
                    approved
                }
                Err(e) => {
                    tracing::error!(request = %request.id, error = %e, "the approval command approved, but signing failed");
                    request
                }
            },
            Ok(status) => {
                tracing::info!(request = %request.id, %status, "the approval command left the request for a person");
                request
            }
            Err(e) => {
                tracing::error!(request = %request.id, error = %e, "the approval command did not run");
                request
            }
        }
    }

    /// The CA a label names (none: the default one) and its ways in, for the registration page.
    pub fn registration(&self, label: Option<&str>) -> Option<(String, Ways)> {
        self.signer(label).map(|(s, ways)| (s.ca.name.clone(), ways))
    }

    /// What a token allows, without using it up: the registration page asks
    /// for exactly these names. 401 for an unknown, used or expired token.
    pub fn token_grant(&self, label: Option<&str>, token: &str) -> Result<tokens::TokenGrant, Outcome> {
        let (signer, ways) = self.signer(label).ok_or_else(|| no_label(label))?;
        if !ways.tokens {
            return Err(refused(Refusal::Unauthorized, "this server does not take enrollment tokens"));
        }
        match tokens::find(&signer.ca, token) {
            Ok(Ok(grant)) => Ok(grant),
            Ok(Err(why)) => Err(refused(Refusal::Unauthorized, why.to_string())),
            Err(e) => Err(internal(&e)),
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

    /// A CA this server issues for, by name.
    fn served(&self, ca: &str) -> Result<&Signer, PkiError> {
        self.signers
            .get(ca)
            .ok_or_else(|| PkiError::Invalid(format!("no CA {ca:?} is served here")))
    }

    /// One queued request.
    pub fn queued_request(&self, ca: &str, id: &str) -> Result<Option<Queued>, PkiError> {
        queue::load(&self.served(ca)?.ca, id)
    }

    /// The certificate CA `ca` would issue for a checked CSR, signed by a
    /// throwaway key under the CA's name (never the CA's key, and never
    /// kept): the approvals page asks the approvers' policy whether the
    /// person it makes would be an approver.
    pub fn as_issued(&self, ca: &str, csr: &csr::Request) -> Result<Vec<u8>, PkiError> {
        let signer = self.served(ca)?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = csr.subject.clone();
        params.subject_alt_names = csr.sans.to_rcgen(false)?;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let invalid = |e: rcgen::Error| PkiError::Invalid(format!("a certificate like CA {ca}'s: {e}"));
        let throwaway = KeyPair::generate().map_err(invalid)?;
        let issuer =
            Issuer::from_ca_cert_der(&signer.ca.cert_der.as_slice().into(), KeyPair::generate().map_err(invalid)?).map_err(invalid)?;
        Ok(params.signed_by(&throwaway, &issuer).map_err(invalid)?.der().to_vec())
    }

    /// An approver's decision from the approvals page: signs the request (or
    /// rejects it with `reason`) and writes who decided to the audit log.
    pub fn decide_as(&self, ca: &str, id: &str, verdict: Verdict<'_>, approver: &str) -> Result<Queued, PkiError> {
        let signer = self.served(ca)?;
        let (request, serial, reason) = match verdict {
            Verdict::Approve => {
                let (request, issued) = queue::approve(&signer.ca, &signer.issuer, id, self.settings.days)?;
                (request, Some(issued.serial), None)
            }
            Verdict::Reject(reason) => (queue::reject(&signer.ca, id, reason)?, None, Some(reason)),
        };
        let (operation, outcome) = match verdict {
            Verdict::Approve => ("approve", "issued"),
            Verdict::Reject(_) => ("reject", "rejected"),
        };
        let logged = audit::record(
            &self.home,
            &Decision {
                operation,
                ca,
                mode: "web",
                requester: &format!("{approver} for {}", request.requester),
                subject: &request.subject,
                sans: &request.sans,
                outcome,
                serial: serial.as_deref(),
                reason,
            },
        );
        if let Err(e) = logged {
            tracing::error!(error = %e, "the audit log could not be written");
        }
        tracing::info!(ca, request = %id, approver, outcome, serial = ?serial, "approvals page decision");
        Ok(request)
    }

    /// `simplereenroll`: the client's current certificate (verified at TLS)
    /// must be one this CA issued and has not revoked; the CSR must ask for
    /// the same subject and SANs (a new key is fine).
    pub fn reenroll(&self, label: Option<&str>, csr_der: &[u8], who: &Requester) -> Outcome {
        let (signer, ways, request) = match self.checked(label, "simplereenroll", csr_der, who) {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
        let outcome = if ways.renewal {
            self.renewal(signer, csr_der, &request, who)
        } else {
            refused(Refusal::Forbidden, "re-enrollment is not allowed here")
        };
        self.decided(signer, "simplereenroll", "renewal", who, csr_der, Some(&request), outcome)
    }

    /// The CA a label names and the request's CSR as checked; a refusal
    /// (no such label, a CSR that does not pass) is logged and audited.
    fn checked(
        &self,
        label: Option<&str>,
        operation: &str,
        csr_der: &[u8],
        who: &Requester,
    ) -> Result<(&Signer, Ways, csr::Request), Outcome> {
        let (signer, ways) = self.signer(label).ok_or_else(|| no_label(label))?;
        match csr::check(csr_der) {
            Ok(request) => Ok((signer, ways, request)),
            Err(why) => {
                let outcome = refused(Refusal::BadRequest, format!("the CSR is refused: {why}"));
                Err(self.decided(signer, operation, "-", who, csr_der, None, outcome))
            }
        }
    }

    fn renewal(&self, signer: &Signer, csr_der: &[u8], request: &csr::Request, who: &Requester) -> Outcome {
        let Some(der) = &who.cert else {
            return refused(
                Refusal::Unauthorized,
                "re-enrollment needs the client's current certificate at the TLS handshake",
            );
        };
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return refused(Refusal::BadRequest, "the client certificate cannot be read");
        };
        let serial = certgate_pki::profile::serial_hex(&rcgen::SerialNumber::from_slice(cert.raw_serial()));
        let index = match signer.ca.index() {
            Ok(i) => i,
            Err(e) => return internal(&e),
        };
        let Some(entry) = index.find_serial(&serial) else {
            return refused(
                Refusal::Forbidden,
                format!("CA {} did not issue the client certificate", signer.ca.name),
            );
        };
        // the very certificate this CA recorded, not one with the same serial from elsewhere
        let recorded = certgate_pki::store::cert_file(&signer.ca.issued_copy(&serial));
        if !matches!(&recorded, Ok(certs) if certs.first() == Some(der)) {
            return refused(
                Refusal::Forbidden,
                format!("CA {} did not issue the client certificate", signer.ca.name),
            );
        }
        if let Some((at, why)) = entry.revoked {
            return refused(
                Refusal::Forbidden,
                format!(
                    "the client certificate (serial {serial}) was revoked on {} ({}): it cannot renew",
                    certgate_pki::index::timestamp(at),
                    why.name()
                ),
            );
        }
        let grace = time::Duration::try_from(self.settings.renewal_grace).unwrap_or(time::Duration::ZERO);
        if entry.not_after + grace <= certgate_pki::profile::now() {
            let why = if grace.is_zero() {
                " (no renewal grace is set)"
            } else {
                ", and its grace is over"
            };
            return refused(
                Refusal::Forbidden,
                format!(
                    "the client certificate (serial {serial}) expired on {}: it cannot renew{why}",
                    certgate_pki::index::timestamp(entry.not_after)
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
                    cert.subject().to_string()
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
            Ok(issued) => issued_certificate(issued),
            Err(e) => internal(&e),
        }
    }

    /// Logs and audits a decision, and hands the outcome on.
    #[allow(clippy::too_many_arguments)]
    fn decided(
        &self,
        signer: &Signer,
        operation: &str,
        mode: &str,
        who: &Requester,
        csr_der: &[u8],
        request: Option<&csr::Request>,
        outcome: Outcome,
    ) -> Outcome {
        // the client certificate's subject names a renewing client best
        let requester = match &who.cert {
            Some(der) => X509Certificate::from_der(der).map_or_else(|_| who.name(), |(_, c)| format!("{} from {}", c.subject(), who.addr)),
            None => who.name(),
        };
        let sans = request.map(|r| r.sans.texts()).unwrap_or_default();
        let subject = subject_text(csr_der);
        let issued_serial = match &outcome {
            Outcome::Issued { serial, .. } => serial.clone(),
            _ => None,
        };
        let (result, reason) = match &outcome {
            Outcome::Issued { .. } => ("issued", None),
            Outcome::Pending { .. } => ("queued", None),
            Outcome::Refused(kind, why) => (kind.name(), Some(why.as_str())),
        };
        if let Outcome::Pending { new: false, id, .. } = &outcome {
            // a poll of a request that still waits: logged, but no new decision
            tracing::debug!(operation, ca = %signer.ca.name, request = %id, requester = %requester, "still waiting for approval");
            return outcome;
        }
        tracing::info!(operation, ca = %signer.ca.name, mode, tls = who.tls, requester = %requester, subject = %subject, sans = ?sans, outcome = result, serial = ?issued_serial, reason = ?reason, "est decision");
        let logged = audit::record(
            &self.home,
            &Decision {
                operation,
                ca: &signer.ca.name,
                mode,
                requester: &requester,
                subject: &subject,
                sans: &sans,
                outcome: result,
                serial: issued_serial.as_deref(),
                reason,
            },
        );
        if let Err(e) = logged {
            tracing::error!(error = %e, "the audit log could not be written");
        }
        outcome
    }
}

/// How long the approval command may take; after that it is killed and the
/// request waits for a person (the requester's HTTP request is held meanwhile).
const APPROVE_COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The child's exit status, or an error once `limit` has passed (it is killed).
fn wait_at_most(child: &mut std::process::Child, limit: std::time::Duration) -> std::io::Result<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if start.elapsed() > limit {
            let _killed = child.kill();
            let _reaped = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("it took over {} s and was killed", limit.as_secs()),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn no_label(label: Option<&str>) -> Outcome {
    refused(Refusal::NotFound, format!("no CA label {:?} here", label.unwrap_or("")))
}

fn internal(e: &PkiError) -> Outcome {
    tracing::error!(error = %e, "enrollment failed");
    refused(
        Refusal::Internal,
        "the server could not complete the request; nothing was issued (its log says why)",
    )
}

/// 200 with `certs` (DER) as a certs-only PKCS#7; `serial` for the log.
fn certificate(certs: &[Vec<u8>], serial: String) -> Outcome {
    match crate::wire::certs_only(certs) {
        Ok(der) => Outcome::Issued { der, serial: Some(serial) },
        Err(e) => refused(Refusal::Internal, e.to_string()),
    }
}

fn issued_certificate(issued: Issued) -> Outcome {
    certificate(std::slice::from_ref(&issued.der), issued.serial)
}

fn subject_text(csr_der: &[u8]) -> String {
    x509_parser::certification_request::X509CertificationRequest::from_der(csr_der)
        .map(|(_, c)| c.certification_request_info.subject.to_string())
        .unwrap_or_default()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::wait_at_most;
    use std::time::Duration;

    #[test]
    fn an_approval_command_that_hangs_is_killed_and_decides_nothing() {
        let mut slow = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let started = std::time::Instant::now();
        let err = wait_at_most(&mut slow, Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut quick = std::process::Command::new("true").spawn().unwrap();
        assert!(wait_at_most(&mut quick, Duration::from_secs(5)).unwrap().success());
    }
}
