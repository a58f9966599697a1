//! The arguments of `certgate pki serve`, `pki enroll` and `pki reenroll`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};

use certgate_pki::cli::SanArgs;
use certgate_pki::keys::{KeyKind, Passphrase};
use certgate_pki::store::Home;

use certgate_net::{Acceptor, Limits, Stopping};

use crate::authority::approvers::Approvers;
use crate::authority::{Authority, Label, QueueLimits, Settings, Ways};
use crate::client::{self, Enrollment, Files, Server};
use crate::server::{ClientVerifier, PlainProxy, ProxyName, ProxyTrust, Shared};

/// A way in to enrollment, each off unless given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Allow {
    /// One-time tokens from `pki token`, as the HTTP Basic password.
    Token,
    /// Requests without a token wait for `pki requests approve`.
    Queue,
    /// `simplereenroll` with the client's current, unrevoked certificate at TLS.
    Renewal,
}

/// The enrollment subcommands of `certgate pki`.
#[derive(Debug, Subcommand)]
pub enum EstCommand {
    /// Run the EST server (RFC 7030) over the PKI home: cacerts, simpleenroll, simplereenroll, csrattrs, under /.well-known/est/[LABEL/].
    Serve(ServeArgs),
    /// Get a certificate from an EST server: a new key and CSR, with a one-time token or through the approval queue (polling while it waits).
    Enroll(EnrollArgs),
    /// Renew a certificate over EST with itself (mTLS, RFC 7030 simplereenroll) once a share of its lifetime has passed: a new key, the same names; for cron or a systemd timer. (`pki renew` renews a CA.)
    Reenroll(RenewArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (TLS).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// The server's certificate chain (PEM), e.g. from `pki server est.example.org`.
    #[arg(long)]
    pub cert: PathBuf,
    /// The server's private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The CA that signs requests without a label.
    #[arg(long, default_value = "client-ca")]
    pub ca: String,
    /// A CA label, LABEL=CA or LABEL=CA:WAY,WAY: /.well-known/est/LABEL/... is signed by CA, with its own ways in (token, queue, renewal) or else --allow's. Repeatable.
    #[arg(long, value_parser = parse_label)]
    pub label: Vec<(String, Label)>,
    /// Who may enroll without a label (and with a label that names none): token, queue, renewal. Repeatable; none is allowed unless given.
    #[arg(long, value_enum, required = true)]
    pub allow: Vec<Allow>,
    /// Days of validity of what is issued.
    #[arg(long, default_value_t = certgate_pki::enroll::DEFAULT_DAYS)]
    pub days: u32,
    /// Days after its expiry a certificate may still renew itself (with --allow renewal; 0: it cannot). SECURITY.md says what this trusts.
    #[arg(long, default_value_t = 0)]
    pub renewal_grace: u32,
    /// Seconds a queued requester is told to wait before asking again (Retry-After).
    #[arg(long, default_value_t = 60)]
    pub retry_after: u32,
    /// A shell command that decides each new queued request at once: it reads the request (JSON) on stdin; exit 0 approves, else (or after 10 s) a person decides.
    #[arg(long)]
    pub approve_command: Option<String>,
    /// The proxy (Envoy with certgate's rfc9440 headers) that connects over TLS with its own client certificate, named here: sha256:HEX (that very certificate), DNS:NAME, URI:URI or email:ADDRESS (a SAN it holds). Its requests' Client-Cert header is the client's certificate, verified here again. Repeatable. SECURITY.md says what this trusts.
    #[arg(long, value_name = "NAME")]
    pub trusted_proxy_cert: Vec<ProxyName>,
    /// Also listen on this loopback address in plain HTTP, for a proxy on this machine that speaks plain HTTP upstream (certgate serve --upstream http://ADDR) and hands the client's certificate on as Client-Cert (verified here). Needs --proxy-user and --proxy-host.
    #[arg(long, value_name = "ADDR", requires_all = ["proxy_user", "proxy_host"])]
    pub proxy_listen: Option<SocketAddr>,
    /// The user (name or uid) whose processes may connect to --proxy-listen: the proxy's. Connections from other users' processes are closed unanswered.
    #[arg(long, value_name = "USER", requires = "proxy_listen")]
    pub proxy_user: Option<String>,
    /// A Host (name[:port]) the proxy in front of --proxy-listen serves; a request naming another is refused (421). Repeatable.
    #[arg(long, value_name = "HOST", requires = "proxy_listen")]
    pub proxy_host: Vec<String>,
    /// Also serve Prometheus metrics on this address (plain HTTP, /metrics).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// File holding the CA key's passphrase, if it is encrypted.
    #[arg(long)]
    pub ca_password_file: Option<PathBuf>,
    /// Serve the pages for people too: /register/ (the browser makes the key and the CSR and enrolls over EST, with a token or through the queue), /approvals/ (with --approvers) and /whoami. Their files are built into the command.
    #[arg(long)]
    pub register: bool,
    /// Serve the pages' files from this directory (a source tree's pki/est/web, after `npm ci && npm run build` there) instead of those built in, read again at each request: for work on the page.
    #[arg(long, value_name = "DIR", requires = "register", hide = true)]
    pub web_dir: Option<PathBuf>,
    /// A certgate policy (JSON, as the filter's): a client certificate it admits to /approvals/ may approve and reject queued requests on that page. It must not admit /approvals/ without a certificate. SECURITY.md says what this trusts.
    #[arg(long, value_name = "POLICY", requires = "register")]
    pub approvers: Option<PathBuf>,
    /// Requests one address may have waiting in the queue; past it, 429 and nothing is written.
    #[arg(long, default_value_t = QueueLimits::default().per_address)]
    pub max_pending_per_address: usize,
    /// Requests waiting in the queue in all; past it, 503 and nothing is written.
    #[arg(long, default_value_t = QueueLimits::default().total)]
    pub max_pending: usize,
    /// Days a request may wait for a decision; then it expires (`pki requests purge` removes it).
    #[arg(long, default_value_t = QueueLimits::default().days)]
    pub pending_days: u32,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Each listener's limits (`certgate-net`).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Seconds a client has to finish the TLS handshake.
    #[arg(long, default_value_t = 10)]
    pub handshake_timeout: u64,
    /// Seconds a client has to send a request's headers, from its first byte (or the connection's start).
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a kept-alive connection may wait for its next request.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u64,
    /// Seconds a request's body gets, plus one per --body-min-rate bytes; a slower body is answered 408.
    #[arg(long, default_value_t = 10)]
    pub body_timeout: u64,
    /// Bytes per second a body must come at, past --body-timeout.
    #[arg(long, default_value_t = 1024)]
    pub body_min_rate: u64,
    /// Connections open at once on each listener, handshakes included. At the cap, the one idle longest is closed to make room; if all are busy, the new one is closed.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Seconds what a client still sends after its last reply is read and dropped, so it reads the reply (a 413, say) instead of a reset.
    #[arg(long, default_value_t = 5)]
    pub linger: u64,
    /// Seconds requests in flight may take to finish when the server stops.
    #[arg(long, default_value_t = 10)]
    pub drain_timeout: u64,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        let secs = std::time::Duration::from_secs;
        Limits {
            handshake: secs(self.handshake_timeout.max(1)),
            header: secs(self.header_timeout.max(1)),
            idle: secs(self.idle_timeout.max(1)),
            body: secs(self.body_timeout.max(1)),
            body_min_rate: self.body_min_rate.max(1),
            max_connections: self.max_connections.max(1),
            linger: secs(self.linger),
            drain: secs(self.drain_timeout),
        }
    }
}

/// A user named by name (looked up in /etc/passwd) or number.
fn user_id(user: &str) -> Result<u32, EstError> {
    if let Ok(uid) = user.parse() {
        return Ok(uid);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut fields = l.split(':');
            (fields.next() == Some(user)).then(|| fields.nth(1)?.parse().ok())?
        })
        .ok_or_else(|| EstError::Usage(format!("--proxy-user {user}: no such user in /etc/passwd (give a uid)")))
}

fn parse_label(s: &str) -> Result<(String, Label), String> {
    let (label, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write LABEL=CA or LABEL=CA:WAY,WAY"))?;
    let (ca, ways) = match rest.split_once(':') {
        None => (rest, None),
        Some((ca, list)) => {
            let mut ways = Ways::default();
            for way in list.split(',') {
                match way.trim() {
                    "token" => ways.tokens = true,
                    "queue" => ways.queue = true,
                    "renewal" => ways.renewal = true,
                    other => return Err(format!("{s:?}: {other:?} is not a way in (token, queue, renewal)")),
                }
            }
            (ca, Some(ways))
        }
    };
    Ok((label.to_owned(), Label { ca: ca.to_owned(), ways }))
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The EST server, https://HOST[:PORT].
    #[arg(long)]
    pub server: String,
    /// The CA certificate(s) the server's certificate chains to (PEM).
    #[arg(long)]
    pub cacert: PathBuf,
    /// The server's CA label, if it has several.
    #[arg(long)]
    pub label: Option<String>,
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Where to write: OUT.key, OUT.pem, OUT-chain.pem (and OUT.csr while the request waits).
    #[arg(long)]
    pub out: PathBuf,
    /// The CN to ask for.
    #[arg(long)]
    pub cn: Option<String>,
    #[command(flatten)]
    pub names: SanArgs,
    /// A one-time token (`pki token`); without one the request waits for approval.
    #[arg(long, env = "CERTGATE_EST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The HTTP Basic user: how the approver sees who asked.
    #[arg(long)]
    pub user: Option<String>,
    /// The new key's algorithm.
    #[arg(long, value_enum, default_value = "p256")]
    pub key_type: KeyKind,
    /// Seconds to keep polling while the request waits for approval.
    #[arg(long, default_value_t = 300)]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The certificate to renew, by its files' base: BASE.pem, BASE.key, BASE-chain.pem (as `pki enroll --out` wrote them).
    #[arg(long)]
    pub files: PathBuf,
    /// Renew once this share of the lifetime has passed.
    #[arg(long, default_value_t = 2.0 / 3.0)]
    pub at: f64,
    /// Renew now, whatever the lifetime.
    #[arg(long)]
    pub force: bool,
    /// The new key's algorithm.
    #[arg(long, value_enum, default_value = "p256")]
    pub key_type: KeyKind,
}

impl ServerArgs {
    fn server(&self) -> Server {
        Server {
            url: self.url(),
            label: self.label.clone(),
            trust: self.cacert.clone(),
        }
    }

    fn url(&self) -> String {
        self.server.trim_end_matches('/').to_owned()
    }
}

/// What `pki serve`, `enroll` or `reenroll` could not do; each names the
/// file, flag, address or server at fault.
#[derive(Debug, thiserror::Error)]
pub enum EstError {
    /// The PKI home.
    #[error(transparent)]
    Pki(#[from] certgate_pki::PkiError),
    /// The server's TLS set-up.
    #[error(transparent)]
    Tls(#[from] crate::server::SetupError),
    /// The pages.
    #[error(transparent)]
    Web(#[from] crate::web::WebError),
    /// The approvers' policy.
    #[error(transparent)]
    Approvers(#[from] crate::authority::approvers::ApproversError),
    /// The client.
    #[error(transparent)]
    Client(#[from] client::ClientError),
    /// An argument that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// An address that cannot be listened on.
    #[error("cannot listen on {addr}: {cause}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        cause: std::io::Error,
    },
    /// The async runtime.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

fn runtime() -> Result<tokio::runtime::Runtime, EstError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(EstError::Runtime)
}

/// Runs one subcommand; `serve` runs until interrupted. Returns the lines to print.
pub fn run(dir: &Path, command: &EstCommand) -> Result<Vec<String>, EstError> {
    match command {
        EstCommand::Serve(a) => serve(dir, a),
        EstCommand::Enroll(a) => {
            let what = Enrollment {
                cn: a.cn.clone(),
                sans: a.names.sans(),
                key: a.key_type,
                token: a.token.clone(),
                user: a.user.clone(),
                wait: a.wait,
            };
            Ok(runtime()?.block_on(client::enroll(&a.server.server(), &what, &Files::at(&a.out)))?)
        }
        EstCommand::Reenroll(a) => {
            if !(0.0..=1.0).contains(&a.at) {
                return Err(EstError::Usage(format!(
                    "--at {}: give a share of the lifetime between 0 and 1",
                    a.at
                )));
            }
            Ok(runtime()?.block_on(client::renew(&a.server.server(), &Files::at(&a.files), a.key_type, a.at, a.force))?)
        }
    }
}

fn serve(dir: &Path, a: &ServeArgs) -> Result<Vec<String>, EstError> {
    let settings = Settings {
        ways: Ways {
            tokens: a.allow.contains(&Allow::Token),
            queue: a.allow.contains(&Allow::Queue),
            renewal: a.allow.contains(&Allow::Renewal),
        },
        renewal_grace: std::time::Duration::from_secs(u64::from(a.renewal_grace) * 86_400),
        days: a.days,
        retry_after: a.retry_after.max(1),
        default_ca: a.ca.clone(),
        labels: a.label.iter().cloned().collect::<BTreeMap<_, _>>(),
        approve_command: a.approve_command.as_ref().map(|c| vec!["sh".into(), "-c".into(), c.clone()]),
        queue: QueueLimits {
            per_address: a.max_pending_per_address,
            total: a.max_pending,
            days: a.pending_days,
        },
        reserved: a.trusted_proxy_cert.iter().filter_map(ProxyName::san_text).collect(),
    };
    let pass = Passphrase::from_file(a.ca_password_file.clone(), "--ca-password-file");
    let web = match (&a.web_dir, a.register) {
        (Some(dir), _) => Some(crate::web::Web::from_dir(dir)?),
        (None, true) => Some(crate::web::Web::builtin()),
        (None, false) => None,
    }
    .map(Arc::new);
    let approvers = a.approvers.as_deref().map(Approvers::load).transpose()?;
    let (authority, report) = Authority::open(Home::new(dir), settings, &pass)?;
    let authority = authority.with_approvers(approvers);
    for line in report {
        eprintln!("{line}");
    }
    let renews = a.allow.contains(&Allow::Renewal) || a.label.iter().any(|(_, l)| l.ways.is_some_and(|w| w.renewal));
    if a.renewal_grace > 0 && !renews {
        return Err(EstError::Usage(
            "--renewal-grace is for renewal, which no --allow or --label allows".into(),
        ));
    }
    let plain = match (a.proxy_listen, &a.proxy_user) {
        (Some(listen), Some(user)) => {
            if !listen.ip().is_loopback() {
                return Err(EstError::Usage(format!(
                    "--proxy-listen {listen}: plain HTTP is for a proxy on this machine; give a loopback address"
                )));
            }
            Some(PlainProxy {
                listen,
                uid: user_id(user)?,
                hosts: a.proxy_host.clone(),
            })
        }
        _ => None,
    };
    let grace = std::time::Duration::from_secs(u64::from(a.renewal_grace) * 86_400);
    let verifier = ClientVerifier::new(&authority, grace)?;
    let tls = crate::server::tls_config(&a.cert, &a.key, Arc::clone(&verifier))?;
    let limits = a.limits.limits();
    let shared = Arc::new(Shared {
        authority: Arc::new(authority),
        web,
        verifier: Arc::clone(&verifier),
        proxies: ProxyTrust {
            names: a.trusted_proxy_cert.clone(),
        },
        limits,
    });
    runtime()?.block_on(async {
        let bind = |addr: SocketAddr, name: &'static str| async move {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|cause| EstError::Listen { addr, cause })?;
            Ok::<_, EstError>(Acceptor::new(listener, limits.max_connections, name))
        };
        let (stop, stopping) = Stopping::channel();
        let mut running = tokio::task::JoinSet::new();
        let est = bind(a.listen, "EST").await?;
        let local = est.local_addr().map_err(|cause| EstError::Listen { addr: a.listen, cause })?;
        if let Some(plain) = plain {
            let acceptor = bind(plain.listen, "plain proxy").await?;
            tracing::info!(address = %plain.listen, uid = plain.uid, hosts = ?plain.hosts, "plain HTTP for the proxy on this machine");
            running.spawn(crate::server::serve_plain_proxy(
                acceptor,
                plain,
                Arc::clone(&shared),
                stopping.clone(),
            ));
        }
        if let Some(addr) = a.metrics_listen {
            let acceptor = bind(addr, "metrics").await?;
            tracing::info!(address = %addr, "metrics on http://{addr}/metrics");
            running.spawn(crate::server::serve_metrics(
                acceptor,
                Arc::clone(&shared.authority),
                limits,
                stopping.clone(),
            ));
        }
        let watching = tokio::spawn(Arc::clone(&verifier).watch());
        // the line a script waits for
        println!("certgate EST server on https://{local}/.well-known/est/");
        if shared.web.is_some() {
            println!("registration page on https://{local}/register/");
        }
        running.spawn(crate::server::serve(est, tls, Arc::clone(&shared), stopping));
        stopped().await;
        tracing::info!(drain = ?limits.drain, "stopping: no new connections; requests in flight may finish");
        let _ = stop.send(true);
        while running.join_next().await.is_some() {}
        watching.abort();
        Ok::<_, EstError>(())
    })?;
    Ok(Vec::new())
}

/// Resolves on Ctrl-C or SIGTERM (what systemd and Kubernetes send).
async fn stopped() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_names_its_ca_and_may_name_its_ways_in() {
        assert_eq!(
            parse_label("people=client-ca").unwrap(),
            (
                "people".to_owned(),
                Label {
                    ca: "client-ca".into(),
                    ways: None
                }
            )
        );
        let (_, robots) = parse_label("robots=client-ca:queue,renewal").unwrap();
        assert_eq!(
            robots.ways,
            Some(Ways {
                tokens: false,
                queue: true,
                renewal: true
            })
        );
        assert!(parse_label("people").unwrap_err().contains("LABEL=CA"));
        assert!(parse_label("x=ca:tokens").unwrap_err().contains("\"tokens\" is not a way in"));
    }
}
