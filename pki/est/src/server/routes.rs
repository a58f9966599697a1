//! The routes of RFC 7030 under `/.well-known/est/[LABEL/]`, the pages'
//! routes handed to `web`, and the replies: `Content-Length` always (no
//! chunking), base64 on one line, errors as `text/plain` sentences.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};

use certgate_pki::enroll::audit::{Operation, Outcome};

use crate::authority::{Answer, Authority, Refusal, Requester, FAILED};
use crate::web::Web;
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
}

pub(super) async fn handle(
    authority: &Arc<Authority>,
    web: Option<&Web>,
    peer: SocketAddr,
    cert: Option<Vec<u8>>,
    tls: &'static str,
    req: Request<Incoming>,
) -> Reply {
    let answered = match web {
        Some(web) if crate::web::serves(req.uri().path()) => {
            let reply = match client_cert(authority, peer, cert, &req) {
                Ok(cert) => crate::web::answer(web, authority, crate::web::Client { addr: peer, cert }, req).await,
                Err((status, why)) => text(status, why),
            };
            Answered { reply, counted: None }
        }
        _ => answer(authority, peer, cert, tls, req).await,
    };
    if let Some((operation, outcome)) = answered.counted {
        authority.count(operation, outcome);
    }
    answered.reply.unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::from_static(b"the reply could not be built\n")));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

async fn answer(
    authority: &Arc<Authority>,
    peer: SocketAddr,
    cert: Option<Vec<u8>>,
    tls: &'static str,
    req: Request<Incoming>,
) -> Answered {
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
        Operation::SimpleEnroll | Operation::SimpleReenroll => enroll(authority, op, label, peer, cert, tls, req).await,
        _ => reply_for(authority.cacerts(label.as_deref()), op),
    }
}

/// `simpleenroll` and `simplereenroll`: the body read within its limit,
/// then the authority's decision, off the async workers.
async fn enroll(
    authority: &Arc<Authority>,
    op: Operation,
    label: Option<String>,
    peer: SocketAddr,
    cert: Option<Vec<u8>>,
    tls: &'static str,
    req: Request<Incoming>,
) -> Answered {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if content_type.as_deref() != Some("application/pkcs10") {
        let why = format!("{op} takes a CSR as application/pkcs10 (base64 of its DER)");
        return Answered::refused(op, Refusal::UnsupportedMediaType, why);
    }
    let cert = match client_cert(authority, peer, cert, &req) {
        Ok(c) => c,
        Err((status, why)) => return Answered::counted(text(status, why), op, Outcome::Forbidden),
    };
    let who = Requester {
        addr: peer.ip(),
        basic: wire::basic(req.headers().get(AUTHORIZATION)),
        cert,
        tls,
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let why = format!("the body is over {} KiB: a CSR is far smaller", MAX_BODY / 1024);
            return Answered::refused(op, Refusal::TooLarge, why);
        }
    };
    let csr = match wire::decode_base64(&body) {
        Ok(der) => der,
        Err(e) => return Answered::refused(op, Refusal::BadRequest, format!("{e} (send the base64 of the CSR's DER)")),
    };
    let authority = Arc::clone(authority);
    // signing and the PKI home's files: off the async workers
    let answer = tokio::task::spawn_blocking(move || match op {
        Operation::SimpleEnroll => authority.enroll(label.as_deref(), &csr, &who),
        _ => authority.reenroll(label.as_deref(), &csr, &who),
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!(operation = %op, %peer, error = %e, "the enrollment task failed; nothing was issued");
        Answer::Failed(e.to_string())
    });
    reply_for(answer, op)
}

/// The client's certificate: the one its TLS handshake verified, or, from the
/// trusted proxy only, the RFC 9440 `Client-Cert` header certgate set there
/// (the proxy's own connection carries no client's certificate).
fn client_cert(
    authority: &Authority,
    peer: SocketAddr,
    from_tls: Option<Vec<u8>>,
    req: &Request<Incoming>,
) -> Result<Option<Vec<u8>>, (StatusCode, String)> {
    let header = req.headers().get("client-cert");
    match (authority.trusted_proxy(), header) {
        (Some(proxy), Some(value)) if proxy == peer.ip() => {
            let der = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().strip_prefix(':')?.strip_suffix(':').map(str::to_owned))
                .and_then(|b64| wire::decode_base64(b64.as_bytes()).ok())
                .ok_or((
                    StatusCode::BAD_REQUEST,
                    "the proxy's Client-Cert is not an RFC 9440 byte sequence (:base64:)".to_owned(),
                ))?;
            Ok(Some(der))
        }
        (Some(proxy), None) if proxy == peer.ip() => Ok(None),
        (_, Some(_)) => Err((
            StatusCode::FORBIDDEN,
            format!(
                "a Client-Cert header is taken only from the trusted proxy, and {} is not it",
                peer.ip()
            ),
        )),
        (_, None) => Ok(from_tls),
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

fn reply_for(answer: Answer, op: Operation) -> Answered {
    let outcome = answer.outcome();
    let reply = match answer {
        Answer::Certificates { der, .. } => pkcs7(&der),
        Answer::Pending { id, retry_after, .. } => Response::builder()
            .status(StatusCode::ACCEPTED)
            .header(RETRY_AFTER, retry_after.to_string())
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(format!(
                "request {id} waits for approval (`certgate pki requests approve {id}`); send the same CSR again later\n"
            )))),
        Answer::Refused(kind, why) => refusal(kind, why),
        Answer::Failed(_) => text(StatusCode::INTERNAL_SERVER_ERROR, FAILED.to_owned()),
    };
    Answered::counted(reply, op, outcome)
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
