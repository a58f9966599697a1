//! `FakeEnvoy` (feature `testing`): the filter's [`Host`] as Envoy presents
//! it, without a VM, for the filter's tests and the fuzz targets. Headers
//! follow Envoy's header map semantics (`certgate_wire::header_map`, which
//! the harness applies too); properties are what an Envoy listener gives
//! (`certgate_wire::connection::Connection`). It records what the filter did:
//! the headers it added or replaced, the properties it read, its local reply.
//! Host calls can be made to fail, to show the filter fails closed.
#![allow(clippy::panic)]

use std::collections::HashMap;

use certgate_wire::connection::Connection;
use certgate_wire::{header_map, Pairs};

use crate::host::{Host, HostError, Verified};

/// The local reply the filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// The HTTP status.
    pub status: u16,
    /// Its headers, as the filter gave them.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

/// One request's view of Envoy; see the module documentation.
#[derive(Debug, Default)]
pub struct FakeEnvoy {
    /// The request headers, as the application would receive them.
    pub headers: Pairs,
    /// Property path (`connection.mtls`) to its encoded value.
    pub properties: HashMap<String, Vec<u8>>,
    /// What `jwt_authn` verified, by `payload_in_metadata` key.
    pub tokens: HashMap<String, Verified>,
    /// The local reply, if the filter sent one.
    pub reply: Option<LocalReply>,
    /// Host calls that fail, by [`Host`] method name.
    pub failing: Vec<&'static str>,
    /// Properties read, in order, as dotted paths.
    pub property_reads: Vec<String>,
    /// Headers the filter added.
    pub added: Vec<(String, String)>,
    /// Headers the filter replaced (`:path`, with the spelling the rules matched).
    pub replaced: Vec<(String, String)>,
    /// What [`Host::certificate_setting`] answers (the dynamic module's
    /// network filter); `None` by default, as Envoy's Wasm host.
    pub certificate_setting: Option<&'static str>,
}

impl FakeEnvoy {
    /// A request with its pseudo-headers ([`header_map::request`]), on no connection.
    pub fn request(method: &str, path: &str, authority: &str) -> FakeEnvoy {
        FakeEnvoy {
            headers: header_map::request(method, path, authority),
            ..FakeEnvoy::default()
        }
    }

    /// A request with these headers, names lowercased as Envoy gives them.
    pub fn from_headers(headers: impl IntoIterator<Item = (String, Vec<u8>)>) -> FakeEnvoy {
        let mut p = FakeEnvoy::default();
        for (name, value) in headers {
            header_map::add(&mut p.headers, &name, value);
        }
        p
    }

    /// With one more request header from the client (Envoy lowercases its name).
    pub fn with_header(mut self, name: &str, value: &str) -> FakeEnvoy {
        header_map::add(&mut self.headers, name, value.as_bytes().to_vec());
        self
    }

    /// On this connection: its properties, as the listener gives them.
    pub fn on(mut self, connection: &Connection) -> FakeEnvoy {
        self.properties
            .extend(connection.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }

    /// Sets one property.
    pub fn set_property(&mut self, path: &[&str], value: impl Into<Vec<u8>>) {
        self.properties.insert(path.join("."), value.into());
    }

    /// Header values by name (case-insensitive), as the application would see them.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        let name = header_map::name(name);
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The one value of a header; panics if it appears more than once.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut values = self.header_values(name);
        assert!(values.len() <= 1, "header {name} appears {} times: {values:?}", values.len());
        values.pop()
    }

    fn fail(&self, call: &'static str) -> Result<(), HostError> {
        if self.failing.contains(&call) {
            return Err(HostError {
                call,
                status: "InternalFailure".into(),
            });
        }
        Ok(())
    }
}

impl Host for FakeEnvoy {
    fn request_headers(&mut self) -> Result<Pairs, HostError> {
        self.fail("request_headers")?;
        Ok(self.headers.clone())
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.fail("remove_request_header")?;
        header_map::remove(&mut self.headers, name);
        Ok(())
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.fail("add_request_header")?;
        header_map::add(&mut self.headers, name, value.as_bytes().to_vec());
        self.added.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.fail("set_request_header")?;
        header_map::replace(&mut self.headers, name, value.as_bytes().to_vec());
        self.replaced.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    fn property(&mut self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        self.fail("property")?;
        let key = path.join(".");
        let value = self.properties.get(&key).cloned();
        self.property_reads.push(key);
        Ok(value)
    }

    fn verified_token(&mut self, key: &str) -> Result<Verified, HostError> {
        self.fail("verified_token")?;
        Ok(self.tokens.get(key).cloned().unwrap_or(Verified::Nothing))
    }

    fn certificate_setting(&self) -> Option<&'static str> {
        self.certificate_setting
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
