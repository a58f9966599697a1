//! No module of any workspace crate imports, directly or through others, a
//! module that imports it back: each crate's layers read from the leaves up.
//! The check reads every `crate::`, `super::` and `self::` path in a crate's
//! code (outside comments and its `#[cfg(test)] mod tests`), `use` groups
//! included, and resolves each to the deepest module it names.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use certgate_test_support::files_under;

/// A crate's modules and, for each, the modules its code refers to.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The source folder of each library and binary of the workspace, with the
/// root files (`lib.rs`, `main.rs`) that declare its modules.
fn crate_roots() -> Vec<(String, PathBuf, BTreeSet<PathBuf>)> {
    let meta: serde_json::Value = serde_json::from_slice(&common::cargo_metadata()).unwrap();
    let mut roots: BTreeMap<PathBuf, (String, BTreeSet<PathBuf>)> = BTreeMap::new();
    for package in meta["packages"].as_array().unwrap() {
        for target in package["targets"].as_array().unwrap() {
            let kinds: Vec<&str> = target["kind"].as_array().unwrap().iter().filter_map(|k| k.as_str()).collect();
            if !kinds.iter().any(|k| ["lib", "bin", "cdylib", "rlib"].contains(k)) {
                continue;
            }
            let root = PathBuf::from(target["src_path"].as_str().unwrap());
            let dir = root.parent().unwrap().to_owned();
            let entry = roots
                .entry(dir)
                .or_insert_with(|| (package["name"].as_str().unwrap().to_owned(), BTreeSet::new()));
            entry.1.insert(root);
        }
    }
    roots.into_iter().map(|(dir, (name, files))| (name, dir, files)).collect()
}

/// `src/a/b.rs` → `a/b`; `src/a/mod.rs` → `a`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let name = rel.to_string_lossy().replace('\\', "/");
    name.strip_suffix("/mod").unwrap_or(&name).to_owned()
}

/// A file's code: no comment lines, nothing from its unit tests on.
fn code_of(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    before_tests
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    s.get(..end).unwrap_or_default()
}

/// The paths a path tree spells: `a::{b, c::d}` → `a/b`, `a/c/d`.
fn paths(tree: &str) -> Vec<String> {
    let tree = tree.trim_start();
    if let Some(group) = tree.strip_prefix('{') {
        // the group up to its matching brace, split at its own commas
        let (mut depth, mut start, mut out) = (0usize, 0usize, Vec::new());
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.extend(paths(&group[start..i]));
                    return out;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.extend(paths(&group[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
        return out;
    }
    let name = ident(tree);
    if name.is_empty() {
        return Vec::new();
    }
    let rest = &tree[name.len()..];
    match rest.strip_prefix("::") {
        Some(rest) => {
            let below = paths(rest);
            if below.is_empty() {
                vec![name.to_owned()]
            } else {
                below.into_iter().map(|p| format!("{name}/{p}")).collect()
            }
        }
        None => vec![name.to_owned()],
    }
}

/// The modules `code`, the code of module `me`, refers to.
fn references(me: &str, code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    // `super` of `a/b` (`a/b.rs` or `a/b/mod.rs`) is `a`, its `self` `a/b`
    let parent = me.rsplit_once('/').map_or("", |(p, _)| p);
    let mut out = BTreeSet::new();
    for (prefix, base) in [("crate::", ""), ("super::", parent), ("self::", me)] {
        for (i, _) in code.match_indices(prefix) {
            // a whole word: not the tail of `my_crate::`
            if code[..i].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            for path in paths(&code[i + prefix.len()..]) {
                let full = if base.is_empty() { path } else { format!("{base}/{path}") };
                // the deepest module the path names
                let mut candidate = full.as_str();
                loop {
                    if modules.contains(candidate) {
                        out.insert(candidate.to_owned());
                        break;
                    }
                    match candidate.rsplit_once('/') {
                        Some((up, _)) => candidate = up,
                        None => break,
                    }
                }
            }
        }
    }
    out.remove(me);
    out
}

/// A crate's module graph, from its source folder (root files aside).
fn graph_of(src: &Path, roots: &BTreeSet<PathBuf>) -> Graph {
    let mut files = files_under(src, "rs");
    files.retain(|f| !roots.contains(f) && !f.starts_with(src.join("bin")));
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    files
        .iter()
        .map(|f| {
            let me = module_of(src, f);
            let code = code_of(&std::fs::read_to_string(f).unwrap());
            let refs = references(&me, &code, &modules);
            (me, refs)
        })
        .collect()
}

/// The modules that reach themselves through the graph.
fn cycles(graph: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = todo.pop() {
            if seen.insert(m.clone()) {
                todo.extend(graph.get(m).into_iter().flatten());
            }
        }
        if seen.contains(start) {
            out.push(start.clone());
        }
    }
    out
}

#[test]
fn no_module_of_any_crate_imports_one_that_imports_it_back() {
    let crates = crate_roots();
    assert!(crates.len() >= common::workspace_crates().len(), "every crate is read: {crates:?}");
    let mut failures = Vec::new();
    let mut edges = 0;
    for (name, src, roots) in &crates {
        let graph = graph_of(src, roots);
        edges += graph.values().map(BTreeSet::len).sum::<usize>();
        let cycles = cycles(&graph);
        if !cycles.is_empty() {
            failures.push(format!("{name}: modules in an import cycle: {cycles:?}\n{graph:#?}"));
        }
    }
    assert!(edges > 100, "the reader sees imports: {edges} edges");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_reader_sees_groups_super_and_self_and_finds_a_cycle() {
    let modules: BTreeSet<String> = ["a", "b", "c", "c/d", "c/e"].iter().map(|s| (*s).to_owned()).collect();
    let refs = references("a", "use crate::{b, c::d::Thing};\nfn f() { self::g(); }", &modules);
    assert_eq!(refs, ["b", "c/d"].iter().map(|s| (*s).to_owned()).collect());
    let refs = references("c/e", "use super::d::X; use super::{Y};", &modules);
    assert_eq!(refs, ["c", "c/d"].iter().map(|s| (*s).to_owned()).collect());
    assert!(
        references("a", "use other_crate::b;", &modules).is_empty(),
        "a word's tail is no path"
    );
    let graph: Graph = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("c/d", vec![])]
        .into_iter()
        .map(|(m, r)| (m.to_owned(), r.into_iter().map(str::to_owned).collect()))
        .collect();
    assert_eq!(cycles(&graph), ["a", "b", "c"]);
}
