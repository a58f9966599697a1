//! The scenario table, `fixtures/scenarios.json`: requests, the policy each
//! runs under, and what must come of it. Every suite (the filter's own
//! tests, the harness, the edge, Envoy) observes its outcome as an
//! [`Observed`] and checks it here, so they all hold the same expectations.

use std::path::{Path, PathBuf};

use certgate_decision::Published;
use certgate_wire::Pairs;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The whole table.
#[derive(Debug, Clone, Deserialize)]
pub struct ScenarioTable {
    /// Policy name → file, relative to the table.
    pub policies: Map<String, Value>,
    /// The scenarios, in file order.
    pub scenarios: Vec<Scenario>,
    #[serde(skip)]
    dir: PathBuf,
}

/// One request and its expected outcome.
#[derive(Debug, Clone, Deserialize)]
pub struct Scenario {
    /// What the scenario shows.
    pub name: String,
    /// The policy's file name under `fixtures/policies`.
    pub policy: String,
    /// Merged into the policy's top level.
    #[serde(default)]
    pub patch: Option<Value>,
    /// A client in `fixtures/pki` (its `<name>.pem`); `None`: no certificate.
    pub cert: Option<String>,
    /// Whether the proxy verified the certificate (false: a look-alike CA).
    #[serde(default = "yes")]
    pub verified: bool,
    /// What a real TLS listener with the fixture CAs and CRL does: `ok` or `rejected`.
    #[serde(default = "ok")]
    pub handshake: String,
    #[serde(default = "get")]
    /// The request method.
    pub method: String,
    /// The request path.
    pub path: String,
    #[serde(default = "localhost")]
    /// The request's `:authority`.
    pub authority: String,
    /// Extra request headers, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// What must come of it.
    pub expect: Expectation,
}

fn yes() -> bool {
    true
}
fn ok() -> String {
    "ok".into()
}
fn get() -> String {
    "GET".into()
}
fn localhost() -> String {
    "localhost:8443".into()
}

#[derive(Debug, Clone, Deserialize)]
/// What a scenario must produce.
pub struct Expectation {
    /// 200 for a request that reaches the application.
    pub status: u16,
    /// The deny reason (also for audit mode, where the request goes through).
    pub reason: Option<String>,
    /// The rule that must decide; `null`: none.
    pub rule: Option<String>,
    /// Header name → the value the application sees, or null for absent.
    #[serde(default)]
    pub headers: Map<String, Value>,
}

/// What a suite saw of one request.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The status the client gets.
    pub status: u16,
    /// The deny reason, if denied.
    pub reason: Option<String>,
    /// `None` when the suite cannot see the rule (an allow without a rule header).
    pub rule: Option<Option<String>>,
    /// The request headers the application received (all of them, in order).
    pub upstream_headers: Vec<(String, String)>,
    /// The body of a local reply.
    pub body: Option<String>,
}

impl Observed {
    /// An outcome from the decision the filter published (its filter state),
    /// under any header preset: what the edge and `certgate check` read.
    pub fn published(status: u16, published: &Published, body: Option<String>, upstream_headers: Vec<(String, String)>) -> Observed {
        let reason = published.reason.clone();
        Observed {
            status,
            reason,
            rule: Some(published.rule.clone()),
            upstream_headers,
            body,
        }
    }

    /// Reads an outcome the way a black-box client does (a client of Envoy
    /// cannot see filter state): the local reply's
    /// JSON body for a deny; for a forwarded request, the `x-certgate-audit`
    /// and `x-certgate-rule` headers the application got (when set).
    pub fn black_box(status: u16, body: Option<String>, upstream_headers: Vec<(String, String)>) -> Observed {
        let header = |name: &str| {
            upstream_headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let (reason, rule) = if status == 200 {
            let audit = header("x-certgate-audit");
            let field = |key: &str| {
                audit
                    .as_deref()
                    .and_then(|a| a.split("; ").find_map(|part| part.strip_prefix(key)).map(str::to_owned))
            };
            let rule = match (field("rule="), header("x-certgate-rule")) {
                (Some(r), _) => Some((r != "-").then_some(r)),
                (None, Some(r)) => Some(Some(r)),
                (None, None) => None,
            };
            (field("reason="), rule)
        } else {
            let json: Value = body.as_deref().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
            (
                json.get("reason").and_then(Value::as_str).map(str::to_owned),
                Some(json.get("rule").and_then(Value::as_str).map(str::to_owned)),
            )
        };
        Observed {
            status,
            reason,
            rule,
            upstream_headers,
            body,
        }
    }
}

/// Why a table could not be read.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's message says what it is
pub enum TableError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Json { path: String, source: serde_json::Error },
    #[error("scenario `{scenario}` names the unknown policy `{policy}`")]
    UnknownPolicy { scenario: String, policy: String },
}

fn read_json(path: &Path) -> Result<Value, TableError> {
    let text = std::fs::read_to_string(path).map_err(|source| TableError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| TableError::Json {
        path: path.display().to_string(),
        source,
    })
}

impl ScenarioTable {
    /// Reads and checks the table at `path`.
    pub fn load(path: &Path) -> Result<ScenarioTable, TableError> {
        let value = read_json(path)?;
        let mut table: ScenarioTable = serde_json::from_value(value).map_err(|source| TableError::Json {
            path: path.display().to_string(),
            source,
        })?;
        table.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(table)
    }

    /// The policy JSON a scenario runs under, patched.
    pub fn policy_for(&self, s: &Scenario) -> Result<String, TableError> {
        let unknown = || TableError::UnknownPolicy {
            scenario: s.name.clone(),
            policy: s.policy.clone(),
        };
        let file = self.policies.get(&s.policy).and_then(Value::as_str).ok_or_else(unknown)?;
        let mut policy = read_json(&self.dir.join(file))?;
        if let (Some(obj), Some(Value::Object(patch))) = (policy.as_object_mut(), &s.patch) {
            for (k, v) in patch {
                obj.insert(k.clone(), v.clone());
            }
        }
        Ok(policy.to_string())
    }

    /// The client certificate file of a scenario.
    pub fn cert_path(&self, name: &str) -> PathBuf {
        self.dir.join("pki").join(format!("{name}.pem"))
    }
}

impl Scenario {
    /// The request headers: pseudo-headers first, then the extra ones.
    pub fn request_headers(&self) -> Pairs {
        let mut h = certgate_wire::header_map::request(&self.method, &self.path, &self.authority);
        h.extend(self.headers.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())));
        h
    }

    /// Compares what was seen with what is expected; the error says what differs.
    pub fn check(&self, seen: &Observed) -> Result<(), String> {
        let e = &self.expect;
        let mut wrong = Vec::new();
        if seen.status != e.status {
            wrong.push(format!("status {} (want {})", seen.status, e.status));
        }
        if seen.reason != e.reason {
            wrong.push(format!("reason {:?} (want {:?})", seen.reason, e.reason));
        }
        if let Some(rule) = &seen.rule {
            if *rule != e.rule {
                wrong.push(format!("rule {rule:?} (want {:?})", e.rule));
            }
        }
        if let Some(body) = &seen.body {
            if body.contains("BEGIN CERTIFICATE") {
                wrong.push("the reply carries the certificate".into());
            }
        }
        for (name, want) in &e.headers {
            let values: Vec<&str> = seen
                .upstream_headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect();
            match want.as_str() {
                None if !values.is_empty() => wrong.push(format!("header {name} = {values:?} (want absent)")),
                Some(w) if values != [w] => wrong.push(format!("header {name} = {values:?} (want {w:?})")),
                _ => {}
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }
}
