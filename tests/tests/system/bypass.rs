//! No way around a rule: real applications (Flask under gunicorn, Express 4,
//! a servlet in embedded Tomcat 10, nginx; `tests/bypass/`) behind certgate,
//! in Envoy with the committed configurations and in `certgate serve` with the
//! same policies. Every generated spelling of a protected path (case, trailing
//! slash, `;` parameters, percent-encodings, whitespace, trailing dots,
//! doubled slashes, dot segments, backslashes) and every override header is
//! sent by a client that must not reach the handler: alice (not an operator)
//! must never reach the admin handler, and a client without a certificate
//! neither the admin nor the ordinary one. The matrix is written to
//! `target/bypass-matrix.md` (SECURITY.md shows it).

use crate::common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use certgate_edge as edge;
use certgate_edge::tls::ClientCertMode;
use common::envoy::{committed_policy, config, free_port, Build, Envoy, MODULE_VERSIONS};
use common::{client_config, raw_request, repo, settings, wait_for_port, Gunicorn, KillOnDrop, TempDir};

/// A backend process, stopped on drop.
struct Backend {
    name: &'static str,
    addr: SocketAddr,
    _child: Option<KillOnDrop>,
    _gunicorn: Option<Gunicorn>,
    _dir: TempDir,
}

fn spawn(name: &'static str, command: &mut Command, addr: SocketAddr, dir: TempDir) -> Backend {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e} (./dev test installs it)"));
    let child = KillOnDrop(child);
    wait_for_port(addr, name, Duration::from_secs(30));
    Backend {
        name,
        addr,
        _child: Some(child),
        _gunicorn: None,
        _dir: dir,
    }
}

fn backends() -> Vec<Backend> {
    let bypass = repo().join("tests/bypass");
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let flask = Gunicorn::start_in(&bypass, "flask_app:app");
    let flask = Backend {
        name: "flask",
        addr: flask.addr,
        _child: None,
        _gunicorn: Some(flask),
        _dir: TempDir::new("flask").unwrap(),
    };

    let port = free_port();
    let express = spawn(
        "express",
        Command::new("node").arg(bypass.join("express/app.js")).arg(port.to_string()),
        local(port),
        TempDir::new("express").unwrap(),
    );

    let port = free_port();
    let dir = TempDir::new("tomcat").unwrap();
    let classpath = [repo().join("target/bypass-tomcat").display().to_string(), TOMCAT_JARS.join(":")].join(":");
    let tomcat = spawn(
        "tomcat",
        Command::new("java")
            .args(["-cp", &classpath, "BypassApp", &port.to_string()])
            .arg(&dir.0),
        local(port),
        dir,
    );

    let port = free_port();
    let dir = TempDir::new("nginx").unwrap();
    let conf = std::fs::read_to_string(bypass.join("nginx.conf"))
        .unwrap()
        .replace("@PORT@", &port.to_string())
        .replace("@PREFIX@", &dir.0.display().to_string());
    std::fs::write(dir.0.join("nginx.conf"), conf).unwrap();
    let nginx = spawn(
        "nginx",
        Command::new("nginx").arg("-p").arg(&dir.0).arg("-c").arg(dir.0.join("nginx.conf")),
        local(port),
        dir,
    );
    vec![flask, express, tomcat, nginx]
}

/// Debian's embedded Tomcat and what it loads (`./dev test` installs them).
const TOMCAT_JARS: [&str; 2] = [
    "/usr/share/java/tomcat10-embed-core.jar",
    "/usr/share/java/jakarta-annotation-api.jar",
];

/// One request of the matrix: a spelling of a path, or an override header.
#[derive(Debug, Clone)]
struct Probe {
    group: &'static str,
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, &'static str)>,
}

fn probe(group: &'static str, target: impl Into<String>) -> Probe {
    Probe {
        group,
        method: "GET",
        target: target.into(),
        headers: Vec::new(),
    }
}

/// Spellings of `/<word>/x` (and of `/<word>` itself) that some application
/// might read as the protected path.
fn spellings(word: &str, exact: bool) -> Vec<Probe> {
    let up = word.to_ascii_uppercase();
    let mut first_up = word.to_owned();
    first_up[..1].make_ascii_uppercase();
    let tail = if exact { "" } else { "/x" };
    let mut p = vec![
        probe("as written", format!("/{word}{tail}")),
        probe("case", format!("/{first_up}{tail}")),
        probe("case", format!("/{up}{tail}")),
        probe("case", format!("/{up}")),
        probe("case", format!("/{first_up}/")),
        probe("trailing slash", format!("/{word}")),
        probe("trailing slash", format!("/{word}/")),
        probe("trailing slash", format!("/{word}//")),
        probe("parameters", format!("/{word};x/x")),
        probe("parameters", format!("/{word};/x")),
        probe("parameters", format!("/{word};jsessionid=1{tail}")),
        probe("parameters", format!("/{word};x")),
        probe("parameters", format!("/;x/{word}{tail}")),
        probe("parameters", format!("/{up};x/")),
        probe("parameters", format!("/{word}%3bx/x")),
        probe("whitespace", format!("/{word}%20/x")),
        probe("whitespace", format!("/{word}%20")),
        probe("whitespace", format!("/%20{word}/x")),
        probe("whitespace", format!("/{word}%09/x")),
        probe("whitespace", format!("/{word}%0b/x")),
        probe("whitespace", format!("/{word}%a0/x")),
        probe("whitespace", format!("/{word}%c2%a0/x")),
        probe("whitespace", format!("/{word}+/x")),
        probe("trailing dots", format!("/{word}./x")),
        probe("trailing dots", format!("/{word}..")),
        probe("trailing dots", format!("/{word}.")),
        probe("trailing dots", format!("/{word}%2e/x")),
        probe("slashes", format!("//{word}{tail}")),
        probe("slashes", format!("///{word}/x")),
        probe("slashes", format!("/{word}//x")),
        probe("slashes", format!("/%2f{word}/x")),
        probe("slashes", format!("/{word}%2fx")),
        probe("backslashes", format!("/{word}\\x")),
        probe("backslashes", format!("/%5c{word}/x")),
        probe("backslashes", format!("/{word}%5cx")),
        probe("dot segments", format!("/app/../{word}{tail}")),
        probe("dot segments", format!("/./{word}{tail}")),
        probe("dot segments", format!("/app/%2e%2e/{word}{tail}")),
        probe("dot segments", format!("/app/..%2f{word}{tail}")),
        probe("dot segments", format!("/{word}/./x")),
        probe("dot segments", format!("/public/../{word}{tail}")),
        probe("absolute form", format!("https://localhost/{word}{tail}")),
        probe("NUL", format!("/{word}%00/x")),
    ];
    // every character of the word, percent-encoded in upper and lower hex
    for (i, c) in word.char_indices() {
        for hex in [format!("%{:02X}", c as u32), format!("%{:02x}", c as u32)] {
            p.push(probe("percent-encoding", format!("/{}{hex}{}{tail}", &word[..i], &word[i + 1..])));
        }
    }
    let all: String = word.chars().map(|c| format!("%{:02x}", c as u32)).collect();
    p.push(probe("percent-encoding", format!("/{all}{tail}")));
    p.push(probe("percent-encoding", format!("/{}{tail}", all.to_ascii_uppercase())));
    p
}

/// Override headers on an ordinary request, in a few spellings each.
fn overrides() -> Vec<Probe> {
    let mut p = Vec::new();
    for (name, value) in [
        ("X-Original-URL", "/admin/x"),
        ("X-Rewrite-URL", "/admin/x"),
        ("x_original_url", "/admin/x"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-HTTP-Method", "DELETE"),
        ("X-Method-Override", "DELETE"),
        ("x-http-method-override", "PUT"),
        ("X_HTTP_METHOD_OVERRIDE", "DELETE"),
    ] {
        p.push(Probe {
            group: "override header",
            method: "POST",
            target: "/app/x".into(),
            headers: vec![(name, value)],
        });
    }
    p
}

/// A matrix cell: the outcome, with what the application made of an
/// override header (the method it ran, the override headers it got).
fn cell(p: &Probe, reply: &Result<(u16, String), String>) -> String {
    let (mut cell, seen) = outcome(reply);
    if let Some(seen) = seen {
        let mut parts = seen.split('|').skip(1);
        let (method, received) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if method != p.method {
            cell.push_str(&format!(" as {method}"));
        }
        if !received.is_empty() {
            cell.push_str(" (override header received)");
        }
    }
    cell
}

/// What came of one probe at one backend through one front.
fn outcome(reply: &Result<(u16, String), String>) -> (String, Option<String>) {
    match reply {
        Err(e) if e.starts_with("handshake") => ("handshake refused".into(), None),
        Err(e) => (format!("error: {e}"), None),
        Ok((status, body)) => {
            let field = |name: &str| {
                let key = format!("\"{name}\":\"");
                body.find(&key)
                    .map(|i| body[i + key.len()..].split('"').next().unwrap_or("").to_owned())
            };
            match field("handler") {
                Some(h) => {
                    let overrides = field("overrides").unwrap_or_default();
                    let method = field("method").unwrap_or_default();
                    (format!("{status} {h}"), Some(format!("{h}|{method}|{overrides}")))
                }
                None => {
                    let reason = field("reason").unwrap_or_else(|| "-".into());
                    (format!("{status} {reason}"), None)
                }
            }
        }
    }
}

/// A probe's row in the matrix.
fn label(p: &Probe) -> String {
    if p.headers.is_empty() {
        p.target.clone()
    } else {
        format!("{} {} + {}: {}", p.method, p.target, p.headers[0].0, p.headers[0].1)
    }
}

/// Checks one probe's reply from one front (`column`): a forbidden handler
/// reached, or an override header or method that got through, is a bypass.
/// The matrix cell.
fn judge(
    who: &str,
    forbidden: &[&str],
    column: &str,
    p: &Probe,
    reply: &Result<(u16, String), String>,
    bypasses: &mut Vec<String>,
) -> String {
    let (_, seen) = outcome(reply);
    if let Some(seen) = &seen {
        let mut parts = seen.split('|');
        let (handler, method, received) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        if forbidden.contains(&handler) {
            bypasses.push(format!(
                "{who}: {} {} {:?} reached {handler} on {column}",
                p.method, p.target, p.headers
            ));
        }
        if !received.is_empty() || method != p.method {
            bypasses.push(format!(
                "{who}: {:?} reached {column} (method {method}, overrides {received})",
                p.headers
            ));
        }
    }
    cell(p, reply)
}

/// A client, the committed configuration it goes through, and the handlers
/// it must never reach.
struct Case {
    who: &'static str,
    cert: Option<&'static str>,
    file: &'static str,
    mode: ClientCertMode,
    forbidden: &'static [&'static str],
}

/// alice, who may not reach the admin handler, and a client without a
/// certificate, who may reach neither the admin nor the ordinary one.
fn cases() -> [Case; 2] {
    [
        Case {
            who: "alice",
            cert: Some("alice"),
            file: "required-mtls.yaml",
            mode: ClientCertMode::Required,
            forbidden: &["admin"],
        },
        Case {
            who: "no certificate",
            cert: None,
            file: "optional-mtls.yaml",
            mode: ClientCertMode::Optional,
            forbidden: &["admin", "app"],
        },
    ]
}

/// Every spelling of the admin path, and every override header.
fn protected_probes() -> Vec<Probe> {
    let mut probes = spellings("admin", false);
    probes.extend(overrides());
    probes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_reaches_a_protected_handler_on_any_backend() {
    let backends = tokio::task::block_in_place(backends);
    let cases = cases();
    let probes = protected_probes();
    let anonymous_probes: Vec<Probe> = spellings("healthz", true)
        .into_iter()
        .chain(spellings("public", false))
        .chain(spellings("app", false))
        .collect();

    let mut bypasses = Vec::new();
    let mut matrix: BTreeMap<(String, String, String), BTreeMap<String, String>> = BTreeMap::new();
    let mut columns = Vec::new();
    for Case {
        who,
        cert,
        file,
        mode,
        forbidden,
    } in cases
    {
        let policy = committed_policy(file);
        let tls: Arc<rustls::ClientConfig> = client_config(cert, &[b"http/1.1"]);
        let probes: Vec<Probe> = if cert.is_none() {
            probes.iter().cloned().chain(anonymous_probes.clone()).collect()
        } else {
            probes.clone()
        };
        for b in &backends {
            let envoy = Envoy::start(&config(file, b.addr, None)).unwrap();
            let dir = TempDir::new("bypass-policy").unwrap();
            let policy_file = dir.0.join("policy.json");
            std::fs::write(&policy_file, &policy).unwrap();
            let serve = edge::start(settings(&policy_file, mode, &format!("http://{}", b.addr)))
                .await
                .unwrap();
            for (front, addr) in [("Envoy", envoy.listener), ("serve", serve.addr)] {
                let column = format!("{} / {front}", b.name);
                if !columns.contains(&column) {
                    columns.push(column.clone());
                }
                for p in &probes {
                    let reply = raw_request(addr, Some(tls.clone()), p.method, &p.target, &p.headers).await;
                    let cell = judge(who, forbidden, &column, p, &reply, &mut bypasses);
                    matrix
                        .entry((who.to_owned(), p.group.to_owned(), label(p)))
                        .or_default()
                        .insert(column.clone(), cell);
                }
            }
            serve.shutdown().await;
            // what the backend alone makes of each probe, for the record
            let column = format!("{} alone", b.name);
            if !columns.contains(&column) {
                columns.push(column.clone());
            }
            for p in &probes {
                let cell = cell(p, &raw_request(b.addr, None, p.method, &p.target, &p.headers).await);
                matrix
                    .entry((who.to_owned(), p.group.to_owned(), label(p)))
                    .or_default()
                    .insert(column.clone(), cell);
            }
        }
    }
    // The protection is not a wall: who may reach a handler still does.
    for b in &backends {
        let envoy = Envoy::start(&config("optional-mtls.yaml", b.addr, None)).unwrap();
        for (who, cert, path, handler) in [
            ("ops-anna", Some("ops-anna"), "/admin/x", "admin"),
            ("alice", Some("alice"), "/app/x", "app"),
            ("no certificate", None, "/healthz", "health"),
            ("no certificate", None, "/public/x", "public"),
            ("no certificate", None, "/public", "public"),
        ] {
            let reply = raw_request(envoy.listener, Some(client_config(cert, &[b"http/1.1"])), "GET", path, &[]).await;
            let (cell, _) = outcome(&reply);
            if cell != format!("200 {handler}") {
                bypasses.push(format!("{who}: GET {path} on {} / Envoy must reach {handler}, got {cell}", b.name));
            }
        }
    }
    write_matrix(&matrix, &columns);
    assert!(
        bypasses.is_empty(),
        "{} failures (matrix in target/bypass-matrix.md):\n{}",
        bypasses.len(),
        bypasses.join("\n")
    );
}

/// The same probes through the dynamic module and the Wasm build on each
/// Envoy that runs the module: no bypass through either, and the two answer
/// every probe alike (the cell: status, and the reason or handler).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_reaches_a_protected_handler_through_the_module() {
    let backends = tokio::task::block_in_place(backends);
    let cases = cases();
    let probes = protected_probes();
    let mut failures = Vec::new();
    let mut sent = 0;
    for version in MODULE_VERSIONS {
        for Case {
            who,
            cert,
            file,
            forbidden,
            ..
        } in &cases
        {
            let tls: Arc<rustls::ClientConfig> = client_config(*cert, &[b"http/1.1"]);
            for b in &backends {
                let yaml = config(file, b.addr, None);
                let envoys: Vec<Envoy> = Build::BOTH
                    .iter()
                    .map(|build| Envoy::start_version(version, &build.config(&yaml)).unwrap())
                    .collect();
                for p in &probes {
                    let mut cells = Vec::new();
                    for (build, envoy) in Build::BOTH.iter().zip(&envoys) {
                        let column = format!("{} / Envoy {version} {}", b.name, build.name());
                        let reply = raw_request(envoy.listener, Some(tls.clone()), p.method, &p.target, &p.headers).await;
                        cells.push(judge(who, forbidden, &column, p, &reply, &mut failures));
                        sent += 1;
                    }
                    if cells[0] != cells[1] {
                        failures.push(format!(
                            "{who}: {} on {} / Envoy {version}: wasm {}, module {}",
                            label(p),
                            b.name,
                            cells[0],
                            cells[1]
                        ));
                    }
                }
            }
        }
    }
    eprintln!("{sent} probes");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

fn write_matrix(matrix: &BTreeMap<(String, String, String), BTreeMap<String, String>>, columns: &[String]) {
    let mut out = format!(
        "| client | kind | request | {} |\n|---|---|---|{}\n",
        columns.join(" | "),
        "---|".repeat(columns.len())
    );
    for ((who, group, label), cells) in matrix {
        let row: Vec<&str> = columns.iter().map(|c| cells.get(c).map_or("", String::as_str)).collect();
        out.push_str(&format!(
            "| {who} | {group} | `{}` | {} |\n",
            label.replace('|', "\\|"),
            row.join(" | ")
        ));
    }
    let path = repo().join("target/bypass-matrix.md");
    std::fs::write(&path, out).unwrap();
    eprintln!("bypass matrix: {}", path.display());
}
