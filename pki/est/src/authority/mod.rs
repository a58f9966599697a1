//! What the EST server decides, apart from HTTP and TLS: which CA a label
//! names, who may enroll (a one-time token, the approval queue, the
//! client's current certificate), and what gets signed. Every decision is
//! logged, counted and written to the PKI home's audit log.
//!
//! One job a file: `settings` (who may enroll), `answer` (what comes of a
//! request), `enroll` (tokens and the queue), `renew` (re-enrollment),
//! `approvals` (the queue's requests and an approver's decision),
//! `approve_command` (the command that decides at once), `record` (the log
//! and the audit log), `metrics` (the counters).

mod answer;
mod approvals;
mod approve_command;
pub mod approvers;
mod enroll;
mod metrics;
mod record;
mod renew;
mod settings;
mod standing;

use std::collections::BTreeMap;
use std::net::IpAddr;

use certgate_pki::enroll::audit::{Operation, Outcome};
use certgate_pki::enroll::tokens;
use certgate_pki::keys::Passphrase;
use certgate_pki::store::{Ca, Home};
use certgate_pki::PkiError;
use rcgen::{Issuer, KeyPair};

pub use answer::{Answer, Refusal, FAILED};
pub use approvals::Verdict;
pub use settings::{Label, QueueLimits, Settings, Ways};
pub use standing::{NotStanding, Standing};

use answer::{failed, no_label, refused};

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
    /// `address, says USER` with an HTTP Basic user (never checked), or the
    /// address alone.
    fn name(&self) -> String {
        match &self.basic {
            Some((user, _)) if !user.is_empty() => format!("{} (says {user:?})", self.addr),
            _ => self.addr.to_string(),
        }
    }

    /// The token the HTTP Basic password carries, if it is one.
    fn token(&self) -> Option<&str> {
        self.basic
            .as_ref()
            .map(|(_, password)| password.as_str())
            .filter(|p| p.starts_with(tokens::PREFIX))
    }
}

/// The EST server's CAs, settings and counters.
#[derive(Debug)]
pub struct Authority {
    home: Home,
    settings: Settings,
    signers: BTreeMap<String, Signer>,
    counters: metrics::Counters,
    /// Who may approve on the approvals page; no request that would make
    /// one of them is approved but by an operator on the command line.
    approvers: Option<approvers::Approvers>,
    /// One enqueue at a time, so the queue's bounds hold.
    enqueue_lock: std::sync::Mutex<()>,
}

/// The CA certificate's chain up to its root, from the CAs of the home
/// (each issuer found by its DER name).
fn chain_of(home: &Home, ca: &Ca) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut chain = vec![ca.cert_der.clone()];
    let mut current = ca.clone();
    for _ in 0..8 {
        if current.facts()?.self_signed {
            break;
        }
        let cert = certgate_pki::store::parse_cert(&current.cert_path(), &current.cert_der)?;
        let parent = home.cas_named(cert.issuer())?.into_iter().find(|c| c.name != current.name);
        let Some(parent) = parent else { break };
        chain.push(parent.cert_der.clone());
        current = parent;
    }
    Ok(chain)
}

impl Authority {
    /// Opens every CA the settings name (each must have its key here),
    /// sets aside what a crash left half-recorded, and checks the settings.
    /// Returns what the operator should read (warnings, what was set aside).
    pub fn open(home: Home, settings: Settings, pass: &Passphrase) -> Result<(Authority, Vec<String>), PkiError> {
        settings.check()?;
        // a server that cannot record its decisions makes none
        certgate_pki::enroll::audit::writable(&home)?;
        let mut report = Vec::new();
        let mut signers = BTreeMap::new();
        for name in settings.cas() {
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
            signers.insert(name.to_owned(), Signer { ca, issuer, chain });
        }
        let authority = Authority {
            home,
            settings,
            signers,
            counters: metrics::Counters::default(),
            approvers: None,
            enqueue_lock: std::sync::Mutex::default(),
        };
        Ok((authority, report))
    }

    /// Approvers, decided by their policy (`--approvers`).
    pub fn with_approvers(mut self, approvers: Option<approvers::Approvers>) -> Authority {
        self.approvers = approvers;
        self
    }

    /// The approvers' policy, if there is one.
    pub fn approvers(&self) -> Option<&approvers::Approvers> {
        self.approvers.as_ref()
    }

    /// Every CA certificate the TLS handshake trusts for client certificates (DER).
    pub fn client_cas(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self.signers.values().flat_map(|s| s.chain.iter().cloned()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The CRL files of the CAs it issues for (whether they exist yet or not).
    pub fn crl_files(&self) -> Vec<std::path::PathBuf> {
        self.signers.values().map(|s| s.ca.crl_path()).collect()
    }

    /// Whether a label (none: the default CA) names a CA here.
    pub fn has_label(&self, label: Option<&str>) -> bool {
        self.signer_for(label).is_some()
    }

    /// The CA a label names (none: the default one), and the ways in there.
    fn signer_for(&self, label: Option<&str>) -> Option<(&Signer, Ways)> {
        let (name, ways) = self.settings.route(label)?;
        Some((self.signers.get(name)?, ways))
    }

    /// A CA this server issues for, by name.
    fn signer_named(&self, ca: &str) -> Result<&Signer, PkiError> {
        self.signers
            .get(ca)
            .ok_or_else(|| PkiError::NotFound(format!("no CA {ca:?} is served here")))
    }

    /// What `Retry-After` says, seconds.
    pub fn retry_after(&self) -> u32 {
        self.settings.retry_after
    }

    /// Counts an answer, for the metrics.
    pub fn count(&self, operation: Operation, outcome: Outcome) {
        self.counters.count(operation, outcome);
    }

    /// The counters in Prometheus' text format.
    pub fn metrics(&self) -> String {
        self.counters.render()
    }

    /// `cacerts`: the CA's chain up to its root, certs-only PKCS#7 (DER).
    pub fn cacerts(&self, label: Option<&str>) -> Answer {
        match self.signer_for(label) {
            Some((signer, _)) => Answer::certificates(&signer.chain, None),
            None => no_label(label),
        }
    }

    /// The CA a label names (none: the default one) and its ways in, for the registration page.
    pub fn registration(&self, label: Option<&str>) -> Option<(String, Ways)> {
        self.signer_for(label).map(|(s, ways)| (s.ca.name.clone(), ways))
    }

    /// What a token allows, without using it up: the registration page asks
    /// for exactly these names. 401 for an unknown, used or expired token.
    pub fn token_grant(&self, label: Option<&str>, token: &str) -> Result<tokens::TokenGrant, Answer> {
        let (signer, ways) = self.signer_for(label).ok_or_else(|| no_label(label))?;
        if !ways.tokens {
            return Err(refused(Refusal::Unauthorized, "this server does not take enrollment tokens"));
        }
        match tokens::find(&signer.ca, token) {
            Ok(Ok(grant)) => Ok(grant),
            Ok(Err(why)) => Err(refused(Refusal::Unauthorized, why.to_string())),
            Err(e) => {
                tracing::error!(ca = %signer.ca.name, error = %e, "a token could not be looked up");
                Err(failed(&e))
            }
        }
    }
}
