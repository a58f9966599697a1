//! The HTML the server writes itself: the approvals page and "who am I".
//! Plain HTML with one style sheet and no script; every value from a CSR,
//! a certificate or a request is escaped.

use std::fmt::Write as _;

use certgate_pki::enroll::queue::Queued;

use crate::authority::approvers::Approver;

pub use certgate_core::reply::escape_html as escape;

/// A whole page: the header with its three places, then `main`.
pub fn layout(title: &str, main: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · certgate</title>
<link rel="stylesheet" href="/register/style.css">
</head>
<body>
<header class="top"><a class="brand" href="/register/">certgate</a>
<nav aria-label="Pages"><a href="/register/">Get a certificate</a> <a href="/approvals/">Approvals</a> <a href="/whoami">Who am I</a></nav></header>
<main>
{main}
</main>
</body>
</html>
"#,
        title = escape(title)
    )
}

/// A request as the approvals page shows it.
#[derive(Debug)]
pub struct Pending {
    /// As queued.
    pub request: Queued,
    /// Its subject, RFC 2253 (the queue keeps the CSR's own text); empty: the queue's.
    pub subject: String,
    /// `ECDSA P-256`, ...; or why the stored CSR is unreadable.
    pub key_type: String,
    /// `3 minutes`, ...
    pub waiting: String,
    /// Whether the certificate it asks for would pass the approvers' policy:
    /// the page does not approve it.
    pub makes_approver: bool,
}

/// Which part of the queue a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// This page, from 1.
    pub page: usize,
    /// How many pages there are.
    pub pages: usize,
    /// How many requests wait in all.
    pub total: usize,
}

/// What the approvals page says after a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Nothing was just decided.
    Nothing,
    /// This request was approved.
    Approved(String),
    /// This request was rejected.
    Rejected(String),
}

/// The approvals page: each pending request with approve and reject forms
/// carrying the approver's CSRF token.
pub fn approvals(approver: &Approver, csrf: &str, pending: &[Pending], done: &Done, paging: &Paging) -> String {
    let mut main = String::from("<h1>Requests waiting for approval</h1>\n");
    let _ = writeln!(
        main,
        r#"<p class="who">You approve as <strong id="approver">{}</strong> (admitted by the rule <code>{}</code>).</p>"#,
        escape(&approver.shown),
        escape(&approver.rule)
    );
    match done {
        Done::Nothing => {}
        Done::Approved(id) => {
            let _ = writeln!(
                main,
                r#"<p class="notice" role="status" id="done">Request <code>{}</code> was approved: the person's page receives the certificate at its next check.</p>"#,
                escape(id)
            );
        }
        Done::Rejected(id) => {
            let _ = writeln!(
                main,
                r#"<p class="notice" role="status" id="done">Request <code>{}</code> was rejected: the person's page shows your reason.</p>"#,
                escape(id)
            );
        }
    }
    if pending.is_empty() && paging.total == 0 {
        main.push_str("<p id=\"empty\">No request is waiting.</p>\n");
    } else {
        let _ = writeln!(
            main,
            r#"<p id="count">{} waiting; page {} of {}.</p>"#,
            paging.total, paging.page, paging.pages
        );
    }
    for p in pending {
        let q = &p.request;
        let id = escape(&q.id);
        let names = if q.sans.is_empty() {
            "none".to_owned()
        } else {
            q.sans.iter().map(|s| escape(s)).collect::<Vec<_>>().join("<br>")
        };
        let hidden = format!(
            r#"<input type="hidden" name="csrf" value="{}"><input type="hidden" name="ca" value="{}"><input type="hidden" name="id" value="{id}">"#,
            escape(csrf),
            escape(&q.ca)
        );
        let approve = if p.makes_approver {
            r#"<p class="problem makes-approver">The approvers' policy admits the certificate this asks for: approving it would make a new approver, so this page does not. Reject it, or, if that is meant, approve it with <code>certgate pki requests approve</code>.</p>"#.to_owned()
        } else {
            format!(
                r#"<form method="post" action="/approvals/approve">{hidden}<button type="submit" class="approve">Approve</button></form>"#
            )
        };
        let _ = write!(
            main,
            r#"<section class="request" id="request-{id}" aria-labelledby="subject-{id}">
<h2 id="subject-{id}">{subject}</h2>
<dl>
<dt>Names</dt><dd>{names}</dd>
<dt>Key</dt><dd>{key}</dd>
<dt>Asked from</dt><dd>{requester}</dd>
<dt>Says they are</dt><dd class="says">{says}</dd>
<dt>Waiting</dt><dd><time datetime="{received}">{waiting}</time></dd>
<dt>CA</dt><dd>{ca}</dd>
<dt>Request</dt><dd><code>{id}</code></dd>
</dl>
<div class="actions">
{approve}
<form method="post" action="/approvals/reject" class="reject">{hidden}<label for="reason-{id}">Reason, shown to the person</label>
<input id="reason-{id}" name="reason" required maxlength="300" autocomplete="off"><button type="submit" class="danger">Reject</button></form>
</div>
</section>
"#,
            subject = escape(if p.subject.is_empty() { &q.subject } else { &p.subject }),
            key = escape(&p.key_type),
            requester = escape(&q.requester),
            says = q.says.as_deref().map_or_else(|| "(nothing said)".to_owned(), escape),
            received = escape(&q.received),
            waiting = escape(&p.waiting),
            ca = escape(&q.ca),
        );
    }
    if paging.pages > 1 {
        main.push_str("<nav class=\"pages\" aria-label=\"Pages of requests\">");
        if paging.page > 1 {
            let _ = write!(main, r#"<a rel="prev" href="/approvals/?page={}">Newer</a> "#, paging.page - 1);
        }
        if paging.page < paging.pages {
            let _ = write!(main, r#"<a rel="next" href="/approvals/?page={}">Older</a>"#, paging.page + 1);
        }
        main.push_str("</nav>\n");
    }
    layout("Approvals", &main)
}

/// What a certificate says, for "who am I".
#[derive(Debug, Default)]
pub struct Seen {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Upper-case hex.
    pub serial: String,
    /// RFC 2822-ish, as x509-parser writes it.
    pub not_before: String,
    /// Likewise.
    pub not_after: String,
    /// `DNS:…`, `email:…`, ...
    pub sans: Vec<String>,
    /// Lower-case hex.
    pub sha256: String,
}

/// "Who am I": what this server sees of the client's certificate.
pub fn whoami(seen: Option<&Seen>, approver: Option<Result<&Approver, &str>>) -> String {
    let mut main = String::from("<h1>Who am I</h1>\n");
    match seen {
        None => main.push_str(
            r#"<p id="none">Your browser sent no client certificate to this server. If you have just installed one, restart the browser, or choose it when the browser asks.</p>
"#,
        ),
        Some(s) => {
            let names = if s.sans.is_empty() {
                "none".to_owned()
            } else {
                s.sans.iter().map(|n| escape(n)).collect::<Vec<_>>().join("<br>")
            };
            let _ = write!(
                main,
                r#"<p>This server sees your certificate as:</p>
<dl id="identity">
<dt>Subject</dt><dd id="subject">{}</dd>
<dt>Issuer</dt><dd id="issuer">{}</dd>
<dt>Serial</dt><dd id="serial">{}</dd>
<dt>Valid from</dt><dd>{}</dd>
<dt>Valid until</dt><dd id="not-after">{}</dd>
<dt>Names</dt><dd>{names}</dd>
<dt>SHA-256</dt><dd><code class="wrap">{}</code></dd>
</dl>
"#,
                escape(&s.subject),
                escape(&s.issuer),
                escape(&s.serial),
                escape(&s.not_before),
                escape(&s.not_after),
                escape(&s.sha256),
            );
        }
    }
    match approver {
        None => {}
        Some(Ok(a)) => {
            let _ = writeln!(
                main,
                r#"<p id="approver">You may approve requests (rule <code>{}</code>): <a href="/approvals/">Approvals</a>.</p>"#,
                escape(&a.rule)
            );
        }
        Some(Err(why)) => {
            let _ = writeln!(main, r#"<p id="approver">You may not approve requests: {}</p>"#, escape(why));
        }
    }
    layout("Who am I", &main)
}

/// A page that says one thing (403, 404, ...).
pub fn message(title: &str, sentence: &str) -> String {
    layout(
        title,
        &format!("<h1>{}</h1>\n<p id=\"message\">{}</p>\n", escape(title), escape(sentence)),
    )
}
