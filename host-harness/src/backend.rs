//! The test backend (`certgate backend`): answers every request with a JSON
//! document of what it received — method, path, every header in order — as
//! the seed's `/api/v0.1/headers` did; `/api/v0.1/hello` says hello.

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

/// A running backend; dropping it stops it.
#[derive(Debug)]
pub struct RunningBackend {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for RunningBackend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let json = if parts.uri.path() == "/api/v0.1/hello" {
        serde_json::json!({ "hello": "world" })
    } else {
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_bytes": body.len(),
        })
    };
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())));
    resp.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// Starts the backend on `addr` (port 0: any free port).
pub async fn start(addr: SocketAddr) -> std::io::Result<RunningBackend> {
    let listener = TcpListener::bind(addr).await.map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
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

/// Boxes a full body into the edge's body type.
pub fn full(bytes: impl Into<Bytes>) -> http_body_util::combinators::BoxBody<Bytes, hyper::Error> {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}
