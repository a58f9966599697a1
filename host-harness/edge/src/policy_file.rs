//! The policy in force for an edge, and the watcher that reloads it: a new
//! version of the file is tried in a fresh plugin first; if the filter
//! accepts it, it replaces the old one for new requests, and if not, the
//! filter's own error is logged and the old policy stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use certgate_host::{PluginSettings, WasmModule};

/// One accepted policy.
#[derive(Debug)]
pub struct PolicyVersion {
    pub version: u64,
    pub json: String,
}

/// The current policy, shared by every worker.
#[derive(Debug)]
pub struct PolicyStore {
    current: RwLock<Arc<PolicyVersion>>,
}

impl PolicyStore {
    pub fn new(json: String) -> PolicyStore {
        PolicyStore { current: RwLock::new(Arc::new(PolicyVersion { version: 1, json })) }
    }

    pub fn current(&self) -> Arc<PolicyVersion> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Tries a policy in a fresh plugin; on success it becomes current.
    pub fn offer(&self, module: &WasmModule, json: String) -> Result<u64, String> {
        let current = self.current();
        if current.json == json {
            return Ok(current.version);
        }
        module.start(PluginSettings::new(json.clone()).name("certgate")).map_err(|e| e.to_string())?;
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
pub fn read_policy(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read the policy {}: {e}", path.display()))
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Polls the file (editors replace files in several ways; polling sees them
/// all) and offers each new content to the store. Stops when `store` is the
/// only owner left.
pub fn watch(path: PathBuf, module: WasmModule, store: Arc<PolicyStore>, every: Duration) {
    tokio::spawn(async move {
        let mut last = stamp(&path);
        loop {
            tokio::time::sleep(every).await;
            if Arc::strong_count(&store) == 1 {
                return;
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
