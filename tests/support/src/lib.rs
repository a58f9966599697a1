//! certgate-test-support: what certgate's test suites share (the backend they
//! send to is `certgate-backend`).
//!
//! - [`book`]: the pages users read (README and the book);
//! - [`crafted`]: client certificates with the names a test needs;
//! - [`scenarios`]: the scenario table model and its checker;
//! - [`loadgen`]: keep-alive mTLS load for the benchmarks;
//! - [`scratch`]: directories removed when dropped.
#![warn(missing_docs)]

pub mod book;
pub mod crafted;
pub mod loadgen;
pub mod scenarios;
pub mod scratch;

use std::path::{Path, PathBuf};

/// Every file under `dir`, at any depth, whose name ends in `.ext`
/// (unreadable folders are passed over).
pub fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for p in entries.flatten().map(|e| e.path()) {
            if p.is_dir() {
                walk(&p, ext, out);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, ext, &mut out);
    out
}
