//! Access tokens bound to the client certificate (RFC 8705 §3): the token
//! Envoy's `jwt_authn` verified for this request, and whether its
//! `cnf["x5t#S256"]` is the SHA-256 of the peer certificate's DER.
//!
//! The token is never read from a header alone: `jwt_authn` puts the payload
//! of a token it verified in the stream's dynamic metadata
//! (`payload_in_metadata`), which a client cannot write. A host that cannot
//! look inside that metadata (the dynamic module ABI reads top-level strings
//! only) learns from it whether a token was verified, and reads the claims
//! from the header `jwt_authn` overwrote in the same step
//! (`forward_payload_header`).

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Deserialize;

use certgate_x509::text::hex;

use crate::host::{header_texts, Host, HostError, Verified};
use certgate_wire::Pair;

/// What a request without a verified token gets, on a rule that checks tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum WithoutToken {
    /// Refused with `token_missing` (401): every request must carry a bound token.
    #[default]
    Deny,
    /// Let through (the certificate rules still apply); a token that is
    /// there must still be bound to the certificate.
    Allow,
}

/// The policy's `bound_tokens`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundTokens {
    /// The `payload_in_metadata` name of the `jwt_authn` provider whose
    /// tokens are checked.
    pub metadata_key: String,
    /// The provider's `forward_payload_header` (lowercase), read only by a
    /// host that cannot look inside the metadata.
    pub payload_header: Option<String>,
    /// What a request with no verified token gets.
    pub without_token: WithoutToken,
}

/// The token facts the policy decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// The policy checks no tokens, so none was read.
    NotRead,
    /// No verified token.
    Missing,
    /// A verified token without a `cnf["x5t#S256"]` claim.
    Unbound,
    /// A verified token bound to a certificate: the claim as written
    /// (base64url of a SHA-256).
    BoundTo(String),
}

impl Token {
    /// Whether a token bound to this certificate (its SHA-256, lowercase hex).
    pub fn is_bound_to(thumbprint: &str, sha256_hex: &str) -> bool {
        // RFC 8705 §3.1: base64url without padding; a padded or malformed
        // claim is bound to no certificate.
        let Ok(digest) = Base64UrlUnpadded::decode_vec(thumbprint) else {
            return false;
        };
        digest.len() == 32 && hex(&digest) == sha256_hex
    }
}

/// Reads the verified token of a request.
pub fn read_token(host: &mut dyn Host, settings: &BoundTokens, headers: &[Pair]) -> Result<Token, HostError> {
    let claim = match host.verified_token(&settings.metadata_key)? {
        Verified::Nothing => return Ok(Token::Missing),
        Verified::Thumbprint(claim) => claim,
        Verified::Opaque => {
            // The configuration requires the header on such a host
            // (`check_host_reads`); jwt_authn wrote it with the metadata.
            let name = settings.payload_header.as_deref().unwrap_or_default();
            let values = header_texts(headers, name);
            let [payload] = values.as_slice() else {
                return Err(HostError {
                    call: "jwt_authn forward_payload_header",
                    status: format!(
                        "{} `{name}` headers with a verified token (jwt_authn's provider must set forward_payload_header: {name})",
                        values.len()
                    ),
                });
            };
            payload_thumbprint(payload).map_err(|why| HostError {
                call: "jwt_authn forward_payload_header",
                status: why,
            })?
        }
    };
    Ok(match claim.map(String::from_utf8) {
        // an empty claim is no claim (Envoy gives a missing field as empty)
        None => Token::Unbound,
        Some(Ok(t)) if t.is_empty() => Token::Unbound,
        Some(Ok(t)) => Token::BoundTo(t),
        // a claim that is not text is bound to no certificate
        Some(Err(_)) => Token::BoundTo(String::new()),
    })
}

/// The `cnf["x5t#S256"]` of a payload as `forward_payload_header` carries
/// it (base64url JSON, padded or not).
fn payload_thumbprint(header: &str) -> Result<Option<Vec<u8>>, String> {
    let json = Base64UrlUnpadded::decode_vec(header.trim_end_matches('=')).map_err(|_| "the payload header is not base64url".to_owned())?;
    let payload: serde_json::Value = serde_json::from_slice(&json).map_err(|e| format!("the payload header is not JSON: {e}"))?;
    if !payload.is_object() {
        return Err("the payload header is not a JWT payload (a JSON object)".into());
    }
    // read as the Wasm build reads the metadata: a `cnf` that is not an
    // object has no claim; a claim that is not a string binds nothing
    Ok(payload.get("cnf").and_then(|c| c.get("x5t#S256")).map(|v| match v {
        serde_json::Value::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }))
}

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn a_thumbprint_is_the_base64url_of_the_digest() {
        let der = b"a certificate's DER";
        let (t, sha) = (certgate_x509::x5t_s256(der), certgate_x509::sha256_hex(der));
        assert_eq!(t.len(), 43);
        assert!(Token::is_bound_to(&t, &sha));
        assert!(
            !Token::is_bound_to(&format!("{t}="), &sha),
            "padding is not base64url as RFC 8705 writes it"
        );
        assert!(!Token::is_bound_to(&t[..42], &sha));
        assert!(!Token::is_bound_to("", &sha));
        assert!(!Token::is_bound_to(&t, &certgate_x509::sha256_hex(b"another")));
    }

    #[test]
    fn the_forwarded_payload_gives_its_claim() {
        let enc = |json: &str| Base64UrlUnpadded::encode_string(json.as_bytes());
        assert_eq!(
            payload_thumbprint(&enc(r#"{"cnf":{"x5t#S256":"abc"}}"#)).unwrap(),
            Some(b"abc".to_vec())
        );
        assert_eq!(payload_thumbprint(&enc(r#"{"sub":"x"}"#)).unwrap(), None);
        assert_eq!(payload_thumbprint(&enc(r#"{"cnf":{"jkt":"x"}}"#)).unwrap(), None);
        assert_eq!(payload_thumbprint(&enc(r#"{"cnf":{"x5t#S256":5}}"#)).unwrap(), Some(b"5".to_vec()));
        assert_eq!(payload_thumbprint(&enc(r#"{"cnf":"x"}"#)).unwrap(), None);
        assert!(payload_thumbprint("!!").is_err());
        assert!(payload_thumbprint(&enc("[1]")).is_err());
    }
}
