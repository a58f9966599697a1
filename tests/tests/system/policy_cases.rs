//! `certgate test`: files of expected decisions run through the real `.wasm`.
//! Every shipped policy has one, and they pass; a wrong expectation fails with
//! what differed (exit 1, JUnit for CI); a file with a mistake is refused
//! with its path and line (exit 2); the cases schema accepts the committed
//! files and refuses a bad one.

use crate::common;

use std::process::Output;

use common::{certgate, repo, TempDir};

fn run(args: &[&str]) -> Output {
    certgate().args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `fixtures/cases/<name>.json` for every `fixtures/policies/<name>.json`.
fn shipped_cases() -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(repo().join("fixtures/policies")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let cases = format!("fixtures/cases/{name}");
        assert!(repo().join(&cases).is_file(), "{name} is shipped without a cases file ({cases})");
        out.push(cases);
    }
    out.sort();
    out
}

#[test]
fn every_shipped_policy_passes_its_cases_with_a_junit_report() {
    let dir = TempDir::new("cases").unwrap();
    let junit = dir.0.join("junit.xml");
    let cases = shipped_cases();
    let mut args: Vec<&str> = vec!["test", "--junit", junit.to_str().unwrap()];
    args.extend(cases.iter().map(String::as_str));
    let o = run(&args);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), cases.len(), "{xml}");
    assert!(xml.contains("failures=\"0\"") && !xml.contains("<failure"), "{xml}");
    let total: usize = out.lines().filter(|l| l.starts_with("ok    ")).count();
    assert!(total >= 20, "{out}");
}

#[test]
fn a_wrong_expectation_fails_with_what_differed() {
    let dir = TempDir::new("cases-fail").unwrap();
    let file = dir.0.join("wrong.json");
    let pki = repo().join("fixtures/pki");
    let policy = repo().join("fixtures/policies/example.json");
    std::fs::write(
        &file,
        format!(
            r#"{{ "policy": "{}", "certificates": "{}", "cases": [
  {{ "name": "right", "cert": "alice", "path": "/app/", "expect": {{ "decision": "allow", "rule": "app" }} }},
  {{ "name": "wrong", "cert": "bob", "path": "/admin/",
    "expect": {{ "decision": "allow", "status": 200, "rule": "app", "reason": null, "headers": {{ "x-client-cn": "bob" }} }} }},
  {{ "name": "wrong header", "cert": "alice", "path": "/app/", "headers": {{ "x-user": "admin" }},
    "expect": {{ "decision": "allow", "headers": {{ "x-client-cn": "mallory", "x-user": "admin" }} }} }}
] }}"#,
            policy.display(),
            pki.display()
        ),
    )
    .unwrap();
    let junit = dir.0.join("junit.xml");
    let o = run(&["test", file.to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("ok    right"), "{out}");
    assert!(
        out.contains(&format!("FAIL  wrong ({}:3)", file.display())),
        "the case and its line: {out}"
    );
    for want in [
        "decision: expected allow, got deny",
        "status: expected 200, got 403",
        "reason: expected none, got subject_not_allowed",
        "rule: expected app, got admin",
        "answered locally",
        "header x-client-cn: expected mallory, got alice",
        "header x-user: expected admin, got absent",
        "3 cases: 1 passed, 2 failed",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"3\" failures=\"2\"") && xml.matches("<failure ").count() == 2,
        "{xml}"
    );
}

#[test]
fn a_cases_file_with_a_mistake_is_refused_with_its_path_and_line() {
    let dir = TempDir::new("cases-bad").unwrap();
    let policy = repo().join("fixtures/policies/example.json");
    let pki = repo().join("fixtures/pki");
    let head = format!(
        r#"{{ "policy": "{}", "certificates": "{}", "cases": ["#,
        policy.display(),
        pki.display()
    );
    for (body, line, needle) in [
        ("\n  { \"name\": \"a\", \"expect\": { \"decision\": \"allow\" } },\n  { \"name\": \"b\",\n    \"expect\": { \"decison\": \"deny\" } }\n] }", 4, "cases[1].expect.decison: unknown field `decison`"),
        ("\n  { \"name\": \"a\", \"cert\": \"alicia\", \"expect\": { \"decision\": \"allow\" } }\n] }", 2, "cases[0].cert: no certificate \"alicia\""),
        ("\n  { \"name\": \"a\", \"expect\": { \"decision\": \"maybe\" } }\n] }", 2, "unknown variant `maybe`"),
        ("\n  { \"name\": \"a\" \"expect\": {} }\n] }", 2, "expected"),
    ] {
        let file = dir.0.join("bad.json");
        std::fs::write(&file, format!("{head}{body}")).unwrap();
        let o = run(&["test", file.to_str().unwrap()]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{out}");
        assert!(out.contains(&format!("{}:{line}: ", file.display())), "line {line} named: {out}");
        assert!(out.contains(needle), "{needle:?} in {out}");
    }
    let o = run(&["test", "no/such/cases.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no/such/cases.json"), "{}", text(&o));
}

#[test]
fn the_cases_schema_accepts_the_committed_files_and_refuses_a_bad_one() {
    let o = run(&["schema", "--cases"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for file in shipped_cases() {
        let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo().join(&file)).unwrap()).unwrap();
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
    // the book's example too
    let readme = std::fs::read_to_string(repo().join("docs/src/policies/testing.md")).unwrap();
    let start = readme.find("```json certgate-cases\n").expect("the book's cases example") + "```json certgate-cases\n".len();
    let end = readme[start..].find("```").unwrap() + start;
    let example: serde_json::Value = serde_json::from_str(&readme[start..end]).unwrap();
    assert!(validator.is_valid(&example), "{example}");
    let bad = serde_json::json!({ "cases": [ { "name": "x", "expect": { "decision": "maybe" } } ] });
    assert!(!validator.is_valid(&bad));
    let no_cases = serde_json::json!({ "policy": "p.json", "cases": [] });
    assert!(!validator.is_valid(&no_cases));
}
