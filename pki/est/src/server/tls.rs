//! The server's TLS: its certificate and key from files, client
//! certificates optional and, when sent, verified against the CAs served and
//! their CRLs (with the renewal grace, if set).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::ring;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::authority::Authority;
use crate::pem_files;

/// A TLS set-up that cannot be built, naming the file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// The server's TLS: its certificate chain and key from files; client
/// certificates optional, and verified by `verifier`.
pub fn tls_config(cert: &Path, key: &Path, verifier: Arc<ClientVerifier>) -> Result<Arc<ServerConfig>, SetupError> {
    let chain = pem_files::certificates(cert).map_err(|e| SetupError(e.to_string()))?;
    let key = pem_files::private_key(key).map_err(|e| SetupError(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| SetupError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| SetupError(format!("the server key does not match its certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a CRL file looked like when it was last read.
type Seen = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

/// Verifies client certificates against the CAs served and their current
/// CRLs: the CRL files are read again as soon as one changes (a rename of a
/// new file in, as `pki crl` writes it), so a revocation applies to the next
/// handshake without a restart. The same verifier checks a `Client-Cert`
/// the trusted proxy hands on.
#[derive(Debug)]
pub struct ClientVerifier {
    roots: Arc<RootCertStore>,
    hints: Vec<DistinguishedName>,
    crl_files: Vec<PathBuf>,
    grace: Duration,
    current: RwLock<Arc<dyn ClientCertVerifier>>,
    seen: Mutex<Seen>,
}

fn seen(files: &[PathBuf]) -> Seen {
    files
        .iter()
        .map(|f| {
            let stamp = std::fs::metadata(f).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
            (f.clone(), stamp)
        })
        .collect()
}

impl ClientVerifier {
    /// The verifier for `authority`'s CAs and the CRL files of each (those
    /// that exist now and those that appear later). `grace`: how long after
    /// its expiry a client certificate still passes (for renewal only).
    pub fn new(authority: &Authority, grace: Duration) -> Result<Arc<ClientVerifier>, SetupError> {
        let mut roots = RootCertStore::empty();
        for der in authority.client_cas() {
            roots
                .add(CertificateDer::from(der))
                .map_err(|e| SetupError(format!("a CA certificate of the PKI home is not usable: {e}")))?;
        }
        let roots = Arc::new(roots);
        let crl_files = authority.crl_files();
        let first = build(&roots, &crl_files, grace)?;
        Ok(Arc::new(ClientVerifier {
            hints: first.root_hint_subjects().to_vec(),
            roots,
            grace,
            seen: Mutex::new(seen(&crl_files)),
            crl_files,
            current: RwLock::new(first),
        }))
    }

    /// Reads the CRLs again if a file changed since they were last read.
    /// A CRL that cannot be read keeps the last good ones (and says so).
    pub fn reload_if_changed(&self) -> Result<bool, SetupError> {
        let now = seen(&self.crl_files);
        let Ok(mut last) = self.seen.lock() else {
            return Ok(false);
        };
        if *last == now {
            return Ok(false);
        }
        let fresh = build(&self.roots, &self.crl_files, self.grace)?;
        if let Ok(mut current) = self.current.write() {
            *current = fresh;
        }
        *last = now;
        Ok(true)
    }

    /// The verifier over the CRLs as last read.
    fn current(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        self.current
            .read()
            .map(|c| Arc::clone(&c))
            .map_err(|_| rustls::Error::General("the client verifier is unavailable".into()))
    }

    /// Checks a client certificate (and the intermediates sent with it) as
    /// the handshake would, as of now.
    pub fn check(&self, end_entity: &[u8]) -> Result<(), rustls::Error> {
        let now = UnixTime::now();
        self.verify_client_cert(&CertificateDer::from(end_entity), &[], now).map(|_| ())
    }

    /// Looks at the CRL files every second for as long as the task runs.
    pub async fn watch(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match self.reload_if_changed() {
                Ok(true) => {
                    tracing::info!(files = ?self.crl_files, "CRLs read again: the next handshake and Client-Cert are checked against them")
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "a CRL file changed but cannot be read; the last good CRLs stay in force"),
            }
        }
    }
}

/// A verifier over `roots` and the CRLs the files hold now.
fn build(roots: &Arc<RootCertStore>, crl_files: &[PathBuf], grace: Duration) -> Result<Arc<dyn ClientCertVerifier>, SetupError> {
    let mut crls = Vec::new();
    for path in crl_files.iter().filter(|p| p.is_file()) {
        crls.extend(pem_files::crls(path).map_err(|e| SetupError(e.to_string()))?);
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), Arc::new(ring::default_provider()))
        .with_crls(crls)
        .allow_unauthenticated()
        .build()
        .map_err(|e| SetupError(format!("client verifier: {e}")))?;
    Ok(if grace.is_zero() {
        verifier
    } else {
        Arc::new(GraceVerifier { inner: verifier, grace })
    })
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()?.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().map(|c| c.supported_verify_schemes()).unwrap_or_default()
    }
}

/// Lets a client certificate that expired less than `grace` ago pass the
/// handshake, verified (chain, signature, CRL) as of its last valid second;
/// the authority then lets it renew and nothing else.
#[derive(Debug)]
struct GraceVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    grace: Duration,
}

impl ClientCertVerifier for GraceVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let first = self.inner.verify_client_cert(end_entity, intermediates, now);
        let expired = matches!(
            &first,
            Err(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ))
        );
        if !expired {
            return first;
        }
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity) else {
            return first;
        };
        let not_after = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
        let now_secs = now.as_secs();
        if now_secs.saturating_sub(not_after) > self.grace.as_secs() {
            return first;
        }
        self.inner.verify_client_cert(
            end_entity,
            intermediates,
            UnixTime::since_unix_epoch(Duration::from_secs(not_after)),
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
