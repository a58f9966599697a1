//! Finding the filter `.wasm` without the user naming it: `CERTGATE_WASM`,
//! else the project's own build (`./dev run`) next to the running binary or
//! under the current directory.

use std::path::{Path, PathBuf};

/// Where `./dev run` puts the filter, relative to the repository.
pub const BUILD_PATH: &str = "target/wasm32-wasip1/wasm/certgate_filter.wasm";

/// No filter module was found where one is looked for.
#[derive(Debug, thiserror::Error)]
#[error(
    "the certgate filter .wasm is not built: run `./dev run` in the certgate repository, \
     or give --wasm PATH (looked for {})",
    looked.display()
)]
pub struct LocateError {
    /// The first place looked.
    pub looked: PathBuf,
}

/// `CERTGATE_WASM`, else the first build found.
pub fn default_wasm() -> Result<PathBuf, LocateError> {
    if let Some(p) = std::env::var_os("CERTGATE_WASM") {
        return Ok(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(BUILD_PATH));
    }
    // target/<profile>/certgate → target/wasm32-wasip1/wasm/...
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            candidates.push(dir.join(BUILD_PATH));
            if dir.file_name().is_some_and(|n| n == "target") {
                candidates.push(dir.join("wasm32-wasip1/wasm/certgate_filter.wasm"));
            }
        }
    }
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| LocateError {
        looked: candidates.first().cloned().unwrap_or_else(|| PathBuf::from(BUILD_PATH)),
    })
}

/// Resolves a path from a configuration file against the file's directory.
pub fn relative_to(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}
