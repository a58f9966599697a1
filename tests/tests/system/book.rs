//! The book (`docs/`) and the front page cannot rot: the reference pages are
//! what the code generates; every link between pages (and to an anchor)
//! resolves; every page is in SUMMARY.md; and every snippet a reader may
//! copy is checked: each policy loads into the filter, each TOML file into
//! `certgate serve`, each Envoy configuration passes `envoy --mode validate`
//! on every Envoy of the matrix that the sentence before it claims ("(Envoy
//! 1.36.4 to 1.40.0)"; the dynamic module's from 1.38) once set into a
//! committed configuration where it says it goes. A snippet
//! that is deliberately partial says so on its fence (`yaml partial`), and
//! the test prints how many were skipped that way.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use certgate_core::config::parse_policy;
use certgate_edge::ServeOptions;
use certgate_test_support::book::{blocks, Block};
use std::time::Duration;

use common::envoy::{config, envoy_bin_of, free_port, matrix, MODULE_VERSIONS};
use common::{certgate, repo, wait_for_port, KillOnDrop, TempDir};
use serde_yaml_ng::Value as Yaml;

fn book() -> PathBuf {
    repo().join("docs/src")
}

/// Every Markdown page of the book, and the front page.
fn pages() -> Vec<PathBuf> {
    certgate_test_support::book::pages(&repo())
}

/// A page's text, with mdBook's `{{#include FILE:N:}}` expanded.
fn text(page: &Path) -> String {
    let raw = std::fs::read_to_string(page).unwrap();
    let mut out = String::new();
    for line in raw.lines() {
        match line.strip_prefix("{{#include ").and_then(|l| l.strip_suffix("}}")) {
            Some(spec) => {
                let (file, from) = spec
                    .split_once(':')
                    .map_or((spec, 1), |(f, n)| (f, n.trim_end_matches(':').parse().unwrap_or(1)));
                let included = std::fs::read_to_string(page.parent().unwrap().join(file)).unwrap();
                for l in included.lines().skip(from - 1) {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The anchors mdBook gives a page's headings.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fence = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            fence = !fence;
        }
        if !fence && line.starts_with('#') {
            let title = line.trim_start_matches('#').trim().to_lowercase();
            let anchor: String = title
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
                .collect();
            out.insert(anchor.replace(' ', "-"));
        }
    }
    out
}

#[test]
fn the_reference_pages_are_what_the_code_generates() {
    let dir = TempDir::new("reference").unwrap();
    let out = certgate().args(["reference", "--out"]).arg(&dir.0).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut pages = 0;
    for e in std::fs::read_dir(&dir.0).unwrap() {
        let generated = e.unwrap().path();
        let name = generated.file_name().unwrap().to_owned();
        let committed = book().join("reference").join(&name);
        let (want, have) = (
            std::fs::read_to_string(&generated).unwrap(),
            std::fs::read_to_string(&committed).unwrap_or_default(),
        );
        assert!(
            want == have,
            "docs/src/reference/{} differs from what the code generates: run `./dev docs`",
            name.to_string_lossy()
        );
        pages += 1;
    }
    assert_eq!(pages, 5, "policy, deny reasons, metrics, the issuer's records, command line");
}

#[test]
fn every_page_is_in_the_summary_and_every_link_resolves() {
    let summary = std::fs::read_to_string(book().join("SUMMARY.md")).unwrap();
    let mut broken = Vec::new();
    for page in pages() {
        let name = page.strip_prefix(repo()).unwrap().display().to_string();
        let rel = page.strip_prefix(book()).map(|p| p.display().to_string()).unwrap_or_default();
        if page.starts_with(book()) && rel != "SUMMARY.md" && !summary.contains(&format!("]({rel})")) {
            broken.push(format!("{name} is not in SUMMARY.md"));
        }
        let body = text(&page);
        let mut fence = false;
        for line in body.lines() {
            if line.starts_with("```") {
                fence = !fence;
            }
            if fence {
                continue;
            }
            let mut rest = line;
            while let Some(at) = rest.find("](") {
                let after = &rest[at + 2..];
                let end = after.find(')').unwrap_or(after.len());
                let target = &after[..end];
                rest = &after[end..];
                if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                    continue;
                }
                let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
                let resolved = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(file)
                };
                if !resolved.is_file() {
                    broken.push(format!("{name}: [..]({target}): no file {}", resolved.display()));
                } else if !anchor.is_empty()
                    && resolved.extension().is_some_and(|e| e == "md")
                    && !anchors(&text(&resolved)).contains(anchor)
                {
                    broken.push(format!("{name}: [..]({target}): no heading #{anchor}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{} broken:\n{}", broken.len(), broken.join("\n"));
}

/// Where an Envoy snippet goes in `envoy/required-mtls.yaml`, by its fence's
/// second word: the bootstrap's top level, the HTTP connection manager, in
/// place of certgate's HTTP filter, or among the network filters before the
/// HTTP connection manager.
fn envoy_with(snippet: &str, place: &str) -> String {
    let backend = "127.0.0.1:8080".parse().unwrap();
    let mut bootstrap: Yaml = serde_yaml_ng::from_str(&config("required-mtls.yaml", backend, None)).unwrap();
    let fragment: Yaml = serde_yaml_ng::from_str(snippet).unwrap();
    let hcm = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    match place {
        "envoy-bootstrap" => merge(&mut bootstrap, fragment),
        "envoy-hcm" => merge(hcm, fragment),
        "envoy-http-filter" => {
            let filters = hcm["http_filters"].as_sequence_mut().unwrap();
            let at = filters.iter().position(|f| f["name"] == "certgate").unwrap();
            filters.splice(at..=at, fragment.as_sequence().unwrap().iter().cloned());
        }
        "envoy-network-filter" => {
            let filters = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
                .as_sequence_mut()
                .unwrap();
            filters.splice(0..0, fragment.as_sequence().unwrap().iter().cloned());
        }
        other => panic!("unknown place {other}"),
    }
    serde_yaml_ng::to_string(&bootstrap).unwrap()
}

/// The Envoys the paragraph before a page's block (fence on `line`, 1-based)
/// says it is for: "(Envoy 1.36.4 to 1.40.0)".
fn claim(page: &str, line: usize) -> Option<(String, String)> {
    let lines: Vec<&str> = page.lines().take(line.saturating_sub(1)).collect();
    let paragraph: Vec<&str> = lines
        .iter()
        .rev()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("```"))
        .copied()
        .collect();
    let text = paragraph.into_iter().rev().collect::<Vec<_>>().join(" ");
    let at = text.find("(Envoy ")?;
    let (from, rest) = text[at + 7..].split_once(" to ")?;
    let to = rest.split(')').next()?;
    Some((from.to_owned(), to.to_owned()))
}

fn version(v: &str) -> Vec<u32> {
    v.split('.').map(|n| n.parse().unwrap_or(0)).collect()
}

fn merge(into: &mut Yaml, from: Yaml) {
    if let (Some(into), Yaml::Mapping(from)) = (into.as_mapping_mut(), from) {
        for (k, v) in from {
            into.insert(k, v);
        }
    }
}

#[test]
fn every_snippet_a_reader_may_copy_is_checked() {
    let dir = TempDir::new("snippets").unwrap();
    let (mut checked, mut partial, mut validations, mut failures) = (0, 0, 0, Vec::new());
    for page in pages() {
        let name = page.strip_prefix(repo()).unwrap().display().to_string();
        let body = text(&page);
        for (i, b) in blocks(&body).into_iter().enumerate() {
            let at = format!("{name}:{}", b.line);
            let mut words = b.info.split_whitespace();
            let (lang, place) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            if place == "partial" {
                partial += 1;
                continue;
            }
            match (lang, place) {
                ("json", "") => match parse_policy(b.body.as_bytes()) {
                    Ok(_) => checked += 1,
                    Err(e) => failures.push(format!("{at}: the policy does not load: {e}")),
                },
                ("toml", "") => {
                    // as `certgate serve --config` reads it, beside the fixtures its paths name
                    for sub in ["policies", "pki"] {
                        let link = dir.0.join(sub);
                        if !link.exists() {
                            std::os::unix::fs::symlink(repo().join("fixtures").join(sub), link).unwrap();
                        }
                    }
                    let file = dir.0.join(format!("serve-{i}.toml"));
                    std::fs::write(&file, &b.body).unwrap();
                    let loaded = ServeOptions {
                        config: Some(file),
                        ..ServeOptions::default()
                    }
                    .resolve();
                    match loaded {
                        Ok(_) => checked += 1,
                        Err(e) => failures.push(format!("{at}: certgate serve does not load it: {e}")),
                    }
                }
                ("yaml", place) if place.starts_with("envoy-") => {
                    // the pages' placeholders for the two builds' files
                    let snippet = b
                        .body
                        .replace("/path/to/certgate_filter.wasm", &common::wasm().display().to_string())
                        .replace("/path/to/libcertgate.so", &common::envoy::module().display().to_string());
                    let file = dir.0.join(format!("envoy-{i}.yaml"));
                    std::fs::write(&file, envoy_with(&snippet, place)).unwrap();
                    // on every Envoy of the matrix the page says it works on
                    let Some((from, to)) = claim(&body, b.line) else {
                        failures.push(format!(
                            "{at}: the sentence before an Envoy snippet says which Envoys it is for: (Envoy X.Y.Z to X.Y.Z)"
                        ));
                        continue;
                    };
                    let versions: Vec<String> = matrix()
                        .into_iter()
                        .filter(|v| version(v) >= version(&from) && version(v) <= version(&to))
                        .collect();
                    let module = snippet.contains("DynamicModuleFilter");
                    if !matrix().contains(&from) || !matrix().contains(&to) || versions.is_empty() {
                        failures.push(format!(
                            "{at}: it claims Envoy {from} to {to}; the versions tested are those of envoy/versions.txt"
                        ));
                    }
                    if module && versions.iter().any(|v| !MODULE_VERSIONS.contains(&v.as_str())) {
                        failures.push(format!(
                            "{at}: a dynamic-module snippet claims Envoy {from}: the module runs on {} and later",
                            MODULE_VERSIONS[0]
                        ));
                    }
                    let mut ok = true;
                    for version in &versions {
                        let out = Command::new(envoy_bin_of(version))
                            .args(["--mode", "validate", "-c"])
                            .arg(&file)
                            .current_dir(repo())
                            .output()
                            .unwrap();
                        if !out.status.success() {
                            ok = false;
                            failures.push(format!(
                                "{at}: envoy {version} --mode validate: {}",
                                String::from_utf8_lossy(&out.stderr)
                            ));
                        }
                    }
                    if ok {
                        checked += 1;
                        validations += versions.len();
                    }
                }
                ("yaml", _) => failures.push(format!(
                    "{at}: a yaml block must say where it goes (envoy-bootstrap, envoy-hcm, envoy-http-filter, envoy-network-filter) or that it is partial"
                )),
                // output, diagrams, commands, the harness's Rust and cases files: checked elsewhere or not code
                _ => {}
            }
        }
    }
    eprintln!("{checked} snippets checked ({validations} Envoy validations), {partial} marked partial and skipped");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 10, "{checked} snippets checked");
}

/// The getting-started page as a person follows it: the edge `./dev run`
/// starts (the same arguments, on free ports), then each shell block that
/// the page follows with its output (```` ```text output ````) run by bash in
/// the repository, with the `certgate` `./dev test` built on the PATH; what
/// it prints must be what the page shows.
#[test]
fn the_getting_started_commands_print_what_the_page_shows() {
    let all = blocks(&text(&book().join("getting-started.md")));
    let runs: Vec<(&Block, &Block)> = all
        .windows(2)
        .filter(|w| w[0].info == "sh" && w[1].info == "text output")
        .map(|w| (&w[0], &w[1]))
        .collect();
    assert!(runs.len() >= 3, "{} blocks with their output", runs.len());
    let (backend_port, edge_port) = (free_port(), free_port());
    let pki = |f: &str| repo().join("fixtures/pki").join(f);
    let _backend = KillOnDrop(
        certgate()
            .args(["backend", "--listen", &format!("127.0.0.1:{backend_port}")])
            .spawn()
            .unwrap(),
    );
    let _edge = KillOnDrop(
        certgate()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{edge_port}"),
                "--upstream",
                &format!("http://127.0.0.1:{backend_port}"),
            ])
            .args(["--policy", "fixtures/policies/example.json", "--client-cert", "optional"])
            .arg("--cert")
            .arg(pki("server.pem"))
            .arg("--key")
            .arg(pki("server.key"))
            .arg("--client-ca")
            .arg(pki("trusted-client-cas.pem"))
            .arg("--crl")
            .arg(pki("crls.pem"))
            .spawn()
            .unwrap(),
    );
    for port in [backend_port, edge_port] {
        wait_for_port(
            format!("127.0.0.1:{port}").parse().unwrap(),
            "the getting-started edge",
            Duration::from_secs(30),
        );
    }
    let path = format!(
        "{}:{}",
        repo().join("target/debug").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (run, shown) in runs {
        let script = run.body.replace("localhost:8443", &format!("localhost:{edge_port}"));
        let out = Command::new("bash")
            .args(["-c", &script])
            .current_dir(repo())
            .env("PATH", &path)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            printed,
            shown.body,
            "getting-started.md:{}: printed otherwise than the page shows\n{}",
            run.line,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// BENCHMARKS' headline picture is what `tests/benches/chart.py` makes of
/// the builds bench's committed output: a new run means a new chart.
#[test]
fn the_benchmarks_chart_is_drawn_from_the_committed_bench_output() {
    let out = Command::new("python3")
        .arg(repo().join("tests/benches/chart.py"))
        .arg(repo().join("tests/benches/results/builds.txt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let committed = std::fs::read(book().join("images/builds.svg")).unwrap();
    assert!(
        out.stdout == committed,
        "docs/src/images/builds.svg is not what chart.py draws from tests/benches/results/builds.txt"
    );
    let svg = String::from_utf8(committed).unwrap();
    assert!(svg.matches("<rect").count() >= 8, "a bar per variant");
    assert!(std::fs::read_to_string(book().join("benchmarks.md"))
        .unwrap()
        .contains("](images/builds.svg)"));
}

/// The data path and the crate map are what `docs/diagrams.py` draws, the
/// crate map from `cargo metadata`: a crate added, removed or given a new
/// dependency means a new picture.
#[test]
fn the_diagrams_are_drawn_from_the_workspace() {
    let dir = TempDir::new("diagrams").unwrap();
    let metadata = common::cargo_metadata();
    let mut draw = Command::new("python3")
        .arg(repo().join("docs/diagrams.py"))
        .arg(&dir.0)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut draw.stdin.take().unwrap(), &metadata).unwrap();
    assert!(draw.wait().unwrap().success());
    let page = std::fs::read_to_string(book().join("architecture.md")).unwrap();
    for name in ["data-path.svg", "crates.svg"] {
        let drawn = std::fs::read_to_string(dir.0.join(name)).unwrap();
        let committed = std::fs::read_to_string(book().join("images").join(name)).unwrap_or_default();
        assert!(
            drawn == committed,
            "docs/src/images/{name} is not what docs/diagrams.py draws: run `./dev docs`"
        );
        assert!(page.contains(&format!("](images/{name})")), "the architecture page shows {name}");
    }
    let crates = std::fs::read_to_string(dir.0.join("crates.svg")).unwrap();
    for name in common::crates_of(&metadata) {
        assert!(crates.contains(&format!(">{name}</text>")), "the crate map has no box for {name}");
    }
}
