//! The EST client: `certgate pki enroll` (a new key, its CSR, a token or the
//! approval queue, polling on `202`) and `certgate pki reenroll` (over mTLS with
//! the current certificate, once a set share of its lifetime has passed),
//! fit for cron or a systemd timer: it says what it did and exits 0, or
//! names what failed and exits non-zero.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use certgate_pki::keys::{write_atomically, write_new, KeyKind};
use certgate_pki::profile::Sans;

use crate::pem_files::FileError;
use crate::wire;

mod transport;

pub use transport::ClientAuth;
use transport::{certificates, exchange, file_err, refused, tls, Call};

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
