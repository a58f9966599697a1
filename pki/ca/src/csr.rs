//! Checking a user's certificate signing request before a CA signs it. The
//! user keeps their key; the CA takes only the subject, the requested names and
//! the public key, and decides every extension itself.

use rcgen::{DistinguishedName, DnType, SubjectPublicKeyInfo};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::profile::Sans;

/// Why a CSR is refused; each says what in it is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// PEM that does not decode.
    #[error("the PEM does not decode: {0}")]
    Pem(String),
    /// PEM of something else.
    #[error("it is a PEM {0:?}, not a CERTIFICATE REQUEST")]
    PemLabel(String),
    /// DER that is no PKCS#10 request.
    #[error("not a PKCS#10 request: {0}")]
    NotPkcs10(String),
    /// Bytes after the request.
    #[error("{0} bytes follow the request")]
    Trailing(usize),
    /// A signature that does not verify.
    #[error("its signature does not verify: it was altered, or not signed by the key it holds")]
    Signature,
    /// basicConstraints CA:TRUE.
    #[error("it asks for a CA certificate (basicConstraints CA:TRUE); only client certificates are signed")]
    AsksForCa,
    /// keyCertSign or cRLSign.
    #[error("it asks for keyCertSign or cRLSign key usage, which only a CA has")]
    CaKeyUsage,
    /// An extended key usage other than clientAuth.
    #[error("it asks for an extended key usage other than clientAuth; only clientAuth is signed")]
    OtherKeyUsage,
    /// A SAN of a kind certgate does not sign.
    #[error("it asks for a SAN certgate does not sign: {0}")]
    SanKind(String),
    /// An IP address SAN of neither 4 nor 16 octets.
    #[error("it has a malformed IP address SAN")]
    IpSan,
    /// What is wrong with its subject.
    #[error("{0}")]
    Subject(#[from] SubjectError),
    /// Neither a CN nor a SAN.
    #[error("it names nobody: no CN and no subject alternative name")]
    NamesNobody,
    /// A key certgate does not sign, or cannot read.
    #[error("{0}")]
    Key(String),
}

/// Why a subject cannot be signed as it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// `A=x+B=y`.
    #[error("its subject has a multi-valued RDN (A=x+B=y), which certgate does not sign")]
    MultiValued,
    /// An attribute type that is no OID.
    #[error("its subject has an unreadable attribute type")]
    AttributeType,
    /// The same attribute twice.
    #[error("its subject repeats {0}; certgate signs one value per attribute")]
    Repeated(String),
    /// A value that is not a text string.
    #[error("its subject's {0} is not a text string")]
    NotText(String),
    /// A value with a character that hides or reorders what is shown.
    #[error("its subject's {0} holds a control character or a bidirectional override (U+{1:04X}), which would hide or reorder the name people see")]
    Deceptive(String, u32),
}

/// What certgate takes from an acceptable CSR.
#[derive(Debug)]
pub struct Request {
    /// The requested subject, as written.
    pub subject: DistinguishedName,
    /// Its common name, if it has one.
    pub cn: Option<String>,
    /// The requested SANs certgate copies.
    pub sans: Sans,
    /// The key the certificate will certify.
    pub public_key: SubjectPublicKeyInfo,
    /// Requested extensions certgate does not copy (by OID), to tell the operator.
    pub ignored: Vec<String>,
    /// The key's type as a person reads it: `ECDSA P-256`, `RSA 2048`, `Ed25519`.
    pub key_type: String,
}

/// Parses and checks a CSR (PEM or DER). The error says why it is refused.
pub fn check(data: &[u8]) -> Result<Request, CsrError> {
    // x509-parser's PEM reader takes any line length, as OpenSSL does.
    let der = if trim_ascii(data).starts_with(b"-----") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(data).map_err(|e| CsrError::Pem(e.to_string()))?;
        if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
            return Err(CsrError::PemLabel(pem.label));
        }
        pem.contents
    } else {
        data.to_vec()
    };
    let (rest, csr) = X509CertificationRequest::from_der(&der).map_err(|e| CsrError::NotPkcs10(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Trailing(rest.len()));
    }
    let info = &csr.certification_request_info;
    let key_type = check_key(&info.subject_pki).map_err(CsrError::Key)?;
    csr.verify_signature().map_err(|_| CsrError::Signature)?;

    let mut sans = Sans::default();
    let mut ignored = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::BasicConstraints(bc) if bc.ca => return Err(CsrError::AsksForCa),
            ParsedExtension::BasicConstraints(_) => {}
            ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => return Err(CsrError::CaKeyUsage),
            ParsedExtension::KeyUsage(_) => {}
            ParsedExtension::ExtendedKeyUsage(eku) => {
                let others = eku.any
                    || eku.server_auth
                    || eku.code_signing
                    || eku.email_protection
                    || eku.time_stamping
                    || eku.ocsp_signing
                    || !eku.other.is_empty();
                if others {
                    return Err(CsrError::OtherKeyUsage);
                }
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => sans.dns.push((*d).to_owned()),
                        GeneralName::RFC822Name(e) => sans.emails.push((*e).to_owned()),
                        GeneralName::URI(u) => sans.uris.push((*u).to_owned()),
                        GeneralName::IPAddress(ip) => sans.ips.push(ip_from(ip).ok_or(CsrError::IpSan)?),
                        other => return Err(CsrError::SanKind(other.to_string())),
                    }
                }
            }
            other => ignored.push(format!("{other:?}").chars().take(60).collect()),
        }
    }
    let subject = subject_of(&info.subject)?;
    let cn = match info.subject.iter_common_name().next() {
        Some(cn) => Some(cn.as_str().map_err(|_| SubjectError::NotText("CN".into()))?.to_owned()),
        None => None,
    };
    if cn.is_none() && sans.is_empty() {
        return Err(CsrError::NamesNobody);
    }
    let public_key = SubjectPublicKeyInfo::from_der(info.subject_pki.raw).map_err(|e| CsrError::Key(format!("its public key: {e}")))?;
    Ok(Request {
        subject,
        cn,
        sans,
        public_key,
        ignored,
        key_type,
    })
}

/// The subject as rcgen holds it (one value per attribute type, in order),
/// from a parsed one: a CSR's, or a certificate's for its renewal.
pub fn subject_of(name: &x509_parser::x509::X509Name<'_>) -> Result<DistinguishedName, SubjectError> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let [attr] = rdn.iter().collect::<Vec<_>>()[..] else {
            return Err(SubjectError::MultiValued);
        };
        let oid: Vec<u64> = attr.attr_type().iter().ok_or(SubjectError::AttributeType)?.collect();
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            return Err(SubjectError::Repeated(attr.attr_type().to_string()));
        }
        let value = attr.as_str().map_err(|_| SubjectError::NotText(attr.attr_type().to_string()))?;
        if let Some(c) = value.chars().find(|c| certgate_x509::text::is_deceptive(*c)) {
            return Err(SubjectError::Deceptive(attr.attr_type().to_string(), u32::from(c)));
        }
        dn.push(ty, value);
    }
    Ok(dn)
}

fn trim_ascii(data: &[u8]) -> &[u8] {
    let start = data.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(data.len());
    let end = data.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    data.get(start..end).unwrap_or_default()
}

/// The SANs of a certificate, of the kinds certgate signs (for its renewal).
pub fn certificate_sans(cert: &x509_parser::certificate::X509Certificate<'_>) -> Sans {
    let mut sans = Sans::default();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.dns.push((*d).to_owned()),
                GeneralName::RFC822Name(e) => sans.emails.push((*e).to_owned()),
                GeneralName::URI(u) => sans.uris.push((*u).to_owned()),
                GeneralName::IPAddress(ip) => sans.ips.extend(ip_from(ip)),
                _ => {}
            }
        }
    }
    sans
}

fn ip_from(bytes: &[u8]) -> Option<std::net::IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(v4.into());
    }
    <[u8; 16]>::try_from(bytes).ok().map(Into::into)
}

/// Keys a CA signs: ECDSA P-256 or P-384, Ed25519, RSA of 2048 to 8192 bits;
/// the key's type as a person reads it.
fn check_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<String, String> {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_SIG_ED25519};
    let alg = &spki.algorithm;
    if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => Ok("ECDSA P-256".into()),
            Some(c) if c == OID_NIST_EC_P384 => Ok("ECDSA P-384".into()),
            Some(c) => Err(format!("its EC key is on curve {c}; allowed: P-256, P-384")),
            None => Err("its EC key names no curve".into()),
        };
    }
    if alg.algorithm == OID_SIG_ED25519 {
        return Ok("Ed25519".into());
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if (2048..=8192).contains(&bits) {
                Ok(format!("RSA {bits}"))
            } else {
                Err(format!("its RSA key has {bits} bits; allowed: 2048 to 8192"))
            }
        }
        _ => Err(format!(
            "its key type ({}) is not allowed; allowed: ECDSA P-256/P-384, Ed25519, RSA 2048+",
            alg.algorithm
        )),
    }
}
