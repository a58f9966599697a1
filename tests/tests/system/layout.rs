//! The tree is the one the design card names and ARCHITECTURE.md draws:
//! the card's top-level entries exist, every folder of ARCHITECTURE.md's
//! tree is there and holds the crate it names, every crate of the workspace
//! is named there, and no tracked top-level folder is missing from it. The
//! other places that speak of the tree agree with it: the book's Layout
//! page includes that very block, the README's summary names every
//! top-level folder, and the harness page's crate table puts every crate in
//! the folder the tree does.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// What the design card fixes at the top level.
const CARD: &[&str] = &["Cargo.toml", "filter", "host-harness", "envoy", "tests", "fixtures", "README.md"];

/// One line of ARCHITECTURE.md's tree: a path from the root, and the crate
/// its folder holds, if it names one.
#[derive(Debug, PartialEq)]
struct Entry {
    path: String,
    krate: Option<String>,
}

/// The `text` block under "## The tree": two spaces of indent a level; a
/// folder ends in `/`; a word starting `certgate-` after it is its crate.
fn tree(architecture: &str) -> Vec<Entry> {
    let section = architecture
        .split("\n## The tree\n")
        .nth(1)
        .expect("ARCHITECTURE.md has a section \"## The tree\"");
    let block = section
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a ```text block in it");
    let mut parents: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let depth = (line.len() - line.trim_start().len()) / 2;
        let mut words = line.split_whitespace();
        let name = words.next().unwrap();
        parents.truncate(depth);
        let path = parents
            .iter()
            .map(String::as_str)
            .chain([name.trim_end_matches('/')])
            .collect::<Vec<_>>()
            .join("/");
        let krate = words.next().filter(|w| w.starts_with("certgate-")).map(str::to_owned);
        if name.ends_with('/') {
            parents.push(name.trim_end_matches('/').to_owned());
        }
        out.push(Entry { path, krate });
    }
    out
}

fn package_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let package = text.split("[package]").nth(1)?;
    package
        .lines()
        .find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"').map(str::to_owned))
}

/// The top-level folders git tracks (not the dot-folders).
fn tracked_top_folders(repo: &Path) -> BTreeSet<String> {
    let out = Command::new("git").args(["ls-files"]).current_dir(repo).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|f| f.split_once('/').map(|(top, _)| top.to_owned()))
        .filter(|top| !top.starts_with('.'))
        .collect()
}

/// Everything in which the repository and the drawn tree disagree.
fn disagreements(entries: &[Entry], repo: &Path, members: &BTreeSet<String>, tracked: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let top: BTreeSet<&str> = entries.iter().filter(|e| !e.path.contains('/')).map(|e| e.path.as_str()).collect();
    for name in CARD {
        if !top.contains(name) {
            out.push(format!("the card's {name} is not at the top of ARCHITECTURE.md's tree"));
        }
    }
    for folder in tracked {
        if !top.contains(folder.as_str()) {
            out.push(format!("the tracked folder {folder}/ is not in ARCHITECTURE.md's tree"));
        }
    }
    let mut named = BTreeSet::new();
    for e in entries {
        let path = repo.join(&e.path);
        if !path.exists() {
            out.push(format!("{} is drawn but not there", e.path));
            continue;
        }
        if let Some(krate) = &e.krate {
            match package_name(&path.join("Cargo.toml")) {
                Some(name) if &name == krate => {}
                found => out.push(format!("{} should hold {krate}, holds {found:?}", e.path)),
            }
            named.insert(krate.clone());
        }
    }
    for krate in members.difference(&named) {
        out.push(format!("the workspace's {krate} is not named in ARCHITECTURE.md's tree"));
    }
    // the fuzz targets are a workspace of their own
    for krate in named.difference(members).filter(|k| *k != "certgate-fuzz") {
        out.push(format!("{krate} is drawn but is no member of the workspace"));
    }
    out
}

fn architecture() -> String {
    std::fs::read_to_string(common::repo().join("ARCHITECTURE.md")).unwrap()
}

#[test]
fn the_tree_is_the_one_the_card_names_and_architecture_draws() {
    let repo = common::repo();
    for name in CARD {
        assert!(repo.join(name).exists(), "{name} missing at the top");
    }
    assert!(
        !repo.join("crates").exists(),
        "crates/ is gone: the crates sit in filter/, host-harness/, pki/, cli/"
    );
    let entries = tree(&architecture());
    assert!(
        entries.contains(&Entry {
            path: "filter/core".into(),
            krate: Some("certgate-core".into())
        }),
        "{entries:?}"
    );
    let found = disagreements(&entries, &repo, &common::workspace_crates(), &tracked_top_folders(&repo));
    assert!(found.is_empty(), "{found:#?}");
}

/// The check can fail: a drawn tree that moved a crate, named a wrong one,
/// left one out, or misses a tracked folder is caught on each count.
#[test]
fn a_tree_that_disagrees_with_the_repository_is_caught() {
    let repo = common::repo();
    let members = common::workspace_crates();
    let drawn = architecture();
    let broken = drawn
        .replace("  core/            certgate-core", "  kernel/          certgate-core")
        .replace("  wasm/            certgate-wasm", "  wasm/            certgate-filter")
        .replace("  oci/             certgate-oci           certgate package: OCI images\n", "");
    let mut tracked = tracked_top_folders(&repo);
    tracked.insert("crates".into());
    let found = disagreements(&tree(&broken), &repo, &members, &tracked);
    let expect = [
        "filter/kernel is drawn but not there",
        "filter/wasm should hold certgate-filter",
        "the workspace's certgate-core is not named",
        "the workspace's certgate-oci is not named",
        "the tracked folder crates/ is not in",
    ];
    for e in expect {
        assert!(found.iter().any(|f| f.starts_with(e)), "{e:?} not in {found:#?}");
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(common::repo().join(path)).unwrap()
}

/// The `| `crate` | `folder` | ... |` rows of a page's crate table.
fn crate_table(page: &str) -> Vec<(String, String)> {
    page.lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let krate = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let folder = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            krate.starts_with("certgate-").then(|| (krate.to_owned(), folder.to_owned()))
        })
        .collect()
}

/// What a copy of the tree says that the drawn tree does not.
fn copies_disagree(entries: &[Entry], readme: &str, layout_page: &str, harness_page: &str, tracked: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    if !layout_page.contains("{{#include ../../../ARCHITECTURE.md:tree}}") {
        out.push("the book's Layout page does not include ARCHITECTURE.md's tree (anchor `tree`)".to_owned());
    }
    let summary = readme
        .split("\n## Layout\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap_or_default();
    for folder in tracked {
        if !summary.contains(&format!("`{folder}/")) {
            out.push(format!("README's Layout does not name {folder}/"));
        }
    }
    let drawn: BTreeSet<(String, String)> = entries
        .iter()
        .filter_map(|e| Some((e.krate.clone()?, e.path.clone())))
        .filter(|(k, _)| k != "certgate-fuzz")
        .collect();
    let table: BTreeSet<(String, String)> = crate_table(harness_page).into_iter().collect();
    for (krate, folder) in table.difference(&drawn) {
        out.push(format!("the harness page puts {krate} in {folder}, which the tree does not"));
    }
    for (krate, folder) in drawn.difference(&table) {
        out.push(format!("the harness page's crate table lacks {krate} in {folder}"));
    }
    out
}

#[test]
fn every_other_copy_of_the_tree_agrees_with_it() {
    let entries = tree(&architecture());
    let tracked = tracked_top_folders(&common::repo());
    let drawn = architecture();
    assert!(
        drawn.contains("<!-- ANCHOR: tree -->\n```text\n") && drawn.contains("```\n<!-- ANCHOR_END: tree -->"),
        "ARCHITECTURE.md marks its tree for the book"
    );
    let found = copies_disagree(
        &entries,
        &read("README.md"),
        &read("docs/src/development/layout.md"),
        &read("docs/src/harness.md"),
        &tracked,
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// The check can fail: a README that forgets a folder, a page with its own
/// tree, a crate table that puts a crate elsewhere or leaves one out.
#[test]
fn a_copy_that_disagrees_with_the_tree_is_caught() {
    let entries = tree(&architecture());
    let tracked = tracked_top_folders(&common::repo());
    let readme = read("README.md").replace("`pki/", "`issuer/");
    let harness = read("docs/src/harness.md")
        .replace("| `certgate-est` | `pki/est` |", "| `certgate-est` | `cli/est` |")
        .replace("| `certgate-oci` | `cli/oci` |", "| nothing |");
    let found = copies_disagree(&entries, &readme, "# Layout\n```text\ncli/\n```\n", &harness, &tracked);
    let expect = [
        "the book's Layout page does not include",
        "README's Layout does not name pki/",
        "the harness page puts certgate-est in cli/est",
        "the harness page's crate table lacks certgate-est in pki/est",
        "the harness page's crate table lacks certgate-oci in cli/oci",
    ];
    for e in expect {
        assert!(found.iter().any(|f| f.starts_with(e)), "{e:?} not in {found:#?}");
    }
}
