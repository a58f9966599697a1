//! Accepting connections up to a cap, without letting idle ones hold it:
//! at the cap, or when the process runs out of descriptors, the connection
//! that has waited longest without a request in flight is closed to make
//! room (as Envoy's overload manager and nginx close idle connections under
//! pressure), and an accept that fails for want of descriptors backs off
//! instead of spinning on the error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::conn::{Phase, Stage};

/// How long to wait after an accept failed for want of resources.
pub const BACKOFF: Duration = Duration::from_millis(100);

/// How long a connection over the cap waits for the slot an eviction frees.
const EVICTION_WAIT: Duration = Duration::from_millis(500);

/// A listener with a cap on open connections. Each connection it hands out
/// holds a [`Slot`] until it ends.
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    open: Arc<Registry>,
    max: usize,
    /// What the log says of it ("EST", "metrics", ...).
    name: &'static str,
    refused: Burst,
    failed: Burst,
}

/// The connections a listener has open, by id.
#[derive(Debug, Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Open>>>,
    next: AtomicU64,
}

/// One open connection, as its listener sees it.
#[derive(Debug, Default)]
struct Open {
    phase: Arc<Phase>,
    evict: Notify,
}

impl Registry {
    /// Asks up to `n` connections without a request in flight to close,
    /// those that waited longest first; returns how many were asked.
    fn evict_oldest(&self, n: usize) -> usize {
        let Ok(conns) = self.conns.lock() else { return 0 };
        let mut waiting: Vec<(Duration, &Arc<Open>)> = conns
            .values()
            .filter_map(|c| {
                let (stage, lasted) = c.phase.now();
                (stage != Stage::Busy).then_some((lasted, c))
            })
            .collect();
        waiting.sort_by_key(|w| std::cmp::Reverse(w.0));
        let asked = waiting.len().min(n);
        for (_, c) in waiting.into_iter().take(asked) {
            // stored if the connection is not waiting on it yet
            c.evict.notify_one();
        }
        asked
    }
}

/// A connection's place under the cap: its phase, and the signal that the
/// listener wants it closed to make room. Dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    conn: Arc<Open>,
    open: Arc<Registry>,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    /// What the connection's IO, service and watchdog report to.
    pub fn phase(&self) -> Arc<Phase> {
        Arc::clone(&self.conn.phase)
    }

    /// Resolves when the listener asks this connection to close (it waited
    /// longest without a request in flight, and room is needed).
    pub async fn evicted(&self) {
        self.conn.evict.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut conns) = self.open.conns.lock() {
            conns.remove(&self.id);
        }
    }
}

/// A run of the same event, logged on its first occurrence and then at most
/// once a second with how many there were, so a flood cannot flood the log.
#[derive(Debug, Default)]
struct Burst {
    since_log: u64,
    last_log: Option<Instant>,
}

impl Burst {
    /// Counts one; `true` when this one should be logged (with [`Burst::take`]).
    fn count(&mut self) -> bool {
        self.since_log += 1;
        self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
    }

    /// How many since the last log line, starting a new count.
    fn take(&mut self) -> u64 {
        self.last_log = Some(Instant::now());
        std::mem::take(&mut self.since_log)
    }
}

/// Whether an accept error means the process or the system ran out of
/// something (descriptors, buffers, memory): retrying at once only spins.
fn out_of_resources(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

impl Acceptor {
    /// Accepts on `listener`, at most `max` connections open at once.
    pub fn new(listener: TcpListener, max: usize, name: &'static str) -> Acceptor {
        let max = max.max(1);
        Acceptor {
            listener,
            slots: Arc::new(Semaphore::new(max)),
            open: Arc::default(),
            max,
            name,
            refused: Burst::default(),
            failed: Burst::default(),
        }
    }

    /// Where it listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection within the cap, with its slot. At the cap, the
    /// connection that waited longest without a request in flight is asked
    /// to close and the new one takes its place; if every one is busy, the
    /// new one is closed at once, before any TLS work. An accept that fails
    /// for want of descriptors closes such a connection too, and waits
    /// [`BACKOFF`] (logged once per burst).
    pub async fn next(&mut self) -> (TcpStream, SocketAddr, Slot) {
        loop {
            match self.listener.accept().await {
                Ok((tcp, peer)) => {
                    let Some(permit) = self.permit().await else {
                        drop(tcp);
                        if self.refused.count() {
                            let refused = self.refused.take();
                            tracing::warn!(listener = self.name, %peer, refused, max = self.max, "connection refused: the connection cap is reached and every connection is busy");
                        }
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    return (tcp, peer, self.slot(permit));
                }
                Err(e) if out_of_resources(&e) => {
                    let evicted = self.open.evict_oldest((self.open_count() / 10).max(1));
                    if self.failed.count() {
                        let failed = self.failed.take();
                        tracing::error!(listener = self.name, error = %e, failed, evicted, "cannot accept: out of file descriptors or memory; closing idle connections and backing off (raise LimitNOFILE, or lower the connection cap)");
                    }
                    tokio::time::sleep(BACKOFF).await;
                }
                // a connection that died before it was accepted: nothing to back off from
                Err(e) => tracing::debug!(listener = self.name, error = %e, "accept failed"),
            }
        }
    }

    /// A place under the cap: a free one, or one an eviction frees.
    async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(permit);
        }
        if self.open.evict_oldest(1) == 0 {
            return None;
        }
        tokio::time::timeout(EVICTION_WAIT, Arc::clone(&self.slots).acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> Slot {
        let id = self.open.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Open::default());
        if let Ok(mut conns) = self.open.conns.lock() {
            conns.insert(id, Arc::clone(&conn));
        }
        Slot {
            id,
            conn,
            open: Arc::clone(&self.open),
            _permit: permit,
        }
    }

    /// How many connections are open now.
    pub fn open_count(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// Waits until every connection handed out has ended, at most `limit`;
    /// returns how many were still open then.
    pub async fn drained(&self, limit: Duration) -> usize {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        match tokio::time::timeout(limit, self.slots.acquire_many(all)).await {
            Ok(_) => 0,
            Err(_) => self.open_count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_once_then_at_most_once_a_second() {
        let mut b = Burst::default();
        assert!(b.count(), "the first is logged");
        assert_eq!(b.take(), 1);
        assert!(!b.count() && !b.count(), "the next within a second are counted");
        assert_eq!(b.since_log, 2);
    }

    #[test]
    fn running_out_of_descriptors_is_told_from_a_dead_connection() {
        assert!(out_of_resources(&std::io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(out_of_resources(&std::io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!out_of_resources(&std::io::Error::from_raw_os_error(libc::ECONNABORTED)));
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_makes_room_and_a_busy_one_does_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut acceptor = Acceptor::new(listener, 2, "test");
        let _a = TcpStream::connect(addr).await.unwrap();
        let (_, _, old) = acceptor.next().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _b = TcpStream::connect(addr).await.unwrap();
        let (_, _, newer) = acceptor.next().await;
        // the oldest waiting one is asked to close; it does, and the third takes its place
        let _c = TcpStream::connect(addr).await.unwrap();
        let accepting = tokio::spawn(async move { (acceptor.next().await, acceptor) });
        tokio::time::timeout(Duration::from_secs(5), old.evicted())
            .await
            .expect("the oldest is asked");
        drop(old);
        let ((_, _, third), mut acceptor) = tokio::time::timeout(Duration::from_secs(5), accepting).await.unwrap().unwrap();
        assert_eq!(acceptor.open_count(), 2);
        // both busy now: a fourth is closed at once
        newer.phase().request_started();
        third.phase().request_started();
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        let accepting = tokio::spawn(async move { acceptor.next().await });
        let mut buf = [0u8; 1];
        use tokio::io::AsyncReadExt;
        let read = tokio::time::timeout(Duration::from_secs(5), fourth.read(&mut buf)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
        accepting.abort();
    }
}
