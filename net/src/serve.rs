//! HTTP/1.1 on one connection within its limits, and a shutdown that lets
//! requests in flight finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::accept::Slot;
use crate::conn::Guarded;
use crate::limits::Limits;

/// Envoy's default limits on a request's headers (`max_request_headers_kb`,
/// `max_headers_count`): a request over either is refused.
pub const MAX_HEADER_BYTES: usize = 60 * 1024;
/// See [`MAX_HEADER_BYTES`].
pub const MAX_HEADERS: usize = 100;

/// A server's stop signal, watched by each of its connections.
#[derive(Debug, Clone)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// A new signal, and what sets it.
    pub fn channel() -> (watch::Sender<bool>, Stopping) {
        let (tx, rx) = watch::channel(false);
        (tx, Stopping(rx))
    }

    /// Resolves once the server stops (or whoever sets it is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Serves HTTP/1.1 on `io` with `handler` until the client closes, the
/// connection overstays a stage ([`Limits`]: header, idle), its listener
/// needs its place, or the server stops (a request in flight finishes
/// first). The connection's IO lingers when closed, so a client still
/// sending reads its reply.
pub async fn serve_http1<IO, F, Fut>(io: IO, peer: SocketAddr, slot: &Slot, limits: &Limits, handler: F, mut stopping: Stopping)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let phase = slot.phase();
    let io = Guarded::new(io, Arc::clone(&phase), limits.linger);
    let handler = Arc::new(handler);
    let seen = Arc::clone(&phase);
    let service = hyper::service::service_fn(move |req| {
        seen.request_started();
        let reply = handler(req);
        let seen = Arc::clone(&seen);
        async move {
            let reply = reply.await;
            seen.request_done();
            Ok::<_, Infallible>(reply)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_HEADER_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        ended = conn.as_mut() => {
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
        why = phase.overstayed(limits) => {
            tracing::info!(%peer, "connection closed: {why}");
        }
        () = slot.evicted() => {
            tracing::info!(%peer, "connection closed: it waited longest without a request while the listener was full");
        }
        () = stopping.wait() => {
            // an idle connection closes now; a request in flight is answered first
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
