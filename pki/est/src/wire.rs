//! EST on the wire (RFC 7030 §4, as RFC 8951 clarifies it): bodies are the
//! base64 of DER in both directions, whatever `Content-Transfer-Encoding`
//! says. Input may hold any whitespace (line-wrapped or not); output is one
//! line, which strongSwan's client needs. Certificates travel as a
//! certs-only CMS `SignedData` (`application/pkcs7-mime`).

use base64::Engine;
use cms::content_info::ContentInfo;
use cms::signed_data::{CertificateSet, SignedData};
use const_oid::db::rfc5911::ID_SIGNED_DATA;
use der::{Decode, Encode};

/// What cannot be read off the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not base64 (after whitespace is removed).
    #[error("the body is not base64: {0}")]
    Base64(String),
    /// Base64 of nothing.
    #[error("the body is empty")]
    Empty,
    /// Not a certs-only CMS message.
    #[error("not a certs-only PKCS#7 message: {0}")]
    Pkcs7(String),
}

/// The bytes a base64 body holds; whitespace anywhere is ignored (RFC 8951).
pub fn decode_base64(body: &[u8]) -> Result<Vec<u8>, WireError> {
    let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(WireError::Empty);
    }
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|e| WireError::Base64(e.to_string()))
}

/// Base64 on one line, no line breaks (strongSwan refuses wrapped base64).
pub fn encode_base64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// The user and password of an `Authorization: Basic` header (how EST
/// clients send a token), if it is one.
pub fn basic(value: Option<&hyper::header::HeaderValue>) -> Option<(String, String)> {
    let value = value?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// A certs-only `SignedData` holding `certs` (DER), in that order.
pub fn certs_only(certs: &[Vec<u8>]) -> Result<Vec<u8>, WireError> {
    let bad = |e: der::Error| WireError::Pkcs7(e.to_string());
    let parsed = certs
        .iter()
        .map(|c| x509_cert::Certificate::from_der(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    ContentInfo::try_from(parsed).map_err(bad)?.to_der().map_err(bad)
}

/// The certificates (DER) of a certs-only `SignedData`.
pub fn certs_of(pkcs7: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    let bad = |e: der::Error| WireError::Pkcs7(e.to_string());
    let info = ContentInfo::from_der(pkcs7).map_err(bad)?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(WireError::Pkcs7(format!(
            "its content type is {}, not signedData",
            info.content_type
        )));
    }
    let signed: SignedData = info.content.decode_as().map_err(bad)?;
    let Some(CertificateSet(set)) = signed.certificates else {
        return Err(WireError::Pkcs7("it holds no certificates".into()));
    };
    let mut out = Vec::new();
    for choice in set.iter() {
        if let cms::cert::CertificateChoices::Certificate(cert) = choice {
            out.push(cert.to_der().map_err(bad)?);
        }
    }
    if out.is_empty() {
        return Err(WireError::Pkcs7("it holds no X.509 certificate".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_certificate() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["a.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn base64_with_any_whitespace_decodes() {
        assert_eq!(decode_base64(b"aGVs\r\nbG8=\n").unwrap(), b"hello");
        assert_eq!(decode_base64(b" a G V s b G 8 = ").unwrap(), b"hello");
        assert_eq!(decode_base64(b"\n\n"), Err(WireError::Empty));
        assert!(matches!(decode_base64(b"not base64!"), Err(WireError::Base64(_))));
        assert!(!encode_base64(&[7; 300]).contains('\n'), "one line");
    }

    #[test]
    fn certificates_round_trip_through_certs_only() {
        let (a, b) = (a_certificate(), a_certificate());
        let message = certs_only(&[a.clone(), b.clone()]).unwrap();
        let back = certs_of(&message).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back.contains(&a) && back.contains(&b));
        assert!(
            matches!(certs_of(&a), Err(WireError::Pkcs7(_))),
            "a bare certificate is not a PKCS#7 message"
        );
        assert!(
            matches!(certs_of(&message[..message.len() - 3]), Err(WireError::Pkcs7(_))),
            "truncated"
        );
    }
}
