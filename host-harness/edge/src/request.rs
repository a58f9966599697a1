//! One request on a connection: its headers as Envoy gives them to the
//! filter chain (a sanitised `x-forwarded-client-cert`, `x-forwarded-proto`,
//! a request id), the filter's whole lifecycle ([`crate::flow`]), the reply
//! (the upstream's, the filter's, or the edge's own error), and the access
//! log line with the decision certgate published as filter state.

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use certgate_decision::{Published, PROPERTY};
use certgate_host::Connection;
use certgate_wire::header_map::is_hop_by_hop;
use certgate_wire::Pairs;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};

use crate::flow::{outgoing, Flow, FlowError, Outgoing};
use crate::upstream::{Buffered, Upstreams};
use crate::worker::Worker;

type Body = BoxBody<Bytes, hyper::Error>;

fn json_reply(status: u16, reason: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{{\"error\":\"{reason}\"}}")));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn request_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    certgate_x509::text::hex(&b)
}

/// The request's headers as Envoy gives them to the filter chain.
fn filter_headers(parts: &hyper::http::request::Parts, conn: &Connection) -> Pairs {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| parts.headers.get("host").and_then(|h| h.to_str().ok()).map(str::to_owned))
        .unwrap_or_default();
    let mut headers = certgate_wire::header_map::request(parts.method.as_str(), &path, &authority);
    for (name, value) in &parts.headers {
        let n = name.as_str();
        // SANITIZE_SET: the client's own XFCC never passes
        if n == "host" || n == "x-forwarded-client-cert" || is_hop_by_hop(n) {
            continue;
        }
        headers.push((n.to_owned(), value.as_bytes().to_vec()));
    }
    if let Some(xfcc) = &conn.xfcc {
        headers.push(("x-forwarded-client-cert".into(), xfcc.clone().into_bytes()));
    }
    headers.push(("x-forwarded-proto".into(), b"https".to_vec()));
    if !parts.headers.contains_key("x-request-id") {
        headers.push(("x-request-id".into(), request_id().into_bytes()));
    }
    headers
}

fn error_reply(e: FlowError) -> Response<Body> {
    match e {
        FlowError::Filter(_) => {
            tracing::error!("request refused: {e}");
            json_reply(500, "filter_failed")
        }
        FlowError::Paused => json_reply(500, "filter_paused_without_reply"),
        FlowError::Client => json_reply(400, "bad_request_body"),
        FlowError::Upstream => json_reply(502, "upstream_unavailable"),
    }
}

fn response_of(out: Outgoing) -> Response<Body> {
    let mut r = Response::new(Buffered::new(out.body, out.trailers).map_err(|never| match never {}).boxed());
    *r.status_mut() = out.status;
    *r.headers_mut() = out.headers;
    r
}

pub(crate) async fn handle(
    req: Request<Incoming>,
    upstream: Rc<Uri>,
    conn: Rc<Connection>,
    worker: Rc<RefCell<Worker>>,
    upstreams: Rc<Upstreams>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let (parts, body) = req.into_parts();
    let headers = filter_headers(&parts, &conn);
    let end = hyper::body::Body::is_end_stream(&body);
    let (response, last) = match Flow::start(worker, &conn, headers, end).await {
        Ok((mut flow, first)) => {
            let result = flow.run(first, body, &upstreams, &upstream).await;
            let last = flow.close();
            let response = match result {
                Ok(ending) => response_of(outgoing(ending, last.as_ref())),
                Err(e) => error_reply(e),
            };
            (response, last)
        }
        Err(e) => (error_reply(e), None),
    };
    // the decision the filter published (certgate's; other filters publish none)
    let published = last
        .as_ref()
        .and_then(|s| s.filter_state.get(PROPERTY))
        .and_then(|v| Published::from_bytes(v));
    let field = |f: fn(&Published) -> Option<&str>| published.as_ref().and_then(f).unwrap_or("-").to_owned();
    tracing::info!(
        target: "certgate::access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        decision = %field(|p| Some(p.decision.as_str())),
        rule = %field(|p| p.rule.as_deref()),
        reason = %field(|p| p.reason.as_deref()),
        // the client's text: encoded so it cannot forge log lines
        cn = %certgate_x509::text::encode_value(&field(|p| p.cn.as_deref())),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(response)
}

/// Boxes a full body into the edge's body type.
fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}
