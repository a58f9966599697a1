//! What certgate needs from the proxy, as a trait: the request headers, the
//! connection's properties, header changes and local replies. The wasm glue
//! implements it with proxy-wasm calls; tests with a map. Also the names
//! certgate reads, and the one way header values are looked up.

use certgate_wire::{Pair, Pairs};
use std::borrow::Cow;

/// A host call failed; the request fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host call {call} failed: {status}")]
pub struct HostError {
    /// The host call that failed.
    pub call: &'static str,
    /// The status it answered, as text.
    pub status: String,
}

/// What certgate needs from the proxy for one request.
pub trait Host {
    /// Every request header, repeated names included, values as bytes.
    fn request_headers(&mut self) -> Result<Pairs, HostError>;
    /// Removes every header with this exact name.
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;
    /// Adds a header. certgate adds only names it stripped first, so there is
    /// never one to replace (and appending is the cheaper call in Envoy).
    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Replaces a header's value (`:path`, when the request goes on under the
    /// spelling of its path that the rules matched).
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// A property such as `connection.peer_certificate`; `None` if the host has none.
    fn property(&mut self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError>;
    /// What `jwt_authn` verified for this request under `key` of its dynamic
    /// metadata namespace (a provider's `payload_in_metadata`).
    fn verified_token(&mut self, key: &str) -> Result<Verified, HostError>;
    /// Answers the request locally; it goes no further.
    fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError>;
    /// What gives this host the certificate, when it can only have it so (the
    /// dynamic module: the listener's `set_filter_state` network filter): a
    /// request without it is denied naming this setting, instead of falling
    /// back to the subject properties (no issuer, first SANs only). `None`
    /// (the default): fall back.
    fn certificate_setting(&self) -> Option<&'static str> {
        None
    }
}

/// Where things are in the property tree (Envoy's attribute names).
pub mod property {
    /// The connection's certificate, PEM.
    pub const PEER_CERTIFICATE: &[&str] = &["connection", "peer_certificate"];
    /// Whether the listener verified it (Envoy 1.39+): one byte.
    pub const PEER_CERTIFICATE_VALID: &[&str] = &["connection", "peer_certificate_valid"];
    /// The SHA-256 of its DER, hex.
    pub const SHA256_DIGEST: &[&str] = &["connection", "sha256_peer_certificate_digest"];
    /// Its subject DN, RFC 2253.
    pub const SUBJECT: &[&str] = &["connection", "subject_peer_certificate"];
    /// Its first URI SAN.
    pub const URI_SAN: &[&str] = &["connection", "uri_san_peer_certificate"];
    /// Its first DNS SAN.
    pub const DNS_SAN: &[&str] = &["connection", "dns_san_peer_certificate"];
}

/// The dynamic metadata namespace `jwt_authn` writes payloads under.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";

/// What the host found of `jwt_authn`'s payload under a metadata key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Nothing: no token of that provider was verified for this request.
    Nothing,
    /// A verified payload, and its `cnf["x5t#S256"]` claim if it has one
    /// (the claim's bytes as the host gave them).
    Thumbprint(Option<Vec<u8>>),
    /// A verified payload this host cannot look inside.
    Opaque,
}

/// The header Envoy's `forward_client_cert_details` writes.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

/// What a host can read of the connection besides the subject, SAN and
/// digest properties and the request's headers, which every host gives. A
/// policy that needs more is refused ([`crate::config::check_host_reads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostReads {
    /// Names the host in errors (`Envoy's dynamic module ABI`).
    pub host: &'static str,
    /// `connection.peer_certificate`, the certificate itself.
    pub peer_certificate: bool,
    /// `connection.peer_certificate_valid`, whether the proxy verified it.
    pub verified_flag: bool,
    /// Claims inside `jwt_authn`'s payload in dynamic metadata; without it
    /// the host only knows whether a token was verified.
    pub token_claims: bool,
}

/// The first value of a header (names compare without case), as text;
/// empty when the request has none.
pub fn header_text<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Cow<'a, str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map_or(Cow::Borrowed(""), |(_, v)| String::from_utf8_lossy(v))
}

/// Every value of a header (names compare without case), as text, in order.
pub fn header_texts(headers: &[Pair], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}
