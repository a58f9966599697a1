//! The EST client: `certgate pki enroll` (a new key, its CSR, a token or the
//! approval queue, polling on `202`) and `certgate pki reenroll` (over mTLS with
//! the current certificate, once a set share of its lifetime has passed),
//! fit for cron or a systemd timer: it says what it did and exits 0, or
//! names what failed and exits non-zero.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use rustls::crypto::ring;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use certgate_pki::keys::{write_atomically, write_new, KeyKind};
use certgate_pki::profile::Sans;

use crate::pem_files::{self, FileError};
use crate::wire;

/// What the client could not do, naming the file, the server or its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL cannot be used.
    #[error("server {0:?}: give https://HOST[:PORT]")]
    Url(String),
    /// A local file.
    #[error("{0}")]
    File(#[from] FileError),
    /// The connection or TLS failed.
    #[error("{server}: {what}")]
    Connect {
        /// The server.
        server: String,
        /// What failed.
        what: String,
    },
    /// The server refused; its sentence follows.
    #[error("the server answered {status}: {sentence}")]
    Refused {
        /// Its status.
        status: StatusCode,
        /// What it said.
        sentence: String,
    },
    /// The request is still waiting for approval when the client stopped waiting.
    #[error("the request still waits for approval after {waited} s; run the same command again to keep waiting (the key and CSR are kept in {csr})")]
    StillPending {
        /// Seconds waited.
        waited: u64,
        /// Where the CSR is kept.
        csr: PathBuf,
    },
    /// Anything else of the PKI code.
    #[error("{0}")]
    Pki(#[from] certgate_pki::PkiError),
}

/// Where the EST server is and how to trust it.
#[derive(Debug, Clone)]
pub struct Server {
    /// `https://host:port`.
    pub url: String,
    /// The CA label, if the server has several CAs.
    pub label: Option<String>,
    /// The CA certificate(s) that signed the server's certificate (PEM).
    pub trust: PathBuf,
}

struct Target {
    host: String,
    port: u16,
}

fn target(url: &str) -> Result<Target, ClientError> {
    let rest = url.strip_prefix("https://").ok_or_else(|| ClientError::Url(url.to_owned()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().map_err(|_| ClientError::Url(url.to_owned()))?),
        _ => (authority, 443),
    };
    if host.is_empty() {
        return Err(ClientError::Url(url.to_owned()));
    }
    Ok(Target {
        host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
        port,
    })
}

fn file_err(path: &Path, what: impl ToString) -> ClientError {
    ClientError::File(FileError::new(path, what))
}

/// The client's certificate chain and key, for renewal over mTLS.
pub struct ClientAuth {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Reads a certificate (chain) file and its key.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, ClientError> {
        Ok(ClientAuth {
            chain: pem_files::certificates(cert)?,
            key: pem_files::private_key(key)?,
        })
    }
}

fn tls(server: &Server, auth: Option<&ClientAuth>) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    for ca in pem_files::certificates(&server.trust)? {
        roots
            .add(ca)
            .map_err(|e| file_err(&server.trust, format!("not a usable CA certificate: {e}")))?;
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ClientError::Connect {
            server: server.url.clone(),
            what: e.to_string(),
        })?
        .with_root_certificates(roots);
    let config = match auth {
        Some(a) => builder
            .with_client_auth_cert(a.chain.clone(), a.key.clone_key())
            .map_err(|e| ClientError::Connect {
                server: server.url.clone(),
                what: format!("the client key does not match its certificate: {e}"),
            })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// One answer: status, `Retry-After` (seconds), body.
struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Bytes,
}

/// One EST request: the operation, its method and what it carries.
struct Call<'a> {
    method: Method,
    operation: &'a str,
    /// A CSR, base64 of its DER.
    body: Option<String>,
    /// HTTP Basic user and password (a token is the password).
    basic: Option<(&'a str, &'a str)>,
}

impl Call<'_> {
    fn get(operation: &str) -> Call<'_> {
        Call {
            method: Method::GET,
            operation,
            body: None,
            basic: None,
        }
    }
}

/// Sends one call over a new connection; `client_auth`: the configuration
/// presents a client certificate (a refusal then may be of it).
async fn exchange(server: &Server, config: Arc<ClientConfig>, client_auth: bool, call: Call<'_>) -> Result<Answer, ClientError> {
    let Call {
        method,
        operation,
        body,
        basic,
    } = call;
    let t = target(&server.url)?;
    let connect = |what: String| ClientError::Connect {
        server: server.url.clone(),
        what,
    };
    // hyper's "connection error" says little: its causes say what (a TLS alert from the server)
    let chain = |e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    };
    let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| connect(e.to_string()))?;
    let name = ServerName::try_from(t.host.clone()).map_err(|e| connect(e.to_string()))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| connect(format!("TLS: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| connect(e.to_string()))?;
    tokio::spawn(conn);
    let path = match &server.label {
        Some(l) => format!("/.well-known/est/{l}/{operation}"),
        None => format!("/.well-known/est/{operation}"),
    };
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, format!("{}:{}", t.host, t.port));
    if body.is_some() {
        request = request.header(CONTENT_TYPE, "application/pkcs10");
    }
    if let Some((user, password)) = basic {
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request = request.header(AUTHORIZATION, format!("Basic {pair}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| connect(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(|e| {
        // TLS 1.3: a server that refuses the client certificate says so after the client's handshake is done
        let hint = if client_auth {
            " (the server closed the connection: it may have refused the client certificate; its log says why)"
        } else {
            ""
        };
        connect(format!("{}{hint}", chain(&e)))
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = response.into_body().collect().await.map_err(|e| connect(e.to_string()))?.to_bytes();
    Ok(Answer { status, retry_after, body })
}

fn refused(answer: &Answer) -> ClientError {
    ClientError::Refused {
        status: answer.status,
        sentence: String::from_utf8_lossy(&answer.body).trim().to_owned(),
    }
}

fn certificates(answer: &Answer) -> Result<Vec<Vec<u8>>, ClientError> {
    let unreadable = |e: wire::WireError| ClientError::Refused {
        status: answer.status,
        sentence: e.to_string(),
    };
    wire::certs_of(&wire::decode_base64(&answer.body).map_err(unreadable)?).map_err(unreadable)
}

fn pem(der: &[u8]) -> String {
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, der).unwrap_or_default()
}

/// The server's CA certificates (`cacerts`), DER.
pub async fn cacerts(server: &Server) -> Result<Vec<Vec<u8>>, ClientError> {
    let answer = exchange(server, tls(server, None)?, false, Call::get("cacerts")).await?;
    if answer.status != StatusCode::OK {
        return Err(refused(&answer));
    }
    certificates(&answer)
}

/// What a new certificate is asked for.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// Its CN.
    pub cn: Option<String>,
    /// Its SANs.
    pub sans: Sans,
    /// The key to make.
    pub key: KeyKind,
    /// A one-time token (`pki token`); without one the request is queued.
    pub token: Option<String>,
    /// The HTTP Basic user: names the requester in the queue.
    pub user: Option<String>,
    /// How long to wait for an approval, seconds.
    pub wait: u64,
}

/// The files of one enrolled certificate: `NAME.key`, `NAME.csr` (while
/// waiting), `NAME.pem`, `NAME-chain.pem`.
#[derive(Debug, Clone)]
pub struct Files {
    /// The key (0600).
    pub key: PathBuf,
    /// The request, kept while it waits, so a second run asks again with it.
    pub csr: PathBuf,
    /// The certificate.
    pub cert: PathBuf,
    /// The certificate and the CA certificates below the root: what a TLS client sends.
    pub chain: PathBuf,
}

impl Files {
    /// `DIR/NAME.key`, ... from `DIR/NAME`.
    pub fn at(base: &Path) -> Self {
        Files {
            key: suffixed(base, ".key"),
            csr: suffixed(base, ".csr"),
            cert: suffixed(base, ".pem"),
            chain: suffixed(base, "-chain.pem"),
        }
    }
}

/// `path` with `suffix` added to its file name.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn csr_for(subject: DistinguishedName, sans: &Sans, key: &KeyPair) -> Result<Vec<u8>, ClientError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.subject_alt_names = sans.to_rcgen(false)?;
    let csr = params
        .serialize_request(key)
        .map_err(|e| ClientError::Pki(certgate_pki::PkiError::Internal(format!("cannot build the CSR: {e}"))))?;
    Ok(csr.der().to_vec())
}

/// The chain a client sends: its certificate, then every CA below the root.
fn chain_pem(cert: &[u8], cas: &[Vec<u8>]) -> String {
    let mut out = pem(cert);
    for ca in cas {
        let root = X509Certificate::from_der(ca).is_ok_and(|(_, c)| c.subject().as_raw() == c.issuer().as_raw());
        if !root {
            out.push_str(&pem(ca));
        }
    }
    out
}

/// Enrolls: writes a new key and CSR (or takes up the ones a previous run
/// left waiting), sends it, polls while it waits, and writes the
/// certificate and chain. Returns what it did, line by line.
pub async fn enroll(server: &Server, what: &Enrollment, files: &Files) -> Result<Vec<String>, ClientError> {
    if files.cert.exists() {
        return Err(ClientError::Pki(certgate_pki::PkiError::Exists { path: files.cert.clone() }));
    }
    let mut report = Vec::new();
    let resume = files.key.is_file() && files.csr.is_file();
    let csr = if resume {
        report.push(format!("asking again with the waiting request {}", files.csr.display()));
        let text = std::fs::read(&files.csr).map_err(|e| file_err(&files.csr, e))?;
        wire::decode_base64(&text).map_err(|e| file_err(&files.csr, e))?
    } else {
        let key = what.key.generate("the new key")?;
        let mut subject = DistinguishedName::new();
        if let Some(cn) = &what.cn {
            subject.push(rcgen::DnType::CommonName, cn.as_str());
        }
        let csr = csr_for(subject, &what.sans, &key)?;
        write_new(&files.key, key.serialize_pem().as_bytes(), false, true)?;
        write_new(&files.csr, wire::encode_base64(&csr).as_bytes(), false, false)?;
        report.push(format!("wrote {} (private key, mode 0600)", files.key.display()));
        csr
    };
    let config = tls(server, None)?;
    let body = wire::encode_base64(&csr);
    let started = std::time::Instant::now();
    let basic = match (&what.token, &what.user) {
        (Some(token), user) => Some((user.as_deref().unwrap_or("certgate"), token.as_str())),
        (None, Some(user)) => Some((user.as_str(), "")),
        (None, None) => None,
    };
    let certs = loop {
        let call = Call {
            method: Method::POST,
            operation: "simpleenroll",
            body: Some(body.clone()),
            basic,
        };
        let answer = exchange(server, Arc::clone(&config), false, call).await?;
        match answer.status {
            StatusCode::OK => break certificates(&answer)?,
            StatusCode::ACCEPTED => {
                let pause = answer.retry_after.unwrap_or(60).clamp(1, 3600);
                let waited = started.elapsed().as_secs();
                if waited + pause > what.wait {
                    return Err(ClientError::StillPending {
                        waited,
                        csr: files.csr.clone(),
                    });
                }
                tokio::time::sleep(Duration::from_secs(pause)).await;
            }
            _ => return Err(refused(&answer)),
        }
    };
    let cert = certs.first().cloned().unwrap_or_default();
    let cas = cacerts(server).await?;
    write_new(&files.cert, pem(&cert).as_bytes(), false, false)?;
    write_new(&files.chain, chain_pem(&cert, &cas).as_bytes(), false, false)?;
    let _gone = std::fs::remove_file(&files.csr);
    report.push(describe(&files.cert, &cert));
    report.push(format!(
        "wrote {} (certificate + its CA: what a TLS client sends)",
        files.chain.display()
    ));
    Ok(report)
}

fn describe(path: &Path, der: &[u8]) -> String {
    match X509Certificate::from_der(der) {
        Ok((_, c)) => format!(
            "wrote {} ({}, serial {}, valid until {})",
            path.display(),
            c.subject(),
            certgate_pki::profile::cert_serial(&c),
            certgate_pki::index::timestamp(c.validity().not_after.to_datetime())
        ),
        Err(_) => format!("wrote {}", path.display()),
    }
}

/// When a certificate is due for renewal: once `share` of its lifetime has passed.
pub fn due_at(cert: &X509Certificate<'_>, share: f64) -> OffsetDateTime {
    let from = cert.validity().not_before.to_datetime();
    let to = cert.validity().not_after.to_datetime();
    let life = (to - from).as_seconds_f64() * share.clamp(0.0, 1.0);
    from + time::Duration::seconds_f64(life)
}

/// Renews `files` over mTLS once due (or now, with `force`): a new key, a CSR
/// for the same subject and names, and the new files put in place of the
/// old ones (each written whole, then renamed over it).
pub async fn renew(server: &Server, files: &Files, key_kind: KeyKind, share: f64, force: bool) -> Result<Vec<String>, ClientError> {
    let der = certgate_pki::store::cert_file(&files.cert)?.into_iter().next().unwrap_or_default();
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| file_err(&files.cert, format!("not a certificate: {e}")))?;
    let due = due_at(&cert, share);
    let now = certgate_pki::profile::now();
    if now < due && !force {
        return Ok(vec![format!(
            "{} is not due for renewal until {} ({:.0}% of its lifetime); nothing changed",
            files.cert.display(),
            certgate_pki::index::timestamp(due),
            share * 100.0
        )]);
    }
    let subject = certgate_pki::csr::subject_of(cert.subject()).map_err(|e| file_err(&files.cert, e))?;
    let sans = certgate_pki::csr::certificate_sans(&cert);
    let key = key_kind.generate("the new key")?;
    let csr = csr_for(subject, &sans, &key)?;
    let chain_file = if files.chain.is_file() { &files.chain } else { &files.cert };
    let auth = ClientAuth::from_files(chain_file, &files.key)?;
    let call = Call {
        method: Method::POST,
        operation: "simplereenroll",
        body: Some(wire::encode_base64(&csr)),
        basic: None,
    };
    let answer = exchange(server, tls(server, Some(&auth))?, true, call).await?;
    if answer.status != StatusCode::OK {
        return Err(refused(&answer));
    }
    let new = certificates(&answer)?.into_iter().next().unwrap_or_default();
    let cas = cacerts(server).await?;
    // the key first: a crash before the certificate is renamed leaves the
    // old certificate with a key that is not its own, which the next run
    // finds (the TLS client refuses the pair) and the old files in `.old`
    for path in [&files.key, &files.cert, &files.chain] {
        if path.is_file() {
            let keep = suffixed(path, ".old");
            std::fs::copy(path, &keep).map_err(|e| file_err(&keep, e))?;
        }
    }
    write_atomically(&files.key, key.serialize_pem().as_bytes())?;
    set_private(&files.key)?;
    write_atomically(&files.cert, pem(&new).as_bytes())?;
    write_atomically(&files.chain, chain_pem(&new, &cas).as_bytes())?;
    Ok(vec![
        describe(&files.cert, &new),
        format!(
            "wrote {} (new private key, mode 0600) and {}",
            files.key.display(),
            files.chain.display()
        ),
    ])
}

fn set_private(path: &Path) -> Result<(), ClientError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| file_err(path, e))
}
