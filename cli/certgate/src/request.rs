//! One request through the real `.wasm`, as an Envoy listener would give it
//! to the filter: on a loopback TLS connection with the client certificate
//! (verified or not) and its `x-forwarded-client-cert` element, and the
//! dynamic metadata of a token `jwt_authn` verified, for
//! `certgate check` and `certgate test`.

use std::path::Path;

use certgate_core::host::JWT_AUTHN_NAMESPACE;
use certgate_decision::{Published, PROPERTY};
use certgate_host::{Connection, Exchange, Plugin};
use certgate_wire::{header_map, Pairs};

/// What a request to the filter is: the client's certificate file and
/// whether the proxy verified it, the request line and the client's headers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The certificate (PEM), if the client sent one.
    pub cert: Option<&'a Path>,
    /// Whether the proxy verified it.
    pub verified: bool,
    /// `:method`.
    pub method: &'a str,
    /// `:path`.
    pub path: &'a str,
    /// `:authority`.
    pub host: &'a str,
    /// Headers the client sends (names lowercased, as Envoy gives them).
    pub headers: &'a [(String, String)],
    /// A token Envoy's `jwt_authn` verified: the provider's
    /// `payload_in_metadata` name and the payload it put there.
    pub token: Option<(&'a str, &'a serde_json::Value)>,
}

/// What came of it: the exchange, the headers sent to the filter, and the
/// decision it published (none if the module is not certgate).
#[derive(Debug)]
pub struct Sent {
    /// What the upstream would get, or the local reply.
    pub exchange: Exchange,
    /// The request headers as the filter received them.
    pub headers: Pairs,
    /// The published decision.
    pub published: Option<Published>,
}

/// Sends `r` through `plugin`.
pub fn send(plugin: &mut Plugin, r: &Request<'_>) -> anyhow::Result<Sent> {
    let mut conn = Connection::local_tls();
    if let Some(cert) = r.cert {
        conn = conn.with_client_cert_file(cert, r.verified)?;
    }
    let mut headers = header_map::request(r.method, r.path, r.host);
    for (k, v) in r.headers {
        header_map::add(&mut headers, k, v.as_bytes().to_vec());
    }
    // SANITIZE_SET: the proxy's element for this connection
    if let Some(x) = &conn.xfcc {
        header_map::replace(&mut headers, "x-forwarded-client-cert", x.clone().into_bytes());
    }
    let metadata = r
        .token
        .map(|(key, payload)| certgate_wire::metadata::properties(JWT_AUTHN_NAMESPACE, key, payload))
        .unwrap_or_default();
    let exchange = plugin.request_with_metadata(&conn, headers.clone(), metadata)?;
    let published = exchange.filter_state.get(PROPERTY).and_then(|v| Published::from_bytes(v));
    Ok(Sent {
        exchange,
        headers,
        published,
    })
}

/// The metadata key a verified token goes under: the policy's
/// `bound_tokens.payload_in_metadata`, if it has one.
pub fn token_metadata_key(policy: &str) -> Option<String> {
    let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
    policy.pointer("/bound_tokens/payload_in_metadata")?.as_str().map(str::to_owned)
}

/// The RFC 8705 thumbprint of a PEM file's first certificate: what a token
/// bound to it carries in `cnf["x5t#S256"]`.
pub fn thumbprint_of_file(file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let der = certgate_x509::pem::first_certificate(text.as_bytes()).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(certgate_x509::x5t_s256(&der))
}
