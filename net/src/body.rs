//! Reading a request's body within its limits: no more than a size, no
//! slower than a rate.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;

use crate::limits::Limits;

/// Why a body was not read whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Over the size limit (413).
    #[error("the body is over {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// Slower than the limits allow (408).
    #[error("the body came too slowly: {read} bytes in {seconds} s")]
    TooSlow {
        /// What had come.
        read: usize,
        /// How long it was given.
        seconds: u64,
    },
    /// The connection failed while it came.
    #[error("the body could not be read: {0}")]
    Broken(String),
}

/// The whole body, at most `max` bytes, within `limits.body` plus a second
/// per `limits.body_min_rate` bytes (reckoned on the declared length if
/// there is one, else on what has come so far).
pub async fn read_body<B>(mut body: B, max: usize, limits: &Limits) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge { max });
    }
    let started = tokio::time::Instant::now();
    let mut out = BytesMut::new();
    loop {
        let allowed = limits.body_deadline(declared.unwrap_or(out.len() as u64));
        let left = allowed.saturating_sub(started.elapsed());
        let too_slow = |read: usize| BodyError::TooSlow {
            read,
            seconds: allowed.as_secs(),
        };
        let frame = match tokio::time::timeout(left, body.frame()).await {
            Err(_) => return Err(too_slow(out.len())),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(e))) => return Err(BodyError::Broken(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(BodyError::TooLarge { max });
            }
            out.extend_from_slice(&data);
        }
    }
}

/// Reads and drops what is left of a body whose request was answered early
/// (a denial, a 413), at most `max` bytes within `time`, so the client
/// reads the answer: an HTTP/1.1 connection goes on to its next request,
/// and an HTTP/2 stream ends instead of being reset. Past either limit the
/// body is dropped.
pub async fn discard_body<B>(mut body: B, max: u64, time: std::time::Duration)
where
    B: Body + Unpin,
{
    let mut dropped = 0u64;
    let draining = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                dropped += bytes::Buf::remaining(data) as u64;
                if dropped > max {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(time, draining).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper::body::Frame;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;
    use tokio::sync::mpsc;

    /// A body of no declared length, whose chunks come down a channel.
    struct Channel(mpsc::Receiver<Bytes>);

    impl Body for Channel {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
        }
    }

    fn limits() -> Limits {
        Limits {
            body: Duration::from_secs(2),
            body_min_rate: 100,
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn a_body_within_its_limits_is_read_whole() {
        let body = Full::new(Bytes::from_static(b"a CSR"));
        assert_eq!(read_body(body, 100, &limits()).await.unwrap(), "a CSR");
    }

    #[tokio::test]
    async fn a_body_over_the_size_is_refused_declared_or_not() {
        let declared = Full::new(Bytes::from(vec![0u8; 101]));
        assert_eq!(read_body(declared, 100, &limits()).await, Err(BodyError::TooLarge { max: 100 }));
        let (tx, rx) = mpsc::channel(8);
        for _ in 0..5 {
            tx.send(Bytes::from(vec![0u8; 30])).await.unwrap();
        }
        drop(tx);
        assert_eq!(read_body(Channel(rx), 100, &limits()).await, Err(BodyError::TooLarge { max: 100 }));
    }

    #[tokio::test]
    async fn an_answered_body_is_read_to_its_end_within_its_limits() {
        let (tx, rx) = mpsc::channel(8);
        let sender = tokio::spawn(async move {
            for _ in 0..8 {
                if tx.send(Bytes::from(vec![0u8; 1000])).await.is_err() {
                    return false;
                }
            }
            true
        });
        discard_body(Channel(rx), 1_000_000, Duration::from_secs(5)).await;
        assert!(sender.await.unwrap(), "every chunk was taken");
        // past its size, it stops taking
        let (tx, rx) = mpsc::channel(1);
        let sender = tokio::spawn(async move {
            for _ in 0..100 {
                if tx.send(Bytes::from(vec![0u8; 1000])).await.is_err() {
                    return false;
                }
            }
            true
        });
        discard_body(Channel(rx), 10_000, Duration::from_secs(5)).await;
        assert!(!sender.await.unwrap(), "dropped after 10 kB");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_body_is_cut_off_when_its_time_is_up() {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            // a byte a second: 2 s and a second per 100 bytes is far too little for 1,000
            for _ in 0..1000 {
                if tx.send(Bytes::from_static(b"x")).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let started = tokio::time::Instant::now();
        let err = read_body(Channel(rx), 10_000, &limits()).await.unwrap_err();
        assert!(matches!(err, BodyError::TooSlow { read: 2 | 3, .. }), "{err}");
        assert!(started.elapsed() <= Duration::from_secs(3), "{:?}", started.elapsed());
    }
}
