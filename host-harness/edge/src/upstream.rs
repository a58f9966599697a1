//! The edge's side towards applications: the upstream it forwards to, the
//! named upstreams (Envoy's clusters) a filter's `proxy_http_call` may use,
//! and a body type that carries buffered data and trailers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use certgate_host::{HttpCall, HttpCallResponse};
use certgate_wire::{Pair, Pairs};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::{HeaderMap, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A body held whole: its data, then its trailers.
#[derive(Debug, Default)]
pub struct Buffered {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Buffered {
    /// A body of `data` followed by `trailers` (none if empty).
    pub fn new(data: impl Into<Bytes>, trailers: HeaderMap) -> Buffered {
        let data: Bytes = data.into();
        Buffered {
            data: (!data.is_empty()).then_some(data),
            trailers: (!trailers.is_empty()).then_some(trailers),
        }
    }
}

impl Body for Buffered {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.data, &self.trailers) {
            (data, None) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            _ => SizeHint::default(),
        }
    }
}

/// Named upstreams (`--cluster NAME=http://host:port`) and the HTTP client.
#[derive(Debug)]
pub struct Upstreams {
    named: HashMap<String, Uri>,
    client: Client<HttpConnector, Buffered>,
}

impl Upstreams {
    /// A client for the application and these named upstreams.
    pub fn new(named: HashMap<String, Uri>) -> Upstreams {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Upstreams { named, client }
    }

    /// The names a filter may call.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.named.keys().cloned().collect();
        names.sort();
        names
    }

    /// The client (also what requests are forwarded with).
    pub fn client(&self) -> &Client<HttpConnector, Buffered> {
        &self.client
    }

    /// Performs a filter's HTTP call within its timeout; `None` when it
    /// failed, as Envoy reports a failed call (no headers, no body).
    pub async fn call(&self, call: &HttpCall) -> Option<HttpCallResponse> {
        let base = self.named.get(&call.upstream)?;
        let header = |name: &str| {
            call.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let uri = format!(
            "{}://{}{}",
            base.scheme_str().unwrap_or("http"),
            base.authority()?.as_str(),
            header(":path")?
        );
        let mut builder = Request::builder()
            .method(header(":method")?.as_str())
            .uri(uri)
            .header("host", header(":authority")?);
        for (k, v) in &call.headers {
            if !k.starts_with(':') {
                builder = builder.header(k.as_str(), v.as_slice());
            }
        }
        let request = builder.body(Buffered::new(call.body.clone(), to_header_map(&call.trailers))).ok()?;
        let exchange = async {
            let response = self.client.request(request).await.ok()?;
            let (parts, body) = response.into_parts();
            let collected = body.collect().await.ok()?;
            let trailers = collected.trailers().map(from_header_map).unwrap_or_default();
            let mut headers = vec![(":status".to_owned(), parts.status.as_u16().to_string().into_bytes())];
            headers.extend(from_header_map(&parts.headers));
            Some(HttpCallResponse {
                headers,
                body: collected.to_bytes().to_vec(),
                trailers,
            })
        };
        let timeout = if call.timeout.is_zero() {
            Duration::from_secs(3600)
        } else {
            call.timeout
        };
        tokio::time::timeout(timeout, exchange).await.ok().flatten()
    }
}

/// A header map as proxy-wasm pairs.
pub fn from_header_map(map: &HeaderMap) -> Pairs {
    map.iter().map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec())).collect()
}

/// Pairs as a header map; pseudo-headers and invalid names or values are left out.
pub fn to_header_map(pairs: &[Pair]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        if k.starts_with(':') {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_bytes(v),
        ) {
            map.append(k, v);
        }
    }
    map
}
