//! The limits of one listener, each with a default fit for a server facing
//! clients it does not know (nginx's and Envoy's orders of magnitude).

use std::time::Duration;

/// How long each part of a connection may take, and how many may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the connection's accept to the end of its TLS handshake.
    pub handshake: Duration,
    /// From the first byte of a request (or the connection's start, for the
    /// first one) to the end of its headers.
    pub header: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle: Duration,
    /// A request's body gets this long, plus a second for every
    /// `body_min_rate` bytes it holds; a body that comes slower is refused
    /// (408) and its connection closed.
    pub body: Duration,
    /// Bytes per second a body must come at, past `body`.
    pub body_min_rate: u64,
    /// Connections open at once, handshakes included; more are closed at once.
    pub max_connections: usize,
    /// After the last reply of a connection, how long what the client still
    /// sends is read and dropped, so it reads the reply instead of a reset.
    pub linger: Duration,
    /// At shutdown, how long requests in flight may take to finish.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake: Duration::from_secs(10),
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            body: Duration::from_secs(10),
            body_min_rate: 1024,
            max_connections: 256,
            linger: Duration::from_secs(5),
            drain: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// How long a body of `len` bytes may take (`None`: its length is not
    /// known yet, so the whole limit is reckoned as it comes).
    pub fn body_deadline(&self, len: u64) -> Duration {
        let rate = self.body_min_rate.max(1);
        self.body + Duration::from_secs(len / rate)
    }
}
