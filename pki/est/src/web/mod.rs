//! The pages for people, on with `certgate pki serve --register DIR`:
//! - `/register/`: the browser makes the key (WebCrypto) and the CSR, asks
//!   over EST like any client (a token, or the approval queue), and builds
//!   the PKCS#12 itself: the private key never leaves it;
//! - `/approvals/`: pending requests, approved or rejected by a POST with a
//!   CSRF token, for clients the approvers' policy admits (`approvers`);
//! - `/whoami`: what this server sees of the client's certificate.
//!
//! The page's files, its JavaScript libraries' bundle among them
//! (`pki/est/web/dist/vendor.js`, committed), are built into the command:
//! an installed `certgate` serves the page with nothing beside it. While
//! working on the page, `--web-dir` serves them from a directory instead.

pub mod pages;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, HOST, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::authority::approvers::{Approver, Approvers};
use crate::authority::{Answer, Authority, Verdict, FAILED};
use certgate_pki::enroll::queue::Queued;
use pages::{Done, Pending, Seen};

/// The page's files, built in: they and the server speak the same protocol.
/// (name under `/register/`, its type, its bytes)
const FILES: &[(&str, &str, &[u8])] = &[
    ("", "text/html; charset=utf-8", include_bytes!("../../web/register.html")),
    (
        "register.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/register.js"),
    ),
    ("certs.js", "text/javascript; charset=utf-8", include_bytes!("../../web/certs.js")),
    ("pkcs12.js", "text/javascript; charset=utf-8", include_bytes!("../../web/pkcs12.js")),
    (
        "vendor.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/dist/vendor.js"),
    ),
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../web/style.css")),
];

/// What the pages need beyond the authority: where their files come from.
#[derive(Debug, Default)]
pub struct Web {
    /// `--web-dir`: the files read from there at each request (the page's
    /// sources, `vendor.js` from its `dist/`), for work on the page.
    dir: Option<PathBuf>,
}

/// Why the pages cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A file of `--web-dir` cannot be read.
    #[error("--web-dir {}: {} cannot be read ({cause}); give pki/est/web of a source tree after `npm ci && npm run build` there", dir.display(), file.display())]
    File {
        /// The directory given.
        dir: PathBuf,
        /// The file.
        file: PathBuf,
        /// Why it cannot be read.
        cause: std::io::Error,
    },
}

/// Where a page file lies under `--web-dir`.
fn source(dir: &Path, name: &str) -> PathBuf {
    match name {
        "" => dir.join("register.html"),
        "vendor.js" => dir.join("dist").join(name),
        _ => dir.join(name),
    }
}

impl Web {
    /// The pages from the files built in.
    pub fn builtin() -> Web {
        Web::default()
    }

    /// The pages from `dir` (a source tree's `pki/est/web`), each file
    /// read at each request; every one must be there now.
    pub fn from_dir(dir: &Path) -> Result<Web, WebError> {
        for (name, _, _) in FILES {
            let file = source(dir, name);
            std::fs::metadata(&file).map_err(|cause| WebError::File {
                dir: dir.to_owned(),
                file: file.clone(),
                cause,
            })?;
        }
        Ok(Web { dir: Some(dir.to_owned()) })
    }

    /// A page file by its name under `/register/`: its type and bytes.
    fn file(&self, name: &str) -> Option<(&'static str, Bytes)> {
        let (_, kind, built_in) = FILES.iter().find(|(n, _, _)| *n == name)?;
        let bytes = match &self.dir {
            Some(dir) => Bytes::from(std::fs::read(source(dir, name)).ok()?),
            None => Bytes::from_static(built_in),
        };
        Some((kind, bytes))
    }
}

/// What the server knows of the client when a page is asked for.
#[derive(Debug)]
pub struct Client {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The certificate its TLS handshake verified, or the trusted proxy handed on.
    pub cert: Option<Vec<u8>>,
}

type Reply = Response<Full<Bytes>>;

/// Whether a path is one of the pages'.
pub fn serves(path: &str) -> bool {
    path == "/"
        || path == "/whoami"
        || path.starts_with("/register/")
        || path.starts_with("/approvals/")
        || path == "/register"
        || path == "/approvals"
}

fn with_headers(status: StatusCode, content_type: &str, body: Bytes) -> Result<Reply, hyper::http::Error> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        // the pages load only what this server serves, are never framed,
        // and post forms only here
        .header(
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        .header("x-content-type-options", "nosniff")
        // same-origin: a form posted here still says its Origin (no-referrer makes it "null")
        .header("referrer-policy", "same-origin")
        .header(CACHE_CONTROL, "no-store")
        .body(Full::new(body))
}

fn html(status: StatusCode, body: String) -> Result<Reply, hyper::http::Error> {
    with_headers(status, "text/html; charset=utf-8", Bytes::from(body))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Result<Reply, hyper::http::Error> {
    with_headers(status, "application/json", Bytes::from(value.to_string()))
}

fn see_other(to: &str) -> Result<Reply, hyper::http::Error> {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(LOCATION, to)
        .header(CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::new()))
}

fn query_value(req: &Request<Incoming>, name: &str) -> Option<String> {
    form_value(req.uri().query()?, name)
}

/// A field of an `application/x-www-form-urlencoded` text.
fn form_value(form: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(form.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Answers a page's request.
pub async fn answer(web: &Web, authority: &Arc<Authority>, client: Client, req: Request<Incoming>) -> Result<Reply, hyper::http::Error> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let file = path
        .strip_prefix("/register/")
        .filter(|_| method == Method::GET)
        .and_then(|name| web.file(name));
    if let Some((kind, bytes)) = file {
        return with_headers(StatusCode::OK, kind, bytes);
    }
    match (method, path.as_str()) {
        (Method::GET, "/" | "/register") => see_other("/register/"),
        (Method::GET, "/approvals") => see_other("/approvals/"),
        (Method::GET, "/register/settings") => settings(authority, query_value(&req, "label").as_deref()),
        (Method::POST, "/register/token") => token(authority, &req),
        (Method::GET, "/whoami") => whoami(authority, &client, &req),
        (Method::GET, "/approvals/") => approvals_page(authority, &client, &req).await,
        (Method::POST, "/approvals/approve" | "/approvals/reject") => decide(authority, &client, req).await,
        (_, "/register/token" | "/approvals/approve" | "/approvals/reject") => html(
            StatusCode::METHOD_NOT_ALLOWED,
            pages::message("Method not allowed", "This address takes POST only."),
        )
        .map(|mut r| {
            r.headers_mut().insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
            r
        }),
        _ => html(
            StatusCode::NOT_FOUND,
            pages::message("Not found", &format!("There is no page at {path}.")),
        ),
    }
}

/// The ways in the registration page may offer for a label.
fn settings(authority: &Authority, label: Option<&str>) -> Result<Reply, hyper::http::Error> {
    match authority.registration(label) {
        Some((ca, ways)) => json(
            StatusCode::OK,
            &serde_json::json!({ "ca": ca, "label": label, "token": ways.tokens, "queue": ways.queue }),
        ),
        None => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": format!("no CA label {:?} here", label.unwrap_or_default()) }),
        ),
    }
}

/// The names a token allows (the token is the HTTP Basic password, as in
/// EST); it is not used up.
fn token(authority: &Authority, req: &Request<Incoming>) -> Result<Reply, hyper::http::Error> {
    let label = query_value(req, "label");
    let Some((_, token)) = crate::wire::basic(req.headers().get(hyper::header::AUTHORIZATION)) else {
        return json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({ "error": "send the token as the HTTP Basic password" }),
        );
    };
    match authority.token_grant(label.as_deref(), &token) {
        Ok(grant) => json(
            StatusCode::OK,
            &serde_json::json!({
                "cn": grant.cn, "dns": grant.dns, "uris": grant.uris, "emails": grant.emails,
                "ips": grant.ips, "expires": grant.expires,
            }),
        ),
        Err(Answer::Refused(kind, why)) => json(
            StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &serde_json::json!({ "error": why }),
        ),
        Err(_) => json(StatusCode::INTERNAL_SERVER_ERROR, &serde_json::json!({ "error": FAILED })),
    }
}

fn host(req: &Request<Incoming>) -> String {
    req.headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// The approver a request comes from, or the 403 page that says why not.
fn approver_of<'a>(authority: &'a Authority, client: &Client, req: &Request<Incoming>) -> Result<(Approver, &'a Approvers), String> {
    let Some(approvers) = authority.approvers() else {
        return Err("This server has no approvers (`certgate pki serve --approvers POLICY`): requests are approved with `certgate pki requests approve`.".into());
    };
    approvers
        .check(client.cert.as_deref(), req.method().as_str(), &host(req))
        .map(|a| (a, approvers))
        .map_err(|e| {
            tracing::info!(address = %client.addr, why = %e, "approvals page refused");
            e.page
        })
}

fn forbidden(why: &str) -> Result<Reply, hyper::http::Error> {
    html(StatusCode::FORBIDDEN, pages::message("Forbidden", why))
}

fn waiting_for(received: &str) -> String {
    let Ok(at) = time::OffsetDateTime::parse(received, &time::format_description::well_known::Rfc3339) else {
        return received.to_owned();
    };
    let secs = (time::OffsetDateTime::now_utc() - at).whole_seconds().max(0);
    match secs {
        0..60 => "less than a minute".to_owned(),
        60..3600 => plural(secs / 60, "minute"),
        3600..86_400 => plural(secs / 3600, "hour"),
        _ => plural(secs / 86_400, "day"),
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Requests the approvals page shows at once; `?page=N` shows the next ones.
pub const PAGE_SIZE: usize = 20;

async fn approvals_page(authority: &Arc<Authority>, client: &Client, req: &Request<Incoming>) -> Result<Reply, hyper::http::Error> {
    let (approver, approvers) = match approver_of(authority, client, req) {
        Ok(a) => a,
        Err(why) => return forbidden(&why),
    };
    let done = match (query_value(req, "approved"), query_value(req, "rejected")) {
        (Some(id), _) => Done::Approved(id),
        (_, Some(id)) => Done::Rejected(id),
        _ => Done::Nothing,
    };
    let page = query_value(req, "page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let host = host(req);
    let reader = Arc::clone(authority);
    // the queue's files, each CSR's check and a throwaway signature per
    // request shown: off the async workers, for one page only
    let listed = tokio::task::spawn_blocking(move || {
        let pending = reader.pending()?;
        let total = pending.len();
        let shown: Vec<Pending> = pending
            .into_iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .map(|request| {
                let csr = read_csr(&request);
                Pending {
                    subject: csr.subject,
                    key_type: csr.checked.map_or_else(|e| format!("unreadable: {e}"), |c| c.key_type),
                    waiting: waiting_for(&request.received),
                    makes_approver: reader.makes_approver(&request, &host),
                    request,
                }
            })
            .collect();
        Ok::<_, certgate_pki::PkiError>((shown, total))
    })
    .await;
    let (shown, total) = match listed {
        Ok(Ok(listed)) => listed,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the queue cannot be read");
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                pages::message("Error", "The queue cannot be read; the server's log says why."),
            );
        }
        Err(_) => {
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                pages::message("Error", "The queue cannot be read."),
            )
        }
    };
    let csrf = approvers.csrf_token(&approver);
    let paging = pages::Paging {
        page,
        pages: total.div_ceil(PAGE_SIZE).max(1),
        total,
    };
    html(StatusCode::OK, pages::approvals(&approver, &csrf, &shown, &done, &paging))
}

/// A queued request's CSR, read once: its subject as people read it
/// (RFC 4514, letters as they are; empty if unreadable), and the CA's check of it.
struct StoredCsr {
    subject: String,
    checked: Result<certgate_pki::csr::Request, String>,
}

fn read_csr(request: &Queued) -> StoredCsr {
    use x509_parser::certification_request::X509CertificationRequest;
    let der = match request.csr_der() {
        Ok(der) => der,
        Err(e) => {
            return StoredCsr {
                subject: String::new(),
                checked: Err(e.to_string()),
            }
        }
    };
    let subject = X509CertificationRequest::from_der(&der)
        .map(|(_, c)| certgate_x509::dn::Dn::from_x509(&c.certification_request_info.subject).readable())
        .unwrap_or_default();
    StoredCsr {
        subject,
        checked: certgate_pki::csr::check(&der).map_err(|e| e.to_string()),
    }
}

/// The origin a browser says it posts from must be this page's own (the
/// CSRF token is checked as well).
fn same_origin(req: &Request<Incoming>) -> Result<(), String> {
    if let Some(site) = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err(format!(
                "the form was posted from another site (Sec-Fetch-Site: {site}); nothing was changed"
            ));
        }
    }
    if let Some(origin) = req.headers().get(hyper::header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let own = format!("https://{}", host(req));
        if origin != own {
            return Err(format!("the form was posted from {origin}, not from {own}; nothing was changed"));
        }
    }
    Ok(())
}

/// Largest approvals form taken.
const MAX_FORM: usize = 4096;

async fn decide(authority: &Arc<Authority>, client: &Client, req: Request<Incoming>) -> Result<Reply, hyper::http::Error> {
    let (approver, approvers) = match approver_of(authority, client, &req) {
        Ok(a) => a,
        Err(why) => return forbidden(&why),
    };
    if let Err(why) = same_origin(&req) {
        tracing::warn!(approver = %approver.subject, address = %client.addr, why, "approvals form refused");
        return forbidden(&why);
    }
    let approve = req.uri().path() == "/approvals/approve";
    let host_of = host(&req);
    let form = match Limited::new(req.into_body(), MAX_FORM).collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => return html(StatusCode::PAYLOAD_TOO_LARGE, pages::message("Too large", "The form is too large.")),
    };
    let csrf = form_value(&form, "csrf").unwrap_or_default();
    if !approvers.csrf_ok(&approver, &csrf) {
        tracing::warn!(approver = %approver.subject, address = %client.addr, "approvals form without this approver's CSRF token");
        return forbidden("The form does not carry this page's token (reload the approvals page and try again); nothing was changed.");
    }
    let (Some(ca), Some(id)) = (form_value(&form, "ca"), form_value(&form, "id")) else {
        return html(StatusCode::BAD_REQUEST, pages::message("Bad request", "The form names no request."));
    };
    let reason = form_value(&form, "reason").map(|r| r.trim().to_owned()).unwrap_or_default();
    if !approve && reason.is_empty() {
        return html(
            StatusCode::BAD_REQUEST,
            pages::message("Bad request", "Rejecting needs a reason: the person is shown it."),
        );
    }
    if approve {
        let checker = Arc::clone(authority);
        let (ca2, id2, host2) = (ca.clone(), id.clone(), host_of.clone());
        let makes_approver = tokio::task::spawn_blocking(move || match checker.queued_request(&ca2, &id2) {
            Ok(Some(request)) => checker.makes_approver(&request, &host2),
            _ => false,
        })
        .await
        .unwrap_or(true);
        if makes_approver {
            tracing::warn!(approver = %approver.subject, request = %id, "refused to approve a request that would make an approver");
            return forbidden("The approvers' policy admits the certificate this request asks for: this page does not make new approvers (`certgate pki requests approve` can, if that is meant). Nothing was changed.");
        }
    }
    let authority = Arc::clone(authority);
    let by = format!("{} (web, rule {})", approver.subject, approver.rule);
    let (ca2, id2) = (ca.clone(), id.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let verdict = if approve { Verdict::Approve } else { Verdict::Reject(&reason) };
        authority.decide_as(&ca2, &id2, verdict, &by)
    })
    .await;
    match outcome {
        Ok(Ok(_)) => see_other(&format!("/approvals/?{}={id}", if approve { "approved" } else { "rejected" })),
        Ok(Err(e)) => html(StatusCode::CONFLICT, pages::message("Not done", &e.to_string())),
        Err(_) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::message("Error", "The decision failed; nothing was changed."),
        ),
    }
}

fn whoami(authority: &Authority, client: &Client, req: &Request<Incoming>) -> Result<Reply, hyper::http::Error> {
    let seen = client.cert.as_deref().and_then(seen);
    let approver = authority.approvers().map(|a| a.check(client.cert.as_deref(), "GET", &host(req)));
    let approver = approver.as_ref().map(|r| r.as_ref().map_err(|e| e.page.as_str()));
    html(StatusCode::OK, pages::whoami(seen.as_ref(), approver))
}

fn seen(der: &[u8]) -> Option<Seen> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let sans = certgate_pki::csr::certificate_sans(&cert).texts();
    Some(Seen {
        // RFC 2253 order, as certgate's rules write a DN, with letters as people read them
        subject: certgate_x509::dn::Dn::from_x509(cert.subject()).readable(),
        issuer: certgate_x509::dn::Dn::from_x509(cert.issuer()).readable(),
        // as the index and `pki list` write it
        serial: certgate_pki::profile::cert_serial(&cert),
        not_before: cert.validity().not_before.to_string(),
        not_after: cert.validity().not_after.to_string(),
        sans,
        sha256: certgate_x509::sha256_hex(der),
    })
}

#[cfg(test)]
mod tests {
    use super::form_value;

    #[test]
    fn form_fields_are_decoded() {
        let form = "csrf=ab12&id=00ff&reason=not+someone+we+know%21+%C3%A9";
        assert_eq!(form_value(form, "reason").as_deref(), Some("not someone we know! é"));
        assert_eq!(form_value(form, "csrf").as_deref(), Some("ab12"));
        assert_eq!(form_value(form, "missing"), None);
    }
}
