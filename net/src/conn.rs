//! One connection's IO, watched: which phase it is in (waiting for a
//! request's headers, busy with a request, idle between requests) and since
//! when, so a watchdog can close a connection that overstays a phase; and a
//! lingering close: after the last reply, what the client still sends is
//! read and dropped for a bounded time, so the client reads the reply
//! instead of a reset (nginx's `lingering_close`).

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::limits::Limits;

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for a request's headers (or reading them).
    Headers,
    /// A request is being answered.
    Busy,
    /// Between requests, with nothing in flight.
    Idle,
}

/// A connection's stage and since when, shared by its IO (which sees the
/// first byte of a request), its service (which sees a request start and
/// end) and its watchdog.
#[derive(Debug)]
pub struct Phase {
    stage: AtomicU8,
    /// Requests being answered (HTTP/2 has several at once).
    in_flight: AtomicUsize,
    since: Mutex<Instant>,
}

impl Default for Phase {
    fn default() -> Self {
        Phase {
            stage: AtomicU8::new(0),
            in_flight: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
        }
    }
}

impl Phase {
    fn set(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::SeqCst);
        if let Ok(mut since) = self.since.lock() {
            *since = Instant::now();
        }
    }

    /// The stage, and how long it has lasted.
    pub fn now(&self) -> (Stage, Duration) {
        let stage = match self.stage.load(Ordering::SeqCst) {
            0 => Stage::Headers,
            1 => Stage::Busy,
            _ => Stage::Idle,
        };
        let lasted = self.since.lock().map(|s| s.elapsed()).unwrap_or_default();
        (stage, lasted)
    }

    /// A request's headers are in: the service has it.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.set(Stage::Busy);
    }

    /// Its reply is handed back: once none is in flight, the connection
    /// waits for the next one.
    pub fn request_done(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if before <= 1 {
            self.in_flight.store(0, Ordering::SeqCst);
            self.set(Stage::Idle);
        }
    }

    /// Bytes came in: an idle connection is now reading a request's headers.
    fn bytes_read(&self) {
        if self.stage.load(Ordering::SeqCst) == Stage::Idle as u8 {
            self.set(Stage::Headers);
        }
    }

    /// Resolves when the connection overstays its stage (a request's headers
    /// slower than `limits.header`, an idle wait longer than `limits.idle`),
    /// saying which. A busy connection's body has its own limit (`body`).
    pub async fn overstayed(&self, limits: &Limits) -> &'static str {
        loop {
            let (stage, lasted) = self.now();
            let limit = match stage {
                Stage::Headers => limits.header,
                Stage::Idle => limits.idle,
                Stage::Busy => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            };
            if lasted >= limit {
                return match stage {
                    Stage::Headers => "its request's headers took too long (header timeout)",
                    _ => "it was idle too long (idle timeout)",
                };
            }
            // look again when it would be over, or sooner if the stage changes
            tokio::time::sleep((limit - lasted).min(Duration::from_millis(250))).await;
        }
    }
}

/// At most this much is read and dropped while lingering.
const LINGER_BYTES: u64 = 4 * 1024 * 1024;

/// A connection's IO: reads tell its [`Phase`]; shutting it down lingers.
#[derive(Debug)]
pub struct Guarded<IO> {
    inner: IO,
    phase: Arc<Phase>,
    linger: Duration,
    lingering: Option<Lingering>,
}

#[derive(Debug)]
struct Lingering {
    until: Pin<Box<tokio::time::Sleep>>,
    dropped: u64,
}

impl<IO> Guarded<IO> {
    /// `inner`, reporting to `phase`, lingering up to `linger` when shut down.
    pub fn new(inner: IO, phase: Arc<Phase>, linger: Duration) -> Self {
        Guarded {
            inner,
            phase,
            linger,
            lingering: None,
        }
    }

    /// The IO inside.
    pub fn get_ref(&self) -> &IO {
        &self.inner
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.phase.bytes_read();
        }
        polled
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// Sends the end of the stream (FIN; for TLS, close_notify first), then
    /// reads and drops what the client still sends until it closes, or
    /// `linger` has passed, or 4 MiB were dropped.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.lingering.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.lingering = Some(Lingering {
                until: Box::pin(tokio::time::sleep(this.linger)),
                dropped: 0,
            });
        }
        let Some(lingering) = this.lingering.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            if lingering.until.as_mut().poll(cx).is_ready() || lingering.dropped >= LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => lingering.dropped += buf.filled().len() as u64,
                // the client is gone: nothing left to spare it
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_shut_down_connection_reads_what_the_client_still_sends_then_ends() {
        let (client, server) = tokio::io::duplex(1024);
        let mut guarded = Guarded::new(server, Arc::new(Phase::default()), Duration::from_secs(5));
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let sender = tokio::spawn(async move {
            // more than the pipe holds: it would block if nobody read it
            for _ in 0..64 {
                client_write.write_all(&[7u8; 1024]).await.unwrap();
            }
            client_write.shutdown().await.unwrap();
        });
        guarded.write_all(b"HTTP/1.1 413 Payload Too Large\r\n\r\n").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), guarded.shutdown())
            .await
            .unwrap()
            .unwrap();
        sender.await.unwrap();
        let mut reply = String::new();
        client_read.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
        assert_eq!(guarded.lingering.map(|l| l.dropped), Some(64 * 1024));
    }

    #[tokio::test(start_paused = true)]
    async fn lingering_ends_when_its_time_is_up() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut guarded = Guarded::new(server, Arc::new(Phase::default()), Duration::from_secs(2));
        let started = tokio::time::Instant::now();
        guarded.shutdown().await.unwrap();
        assert_eq!(
            started.elapsed().as_secs(),
            2,
            "a client that never closes is left after the linger"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_overstays_its_stage_is_told_which() {
        let limits = Limits {
            header: Duration::from_secs(3),
            idle: Duration::from_secs(30),
            ..Limits::default()
        };
        let phase = Phase::default();
        let started = tokio::time::Instant::now();
        assert_eq!(
            phase.overstayed(&limits).await,
            "its request's headers took too long (header timeout)"
        );
        assert!(started.elapsed() >= Duration::from_secs(3));
        phase.request_started();
        phase.request_done();
        let idle = tokio::time::Instant::now();
        assert_eq!(phase.overstayed(&limits).await, "it was idle too long (idle timeout)");
        assert!(idle.elapsed() >= Duration::from_secs(30));
    }
}
