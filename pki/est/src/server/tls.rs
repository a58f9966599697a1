//! The server's TLS: its certificate and key from files, client
//! certificates optional and, when sent, verified against the CAs served and
//! their CRLs (with the renewal grace, if set).

use std::sync::Arc;
use std::time::Duration;

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

/// The server's TLS: its certificate chain and key from files; the client
/// CAs and CRLs from the PKI home. `grace`: how long after its expiry a
/// client certificate still passes the handshake (for renewal only; zero
/// unless `--renewal-grace` says otherwise).
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    authority: &Authority,
    grace: Duration,
) -> Result<Arc<ServerConfig>, SetupError> {
    let provider = Arc::new(ring::default_provider());
    let mut roots = RootCertStore::empty();
    for der in authority.client_cas() {
        roots
            .add(CertificateDer::from(der))
            .map_err(|e| SetupError(format!("a CA certificate of the PKI home is not usable: {e}")))?;
    }
    let mut crls = Vec::new();
    for path in authority.crl_files() {
        crls.extend(pem_files::crls(&path).map_err(|e| SetupError(e.to_string()))?);
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
        .with_crls(crls)
        .allow_unauthenticated()
        .build()
        .map_err(|e| SetupError(format!("client verifier: {e}")))?;
    let verifier: Arc<dyn ClientCertVerifier> = if grace.is_zero() {
        verifier
    } else {
        Arc::new(GraceVerifier { inner: verifier, grace })
    };
    let chain = pem_files::certificates(cert).map_err(|e| SetupError(e.to_string()))?;
    let key = pem_files::private_key(key).map_err(|e| SetupError(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| SetupError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| SetupError(format!("the server key does not match its certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
