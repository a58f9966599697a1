//! certgate-x509: what a client certificate says, read once with x509-parser
//! and written the way Envoy and certgate write it. The filter builds its
//! peer identity from [`CertFacts`]; the host builds Envoy's connection
//! properties from the same facts, so the two cannot disagree.
#![warn(missing_docs)]

pub mod dn;
pub mod pem;
pub mod san;
pub mod spiffe;
pub mod text;

use x509_parser::certificate::{X509Certificate, X509CertificateParser};
use x509_parser::extensions::{GeneralName, SubjectAlternativeName};
use x509_parser::nom::Parser as _;
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;
use x509_parser::prelude::FromDer;

use dn::Dn;

/// The facts of one DER certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// The subject, most specific RDN first.
    pub subject: Dn,
    /// The issuer's name.
    pub issuer: Dn,
    /// The serial number's bytes as encoded (big-endian, maybe a leading 0).
    pub serial: Vec<u8>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// URI SANs in certificate order.
    pub san_uri: Vec<String>,
    /// DNS SANs in certificate order.
    pub san_dns: Vec<String>,
    /// Email (RFC 822) SANs in certificate order.
    pub san_email: Vec<String>,
    /// Why the subjectAltName extension could not be read (the SAN lists are
    /// then empty). certgate refuses such a certificate; a TLS stack may
    /// still accept it, so the host models what Envoy shows regardless.
    pub san_error: Option<CertError>,
}

/// Why bytes are not one X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// x509-parser refused the DER.
    #[error("not a DER X.509 certificate: {0}")]
    Der(String),
    /// Bytes follow the certificate.
    #[error("{0} bytes after the end of the certificate")]
    TrailingData(usize),
    /// The subjectAltName extension is malformed.
    #[error("bad extension: {0}")]
    Extension(String),
}

impl CertFacts {
    /// Reads one DER certificate; trailing bytes are an error, an unreadable
    /// subjectAltName is reported in [`CertFacts::san_error`].
    pub fn from_der(der: &[u8]) -> Result<CertFacts, CertError> {
        // Extensions are split but not decoded: only the SAN is needed, and
        // decoding every extension of every first-seen certificate costs.
        let (rest, cert) = X509CertificateParser::new()
            .with_deep_parse_extensions(false)
            .parse(der)
            .map_err(|e| CertError::Der(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertError::TrailingData(rest.len()));
        }
        let (mut san_uri, mut san_dns, mut san_email) = (Vec::new(), Vec::new(), Vec::new());
        let (san, san_error) = match subject_alternative_name(&cert) {
            Ok(san) => (san, None),
            Err(e) => (None, Some(e)),
        };
        for name in san.iter().flat_map(|san| &san.general_names) {
            match name {
                GeneralName::URI(u) => san_uri.push((*u).to_owned()),
                GeneralName::DNSName(d) => san_dns.push((*d).to_owned()),
                GeneralName::RFC822Name(e) => san_email.push((*e).to_owned()),
                _ => {}
            }
        }
        Ok(CertFacts {
            subject: Dn::from_x509(cert.subject()),
            issuer: Dn::from_x509(cert.issuer()),
            serial: cert.raw_serial().to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            san_uri,
            san_dns,
            san_email,
            san_error,
        })
    }
}

/// The one subjectAltName extension, decoded; two are an error (RFC 5280
/// 4.2), as is one that does not decode.
fn subject_alternative_name<'a>(cert: &X509Certificate<'a>) -> Result<Option<SubjectAlternativeName<'a>>, CertError> {
    let mut sans = cert.extensions().iter().filter(|e| e.oid == OID_X509_EXT_SUBJECT_ALT_NAME);
    let Some(ext) = sans.next() else { return Ok(None) };
    if sans.next().is_some() {
        return Err(CertError::Extension("duplicate extensions".into()));
    }
    match SubjectAlternativeName::from_der(ext.value) {
        Ok((_, san)) => Ok(Some(san)),
        Err(e) => Err(CertError::Extension(e.to_string())),
    }
}

/// SHA-256 of bytes as lowercase hex: a certificate's fingerprint as Envoy
/// writes `sha256_peer_certificate_digest` and XFCC `Hash=`.
pub fn sha256_hex(der: &[u8]) -> String {
    use sha2::Digest as _;
    text::hex(&sha2::Sha256::digest(der))
}

/// A certificate's RFC 8705 thumbprint: the base64url (unpadded) SHA-256 of
/// its DER, what a token bound to it carries in `cnf["x5t#S256"]`.
pub fn x5t_s256(der: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}
