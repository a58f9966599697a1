//! `certgate serve`'s listener: a local mTLS edge that runs a proxy-wasm
//! filter the way Envoy does. It loads the module and the policy, starts the
//! workers (each its own VM, as an Envoy worker), accepts connections up to
//! `max_connections` and hands each to a worker ([`crate::connection`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_host::{HarnessError, PluginSettings, WasmModule};
use hyper::Uri;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::connection::{serve_connection, ConnectionSettings};
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
    /// Connections open at once, handshakes included; more are closed at
    /// once (as Envoy's listener `max_connections`), and counted in the log.
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
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let done = tokio::spawn(accept_loop(listener, state, workers, slots, stopped));
    tracing::info!(%addr, upstream = %settings.upstream, workers = settings.workers, "certgate edge listening");
    Ok(RunningEdge {
        addr,
        stop,
        done: Some(done),
    })
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<ConnectionSettings>,
    workers: Vec<WorkerHandle>,
    slots: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut next = 0usize;
    let mut refused = RefusedConnections::default();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            },
        };
        // over --max-connections: closed at once, before any TLS work
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused.count(peer);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let local = listener.local_addr().unwrap_or(peer);
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
                serve_connection(tcp, peer, local, state, worker, upstreams, watcher).await;
                drop(slot);
            })
        }));
    }
    drop(listener);
    // each worker finishes its requests in flight, then ends
    let _ = tokio::task::spawn_blocking(move || {
        for worker in workers {
            worker.join();
        }
    })
    .await;
}

/// Connections refused over `--max-connections`, logged at most once a second
/// with how many, so a flood cannot flood the log too.
#[derive(Debug, Default)]
struct RefusedConnections {
    since_log: u64,
    last_log: Option<Instant>,
}

impl RefusedConnections {
    fn count(&mut self, peer: SocketAddr) {
        self.since_log += 1;
        if self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            tracing::warn!(%peer, refused = self.since_log, "connection refused: --max-connections reached");
            self.since_log = 0;
            self.last_log = Some(Instant::now());
        }
    }
}
