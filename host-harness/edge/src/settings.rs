//! `certgate serve`'s settings: one struct that is both the command's flags
//! and its `--config` TOML file (flags win; the file's paths are relative to
//! it), resolved into [`EdgeSettings`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::Uri;

use crate::listener::EdgeSettings;
use crate::locate::{default_wasm, relative_to, LocateError};
use crate::tls::{ClientCertMode, TlsFiles};

/// What `certgate serve` takes, from flags or from the TOML file.
#[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeOptions {
    /// A TOML file with any of the settings below (flags override it; its paths are relative to it).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Where to listen (default 127.0.0.1:8443).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// The application, e.g. http://127.0.0.1:8080
    #[arg(long)]
    pub upstream: Option<String>,
    /// The policy JSON; edits are applied without a restart.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Server certificate chain (PEM).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Trusted client CAs (PEM bundle).
    #[arg(long)]
    pub client_ca: Option<PathBuf>,
    /// CRLs (PEM), repeatable.
    #[arg(long)]
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// `required` (the default) or `optional`, as nginx's ssl_verify_client.
    #[arg(long, value_enum)]
    pub client_cert: Option<ClientCertMode>,
    /// The filter module (default: the ./dev build, or $CERTGATE_WASM).
    #[arg(long)]
    pub wasm: Option<PathBuf>,
    /// Seconds a client has to finish the TLS handshake (default 10).
    #[arg(long)]
    pub handshake_timeout: Option<u64>,
    /// Seconds a client has to send a request's headers; a slower one is disconnected (default 10).
    #[arg(long)]
    pub header_timeout: Option<u64>,
    /// Connections open at once, handshakes included; more are closed at once (default 1024).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// A named upstream for the filter's HTTP calls (Envoy's cluster):
    /// NAME=http://host:port, repeatable.
    #[arg(long = "cluster")]
    #[serde(default)]
    pub cluster: Vec<String>,
    /// Worker threads, each with its own VM (Envoy's --concurrency; default:
    /// the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
}

/// Settings that cannot be used, naming the one at fault.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The `--config` file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The `--config` file is not valid TOML for these settings.
    #[error("{path}: {source}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its place.
        source: toml::de::Error,
    },
    /// A setting every edge needs.
    #[error("missing {0}: give --{flag} or set it in --config", flag = .0.replace('_', "-"))]
    Missing(&'static str),
    /// The upstream is not `http://host:port`.
    #[error("--upstream {0}: give http://host:port")]
    Upstream(String),
    /// A `--cluster` that is not `NAME=http://host:port`.
    #[error("--cluster {0}: give NAME=http://host:port")]
    Cluster(String),
    /// No module given and none built.
    #[error(transparent)]
    Wasm(#[from] LocateError),
    /// `--max-connections 0`: nothing could connect.
    #[error("--max-connections 0: give at least 1")]
    NoConnections,
}

fn http_uri(text: &str) -> Option<Uri> {
    let uri: Uri = text.parse().ok()?;
    (uri.scheme_str() == Some("http") && uri.authority().is_some()).then_some(uri)
}

impl ServeOptions {
    /// Reads the `--config` file, if any, and puts these flags over it.
    pub fn with_config_file(self) -> Result<ServeOptions, SettingsError> {
        let Some(path) = self.config.clone() else { return Ok(self) };
        let text = std::fs::read_to_string(&path).map_err(|source| SettingsError::Read {
            path: path.clone(),
            source,
        })?;
        let file: ServeOptions = toml::from_str(&text).map_err(|source| SettingsError::Toml {
            path: path.clone(),
            source,
        })?;
        Ok(self.over(file.relative_to(path.parent().unwrap_or(Path::new("")))))
    }

    /// The file's paths, relative to the file's directory.
    fn relative_to(self, base: &Path) -> ServeOptions {
        let rel = |p: Option<PathBuf>| p.map(|p| relative_to(base, &p));
        ServeOptions {
            policy: rel(self.policy),
            cert: rel(self.cert),
            key: rel(self.key),
            client_ca: rel(self.client_ca),
            wasm: rel(self.wasm),
            crl: self.crl.iter().map(|p| relative_to(base, p)).collect(),
            ..self
        }
    }

    /// These settings, with `base`'s where these have none.
    fn over(self, base: ServeOptions) -> ServeOptions {
        ServeOptions {
            config: self.config,
            listen: self.listen.or(base.listen),
            upstream: self.upstream.or(base.upstream),
            policy: self.policy.or(base.policy),
            cert: self.cert.or(base.cert),
            key: self.key.or(base.key),
            client_ca: self.client_ca.or(base.client_ca),
            crl: if self.crl.is_empty() { base.crl } else { self.crl },
            client_cert: self.client_cert.or(base.client_cert),
            wasm: self.wasm.or(base.wasm),
            handshake_timeout: self.handshake_timeout.or(base.handshake_timeout),
            header_timeout: self.header_timeout.or(base.header_timeout),
            max_connections: self.max_connections.or(base.max_connections),
            cluster: if self.cluster.is_empty() { base.cluster } else { self.cluster },
            workers: self.workers.or(base.workers),
        }
    }

    /// The edge these settings describe, with defaults for what they leave out.
    pub fn resolve(self) -> Result<EdgeSettings, SettingsError> {
        let o = self.with_config_file()?;
        let upstream_text = o.upstream.ok_or(SettingsError::Missing("upstream"))?;
        let upstream = http_uri(&upstream_text).ok_or(SettingsError::Upstream(upstream_text))?;
        let mut clusters = HashMap::new();
        for c in &o.cluster {
            let (name, url) = c.split_once('=').ok_or_else(|| SettingsError::Cluster(c.clone()))?;
            let uri = http_uri(url.trim())
                .filter(|_| !name.trim().is_empty())
                .ok_or_else(|| SettingsError::Cluster(c.clone()))?;
            clusters.insert(name.trim().to_owned(), uri);
        }
        let wasm = match o.wasm {
            Some(w) => w,
            None => default_wasm()?,
        };
        Ok(EdgeSettings {
            listen: o.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443))),
            upstream,
            tls: TlsFiles {
                cert: o.cert.ok_or(SettingsError::Missing("cert"))?,
                key: o.key.ok_or(SettingsError::Missing("key"))?,
                client_ca: o.client_ca.ok_or(SettingsError::Missing("client_ca"))?,
                crls: o.crl,
                mode: o.client_cert.unwrap_or(ClientCertMode::Required),
            },
            wasm,
            policy: o.policy.ok_or(SettingsError::Missing("policy"))?,
            handshake_timeout: Duration::from_secs(o.handshake_timeout.unwrap_or(10)),
            header_timeout: Duration::from_secs(o.header_timeout.unwrap_or(10)),
            max_connections: match o.max_connections {
                Some(0) => return Err(SettingsError::NoConnections),
                Some(n) => n,
                None => 1024,
            },
            reload_every: Duration::from_millis(250),
            clusters,
            workers: o
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
                .max(1),
        })
    }
}
