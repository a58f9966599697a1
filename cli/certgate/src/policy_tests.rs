//! `certgate test`: a file of expected decisions, run against a policy
//! through the real `.wasm`, as `opa test` runs a policy's tests. Each case is
//! one request (a certificate or none, method, path, host, headers) and what
//! must come of it (decision, status, reason, rule, the identity headers the
//! application gets). A file with a mistake is refused with its path and line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use certgate_decision::Verdict;
use certgate_host::{PluginSettings, WasmModule};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::request::{send, thumbprint_of_file, token_metadata_key, Request, Sent};

/// A cases file as written. Read with each case kept as its text
/// (`C` = `&RawValue`, to tell its line), then case by case; its schema is
/// that of `CasesFile<Case>`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(title = "certgate policy test cases")]
#[serde(deny_unknown_fields)]
pub struct CasesFile<C = Case> {
    /// The JSON Schema editors check the file against (`certgate schema --cases`); ignored.
    #[serde(rename = "$schema", default)]
    #[allow(dead_code)] // for editors; certgate ignores it
    pub schema: Option<String>,
    /// The policy under test, relative to this file (`--policy` overrides it).
    pub policy: Option<String>,
    /// Where certificate names are looked up (`<dir>/<name>.pem` and its `-chain.pem`), relative to this file.
    pub certificates: Option<String>,
    /// The cases, run in order.
    #[schemars(length(min = 1))]
    pub cases: Vec<C>,
}

/// One request and what must come of it.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows; names it in the output.
    pub name: String,
    /// A certificate name under `certificates`, or a PEM file (a path with `/` or ending in `.pem`, relative to this file); absent: no certificate.
    #[serde(default)]
    pub cert: Option<String>,
    /// Whether the proxy verified the certificate (default true).
    #[serde(default = "yes")]
    pub verified: bool,
    /// The request method (default GET).
    #[serde(default = "get")]
    pub method: String,
    /// The request path, query included (default /).
    #[serde(default = "root")]
    pub path: String,
    /// The request's host (default localhost).
    #[serde(default = "localhost")]
    pub host: String,
    /// Headers the client sends, spoofed identity headers included.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The access token Envoy's jwt_authn verified for the request (a policy with `bound_tokens`); absent: none.
    #[serde(default)]
    pub token: Option<TokenCase>,
    /// What must come of it.
    pub expect: Expect,
}

/// A verified token: the payload jwt_authn puts in dynamic metadata.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCase {
    /// The token's claims (`sub`, `scope`...).
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// A certificate, named as `cert` is, the token is bound to: its `cnf["x5t#S256"]` is that certificate's thumbprint.
    pub bound_to: Option<String>,
}

/// What must come of a case; a field left out is not checked.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `allow`, `deny` or `audit_deny`.
    pub decision: Verdict,
    /// The client's status: the deny's, or 200 when the request goes on.
    #[serde(default)]
    pub status: Option<u16>,
    /// The deny reason (`subject_not_allowed`...); null: none.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<String>")]
    pub reason: Option<Option<String>>,
    /// The rule that decided; null: none matched.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<String>")]
    pub rule: Option<Option<String>>,
    /// Headers the application gets: the exact value, or null for absent.
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
}

/// A field given (even as null) is `Some`: to tell "null" from "left out".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn yes() -> bool {
    true
}
fn get() -> String {
    "GET".into()
}
fn root() -> String {
    "/".into()
}
fn localhost() -> String {
    "localhost".into()
}

/// A cases file that cannot be run, with where.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct CasesError {
    /// The file.
    pub path: String,
    /// The line (1-based).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A loaded cases file: its cases, each with its line, and where its files are.
#[derive(Debug)]
pub struct Loaded {
    /// The cases file.
    pub path: PathBuf,
    /// The policy's file.
    pub policy: PathBuf,
    /// Each case with the line it starts on, its certificate's file, and
    /// the payload of its verified token.
    pub cases: Vec<(Case, usize, Option<PathBuf>, Option<serde_json::Value>)>,
}

fn line_of(text: &str, inner: &str) -> usize {
    let offset = (inner.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    text.get(..offset).map_or(1, |before| before.matches('\n').count() + 1)
}

/// Reads and checks a cases file; `policy` overrides the file's own.
pub fn load(path: &Path, policy: Option<&Path>) -> Result<Loaded, CasesError> {
    let err = |line: usize, message: String| CasesError {
        path: path.display().to_string(),
        line,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(1, format!("cannot read: {e}")))?;
    let outline: CasesFile<&RawValue> = serde_json::from_str(&text).map_err(|e| err(e.line(), e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let policy = match (policy, &outline.policy) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => dir.join(p),
        (None, None) => return Err(err(1, "no policy: give `policy` in the file or --policy".into())),
    };
    let certificates = dir.join(outline.certificates.as_deref().unwrap_or("."));
    if outline.cases.is_empty() {
        return Err(err(1, "no cases".into()));
    }
    let mut cases = Vec::new();
    for (i, raw) in outline.cases.iter().enumerate() {
        let start = line_of(&text, raw.get());
        let de = &mut serde_json::Deserializer::from_str(raw.get());
        let case: Case = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.into_inner();
            let field = if at == "." { String::new() } else { format!(".{at}") };
            err(start + inner.line().saturating_sub(1), format!("cases[{i}]{field}: {inner}"))
        })?;
        let find = |name: &str, field: &str| {
            let file = if name.contains('/') || name.ends_with(".pem") {
                dir.join(name)
            } else {
                certificates.join(format!("{name}.pem"))
            };
            if file.is_file() {
                Ok(file)
            } else {
                Err(err(
                    start,
                    format!("cases[{i}].{field}: no certificate {name:?} ({} does not exist)", file.display()),
                ))
            }
        };
        let cert = case.cert.as_deref().map(|c| find(c, "cert")).transpose()?;
        let token = match &case.token {
            None => None,
            Some(t) => {
                let mut payload = t.claims.clone();
                if let Some(who) = &t.bound_to {
                    let file = find(who, "token.bound_to")?;
                    let thumbprint = thumbprint_of_file(&file).map_err(|m| err(start, format!("cases[{i}].token.bound_to: {m}")))?;
                    payload.insert("cnf".into(), serde_json::json!({ "x5t#S256": thumbprint }));
                }
                Some(serde_json::Value::Object(payload))
            }
        };
        cases.push((case, start, cert, token));
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        policy,
        cases,
    })
}

/// One case's result: its name and line, and each way it differed.
#[derive(Debug)]
pub struct Ran {
    /// The case's name.
    pub name: String,
    /// Its line in the file.
    pub line: usize,
    /// What differed: empty if it passed.
    pub failures: Vec<String>,
}

/// Runs every case of a loaded file through a fresh plugin of `module`.
pub fn run(module: &WasmModule, loaded: &Loaded) -> anyhow::Result<Vec<Ran>> {
    let policy = std::fs::read_to_string(&loaded.policy).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", loaded.policy.display()))?;
    let token_key = token_metadata_key(&policy);
    let mut plugin = module
        .start(PluginSettings::new(policy).name("certgate"))
        .map_err(|e| anyhow::anyhow!("{}: {e}", loaded.policy.display()))?;
    let mut out = Vec::new();
    for (case, line, cert, token) in &loaded.cases {
        let headers: Vec<(String, String)> = case.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let request = Request {
            cert: cert.as_deref(),
            verified: case.verified,
            method: &case.method,
            path: &case.path,
            host: &case.host,
            headers: &headers,
            token: token_key.as_deref().zip(token.as_ref()),
        };
        let Sent { exchange, published, .. } = send(&mut plugin, &request)?;
        let mut failures = Vec::new();
        if token.is_some() && token_key.is_none() {
            failures.push("the case has a token, but the policy has no `bound_tokens` saying where tokens are read".into());
        }
        let Some(published) = published else {
            failures.push("the filter published no decision: is this certgate's policy and module?".into());
            out.push(Ran {
                name: case.name.clone(),
                line: *line,
                failures,
            });
            continue;
        };
        let e = &case.expect;
        let mut differ = |what: &str, want: String, got: String| {
            if want != got {
                failures.push(format!("{what}: expected {want}, got {got}"));
            }
        };
        differ("decision", e.decision.as_str().into(), published.decision.as_str().into());
        let status = exchange.local_response.as_ref().map_or(200, |r| r.status);
        if let Some(want) = e.status {
            differ("status", want.to_string(), status.to_string());
        }
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        if let Some(want) = &e.reason {
            differ("reason", text(want), text(&published.reason));
        }
        if let Some(want) = &e.rule {
            differ("rule", text(want), text(&published.rule));
        }
        if exchange.forwarded() {
            for (name, want) in &e.headers {
                let got = exchange.header_values(name);
                let want_list: Vec<String> = want.iter().cloned().collect();
                if got != want_list {
                    let show = |v: &[String]| if v.is_empty() { "absent".to_owned() } else { v.join(" | ") };
                    failures.push(format!("header {name}: expected {}, got {}", show(&want_list), show(&got)));
                }
            }
        } else if !e.headers.is_empty() {
            failures.push("headers: expected the request to reach the application, but it was answered locally".into());
        }
        out.push(Ran {
            name: case.name.clone(),
            line: *line,
            failures,
        });
    }
    Ok(out)
}

/// The run as a test runner prints it.
pub fn report(loaded: &Loaded, results: &[Ran]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} (policy {}, {} cases)",
        loaded.path.display(),
        loaded.policy.display(),
        results.len()
    );
    for r in results {
        if r.failures.is_empty() {
            let _ = writeln!(s, "ok    {}", r.name);
        } else {
            let _ = writeln!(s, "FAIL  {} ({}:{})", r.name, loaded.path.display(), r.line);
            for f in &r.failures {
                let _ = writeln!(s, "        {f}");
            }
        }
    }
    let failed = results.iter().filter(|r| !r.failures.is_empty()).count();
    let _ = writeln!(s, "{} cases: {} passed, {failed} failed", results.len(), results.len() - failed);
    s
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The runs as JUnit XML, one test suite per cases file, for CI.
pub fn junit(runs: &[(Loaded, Vec<Ran>)]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for (loaded, results) in runs {
        let failed = results.iter().filter(|r| !r.failures.is_empty()).count();
        let suite = xml(&loaded.path.display().to_string());
        let _ = writeln!(
            s,
            "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failed}\">",
            results.len()
        );
        for r in results {
            let _ = write!(s, "    <testcase classname=\"{suite}\" name=\"{}\"", xml(&r.name));
            if r.failures.is_empty() {
                s.push_str("/>\n");
            } else {
                let _ = writeln!(
                    s,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    xml(&r.failures.join("; ")),
                    xml(&r.failures.join("\n"))
                );
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

/// The cases file's JSON Schema (`certgate schema --cases`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(CasesFile)).unwrap_or_default()
}
