//! One request as the core's [`Host`]: the request headers and changes to
//! them, the connection's attributes for the properties certgate reads,
//! and the local reply.

use certgate_core::host::{property, Host, HostError, Verified, JWT_AUTHN_NAMESPACE};
use certgate_core::xfcc::percent_decode;

use crate::abi::ffi::{Attribute, Stream};
use certgate_wire::Pairs;

/// An Envoy stream during its request headers hook.
pub struct EnvoyHost<'s, 'hook>(pub &'s mut Stream<'hook>);

fn refused(call: &'static str) -> HostError {
    HostError {
        call,
        status: "refused by Envoy".into(),
    }
}

fn done(ok: bool, call: &'static str) -> Result<(), HostError> {
    if ok {
        Ok(())
    } else {
        Err(refused(call))
    }
}

/// The connection filter state the listener's `set_filter_state` network
/// filter writes at the TLS handshake: `%DOWNSTREAM_PEER_CERT%`, the
/// certificate as a URL-encoded PEM (`envoy/required-mtls-native.yaml`). The
/// HTTP filter ABI has no attribute for the certificate itself.
pub const PEER_CERT_STATE: &str = "certgate.peer_cert";

/// The same filter's `%CEL(connection.peer_certificate_valid)%`: `true` or
/// `false` on Envoy 1.39+ (false on a resumed session), empty on 1.38.
pub const PEER_CERT_VALID_STATE: &str = "certgate.peer_cert_valid";

/// The validity flag as the property encodes it (one byte); `None` where
/// the Envoy cannot say.
fn validity_flag(text: &[u8]) -> Option<Vec<u8>> {
    match text {
        b"true" => Some(vec![1]),
        b"false" => Some(vec![0]),
        _ => None,
    }
}

/// The attribute behind a property path; `None` for those Envoy's dynamic
/// module ABI has none for (the certificate itself, read from
/// [`PEER_CERT_STATE`], and its validity flag: see [`crate::MODULE_READS`]).
fn attribute(path: &[&str]) -> Option<Attribute> {
    match path {
        p if p == property::SUBJECT => Some(Attribute::SubjectPeerCertificate),
        p if p == property::URI_SAN => Some(Attribute::UriSanPeerCertificate),
        p if p == property::DNS_SAN => Some(Attribute::DnsSanPeerCertificate),
        p if p == property::SHA256_DIGEST => Some(Attribute::Sha256PeerCertificateDigest),
        _ => None,
    }
}

impl Host for EnvoyHost<'_, '_> {
    fn request_headers(&mut self) -> Result<Pairs, HostError> {
        self.0.request_headers().ok_or_else(|| refused("http_get_headers"))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        done(self.0.set_request_header(name, None), "http_set_header")
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        done(self.0.add_request_header(name, value.as_bytes()), "http_add_header")
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        done(self.0.set_request_header(name, Some(value.as_bytes())), "http_set_header")
    }

    fn property(&mut self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        if path == property::PEER_CERTIFICATE {
            // read only when the digest misses the cache: no per-request cost
            return Ok(self
                .0
                .filter_state(PEER_CERT_STATE)
                .filter(|v| !v.is_empty())
                .and_then(|v| percent_decode(&String::from_utf8_lossy(&v)).ok()));
        }
        if path == property::PEER_CERTIFICATE_VALID {
            return Ok(self.0.filter_state(PEER_CERT_VALID_STATE).and_then(|v| validity_flag(&v)));
        }
        Ok(attribute(path).and_then(|id| self.0.attribute(id)))
    }

    fn verified_token(&mut self, key: &str) -> Result<Verified, HostError> {
        // The ABI reads top-level metadata values only: it can tell that
        // jwt_authn verified a token, not read the payload Struct.
        Ok(if self.0.has_metadata_key(JWT_AUTHN_NAMESPACE, key) {
            Verified::Opaque
        } else {
            Verified::Nothing
        })
    }

    fn certificate_setting(&self) -> Option<&'static str> {
        Some(
            "add the envoy.filters.network.set_filter_state network filter writing %DOWNSTREAM_PEER_CERT% to \
             certgate.peer_cert at the TLS handshake (envoy/required-mtls-native.yaml), or set_current_client_cert_details \
             { cert: true } with forward_client_cert_details SANITIZE_SET",
        )
    }

    fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
        done(self.0.send_response(status, headers, body, "certgate"), "http_send_response")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_property_certgate_reads_has_its_attribute_or_none() {
        assert_eq!(attribute(property::SUBJECT), Some(Attribute::SubjectPeerCertificate));
        assert_eq!(attribute(property::URI_SAN), Some(Attribute::UriSanPeerCertificate));
        assert_eq!(attribute(property::DNS_SAN), Some(Attribute::DnsSanPeerCertificate));
        assert_eq!(attribute(property::SHA256_DIGEST), Some(Attribute::Sha256PeerCertificateDigest));
        assert_eq!(attribute(property::PEER_CERTIFICATE), None);
        assert_eq!(attribute(property::PEER_CERTIFICATE_VALID), None);
    }

    #[test]
    fn the_validity_flag_is_read_from_its_text_and_an_empty_one_says_nothing() {
        assert_eq!(validity_flag(b"true"), Some(vec![1]));
        assert_eq!(validity_flag(b"false"), Some(vec![0]));
        assert_eq!(validity_flag(b""), None, "Envoy 1.38 writes nothing");
        assert_eq!(validity_flag(b"-"), None);
    }
}
