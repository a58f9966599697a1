//! Every policy shown to users parses: the README's JSON blocks and the
//! files in fixtures/policies/. The README's full example is the fixture.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)]

mod common;

use certgate_filter::config::parse_policy;
use common::fixtures_dir;

fn readme() -> String {
    let path = fixtures_dir().join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The ```json blocks of a Markdown text.
fn json_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```json") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn every_json_block_in_the_readme_is_a_valid_policy() {
    let blocks = json_blocks(&readme());
    assert!(blocks.len() >= 3, "found {} JSON blocks", blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        if let Err(e) = parse_policy(block.as_bytes()) {
            panic!("README JSON block {} does not parse: {e}\n{block}", i + 1);
        }
    }
}

#[test]
fn the_readme_full_example_is_the_example_fixture() {
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("policies/example.json")).unwrap()).unwrap();
    let found = json_blocks(&readme())
        .iter()
        .any(|b| serde_json::from_str::<serde_json::Value>(b).ok().as_ref() == Some(&fixture));
    assert!(found, "README.md must show fixtures/policies/example.json as its full example");
}

#[test]
fn every_policy_fixture_is_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(fixtures_dir().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read(&path).unwrap();
            parse_policy(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 3);
}
