//! The pages users read, the front page and the book's, and their fenced
//! blocks, for the suites that check what they show.

use std::path::{Path, PathBuf};

/// `README.md` and every Markdown page under `docs/src` of the repository at
/// `repo`, sorted.
pub fn pages(repo: &Path) -> Vec<PathBuf> {
    let mut out = vec![repo.join("README.md")];
    out.extend(crate::files_under(&repo.join("docs/src"), "md"));
    out.sort();
    out
}

/// A fenced block of a page: its info string (`json`, `yaml envoy-hcm`, ...),
/// its body, and the line its fence opens on.
#[derive(Debug, Clone)]
pub struct Block {
    /// What follows the opening fence, trimmed.
    pub info: String,
    /// The lines between the fences.
    pub body: String,
    /// 1-based.
    pub line: usize,
}

/// The fenced blocks of a Markdown text (fences may be indented, as in a list).
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_owned(),
                    body: String::new(),
                    line: i + 1,
                })
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(b), None) => {
                b.body.push_str(line);
                b.body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}
