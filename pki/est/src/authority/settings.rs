//! Who may enroll, and what they get: the server's settings, checked once
//! at start.

use std::collections::BTreeMap;
use std::time::Duration;

use certgate_pki::enroll::audit::Operation;
use certgate_pki::PkiError;

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
    /// Whether any way in is open.
    pub fn any(self) -> bool {
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
    pub renewal_grace: Duration,
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
    /// How much may wait in the queue, and for how long.
    pub queue: QueueLimits,
    /// Names no one may enroll for (`DNS:…`, `URI:…`, `email:…`, as
    /// `Sans::texts` writes them): the trusted proxy's, so no requester
    /// becomes the proxy.
    pub reserved: Vec<String>,
}

/// The approval queue's bounds: no one address, and no flood, fills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Pending requests from one address (429 past it).
    pub per_address: usize,
    /// Pending requests in all (503 past it).
    pub total: usize,
    /// Days a request waits before it expires.
    pub days: u32,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            per_address: 10,
            total: 1000,
            days: certgate_pki::enroll::PENDING_DAYS,
        }
    }
}

impl Settings {
    /// Refuses settings that open no way in, issue nothing, or name a label
    /// that cannot stand in a URL.
    pub fn check(&self) -> Result<(), PkiError> {
        if !self.ways.any() {
            return Err(PkiError::Usage(
                "no way to enroll is allowed: give --allow token, --allow queue and/or --allow renewal".into(),
            ));
        }
        if let Some((label, _)) = self.labels.iter().find(|(_, l)| l.ways.is_some_and(|w| !w.any())) {
            return Err(PkiError::Usage(format!("label {label}: it allows no way to enroll")));
        }
        if self.days == 0 {
            return Err(PkiError::Usage("--days must be at least 1".into()));
        }
        for label in self.labels.keys() {
            let ok = !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && Operation::from_est_name(label).is_none();
            if !ok {
                return Err(PkiError::Usage(format!(
                    "label {label:?}: use letters, digits, '-', '_' or '.', and not an operation's name"
                )));
            }
        }
        Ok(())
    }

    /// The CA a label names (none: the default one), and the ways in there.
    pub fn route(&self, label: Option<&str>) -> Option<(&str, Ways)> {
        match label {
            None => Some((&self.default_ca, self.ways)),
            Some(l) => {
                let label = self.labels.get(l)?;
                Some((&label.ca, label.ways.unwrap_or(self.ways)))
            }
        }
    }

    /// Every CA the settings name, the default one first.
    pub fn cas(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.default_ca.as_str()).chain(self.labels.values().map(|l| l.ca.as_str()))
    }
}
