//! The policy in force for an edge, and the watcher that reloads it: a new
//! version of the file is tried in a fresh plugin first; if the filter
//! accepts it, it replaces the old one for new requests, and if not, the
//! filter's own error is logged and the old policy stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use certgate_host::{HarnessError, PluginSettings, WasmModule};
use tokio::sync::watch;

/// One accepted policy.
#[derive(Debug)]
pub struct PolicyVersion {
    /// 1 for the first, one more for each accepted change.
    pub version: u64,
    /// The policy, as the plugin configuration.
    pub json: String,
}

/// Why a policy was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read the policy {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The filter refused it (its log lines say why).
    #[error(transparent)]
    Refused(#[from] HarnessError),
}

/// The current policy, shared by every worker.
#[derive(Debug)]
pub struct PolicyStore {
    current: RwLock<Arc<PolicyVersion>>,
}

impl PolicyStore {
    /// A store whose first version is `json`.
    pub fn new(json: String) -> PolicyStore {
        PolicyStore {
            current: RwLock::new(Arc::new(PolicyVersion { version: 1, json })),
        }
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<PolicyVersion> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Tries a policy in a fresh plugin; on success it becomes current.
    pub fn offer(&self, module: &WasmModule, json: String) -> Result<u64, PolicyError> {
        let current = self.current();
        if current.json == json {
            return Ok(current.version);
        }
        module.start(PluginSettings::new(json.clone()).name("certgate"))?;
        let mut guard = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let version = guard.version + 1;
        *guard = Arc::new(PolicyVersion { version, json });
        Ok(version)
    }
}

/// Reads a policy file, naming it in the error.
pub fn read_policy(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        source,
    })
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Polls the file (editors replace files in several ways; polling sees them
/// all) and offers each new content to the store, until `stop` says so (or
/// its sender is gone).
pub fn watch(path: PathBuf, module: WasmModule, store: Arc<PolicyStore>, every: Duration, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut last = stamp(&path);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
            }
            let now = stamp(&path);
            if now == last {
                continue;
            }
            last = now;
            let json = match read_policy(&path) {
                Ok(j) => j,
                Err(e) => {
                    tracing::error!("{e}; the current policy stays");
                    continue;
                }
            };
            let module = module.clone();
            let store2 = Arc::clone(&store);
            // compiling a plugin is blocking work
            let result = tokio::task::spawn_blocking(move || store2.offer(&module, json)).await;
            match result {
                Ok(Ok(v)) => tracing::info!(policy = %path.display(), version = v, "policy reloaded"),
                Ok(Err(e)) => tracing::error!(policy = %path.display(), "policy refused, the current one stays: {e}"),
                Err(e) => tracing::error!("policy reload failed: {e}"),
            }
        }
    });
}
