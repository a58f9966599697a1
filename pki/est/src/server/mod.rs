//! The EST server: TLS 1.2 and 1.3 (rustls), HTTP/1.1 (strongSwan's client
//! speaks nothing else), the routes of RFC 7030 under `/.well-known/est/`,
//! with an optional CA label segment. A client certificate is optional at
//! the handshake and, when sent, verified against the CAs served and their
//! CRLs (read again when they change), and at each request against its CA's
//! index. Every listener is held to the same limits (`certgate-net`): a
//! connection cap, handshake, header, idle and body timeouts, a lingering
//! close, a bounded drain at shutdown.
//!
//! `tls` builds the TLS set-up and the client verifier, `proxy` says who may
//! speak as the proxy, `routes` answers a request; this module accepts
//! connections and serves HTTP on them.

mod proxy;
mod routes;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use certgate_net::{serve_http1, Acceptor, Limits, Slot, Stopping};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use rustls::ServerConfig;

use crate::authority::Authority;
use crate::web::Web;

pub use proxy::{peer_uid, PlainProxy, ProxyName, ProxyTrust};
pub use routes::{route, MAX_BODY};
pub use tls::{tls_config, ClientVerifier, SetupError};

/// What every connection's requests are answered with.
#[derive(Debug)]
pub struct Shared {
    /// Who may enroll, and what is signed.
    pub authority: Arc<Authority>,
    /// The pages for people, if served.
    pub web: Option<Arc<Web>>,
    /// Checks client certificates: at the handshake, and a proxy's `Client-Cert`.
    pub verifier: Arc<ClientVerifier>,
    /// The proxies trusted over TLS, by their certificate.
    pub proxies: ProxyTrust,
    /// Each listener's limits.
    pub limits: Limits,
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    /// `TLSv1.3`, `TLSv1.2`, or how the plain listener is reached.
    pub tls: &'static str,
    /// The certificate its handshake verified, unless it is the proxy's own.
    pub cert: Option<Vec<u8>>,
    /// The trusted proxy: a request's `Client-Cert` is its client's certificate.
    pub proxy: bool,
    /// On the plain proxy listener: the `Host` names a request must carry.
    pub hosts: Option<Arc<PlainProxy>>,
}

/// Accepts TLS connections until `stopping`, then lets requests in flight
/// finish for at most the drain time.
pub async fn serve(mut acceptor: Acceptor, tls: Arc<ServerConfig>, shared: Arc<Shared>, mut stopping: Stopping) {
    let tls = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, addr, slot) = tokio::select! {
            next = acceptor.next() => next,
            () = stopping.wait() => break,
        };
        let (tls, shared, stopping) = (tls.clone(), Arc::clone(&shared), stopping.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(shared.limits.handshake, tls.accept(tcp));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return tracing::info!(peer = %addr, error = %e, "TLS handshake refused"),
                    Err(_) => return tracing::info!(peer = %addr, "TLS handshake timed out"),
                },
                () = slot.evicted() => return tracing::info!(peer = %addr, "connection closed in its handshake: the listener was full"),
            };
            let session = stream.get_ref().1;
            let cert = session.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
            let tls_version = match session.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "TLS",
            };
            let proxy = cert.as_deref().is_some_and(|c| shared.proxies.admits(c));
            let peer = Peer {
                addr,
                tls: tls_version,
                // the proxy's own certificate is never a client's
                cert: cert.filter(|_| !proxy),
                proxy,
                hosts: None,
            };
            connection(stream, peer, slot, shared, stopping).await;
        });
    }
    drain(&acceptor, "EST", &shared.limits).await;
}

/// Plain HTTP on loopback for a proxy on this machine that speaks plain
/// HTTP upstream (`certgate serve`): only a process of the proxy's user may
/// connect, and a request must name one of the proxy's hosts.
pub async fn serve_plain_proxy(mut acceptor: Acceptor, plain: PlainProxy, shared: Arc<Shared>, mut stopping: Stopping) {
    let local = acceptor.local_addr().unwrap_or(plain.listen);
    let plain = Arc::new(plain);
    loop {
        let (tcp, addr, slot) = tokio::select! {
            next = acceptor.next() => next,
            () = stopping.wait() => break,
        };
        let uid = peer_uid(addr, local);
        if uid != Some(plain.uid) {
            tracing::warn!(peer = %addr, uid = ?uid, proxy_user = plain.uid, "a connection to the plain proxy listener from another user's process: closed");
            continue;
        }
        let peer = Peer {
            addr,
            tls: "plain HTTP from the proxy",
            cert: None,
            proxy: true,
            hosts: Some(Arc::clone(&plain)),
        };
        tokio::spawn(connection(tcp, peer, slot, Arc::clone(&shared), stopping.clone()));
    }
    drain(&acceptor, "plain proxy", &shared.limits).await;
}

/// HTTP/1.1 on one connection, TLS or not, within the limits.
async fn connection<IO>(io: IO, peer: Peer, slot: Slot, shared: Arc<Shared>, stopping: Stopping)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let addr = peer.addr;
    let limits = shared.limits;
    let handler = move |req: Request<Incoming>| {
        let (shared, peer) = (Arc::clone(&shared), peer.clone());
        async move { routes::handle(&shared, &peer, req).await }
    };
    serve_http1(io, addr, &slot, &limits, handler, stopping).await;
}

/// Serves the metrics (Prometheus text) on plain HTTP, for a scraper.
pub async fn serve_metrics(mut acceptor: Acceptor, authority: Arc<Authority>, limits: Limits, mut stopping: Stopping) {
    loop {
        let (tcp, addr, slot) = tokio::select! {
            next = acceptor.next() => next,
            () = stopping.wait() => break,
        };
        let authority = Arc::clone(&authority);
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let handler = move |req: Request<Incoming>| {
                let authority = Arc::clone(&authority);
                async move {
                    let reply = if req.uri().path() == "/metrics" {
                        routes::text(StatusCode::OK, authority.metrics()).map(|mut r| {
                            r.headers_mut()
                                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
                            r
                        })
                    } else {
                        routes::text(StatusCode::NOT_FOUND, "only /metrics is here".into())
                    };
                    reply.unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
                }
            };
            serve_http1(tcp, addr, &slot, &limits, handler, stopping).await;
        });
    }
    drain(&acceptor, "metrics", &limits).await;
}

/// Waits for a stopped listener's requests in flight, at most the drain time.
async fn drain(acceptor: &Acceptor, name: &str, limits: &Limits) {
    let left = acceptor.drained(limits.drain).await;
    if left > 0 {
        tracing::warn!(listener = name, left, drain = ?limits.drain, "connections still open after the drain time: closed");
    }
}
