//! Checking a user's certificate signing request before a CA signs it. The
//! user keeps their key; the CA takes only the subject, the requested names and
//! the public key, and decides every extension itself.

use rcgen::{DistinguishedName, DnType, SubjectPublicKeyInfo};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::profile::Sans;

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
pub fn check(data: &[u8]) -> Result<Request, String> {
    // x509-parser's PEM reader takes any line length, as OpenSSL does.
    let der = if trim_ascii(data).starts_with(b"-----") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(data).map_err(|e| format!("the PEM does not decode: {e}"))?;
        if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
            return Err(format!("it is a PEM {:?}, not a CERTIFICATE REQUEST", pem.label));
        }
        pem.contents
    } else {
        data.to_vec()
    };
    let (rest, csr) = X509CertificationRequest::from_der(&der).map_err(|e| format!("not a PKCS#10 request: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes follow the request", rest.len()));
    }
    let info = &csr.certification_request_info;
    let key_type = check_key(&info.subject_pki)?;
    csr.verify_signature()
        .map_err(|_| "its signature does not verify: it was altered, or not signed by the key it holds".to_owned())?;

    let mut sans = Sans::default();
    let mut ignored = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::BasicConstraints(bc) if bc.ca => {
                return Err("it asks for a CA certificate (basicConstraints CA:TRUE); only client certificates are signed".into())
            }
            ParsedExtension::BasicConstraints(_) => {}
            ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => {
                return Err("it asks for keyCertSign or cRLSign key usage, which only a CA has".into())
            }
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
                    return Err("it asks for an extended key usage other than clientAuth; only clientAuth is signed".into());
                }
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => sans.dns.push((*d).to_owned()),
                        GeneralName::RFC822Name(e) => sans.emails.push((*e).to_owned()),
                        GeneralName::URI(u) => sans.uris.push((*u).to_owned()),
                        GeneralName::IPAddress(ip) => sans.ips.push(ip_from(ip)?),
                        other => return Err(format!("it asks for a SAN certgate does not sign: {other}")),
                    }
                }
            }
            other => ignored.push(format!("{other:?}").chars().take(60).collect()),
        }
    }
    let subject = subject_of(&info.subject)?;
    let cn = match info.subject.iter_common_name().next() {
        Some(cn) => Some(cn.as_str().map_err(|_| "its CN is not a string".to_owned())?.to_owned()),
        None => None,
    };
    if cn.is_none() && sans.is_empty() {
        return Err("it names nobody: no CN and no subject alternative name".into());
    }
    let public_key = SubjectPublicKeyInfo::from_der(info.subject_pki.raw).map_err(|e| format!("its public key: {e}"))?;
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
pub fn subject_of(name: &x509_parser::x509::X509Name<'_>) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let [attr] = rdn.iter().collect::<Vec<_>>()[..] else {
            return Err("its subject has a multi-valued RDN (A=x+B=y), which certgate does not sign".into());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("its subject has an unreadable attribute type")?
            .collect();
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            return Err(format!(
                "its subject repeats {}; certgate signs one value per attribute",
                attr.attr_type()
            ));
        }
        let value = attr
            .as_str()
            .map_err(|_| format!("its subject's {} is not a text string", attr.attr_type()))?;
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

fn ip_from(bytes: &[u8]) -> Result<std::net::IpAddr, String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Ok(v4.into());
    }
    <[u8; 16]>::try_from(bytes)
        .map(Into::into)
        .map_err(|_| "it has a malformed IP address SAN".to_owned())
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
