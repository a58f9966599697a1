//! One EST exchange: a new TLS connection to the server (trusting the CA
//! given, presenting a client certificate for renewal), one HTTP/1.1
//! request, its status, `Retry-After` and body.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use rustls::crypto::ring;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{ClientError, Server};
use crate::pem_files::{self, FileError};
use crate::wire;

struct Target {
    host: String,
    port: u16,
}

fn target(url: &str) -> Result<Target, ClientError> {
    let rest = url.strip_prefix("https://").ok_or_else(|| ClientError::Url(url.to_owned()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().map_err(|_| ClientError::Url(url.to_owned()))?),
        _ => (authority, 443),
    };
    if host.is_empty() {
        return Err(ClientError::Url(url.to_owned()));
    }
    Ok(Target {
        host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
        port,
    })
}

pub(super) fn file_err(path: &Path, what: impl ToString) -> ClientError {
    ClientError::File(FileError::new(path, what))
}

/// The client's certificate chain and key, for renewal over mTLS.
pub struct ClientAuth {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Reads a certificate (chain) file and its key.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, ClientError> {
        Ok(ClientAuth {
            chain: pem_files::certificates(cert)?,
            key: pem_files::private_key(key)?,
        })
    }
}

pub(super) fn tls(server: &Server, auth: Option<&ClientAuth>) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    for ca in pem_files::certificates(&server.trust)? {
        roots
            .add(ca)
            .map_err(|e| file_err(&server.trust, format!("not a usable CA certificate: {e}")))?;
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ClientError::Connect {
            server: server.url.clone(),
            what: e.to_string(),
        })?
        .with_root_certificates(roots);
    let config = match auth {
        Some(a) => builder
            .with_client_auth_cert(a.chain.clone(), a.key.clone_key())
            .map_err(|e| ClientError::Connect {
                server: server.url.clone(),
                what: format!("the client key does not match its certificate: {e}"),
            })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// One answer: status, `Retry-After` (seconds), body.
pub(super) struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<u64>,
    pub body: Bytes,
}

/// One EST request: the operation, its method and what it carries.
pub(super) struct Call<'a> {
    pub method: Method,
    pub operation: &'a str,
    /// A CSR, base64 of its DER.
    pub body: Option<String>,
    /// HTTP Basic user and password (a token is the password).
    pub basic: Option<(&'a str, &'a str)>,
}

impl Call<'_> {
    pub fn get(operation: &str) -> Call<'_> {
        Call {
            method: Method::GET,
            operation,
            body: None,
            basic: None,
        }
    }
}

/// Sends one call over a new connection; `client_auth`: the configuration
/// presents a client certificate (a refusal then may be of it).
pub(super) async fn exchange(server: &Server, config: Arc<ClientConfig>, client_auth: bool, call: Call<'_>) -> Result<Answer, ClientError> {
    let Call {
        method,
        operation,
        body,
        basic,
    } = call;
    let t = target(&server.url)?;
    let connect = |what: String| ClientError::Connect {
        server: server.url.clone(),
        what,
    };
    // hyper's "connection error" says little: its causes say what (a TLS alert from the server)
    let chain = |e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    };
    let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| connect(e.to_string()))?;
    let name = ServerName::try_from(t.host.clone()).map_err(|e| connect(e.to_string()))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| connect(format!("TLS: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| connect(e.to_string()))?;
    tokio::spawn(conn);
    let path = match &server.label {
        Some(l) => format!("/.well-known/est/{l}/{operation}"),
        None => format!("/.well-known/est/{operation}"),
    };
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, format!("{}:{}", t.host, t.port));
    if body.is_some() {
        request = request.header(CONTENT_TYPE, "application/pkcs10");
    }
    if let Some((user, password)) = basic {
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request = request.header(AUTHORIZATION, format!("Basic {pair}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| connect(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(|e| {
        // TLS 1.3: a server that refuses the client certificate says so after the client's handshake is done
        let hint = if client_auth {
            " (the server closed the connection: it may have refused the client certificate; its log says why)"
        } else {
            ""
        };
        connect(format!("{}{hint}", chain(&e)))
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = response.into_body().collect().await.map_err(|e| connect(e.to_string()))?.to_bytes();
    Ok(Answer { status, retry_after, body })
}

pub(super) fn refused(answer: &Answer) -> ClientError {
    ClientError::Refused {
        status: answer.status,
        sentence: String::from_utf8_lossy(&answer.body).trim().to_owned(),
    }
}

pub(super) fn certificates(answer: &Answer) -> Result<Vec<Vec<u8>>, ClientError> {
    let unreadable = |e: wire::WireError| ClientError::Refused {
        status: answer.status,
        sentence: e.to_string(),
    };
    wire::certs_of(&wire::decode_base64(&answer.body).map_err(unreadable)?).map_err(unreadable)
}
