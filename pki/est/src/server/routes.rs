//! The routes of RFC 7030 under `/.well-known/est/[LABEL/]`, the pages'
//! routes handed to `web`, and the replies: `Content-Length` always (no
//! chunking), base64 on one line, errors as `text/plain` sentences.

use std::sync::Arc;

use bytes::Bytes;
use certgate_net::{read_body, BodyError};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};

use certgate_pki::enroll::audit::{Operation, Outcome};

use super::{Peer, Shared};
use crate::authority::{Answer, NotStanding, Refusal, Requester, FAILED};
use crate::wire;

/// The largest request body taken (a CSR is a few hundred bytes to a few KB).
pub const MAX_BODY: usize = 64 * 1024;

type Reply = Response<Full<Bytes>>;

pub(super) fn text(status: StatusCode, sentence: String) -> Result<Reply, hyper::http::Error> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(format!("{sentence}\n"))))
}

fn pkcs7(der: &[u8]) -> Result<Reply, hyper::http::Error> {
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "application/pkcs7-mime; smime-type=certs-only")
        .header("content-transfer-encoding", "base64")
        .body(Full::new(Bytes::from(wire::encode_base64(der))))
}

/// The route of a path: the label (if any) and the operation.
pub fn route(path: &str) -> Option<(Option<&str>, &str)> {
    let rest = path.strip_prefix("/.well-known/est/")?;
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [op] => Some((None, op)),
        [label, op] => Some((Some(label), op)),
        _ => None,
    }
}

/// A reply, and what the metrics count it as (nothing for a page).
struct Answered {
    reply: Result<Reply, hyper::http::Error>,
    counted: Option<(Operation, Outcome)>,
}

impl Answered {
    fn counted(reply: Result<Reply, hyper::http::Error>, operation: Operation, outcome: Outcome) -> Answered {
        Answered {
            reply,
            counted: Some((operation, outcome)),
        }
    }

    /// A refusal, with its status and outcome from one mapping.
    fn refused(operation: Operation, kind: Refusal, why: String) -> Answered {
        Answered::counted(refusal(kind, why), operation, kind.outcome())
    }

    /// A 429 or 503 says when to ask again.
    fn with_retry_after(mut self, seconds: u32) -> Answered {
        if let Ok(r) = &mut self.reply {
            if matches!(r.status(), StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
        }
        self
    }
}

pub(super) async fn handle(shared: &Shared, peer: &Peer, req: Request<Incoming>) -> Reply {
    let answered = if let Some(why) = wrong_host(peer, &req) {
        tracing::warn!(peer = %peer.addr, why, "refused on the plain proxy listener");
        Answered {
            reply: text(StatusCode::MISDIRECTED_REQUEST, why),
            counted: None,
        }
    } else {
        match &shared.web {
            Some(web) if crate::web::serves(req.uri().path()) => {
                let reply = match client_cert(shared, peer, &req).await {
                    Ok(cert) => crate::web::answer(web, &shared.authority, crate::web::Client { addr: peer.addr, cert }, req).await,
                    Err((status, why)) => text(status, why),
                };
                Answered { reply, counted: None }
            }
            _ => answer(shared, peer, req).await,
        }
    };
    if let Some((operation, outcome)) = answered.counted {
        shared.authority.count(operation, outcome);
    }
    answered.reply.unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::from_static(b"the reply could not be built\n")));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// On the plain proxy listener, a request must name a host the proxy serves
/// (a page of another site that resolves to loopback cannot reach it).
fn wrong_host(peer: &Peer, req: &Request<Incoming>) -> Option<String> {
    let plain = peer.hosts.as_ref()?;
    let host = req.headers().get(hyper::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    (!plain.host_ok(host)).then(|| {
        format!(
            "Host {host:?} is not one the proxy serves here ({}); nothing was done",
            plain.hosts.join(", ")
        )
    })
}

async fn answer(shared: &Shared, peer: &Peer, req: Request<Incoming>) -> Answered {
    let authority = &shared.authority;
    let path = req.uri().path().to_owned();
    let Some((label, op_name)) = route(&path) else {
        return Answered {
            reply: text(StatusCode::NOT_FOUND, format!("{path}: EST lives under /.well-known/est/")),
            counted: None,
        };
    };
    let Some(op) = Operation::from_est_name(op_name) else {
        let why = if matches!(op_name, "serverkeygen" | "fullcmc") {
            format!("{op_name} is not offered: certgate signs keys it never sees, and only simple PKI messages")
        } else {
            format!("{op_name}: no such EST operation (cacerts, simpleenroll, simplereenroll, csrattrs)")
        };
        return Answered {
            reply: text(StatusCode::NOT_FOUND, why),
            counted: None,
        };
    };
    let label = label.map(str::to_owned);
    let wants_post = matches!(op, Operation::SimpleEnroll | Operation::SimpleReenroll);
    let (method, allow) = if wants_post { (Method::POST, "POST") } else { (Method::GET, "GET") };
    if req.method() != method {
        let mut answered = Answered::refused(op, Refusal::MethodNotAllowed, format!("{op} takes {allow} only"));
        if let Ok(r) = &mut answered.reply {
            r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        }
        return answered;
    }
    match op {
        Operation::CsrAttrs => {
            if !authority.has_label(label.as_deref()) {
                let why = format!("no CA label {:?} here", label.unwrap_or_default());
                return Answered::refused(op, Refusal::NotFound, why);
            }
            // nothing is asked of the CSR beyond what the CA checks anyway
            let reply = Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new()));
            Answered::counted(reply, op, Outcome::NoAttributes)
        }
        Operation::SimpleEnroll | Operation::SimpleReenroll => enroll(shared, op, label, peer, req).await,
        _ => reply_for(authority.cacerts(label.as_deref()), op),
    }
}

/// `simpleenroll` and `simplereenroll`: the client's certificate checked,
/// the body read within its limits, then the authority's decision, off the
/// async workers.
async fn enroll(shared: &Shared, op: Operation, label: Option<String>, peer: &Peer, req: Request<Incoming>) -> Answered {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if content_type.as_deref() != Some("application/pkcs10") {
        let why = format!("{op} takes a CSR as application/pkcs10 (base64 of its DER)");
        return Answered::refused(op, Refusal::UnsupportedMediaType, why);
    }
    let cert = match client_cert(shared, peer, &req).await {
        Ok(c) => c,
        Err((status, why)) => return Answered::counted(text(status, why), op, Outcome::Forbidden),
    };
    let who = Requester {
        addr: client_address(peer, &req),
        basic: wire::basic(req.headers().get(AUTHORIZATION)),
        cert,
        tls: peer.tls,
    };
    let body = match read_body(req.into_body(), MAX_BODY, &shared.limits).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { .. }) => {
            let why = format!("the body is over {} KiB: a CSR is far smaller", MAX_BODY / 1024);
            return Answered::refused(op, Refusal::TooLarge, why);
        }
        Err(e @ BodyError::TooSlow { .. }) => return Answered::refused(op, Refusal::TooSlow, e.to_string()),
        Err(e @ BodyError::Broken(_)) => return Answered::refused(op, Refusal::BadRequest, e.to_string()),
    };
    let csr = match wire::decode_base64(&body) {
        Ok(der) => der,
        Err(e) => return Answered::refused(op, Refusal::BadRequest, format!("{e} (send the base64 of the CSR's DER)")),
    };
    let authority = Arc::clone(&shared.authority);
    // signing and the PKI home's files: off the async workers
    let answer = tokio::task::spawn_blocking(move || match op {
        Operation::SimpleEnroll => authority.enroll(label.as_deref(), &csr, &who),
        _ => authority.reenroll(label.as_deref(), &csr, &who),
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!(operation = %op, peer = %peer.addr, error = %e, "the enrollment task failed; nothing was issued");
        Answer::Failed(e.to_string())
    });
    reply_for(answer, op).with_retry_after(shared.authority.retry_after())
}

/// The client's address: the connection's, or, from the trusted proxy, the
/// last `X-Forwarded-For` entry (the one the proxy appended: Envoy's
/// `use_remote_address`); without one, the proxy's own.
fn client_address(peer: &Peer, req: &Request<Incoming>) -> std::net::IpAddr {
    let forwarded = || {
        let last = req.headers().get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
        last.rsplit(',').next()?.trim().parse().ok()
    };
    if peer.proxy {
        forwarded().unwrap_or(peer.addr.ip())
    } else {
        peer.addr.ip()
    }
}

/// The client's certificate, checked: the one its TLS handshake verified,
/// or, from the trusted proxy only, the RFC 9440 `Client-Cert` header it set
/// (verified here again: chain to a CA served, CRL, validity). Either must
/// stand in its CA's index (recorded, not revoked), read at this request.
async fn client_cert(shared: &Shared, peer: &Peer, req: &Request<Incoming>) -> Result<Option<Vec<u8>>, (StatusCode, String)> {
    let cert = match req.headers().get("client-cert") {
        Some(value) if peer.proxy => {
            let der = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().strip_prefix(':')?.strip_suffix(':').map(str::to_owned))
                .and_then(|b64| wire::decode_base64(b64.as_bytes()).ok())
                .ok_or((
                    StatusCode::BAD_REQUEST,
                    "the proxy's Client-Cert is not an RFC 9440 byte sequence (:base64:)".to_owned(),
                ))?;
            if let Err(e) = shared.verifier.check(&der) {
                tracing::warn!(peer = %peer.addr, error = %e, "the proxy handed on a Client-Cert that does not verify");
                return Err((
                    StatusCode::FORBIDDEN,
                    format!("the Client-Cert the proxy handed on does not verify here: {e}"),
                ));
            }
            Some(der)
        }
        Some(_) => {
            return Err((
                StatusCode::FORBIDDEN,
                "a Client-Cert header is taken only from the trusted proxy (named by its certificate: --trusted-proxy-cert), and this connection is not it".to_owned(),
            ))
        }
        None if peer.proxy => None,
        None => peer.cert.clone(),
    };
    let Some(der) = cert else { return Ok(None) };
    let authority = Arc::clone(&shared.authority);
    let checked = der.clone();
    match tokio::task::spawn_blocking(move || authority.standing(&checked)).await {
        Ok(Ok(_)) => Ok(Some(der)),
        Ok(Err(NotStanding::Failed(e))) => {
            tracing::error!(peer = %peer.addr, error = %e, "a client certificate could not be looked up");
            Err((StatusCode::INTERNAL_SERVER_ERROR, FAILED.to_owned()))
        }
        Ok(Err(why)) => {
            tracing::info!(peer = %peer.addr, why = %why, "client certificate refused by its CA's index");
            Err((StatusCode::FORBIDDEN, why.to_string()))
        }
        Err(e) => {
            tracing::error!(peer = %peer.addr, error = %e, "a client certificate could not be looked up");
            Err((StatusCode::INTERNAL_SERVER_ERROR, FAILED.to_owned()))
        }
    }
}

/// A refusal's reply: its status (one mapping), its sentence, and for a 401
/// the Basic challenge.
fn refusal(kind: Refusal, why: String) -> Result<Reply, hyper::http::Error> {
    let status = StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(status, why).map(|mut r| {
        if kind == Refusal::Unauthorized {
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"certgate EST\""));
        }
        r
    })
}

/// The header that names a queued request (202, and 403 once rejected):
/// what a page or script reads, not the sentence.
pub const REQUEST_HEADER: &str = "certgate-request";
/// The header that carries an approver's reason for a rejection,
/// percent-encoded UTF-8.
pub const REJECTION_HEADER: &str = "certgate-rejection";

fn reply_for(answer: Answer, op: Operation) -> Answered {
    let outcome = answer.outcome();
    let reply = match answer {
        Answer::Certificates { der, .. } => pkcs7(&der),
        Answer::Pending { id, retry_after, .. } => Response::builder()
            .status(StatusCode::ACCEPTED)
            .header(RETRY_AFTER, retry_after.to_string())
            .header(REQUEST_HEADER, &id)
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(format!(
                "request {id} waits for approval (`certgate pki requests approve {id}`); send the same CSR again later\n"
            )))),
        Answer::Rejected { id, reason } => text(StatusCode::FORBIDDEN, format!("request {id} was rejected: {reason}")).map(|mut r| {
            if let Ok(v) = HeaderValue::from_str(&id) {
                r.headers_mut().insert(REQUEST_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&percent_encode(&reason)) {
                r.headers_mut().insert(REJECTION_HEADER, v);
            }
            r
        }),
        Answer::Refused(kind, why) => refusal(kind, why),
        Answer::Failed(_) => text(StatusCode::INTERNAL_SERVER_ERROR, FAILED.to_owned()),
    };
    Answered::counted(reply, op, outcome)
}

/// Every byte but unreserved ASCII as `%XX` (RFC 3986), so any reason fits a header.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn routes_are_an_operation_with_an_optional_label() {
        assert_eq!(route("/.well-known/est/cacerts"), Some((None, "cacerts")));
        assert_eq!(
            route("/.well-known/est/people/simpleenroll"),
            Some((Some("people"), "simpleenroll"))
        );
        assert_eq!(route("/.well-known/est/a/b/cacerts"), None);
        assert_eq!(route("/est/cacerts"), None);
    }
}
