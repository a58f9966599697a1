//! The arguments of `certgate pki serve`, `pki enroll` and `pki reenroll`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};

use certgate_pki::cli::SanArgs;
use certgate_pki::keys::{KeyKind, Passphrase};
use certgate_pki::store::Home;

use crate::authority::{Authority, Label, Settings, Ways};
use crate::client::{self, Enrollment, Files, Server};

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
    /// The address of the proxy (Envoy with certgate's rfc9440 headers) whose Client-Cert header is taken as the client's verified certificate; from anywhere else that header is refused. SECURITY.md says what this trusts.
    #[arg(long)]
    pub trusted_proxy: Option<std::net::IpAddr>,
    /// Also listen on this loopback address in plain HTTP, for the trusted proxy alone, when it terminates TLS and speaks plain HTTP upstream (certgate serve --upstream http://ADDR): it hands the client's certificate on as Client-Cert. Needs --trusted-proxy; other addresses are closed unanswered.
    #[arg(long, value_name = "ADDR", requires = "trusted_proxy")]
    pub proxy_listen: Option<SocketAddr>,
    /// Also serve Prometheus metrics on this address (plain HTTP, /metrics).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// File holding the CA key's passphrase, if it is encrypted.
    #[arg(long)]
    pub ca_password_file: Option<PathBuf>,
    /// Serve the pages for people too: /register/ (the browser makes the key and the CSR and enrolls over EST, with a token or through the queue), /approvals/ (with --approvers) and /whoami. DIR holds the JavaScript libraries' bundle, vendor.js (pki/est/web/dist after ./dev setup).
    #[arg(long, value_name = "DIR")]
    pub register: Option<PathBuf>,
    /// A certgate policy (JSON, as the filter's): a client certificate it admits to /approvals/ may approve and reject queued requests on that page. It must not admit /approvals/ without a certificate. SECURITY.md says what this trusts.
    #[arg(long, value_name = "POLICY", requires = "register")]
    pub approvers: Option<PathBuf>,
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
        trusted_proxy: a.trusted_proxy,
        days: a.days,
        retry_after: a.retry_after.max(1),
        default_ca: a.ca.clone(),
        labels: a.label.iter().cloned().collect::<BTreeMap<_, _>>(),
        approve_command: a.approve_command.as_ref().map(|c| vec!["sh".into(), "-c".into(), c.clone()]),
    };
    let pass = Passphrase::from_file(a.ca_password_file.clone(), "--ca-password-file");
    let (authority, report) = Authority::open(Home::new(dir), settings, &pass)?;
    for line in report {
        eprintln!("{line}");
    }
    let renews = a.allow.contains(&Allow::Renewal) || a.label.iter().any(|(_, l)| l.ways.is_some_and(|w| w.renewal));
    if a.renewal_grace > 0 && !renews {
        return Err(EstError::Usage(
            "--renewal-grace is for renewal, which no --allow or --label allows".into(),
        ));
    }
    let grace = std::time::Duration::from_secs(u64::from(a.renewal_grace) * 86_400);
    let tls = crate::server::tls_config(&a.cert, &a.key, &authority, grace)?;
    let web = a
        .register
        .as_deref()
        .map(|dir| crate::web::Web::load(dir, a.approvers.as_deref()))
        .transpose()?
        .map(Arc::new);
    let authority = Arc::new(authority);
    runtime()?.block_on(async {
        let bind = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|cause| EstError::Listen { addr, cause })
        };
        let listener = bind(a.listen).await?;
        let local = listener.local_addr().map_err(|cause| EstError::Listen { addr: a.listen, cause })?;
        if let Some(addr) = a.proxy_listen {
            if !addr.ip().is_loopback() {
                return Err(EstError::Usage(format!(
                    "--proxy-listen {addr}: plain HTTP is for a proxy on this machine; give a loopback address"
                )));
            }
            let plain = bind(addr).await?;
            tracing::info!(address = %addr, "plain HTTP for the trusted proxy on http://{addr}/");
            tokio::spawn(crate::server::serve_proxy(plain, Arc::clone(&authority), web.clone()));
        }
        if let Some(addr) = a.metrics_listen {
            let metrics = bind(addr).await?;
            tracing::info!(address = %addr, "metrics on http://{addr}/metrics");
            tokio::spawn(crate::server::serve_metrics(metrics, Arc::clone(&authority)));
        }
        // the line a script waits for
        println!("certgate EST server on https://{local}/.well-known/est/");
        if web.is_some() {
            println!("registration page on https://{local}/register/");
        }
        tokio::select! {
            () = crate::server::serve(listener, tls, authority, web) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, EstError>(())
    })?;
    Ok(Vec::new())
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
