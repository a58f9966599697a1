//! The EST server: TLS 1.2 and 1.3 (rustls), HTTP/1.1 (strongSwan's client
//! speaks nothing else), the routes of RFC 7030 under `/.well-known/est/`,
//! with an optional CA label segment. A client certificate is optional at
//! the handshake and, when sent, verified against the CAs served and their
//! CRLs. Replies carry `Content-Length` (no chunking) and base64 on one line;
//! errors are `text/plain` sentences.
//!
//! `tls` builds the TLS set-up, `routes` answers a request; this module
//! accepts connections and serves HTTP on them.

mod routes;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::authority::Authority;
use crate::web::Web;

use routes::{handle, text};
pub use routes::{route, MAX_BODY};
pub use tls::{tls_config, SetupError};

/// Accepts connections until the task is dropped; with `web`, the pages for people too.
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, authority: Arc<Authority>, web: Option<Arc<Web>>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let authority = Arc::clone(&authority);
        let web = web.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
            };
            let session = stream.get_ref().1;
            let cert = session.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
            let tls = match session.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "TLS",
            };
            serve_connection(stream, peer, cert, tls, authority, web).await;
        });
    }
}

/// Plain HTTP on loopback for the trusted proxy alone (`--proxy-listen`):
/// a proxy that terminates TLS itself and speaks plain HTTP upstream
/// (`certgate serve`) hands the client's certificate on as `Client-Cert`.
/// A connection from any other address is closed unanswered.
pub async fn serve_proxy(listener: TcpListener, authority: Arc<Authority>, web: Option<Arc<Web>>) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else { continue };
        if authority.trusted_proxy() != Some(peer.ip()) {
            tracing::warn!(%peer, "a connection to the proxy listener not from the trusted proxy: closed");
            continue;
        }
        let authority = Arc::clone(&authority);
        let web = web.clone();
        tokio::spawn(serve_connection(tcp, peer, None, "plain HTTP from the proxy", authority, web));
    }
}

/// HTTP/1.1 on one connection, TLS or not.
async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    cert: Option<Vec<u8>>,
    tls: &'static str,
    authority: Arc<Authority>,
    web: Option<Arc<Web>>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let authority = Arc::clone(&authority);
        let web = web.clone();
        let cert = cert.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&authority, web.as_deref(), peer, cert, tls, req).await) }
    });
    let io = hyper_util::rt::TokioIo::new(io);
    if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

/// Serves the metrics (Prometheus text) on plain HTTP, for a scraper on loopback.
pub async fn serve_metrics(listener: TcpListener, authority: Arc<Authority>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let authority = Arc::clone(&authority);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let authority = Arc::clone(&authority);
                async move {
                    let reply = if req.uri().path() == "/metrics" {
                        text(StatusCode::OK, authority.metrics()).map(|mut r| {
                            r.headers_mut()
                                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
                            r
                        })
                    } else {
                        text(StatusCode::NOT_FOUND, "only /metrics is here".into())
                    };
                    Ok::<_, std::convert::Infallible>(reply.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
                }
            });
            let io = hyper_util::rt::TokioIo::new(tcp);
            let _ended = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}
