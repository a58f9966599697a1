//! One client connection on its worker: the TLS handshake (with its
//! timeout), Envoy's connection properties from the verified certificate,
//! then HTTP/1.1 or HTTP/2 under Envoy's header limits until it closes; each
//! request goes to [`crate::request`].

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use certgate_host::Connection;
use certgate_net::{Guarded, Slot};
use hyper::service::service_fn;
use hyper::Uri;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio_rustls::TlsAcceptor;

use crate::request::handle;
use crate::upstream::Upstreams;
use crate::worker::Worker;

/// What every connection of one edge shares.
pub(crate) struct ConnectionSettings {
    /// The application.
    pub(crate) upstream: Uri,
    pub(crate) tls: TlsAcceptor,
    pub(crate) handshake_timeout: Duration,
    pub(crate) header_timeout: Duration,
}

/// How long what a client still sends after its last reply is read and
/// dropped, so it reads the reply instead of a reset.
const LINGER: Duration = Duration::from_secs(5);

/// Envoy's default limits on a request's headers (`max_request_headers_kb`,
/// `max_headers_count`): a request over either is answered 431.
const MAX_HEADER_BYTES: usize = 60 * 1024;
const MAX_HEADERS: usize = 100;

/// A connection as the listener accepted it: its socket, both ends, and its
/// place under the connection cap.
pub(crate) struct Accepted {
    pub(crate) tcp: tokio::net::TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) slot: Slot,
}

/// One connection on its worker: the TLS handshake, Envoy's connection
/// properties, then HTTP/1.1 or HTTP/2 until it closes.
pub(crate) async fn serve_connection(
    accepted: Accepted,
    state: Arc<ConnectionSettings>,
    worker: Rc<RefCell<Worker>>,
    upstreams: Rc<Upstreams>,
    watcher: Watcher,
) {
    let Accepted { tcp, peer, local, slot } = accepted;
    let slot = &slot;
    let handshake = tokio::time::timeout(state.handshake_timeout, state.tls.accept(tcp));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::info!(%peer, "TLS handshake refused: {e}");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = slot.evicted() => {
            tracing::info!(%peer, "connection closed in its handshake: the listener was full");
            return;
        }
    };
    let (_, session) = stream.get_ref();
    let sni = session.server_name().map(str::to_owned);
    // what rustls agreed on; the edge offers only these two
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
        Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
        _ => None,
    };
    let mut conn = Connection::tls(peer, local, sni.as_deref(), version);
    if let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) {
        // rustls only completes a handshake with a certificate it verified
        match conn.with_client_cert_der(leaf.as_ref(), true) {
            Ok(c) => conn = c,
            Err(e) => {
                tracing::warn!(%peer, "client certificate unreadable: {e}");
                return;
            }
        }
    }
    let conn = Rc::new(conn);
    let header_timeout = state.header_timeout;
    let upstream = Rc::new(state.upstream.clone());
    let phase = slot.phase();
    let seen = Arc::clone(&phase);
    let service = service_fn(move |req| {
        // a connection with a request in flight is never closed to make room
        seen.request_started();
        let reply = handle(
            req,
            Rc::clone(&upstream),
            Rc::clone(&conn),
            Rc::clone(&worker),
            Rc::clone(&upstreams),
        );
        let seen = Arc::clone(&seen);
        async move {
            let reply = reply.await;
            seen.request_done();
            reply
        }
    });
    let mut builder = auto::Builder::new(LocalExec);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    // a refused client still sending (a body over a limit) reads its reply
    let stream = Guarded::new(stream, phase, LINGER);
    let serving = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    // a client over a limit (431, header timeout) or gone mid-request: say why
    tokio::select! {
        served = watcher.watch(serving.into_owned()) => {
            if let Err(e) = served {
                tracing::info!(%peer, "connection closed: {e}");
            }
        }
        () = slot.evicted() => tracing::info!(%peer, "connection closed: it waited longest without a request while the listener was full"),
    }
}

/// Runs HTTP/2 streams on the worker's own loop (they hold the worker).
#[derive(Debug, Clone, Copy)]
struct LocalExec;

impl<F: std::future::Future + 'static> hyper::rt::Executor<F> for LocalExec {
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}
