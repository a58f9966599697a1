//! Every policy shown to users parses: the JSON blocks of the README and the
//! book (`docs/src`) and the files in fixtures/policies/. The book's full
//! example is the fixture.
//! Every policy the project ships (those, the ones inside `envoy/` and its
//! Istio and Envoy Gateway manifests) validates against the JSON Schema
//! `certgate schema` prints, and broken ones do not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice
)]

mod common;

use certgate_core::config::parse_policy;
use common::fixtures_dir;

/// The README and every page of the book, one text.
fn readme() -> String {
    let pages = certgate_test_support::book::pages(&fixtures_dir().join(".."));
    pages
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The ```json blocks of a Markdown text (policies; a ```json block with
/// more on its line, such as `certgate-cases`, is something else).
fn json_blocks(markdown: &str) -> Vec<String> {
    certgate_test_support::book::blocks(markdown)
        .into_iter()
        .filter(|b| b.info == "json")
        .map(|b| b.body)
        .collect()
}

#[test]
fn every_json_block_in_the_readme_and_the_book_is_a_valid_policy() {
    let blocks = json_blocks(&readme());
    assert!(blocks.len() >= 3, "found {} JSON blocks", blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        if let Err(e) = parse_policy(block.as_bytes()) {
            panic!("JSON block {} of the README and the book does not parse: {e}\n{block}", i + 1);
        }
    }
}

#[test]
fn the_books_full_example_is_the_example_fixture() {
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("policies/example.json")).unwrap()).unwrap();
    let found = json_blocks(&readme())
        .iter()
        .any(|b| serde_json::from_str::<serde_json::Value>(b).ok().as_ref() == Some(&fixture));
    assert!(found, "the book must show fixtures/policies/example.json as its full example");
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

/// Every policy the project ships, with where it is.
fn shipped_policies() -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<(String, serde_json::Value)> = Vec::new();
    for (i, block) in json_blocks(&readme()).iter().enumerate() {
        out.push((
            format!("JSON block {} of the README and the book", i + 1),
            serde_json::from_str(block).unwrap(),
        ));
    }
    for entry in std::fs::read_dir(fixtures_dir().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            out.push((
                path.display().to_string(),
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap(),
            ));
        }
    }
    let envoy = fixtures_dir().join("../envoy");
    let mut files = Vec::new();
    for dir in [envoy.clone(), envoy.join("ecds"), envoy.join("istio"), envoy.join("gateway")] {
        files.extend(
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml")),
        );
    }
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            collect_policies(&doc, &path.display().to_string(), &mut out);
        }
    }
    out
}

/// Policies inside an Envoy configuration (a `StringValue` configuration of
/// the wasm filter), a WasmPlugin (`pluginConfig`) or an EnvoyExtensionPolicy
/// (`wasm[].config`), wherever they are nested.
fn collect_policies(v: &serde_json::Value, at: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        serde_json::Value::Object(o) => {
            if o.get("@type").and_then(|t| t.as_str()) == Some("type.googleapis.com/google.protobuf.StringValue") {
                if let Some(text) = o.get("value").and_then(|t| t.as_str()) {
                    out.push((at.to_owned(), serde_json::from_str(text).unwrap_or_else(|e| panic!("{at}: {e}"))));
                }
            }
            for key in ["pluginConfig", "config"] {
                if let Some(p) = o.get(key).filter(|p| p.get("rules").is_some()) {
                    out.push((at.to_owned(), p.clone()));
                }
            }
            o.values().for_each(|v| collect_policies(v, at, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_policies(v, at, out)),
        _ => {}
    }
}

fn schema() -> jsonschema::Validator {
    jsonschema::validator_for(&certgate_core::config::json_schema()).unwrap()
}

#[test]
fn every_shipped_policy_validates_against_the_json_schema() {
    let validator = schema();
    let policies = shipped_policies();
    assert!(policies.len() >= 15, "found {} policies", policies.len());
    for (at, policy) in &policies {
        let errors: Vec<String> = validator
            .iter_errors(policy)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{at}: {errors:?}\n{policy}");
        // and the filter agrees
        parse_policy(policy.to_string().as_bytes()).unwrap_or_else(|e| panic!("{at}: {e}"));
    }
}

#[test]
fn the_json_schema_refuses_what_the_filter_refuses() {
    let validator = schema();
    for bad in [
        r#"{}"#,
        r#"{"rules":[]}"#,
        r#"{"rules":[{"name":"a"}],"colour":"red"}"#,
        r#"{"rules":[{"name":"a","isuer":["CN=x"]}]}"#,
        r#"{"mode":"block","rules":[{"name":"a"}]}"#,
        r#"{"verification":"trust_me","rules":[{"name":"a"}]}"#,
        r#"{"rules":[{"name":"a b"}]}"#,
        r#"{"rules":[{"name":"a","anonymous":"yes"}]}"#,
        r#"{"headers":{"preset":"apache"},"rules":[{"name":"a"}]}"#,
        r#"{"headers":{"rename":{"user":"x-user"}},"rules":[{"name":"a"}]}"#,
        r#"{"paths":{"case":"lower"},"rules":[{"name":"a"}]}"#,
        r#"{"cache_size":0,"rules":[{"name":"a"}]}"#,
        r#"{"expiry_warning_days":4000,"rules":[{"name":"a"}]}"#,
    ] {
        let value: serde_json::Value = serde_json::from_str(bad).unwrap();
        assert!(!validator.is_valid(&value), "the schema accepts {bad}");
        assert!(parse_policy(bad.as_bytes()).is_err(), "the filter accepts {bad}");
    }
}
