//! The test backend (`certgate backend`): answers every request with a JSON
//! document of what it received — method, path, every header in order — as
//! the seed's `/api/v0.1/headers` did; `/api/v0.1/hello` says hello. A
//! browser (a request whose `accept` names `text/html`) gets the same as a
//! readable "who am I" page instead. `/status/NNN` answers that status and
//! `/echo` sends the request body back (for the differential tests).
#![warn(missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use certgate_core::reply::escape_html;

/// A running backend; dropping it stops it.
#[derive(Debug)]
pub struct RunningBackend {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for RunningBackend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn text(status: hyper::StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("text/plain"));
    resp
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    // for the differential tests: a chosen status, and the body sent back
    if let Some(code) = parts
        .uri
        .path()
        .strip_prefix("/status/")
        .and_then(|c| hyper::StatusCode::from_bytes(c.as_bytes()).ok())
    {
        return Ok(text(code, format!("status {}", code.as_u16()).into()));
    }
    if parts.uri.path() == "/echo" {
        return Ok(text(hyper::StatusCode::OK, body));
    }
    let accept = parts.headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if certgate_core::reply::wants_html(accept) {
        let mut resp = Response::new(Full::new(Bytes::from(whoami_page(&headers))));
        resp.headers_mut()
            .insert("content-type", hyper::header::HeaderValue::from_static("text/html; charset=utf-8"));
        return Ok(resp);
    }
    let json = if parts.uri.path() == "/api/v0.1/hello" {
        serde_json::json!({ "hello": "world" })
    } else {
        serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_bytes": body.len(),
        })
    };
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())));
    resp.headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// The identity headers certgate can set, under every preset, in the order
/// the page shows them.
const IDENTITY_HEADERS: &[&str] = &[
    "x-client-cn",
    "x-client-subject",
    "x-client-issuer",
    "x-client-issuer-cn",
    "x-client-serial",
    "x-client-not-before",
    "x-client-not-after",
    "x-client-expires-in",
    "x-client-san-uri",
    "x-client-san-dns",
    "x-client-san-email",
    "x-client-spiffe-id",
    "x-client-sha256",
    "x-client-verified",
    "x-certgate-rule",
    "x-certgate-audit",
    "x-user",
    "x-issuer",
    "x-not-before",
    "x-not-after",
    "verified",
    "dn",
];

/// What a browser sees: who the application was told the visitor is, then
/// every header it received.
fn whoami_page(headers: &[(String, String)]) -> String {
    let value = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let who = ["x-client-cn", "x-user", "dn", "x-client-subject"].iter().find_map(|h| value(h));
    let greeting = match who {
        Some(who) => format!("You are <strong id=\"who\">{}</strong>", escape_html(who)),
        None => "You sent no client certificate the application was told of: <strong id=\"who\">anonymous</strong>".to_owned(),
    };
    let rows = |names: &mut dyn Iterator<Item = (&str, &str)>| -> String {
        names
            .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>\n", escape_html(k), escape_html(v)))
            .collect()
    };
    let identity = rows(&mut IDENTITY_HEADERS.iter().filter_map(|h| Some((*h, value(h)?))));
    let all = rows(&mut headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Who am I</title></head>\n<body>\n\
         <h1>Who am I</h1>\n<p>{greeting}</p>\n<h2>Identity</h2>\n<table id=\"identity\">\n{identity}</table>\n\
         <h2>Every request header</h2>\n<table id=\"headers\">\n{all}</table>\n</body></html>\n"
    )
}

/// Starts the backend on `addr` (port 0: any free port).
pub async fn start(addr: SocketAddr) -> std::io::Result<RunningBackend> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    let Ok((tcp, _)) = accepted else { continue };
                    tokio::spawn(async move {
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tcp), service_fn(answer))
                            .await;
                    });
                }
            }
        }
    });
    Ok(RunningBackend { addr, stop })
}

/// Reads a backend answer's headers back (for tests and `check`).
pub fn headers_of(json: &serde_json::Value) -> Vec<(String, String)> {
    json["headers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p.get(0)?.as_str()?.to_owned(), p.get(1)?.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_visitor_and_escapes_what_it_shows() {
        let headers = vec![
            ("x-client-cn".to_owned(), "alice".to_owned()),
            ("x-client-subject".to_owned(), "CN=alice,O=Example".to_owned()),
            ("user-agent".to_owned(), "<script>x</script>".to_owned()),
        ];
        let page = whoami_page(&headers);
        assert!(page.contains(r#"You are <strong id="who">alice</strong>"#), "{page}");
        assert!(page.contains("<tr><th>x-client-subject</th><td>CN=alice,O=Example</td></tr>"));
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!page.contains("<script>"));
        let anonymous = whoami_page(&[("accept".to_owned(), "text/html".to_owned())]);
        assert!(anonymous.contains(r#"<strong id="who">anonymous</strong>"#));
    }
}
