//! No module of the filter imports, directly or through others, a module
//! that imports it back: the layers stay readable from the leaves up.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `crate::a::b` → `a`; `super::x` in `wasm/y.rs` → `wasm/x`.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let name = rel.to_string_lossy().replace('\\', "/");
    name.strip_suffix("/mod").unwrap_or(&name).to_owned()
}

/// The modules a file's code refers to, outside comments and its
/// `#[cfg(test)]` module.
fn references(file: &Path, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let before_tests = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    let code: String = before_tests
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let me = module_of(file);
    let parent = me.rsplit_once('/').map(|(p, _)| p.to_owned());
    let mut out = BTreeSet::new();
    for (prefix, base) in [("crate::", None), ("super::", parent.clone())] {
        for (i, _) in code.match_indices(prefix) {
            let rest = &code[i + prefix.len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let full = match &base {
                Some(b) => format!("{b}/{name}"),
                None => name.clone(),
            };
            // `crate::wasm::x` names a submodule
            let sub = rest.strip_prefix(&format!("{name}::")).map(|r| {
                format!(
                    "{full}/{}",
                    r.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
                )
            });
            if let Some(sub) = sub.filter(|s| modules.contains(s)) {
                out.insert(sub);
            } else if modules.contains(&full) {
                out.insert(full);
            }
        }
    }
    out.remove(&me);
    out
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") && p.file_name().is_some_and(|n| n != "lib.rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let modules: BTreeSet<String> = all.iter().map(|f| module_of(f)).collect();
    let graph: BTreeMap<String, BTreeSet<String>> = all.iter().map(|f| (module_of(f), references(f, &modules))).collect();
    assert!(graph["admission"].contains("peer"), "the reader sees imports: {graph:?}");
    // every module reachable from each; a cycle is a module reaching itself
    let mut cycles = Vec::new();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = todo.pop() {
            if seen.insert(m.clone()) {
                todo.extend(graph.get(m).into_iter().flatten());
            }
        }
        if seen.contains(start) {
            cycles.push(start.clone());
        }
    }
    assert!(cycles.is_empty(), "modules in an import cycle: {cycles:?}\n{graph:#?}");
}
