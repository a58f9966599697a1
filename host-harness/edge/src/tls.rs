//! The edge's TLS: server certificate and key, trusted client CAs, CRLs, and
//! whether a client certificate is required or optional (nginx's
//! `ssl_verify_client on|optional`). TLS 1.2 and 1.3, ALPN h2 and http/1.1.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertMode {
    /// The handshake fails without a valid client certificate.
    Required,
    /// Clients without a certificate connect (anonymous rules serve them); a
    /// certificate that is sent must still verify.
    Optional,
}

/// The files the TLS set-up reads.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// The CAs client certificates must chain to, PEM.
    pub client_ca: PathBuf,
    /// CRL files, PEM; a revoked client is refused at the handshake.
    pub crls: Vec<PathBuf>,
    /// Whether a client certificate is required or optional.
    pub mode: ClientCertMode,
}

/// A TLS set-up that cannot be built, naming the file at fault.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's message says what it is
pub enum TlsError {
    #[error("{path}: {what}")]
    File { path: String, what: String },
    #[error("TLS set-up: {0}")]
    Setup(String),
}

fn file_err(path: &Path, what: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        what: what.to_string(),
    }
}

/// Every PEM block of one type in a file; none is an error naming the file.
fn pem_blocks<T: PemObject>(path: &Path, what: &str, label: &str) -> Result<Vec<T>, TlsError> {
    let found: Vec<T> = T::pem_file_iter(path)
        .map_err(|e| file_err(path, format!("cannot read {what}: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(path, format!("bad PEM: {e}")))?;
    if found.is_empty() {
        return Err(file_err(path, format!("no {label} in the file")));
    }
    Ok(found)
}

/// Every certificate in a PEM file; none is an error naming the file.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    pem_blocks(path, "certificates", "CERTIFICATE")
}

/// The private key in a PEM file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path, format!("no usable private key: {e}")))
}

fn crls(paths: &[PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for path in paths {
        out.extend(pem_blocks::<CertificateRevocationListDer<'static>>(path, "the CRL", "X509 CRL")?);
    }
    Ok(out)
}

/// Builds the server configuration.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certificates(&files.client_ca)? {
        roots
            .add(ca)
            .map_err(|e| file_err(&files.client_ca, format!("not a usable CA certificate: {e}")))?;
    }
    let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider)).with_crls(crls(&files.crls)?);
    if files.mode == ClientCertMode::Optional {
        verifier = verifier.allow_unauthenticated();
    }
    let verifier = verifier.build().map_err(|e| TlsError::Setup(format!("client verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificates(&files.cert)?, private_key(&files.key)?)
        .map_err(|e| file_err(&files.key, format!("does not match {}: {e}", files.cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
