//! One request's way through the filter, as Envoy 1.40 runs a proxy-wasm
//! HTTP filter:
//!
//! - request headers, then each body chunk, then trailers; a body callback
//!   that pauses keeps its data, and the next sees it with the new chunk;
//! - a pause waits for the stream's HTTP calls, and `continue_stream` resumes;
//! - a local reply, from any phase, ends the request phase; a local reply
//!   sent from the request phase goes through the response callbacks
//!   (headers, then its body in one chunk), so their changes reach the client;
//! - the upstream's response: headers, body chunks, trailers, the same way.
//!
//! Where this differs from Envoy: bodies are held whole before they go on
//! (the upstream sees the request body, and the client the response body,
//! once it is complete), and a stream paused with nothing outstanding at
//! its end is answered 500 rather than left to its timeout.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use certgate_host::{HarnessError, LocalResponse};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::{HeaderMap, Request, Response, StatusCode};
use tokio::sync::mpsc as async_mpsc;

use crate::upstream::{from_header_map, to_header_map, Buffered, Upstreams};
use certgate_host::{Half, Step, Verdict};

use crate::worker::Worker;
use certgate_wire::header_map::is_hop_by_hop;
use certgate_wire::Pairs;

/// What a body's callbacks did with it.
#[derive(Debug)]
enum BodyOutcome {
    /// The body that passes on.
    Passed(Vec<u8>),
    /// The filter answered with a local reply instead.
    Replied(LocalResponse),
}

/// Why a request could not go through; each becomes a local 5xx.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The filter trapped or the worker is gone.
    #[error("filter failed: {0}")]
    Filter(#[from] HarnessError),
    /// The filter paused and nothing can resume it.
    #[error("the filter paused the stream and nothing can resume it")]
    Paused,
    /// The client's body broke off.
    #[error("the client's request body broke off")]
    Client,
    /// The upstream could not be reached.
    #[error("the upstream could not be reached")]
    Upstream,
}

/// A response ready for the client: status, headers, body, trailers.
#[derive(Debug)]
pub struct Outgoing {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, whole.
    pub body: Vec<u8>,
    /// The trailers.
    pub trailers: HeaderMap,
}

/// The response half as it will go out, before the stream is closed: the
/// headers and trailers come from the stream's last state.
#[derive(Debug)]
pub enum Ending {
    /// The response phase ran: its body, and whether the upstream (or the
    /// local reply) stated a length.
    #[allow(missing_docs)]
    Filtered { body: Vec<u8>, had_length: bool },
    /// A local reply sent from the response phase: sent as it is.
    Local(LocalResponse),
}

fn gone() -> FlowError {
    FlowError::Filter(HarnessError::Poisoned("the stream is gone".into()))
}

/// One stream on its worker (callbacks run here, on the worker's thread;
/// the worker is never borrowed across an await).
#[derive(Debug)]
pub struct Flow {
    /// The worker whose VM runs the stream.
    pub worker: Rc<RefCell<Worker>>,
    /// The stream's context id.
    pub id: u32,
    /// Told when one of the stream's HTTP calls came back.
    pub events: async_mpsc::UnboundedReceiver<()>,
}

impl Flow {
    /// Opens a stream on `worker` and runs its request headers.
    pub async fn start(
        worker: Rc<RefCell<Worker>>,
        conn: &certgate_host::Connection,
        headers: Pairs,
        end: bool,
    ) -> Result<(Flow, Step), FlowError> {
        let (events_tx, events) = async_mpsc::unbounded_channel();
        let (id, step) = {
            let mut w = worker.borrow_mut();
            let id = w.open(conn, events_tx)?;
            (id, w.step(id, Half::Request, |p| p.request_headers(id, headers, end)))
        };
        let mut flow = Flow { worker, id, events };
        let step = flow.settled(step?, Half::Request).await?;
        Ok((flow, step))
    }

    /// Waits out the HTTP calls a paused stream made.
    async fn settled(&mut self, mut step: Step, half: Half) -> Result<Step, FlowError> {
        while step.verdict == Verdict::Wait {
            if self.events.recv().await.is_none() {
                return Err(gone());
            }
            step = self.worker.borrow_mut().settle(self.id, certgate_host::Action::Pause, half);
        }
        Ok(step)
    }

    /// Runs one callback and waits out its calls.
    async fn phase(
        &mut self,
        half: Half,
        f: impl FnOnce(&mut certgate_host::Plugin, u32) -> Result<certgate_host::Action, HarnessError>,
    ) -> Result<Step, FlowError> {
        let id = self.id;
        let step = self.worker.borrow_mut().step(id, half, |p| f(p, id))?;
        self.settled(step, half).await
    }

    /// Ends the stream; its last state is what the response and the access
    /// log read.
    pub fn close(&self) -> Option<certgate_host::StreamState> {
        self.worker.borrow_mut().close(self.id).ok()
    }

    /// Feeds a body through its callbacks: what passes on, or the local
    /// reply the filter sent. `held`: the headers' callback paused.
    async fn body(&mut self, half: Half, body: &mut Incoming, mut held: bool) -> Result<BodyOutcome, FlowError> {
        let mut passed = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| FlowError::Client)?;
            let end = body.is_end_stream();
            let step = match frame.into_data() {
                Ok(chunk) => {
                    let chunk = chunk.to_vec();
                    match half {
                        Half::Request => self.phase(half, move |p, id| p.request_body(id, &chunk, end)).await?,
                        Half::Response => self.phase(half, move |p, id| p.response_body(id, &chunk, end)).await?,
                    }
                }
                Err(frame) => {
                    let trailers = frame.into_trailers().map(|t| from_header_map(&t)).unwrap_or_default();
                    match half {
                        Half::Request => self.phase(half, move |p, id| p.request_trailers(id, trailers)).await?,
                        Half::Response => self.phase(half, move |p, id| p.response_trailers(id, trailers)).await?,
                    }
                }
            };
            match step.verdict {
                Verdict::Reply(local) => return Ok(BodyOutcome::Replied(local)),
                Verdict::Go => {
                    held = false;
                    passed.extend(step.body);
                }
                Verdict::Held | Verdict::Wait => held = true,
            }
        }
        if held {
            return Err(FlowError::Paused);
        }
        Ok(BodyOutcome::Passed(passed))
    }

    /// The whole exchange after the request headers' step: the request body,
    /// the upstream, the response phase. What to send, less what the
    /// stream's last state says (see [`outgoing`]).
    pub async fn run(
        &mut self,
        first: Step,
        mut body: Incoming,
        upstreams: &Upstreams,
        upstream: &hyper::Uri,
    ) -> Result<Ending, FlowError> {
        let end = body.is_end_stream();
        let held = match first.verdict {
            Verdict::Reply(local) => {
                discard(body);
                return self.local_reply(local).await;
            }
            Verdict::Go => false,
            Verdict::Held | Verdict::Wait => true,
        };
        if held && end {
            return Err(FlowError::Paused);
        }
        let mut data = first.body;
        match self.body(Half::Request, &mut body, held).await? {
            BodyOutcome::Passed(more) => data.extend(more),
            BodyOutcome::Replied(local) => {
                discard(body);
                return self.local_reply(local).await;
            }
        }
        // the request as the filter left it
        let (headers, trailers) = self.worker.borrow_mut().snapshot(self.id, Half::Request).ok_or_else(gone)?;
        let response = forward(upstreams, upstream, &headers, data, &trailers).await?;
        self.response(response).await
    }

    async fn response(&mut self, response: Response<Incoming>) -> Result<Ending, FlowError> {
        let (parts, mut body) = response.into_parts();
        let mut headers = vec![(":status".to_owned(), parts.status.as_u16().to_string().into_bytes())];
        headers.extend(from_header_map(&parts.headers).into_iter().filter(|(k, _)| !is_hop_by_hop(k)));
        let end = body.is_end_stream();
        let step = self
            .phase(Half::Response, move |p, id| p.response_headers(id, headers, end))
            .await?;
        let held = match step.verdict {
            // a local reply from the response phase replaces the response as it is
            Verdict::Reply(local) => return Ok(Ending::Local(local)),
            Verdict::Go => false,
            Verdict::Held | Verdict::Wait => true,
        };
        if held && end {
            return Err(FlowError::Paused);
        }
        let had_length = parts.headers.get(hyper::header::CONTENT_LENGTH).is_some();
        match self.body(Half::Response, &mut body, held).await? {
            BodyOutcome::Passed(data) => {
                let mut all = step.body;
                all.extend(data);
                Ok(Ending::Filtered { body: all, had_length })
            }
            BodyOutcome::Replied(local) => Ok(Ending::Local(local)),
        }
    }

    /// A local reply from the request phase, through the response callbacks.
    async fn local_reply(&mut self, local: LocalResponse) -> Result<Ending, FlowError> {
        let headers = local_headers(&local);
        let body = local.body;
        let end = body.is_empty();
        let step = self
            .phase(Half::Response, move |p, id| p.response_headers(id, headers, end))
            .await?;
        if let Verdict::Reply(again) = step.verdict {
            return Ok(Ending::Local(again));
        }
        let mut data = step.body;
        if !end {
            let step = self.phase(Half::Response, move |p, id| p.response_body(id, &body, true)).await?;
            match step.verdict {
                Verdict::Reply(again) => return Ok(Ending::Local(again)),
                _ => data.extend(step.body),
            }
        }
        Ok(Ending::Filtered {
            body: data,
            had_length: true,
        })
    }
}

/// The response as the filter left it, from the stream's last state. A
/// `content-length` that no longer matches a changed body is dropped (hyper
/// writes the right one).
pub fn outgoing(ending: Ending, last: Option<&certgate_host::StreamState>) -> Outgoing {
    let (body, had_length) = match ending {
        Ending::Local(local) => return outgoing_of_local(local),
        Ending::Filtered { body, had_length } => (body, had_length),
    };
    let empty = Vec::new();
    let (headers, trailers) = last.map_or((&empty, &empty), |s| (&s.response_headers, &s.response_trailers));
    let status = headers
        .iter()
        .find(|(k, _)| k == ":status")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut map = to_header_map(headers);
    let stated = map
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if stated.is_some_and(|n| n != body.len()) || (!had_length && stated.is_some()) {
        map.remove(hyper::header::CONTENT_LENGTH);
    }
    Outgoing {
        status,
        headers: map,
        body,
        trailers: to_header_map(trailers),
    }
}

/// Envoy's local reply headers: `:status`, the filter's, and `content-type:
/// text/plain` for a body without one.
fn local_headers(local: &LocalResponse) -> Pairs {
    let mut headers = vec![(":status".to_owned(), local.status.to_string().into_bytes())];
    headers.extend(local.headers.iter().cloned());
    if !local.body.is_empty() && !headers.iter().any(|(k, _)| k == "content-type") {
        headers.push(("content-type".into(), b"text/plain".to_vec()));
    }
    headers
}

fn outgoing_of_local(local: LocalResponse) -> Outgoing {
    let headers = local_headers(&local);
    let status = u16::try_from(local.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::FORBIDDEN);
    Outgoing {
        status,
        headers: to_header_map(&headers),
        body: local.body,
        trailers: HeaderMap::new(),
    }
}

/// The request as the filter left it, to the upstream: `:method`, `:path` and
/// `:authority` (as `host`) from the filter's headers.
async fn forward(
    upstreams: &Upstreams,
    upstream: &hyper::Uri,
    headers: &Pairs,
    body: Vec<u8>,
    trailers: &Pairs,
) -> Result<Response<Incoming>, FlowError> {
    let pseudo = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice());
    let path = pseudo(":path").and_then(|p| std::str::from_utf8(p).ok()).unwrap_or("/");
    let method = pseudo(":method")
        .and_then(|m| hyper::Method::from_bytes(m).ok())
        .unwrap_or(hyper::Method::GET);
    let uri = format!(
        "{}://{}{}",
        upstream.scheme_str().unwrap_or("http"),
        upstream.authority().map(|a| a.as_str()).unwrap_or("127.0.0.1"),
        path
    );
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(authority) = pseudo(":authority") {
        builder = builder.header("host", authority);
    }
    for (k, v) in headers {
        if !k.starts_with(':') && !is_hop_by_hop(k) && k != "content-length" {
            builder = builder.header(k.as_str(), v.as_slice());
        }
    }
    let request = builder
        .body(Buffered::new(Bytes::from(body), to_header_map(trailers)))
        .map_err(|_| FlowError::Upstream)?;
    upstreams.client().request(request).await.map_err(|e| {
        tracing::warn!(%upstream, "upstream failed: {e}");
        FlowError::Upstream
    })
}

/// What is left of a request body answered early is read and dropped in the
/// background (up to 4 MiB, 5 s), so the client reads the answer: an
/// HTTP/2 stream ends instead of being reset.
fn discard(body: Incoming) {
    if !body.is_end_stream() {
        tokio::task::spawn_local(certgate_net::discard_body(body, 4 * 1024 * 1024, std::time::Duration::from_secs(5)));
    }
}
