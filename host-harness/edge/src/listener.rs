//! `certgate serve`'s listener: a local mTLS edge that runs a proxy-wasm
//! filter the way Envoy does. It loads the module and the policy, starts the
//! workers (each its own VM, as an Envoy worker), accepts connections up to
//! `max_connections` and hands each to a worker ([`crate::connection`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use certgate_host::{HarnessError, PluginSettings, WasmModule};
use certgate_net::Acceptor;
use hyper::Uri;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::connection::{serve_connection, Accepted, ConnectionSettings};
use crate::policy_file::{read_policy, watch as watch_policy, PolicyError, PolicyStore};
use crate::tls::{server_config, TlsFiles};
use crate::worker::{WorkerHandle, WorkerShared};

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// `http://host:port` of the application.
    pub upstream: Uri,
    /// Server certificate, client CAs, CRLs, whether a client certificate is required.
    pub tls: TlsFiles,
    /// The filter module.
    pub wasm: PathBuf,
    /// The policy file, watched for changes.
    pub policy: PathBuf,
    /// How long a client has to finish its handshake.
    pub handshake_timeout: Duration,
    /// How long a client has to send a request's headers (HTTP/1.1), once the
    /// connection is up or after the previous response: a slower client's
    /// connection is closed, and the log says why.
    pub header_timeout: Duration,
    /// Connections open at once, handshakes included. At the cap the
    /// connection idle longest is closed to make room; if all are busy the
    /// new one is closed at once (as Envoy's listener `max_connections`),
    /// and counted in the log.
    pub max_connections: usize,
    /// How often the policy file is looked at.
    pub reload_every: Duration,
    /// Named upstreams for the filter's HTTP calls.
    pub clusters: HashMap<String, Uri>,
    /// Worker threads, each with its own VM.
    pub workers: usize,
}

/// Why an edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The TLS files.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The module.
    #[error("{0}")]
    Wasm(HarnessError),
    /// The policy, naming its file.
    #[error("{path}: {source}")]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// Why it was not taken.
        source: PolicyError,
    },
    /// The port.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// A worker thread could not start.
    #[error("cannot start a worker thread: {0}")]
    Worker(std::io::Error),
}

/// A running edge; dropping it (or `shutdown`) stops it gracefully.
#[derive(Debug)]
pub struct RunningEdge {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl RunningEdge {
    /// Stops accepting, lets requests in flight finish (up to 10 s).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

impl Drop for RunningEdge {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts an edge. Errors name the file or port at fault.
pub async fn start(settings: EdgeSettings) -> Result<RunningEdge, EdgeError> {
    let tls = TlsAcceptor::from(server_config(&settings.tls)?);
    let module = WasmModule::from_file(&settings.wasm).map_err(EdgeError::Wasm)?;
    let policy_error = |source| EdgeError::Policy {
        path: settings.policy.clone(),
        source,
    };
    let json = read_policy(&settings.policy).map_err(policy_error)?;
    // refuse to start on a policy the filter refuses
    module
        .start(PluginSettings::new(json.clone()).name("certgate"))
        .map_err(|e| policy_error(e.into()))?;
    let policy = Arc::new(PolicyStore::new(json));
    let (stop, stopped) = watch::channel(false);
    watch_policy(
        settings.policy.clone(),
        module.clone(),
        Arc::clone(&policy),
        settings.reload_every,
        stopped.clone(),
    );

    let listener = TcpListener::bind(settings.listen).await.map_err(|source| EdgeError::Listen {
        addr: settings.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| EdgeError::Listen {
        addr: settings.listen,
        source,
    })?;
    let shared = Arc::new(WorkerShared {
        module,
        policy,
        shared_data: Default::default(),
        clusters: settings.clusters.clone(),
        name: "certgate".into(),
    });
    let workers = (0..settings.workers.max(1))
        .map(|i| WorkerHandle::spawn(Arc::clone(&shared), i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(EdgeError::Worker)?;
    let state = Arc::new(ConnectionSettings {
        upstream: settings.upstream.clone(),
        tls,
        handshake_timeout: settings.handshake_timeout,
        header_timeout: settings.header_timeout,
    });
    let acceptor = Acceptor::new(listener, settings.max_connections, "certgate serve");
    let done = tokio::spawn(accept_loop(acceptor, state, workers, stopped));
    tracing::info!(%addr, upstream = %settings.upstream, workers = settings.workers, "certgate edge listening");
    Ok(RunningEdge {
        addr,
        stop,
        done: Some(done),
    })
}

async fn accept_loop(
    mut acceptor: Acceptor,
    state: Arc<ConnectionSettings>,
    workers: Vec<WorkerHandle>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut next = 0usize;
    let local = acceptor.local_addr().ok();
    loop {
        // over --max-connections the connection idle longest is closed to make
        // room (or the new one, if all are busy); EMFILE backs off
        let (tcp, peer, slot) = tokio::select! {
            _ = stopped.changed() => break,
            accepted = acceptor.next() => accepted,
        };
        let local = local.unwrap_or(peer);
        // the connection moves to its worker's event loop, and stays there
        let Ok(tcp) = tcp.into_std() else { continue };
        let Some(worker) = workers.get(next % workers.len().max(1)) else {
            break;
        };
        next = next.wrapping_add(1);
        let state = Arc::clone(&state);
        worker.serve(Box::new(move |worker, upstreams, watcher| {
            Box::pin(async move {
                let Ok(tcp) = tokio::net::TcpStream::from_std(tcp) else { return };
                let accepted = Accepted { tcp, peer, local, slot };
                // the slot is freed when the connection ends
                serve_connection(accepted, state, worker, upstreams, watcher).await;
            })
        }));
    }
    drop(acceptor);
    // each worker finishes its requests in flight, then ends
    let _ = tokio::task::spawn_blocking(move || {
        for worker in workers {
            worker.join();
        }
    })
    .await;
}
