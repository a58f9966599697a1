//! The pages users read: the front page and the book's, for the suites that
//! check what they show.

use std::path::{Path, PathBuf};

/// `README.md` and every Markdown page under `docs/src` of the repository at
/// `repo`, sorted.
pub fn pages(repo: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for p in entries.flatten().map(|e| e.path()) {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = vec![repo.join("README.md")];
    walk(&repo.join("docs/src"), &mut out);
    out.sort();
    out
}
