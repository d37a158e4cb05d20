//! An upload's bytes as they arrive, metered: the memory the store will
//! hold for them is reserved from the budget a step at a time as they come
//! (never more than [`UPLOAD_MEMORY`]), and a sender that goes quiet for
//! longer than the idle timeout is cut off. So a stalled upload -- headers
//! sent, then nothing -- holds next to nothing and not for long.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_stream::Stream;

use crate::admission::{Admission, Permit};
use crate::error::{Error, Result};
use crate::store::upload::UPLOAD_MEMORY;

/// Bytes reserved at a time as an upload grows.
pub const STEP: u64 = 1 << 20;

/// `chunks`, with memory reserved for what has arrived (up to
/// [`UPLOAD_MEMORY`]) and each chunk awaited at most `idle`. The
/// reservations are held by the stream and given back when it is dropped.
pub fn metered<S>(
    chunks: S,
    admission: Arc<Admission>,
    idle: Duration,
    deadline: Option<Instant>,
) -> impl Stream<Item = Result<Bytes>> + Unpin + Send
where
    S: Stream<Item = Result<Bytes>> + Unpin + Send + 'static,
{
    struct State<S> {
        chunks: S,
        admission: Arc<Admission>,
        held: Vec<Permit>,
        reserved: u64,
        received: u64,
        idle: Duration,
        deadline: Option<Instant>,
        done: bool,
    }
    let state = State {
        chunks,
        admission,
        held: Vec::new(),
        reserved: 0,
        received: 0,
        idle,
        deadline,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let next = match tokio::time::timeout(s.idle, s.chunks.next()).await {
            Ok(next) => next,
            Err(_) => {
                s.done = true;
                let e = Error::Stalled(format!(
                    "the upload sent nothing for {:?} after {} bytes: cut off (nl-server --http-body-idle-timeout)",
                    s.idle, s.received
                ));
                return Some((Err(e), s));
            }
        };
        let chunk = match next? {
            Ok(c) => c,
            Err(e) => {
                s.done = true;
                return Some((Err(e), s));
            }
        };
        s.received += chunk.len() as u64;
        let want = s.received.min(UPLOAD_MEMORY);
        while s.reserved < want {
            let step = STEP.min(UPLOAD_MEMORY - s.reserved);
            match s.admission.reserve(step, s.deadline).await {
                Ok(p) => {
                    s.held.push(p);
                    s.reserved += step;
                }
                Err(e) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
            }
        }
        Some((Ok(chunk), s))
    })
    // Polled again after its end (a refused upload is drained): ends again.
    .fuse())
}

/// Bytes of a refused upload read and dropped at most, so that its client
/// gets the answer; past this its connection is closed instead.
pub const DRAIN_MAX: u64 = 64 << 20;

/// Reads and drops what is left of `chunks`, at most `max` bytes (each
/// chunk awaited at most the stream's idle timeout).
pub async fn drain<S>(chunks: &mut S, max: u64)
where
    S: Stream<Item = Result<Bytes>> + Unpin,
{
    let mut dropped = 0u64;
    while dropped <= max {
        match chunks.next().await {
            Some(Ok(c)) => dropped += c.len() as u64,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_follows_the_bytes_and_a_stall_is_cut_off() {
        let a = Admission::new(2, 64 << 20, 8, Duration::from_secs(1));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(4);
        let chunks = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut m = metered(chunks, Arc::clone(&a), Duration::from_millis(200), None);
        assert_eq!(a.in_use(), 0, "nothing before the first byte");
        tx.send(Ok(Bytes::from(vec![0; 1000]))).await.unwrap();
        m.next().await.unwrap().unwrap();
        assert_eq!(a.in_use(), STEP);
        tx.send(Ok(Bytes::from(vec![0; 3 << 20]))).await.unwrap();
        m.next().await.unwrap().unwrap();
        assert_eq!(a.in_use(), 4 * STEP, "rounded up to whole steps");
        // Then nothing: cut off at the idle timeout.
        let e = m.next().await.unwrap().unwrap_err();
        assert!(matches!(e, Error::Stalled(_)), "{e}");
        assert!(m.next().await.is_none());
        drop(m);
        assert_eq!(a.in_use(), 0, "dropped with the stream");
    }
}
