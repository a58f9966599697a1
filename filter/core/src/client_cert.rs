//! RFC 9440's `Client-Cert` and `Client-Cert-Chain` values: the client's
//! certificates as structured-field byte sequences (RFC 8941 `:base64:`).
//! Pure: the request flow hands in the PEM the proxy gave.

use base64ct::{Base64, Encoding};
use certgate_x509::pem::certificates as certificates_in_pem;
use certgate_x509::sha256_hex;

/// The two values, when they can be given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateFields {
    /// `Client-Cert`: the leaf.
    pub client_cert: Option<String>,
    /// `Client-Cert-Chain`: the other certificates the client sent, in order.
    pub chain: Option<String>,
}

/// A DER certificate as an sf-binary item.
pub fn sf_binary(der: &[u8]) -> String {
    format!(":{}:", Base64::encode_string(der))
}

/// The fields for the certificate whose SHA-256 is `sha256` (lowercase hex):
/// `leaf_pem` counts only if it is that certificate, and the chain only with
/// it, less the leaf.
pub fn certificate_fields(leaf_pem: Option<&[u8]>, chain_pem: Option<&[u8]>, sha256: &str) -> CertificateFields {
    let Some(leaf) = leaf_pem.and_then(|p| certificates_in_pem(p).into_iter().next()) else {
        return CertificateFields::default();
    };
    if sha256_hex(&leaf) != sha256 {
        return CertificateFields::default();
    }
    let others: Vec<String> = chain_pem
        .map(certificates_in_pem)
        .unwrap_or_default()
        .iter()
        .filter(|der| **der != leaf)
        .map(|der| sf_binary(der))
        .collect();
    CertificateFields {
        client_cert: Some(sf_binary(&leaf)),
        chain: (!others.is_empty()).then(|| others.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::{fixture, fixture_der};

    #[test]
    fn the_leaf_is_one_byte_sequence_and_the_chain_the_rest() {
        let alice = fixture_der("alice.pem");
        let digest = sha256_hex(&alice);
        let chain = fixture("alice-chain.pem");
        let f = certificate_fields(Some(fixture("alice.pem").as_bytes()), Some(chain.as_bytes()), &digest);
        assert_eq!(f.client_cert, Some(format!(":{}:", Base64::encode_string(&alice))));
        assert_eq!(
            f.chain,
            Some(sf_binary(&fixture_der("client-ca.pem"))),
            "the leaf is not repeated in the chain"
        );
        let without_chain = certificate_fields(Some(fixture("alice.pem").as_bytes()), None, &digest);
        assert_eq!(without_chain.chain, None);
    }

    #[test]
    fn another_certificate_gives_nothing() {
        let bob = fixture("bob.pem");
        let alice_digest = sha256_hex(&fixture_der("alice.pem"));
        assert_eq!(
            certificate_fields(Some(bob.as_bytes()), None, &alice_digest),
            CertificateFields::default()
        );
        assert_eq!(
            certificate_fields(Some(b"garbage"), None, &alice_digest),
            CertificateFields::default()
        );
        assert_eq!(
            certificate_fields(None, Some(bob.as_bytes()), &alice_digest),
            CertificateFields::default()
        );
    }
}
