//! A simulated proxy for the filter's tests: request headers and connection
//! properties in, headers and local replies out, as Envoy would present them.
#![allow(dead_code, unused_imports)]

use std::collections::HashMap;
use std::path::PathBuf;

use certgate_filter::admission::{Host, HostError};
pub use certgate_x509::sha256_hex;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

pub fn fixture(rel: &str) -> String {
    let path = fixtures_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The leaf PEM and its DER of a fixture client.
pub fn client_cert(name: &str) -> (String, Vec<u8>) {
    let pem = fixture(&format!("pki/{name}.pem"));
    let (_, der) = pem_rfc7468::decode_vec(pem.as_bytes()).expect("fixture PEM");
    (pem, der)
}

/// Local reply sent by the filter.
#[derive(Debug, Clone)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct FakeProxy {
    pub headers: Vec<(String, Vec<u8>)>,
    pub properties: HashMap<String, Vec<u8>>,
    pub reply: Option<LocalReply>,
    /// Host calls that fail, by name, to test failing closed.
    pub failing: Vec<&'static str>,
    pub property_reads: Vec<String>,
}

impl FakeProxy {
    pub fn request(method: &str, path: &str, authority: &str) -> FakeProxy {
        let mut p = FakeProxy::default();
        p.headers.push((":method".into(), method.as_bytes().to_vec()));
        p.headers.push((":path".into(), path.as_bytes().to_vec()));
        p.headers.push((":authority".into(), authority.as_bytes().to_vec()));
        p
    }

    pub fn with_header(mut self, name: &str, value: &str) -> FakeProxy {
        self.headers.push((name.to_owned(), value.as_bytes().to_vec()));
        self
    }

    pub fn set_property(&mut self, path: &[&str], value: impl Into<Vec<u8>>) {
        self.properties.insert(path.join("."), value.into());
    }

    /// The properties Envoy 1.40 gives for a TLS connection with this client
    /// certificate (verified or not): the harness's model of them.
    pub fn with_client_cert(mut self, name: &str, verified: bool) -> FakeProxy {
        let conn = certgate_host::Connection::local_tls()
            .with_client_cert_file(&fixtures_dir().join(format!("pki/{name}.pem")), verified)
            .expect("fixture certificate");
        self.properties.extend(conn.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }

    /// Header values by name (case-insensitive), as the application would see them.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let mut values = self.header_values(name);
        assert!(values.len() <= 1, "header {name} appears {} times: {values:?}", values.len());
        values.pop()
    }

    fn fail(&self, call: &'static str) -> Result<(), HostError> {
        if self.failing.contains(&call) {
            return Err(HostError { call, status: "InternalFailure".into() });
        }
        Ok(())
    }
}

impl Host for FakeProxy {
    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        self.fail("request_headers")?;
        Ok(self.headers.clone())
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.fail("remove_request_header")?;
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        Ok(())
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.fail("add_request_header")?;
        self.headers.push((name.to_owned(), value.as_bytes().to_vec()));
        Ok(())
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.fail("set_request_header")?;
        match self.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((_, v)) => *v = value.as_bytes().to_vec(),
            None => self.headers.push((name.to_owned(), value.as_bytes().to_vec())),
        }
        Ok(())
    }

    fn property(&mut self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        self.fail("property")?;
        let key = path.join(".");
        self.property_reads.push(key.clone());
        Ok(self.properties.get(&key).cloned())
    }

    fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
        self.fail("send_local_response")?;
        assert!(self.reply.is_none(), "two local replies");
        self.reply = Some(LocalReply {
            status,
            headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
            body: body.to_vec(),
        });
        Ok(())
    }
}
