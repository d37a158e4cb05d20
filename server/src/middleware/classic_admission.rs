//! Admission for the classic contract before its message is buffered.
//!
//! A classic call carries a whole image in one message, and tonic buffers a
//! message whole before the handler sees it. So this wrapper reads only the
//! 5-byte gRPC message prefix (compressed flag and length), refuses a message
//! larger than the image limits allow (RESOURCE_EXHAUSTED naming the limit,
//! before the body is read), and reserves the memory the call will hold from
//! the server's budget. While the reservation waits in the queue the body is
//! not read, so HTTP/2 flow control holds the sender (at most one stream
//! window is buffered). The reservation lives until the answer has been
//! handed to the transport: the response body is cut into slices so that the
//! transport takes them as its flow-control window allows, and the permit is
//! dropped with the last slice.
//!
//! What a call holds, for a message of `L` bytes: the received message, then
//! (while the kernel runs) the output image of the same size, then the output
//! and its encoded copy: `2 L`, plus `L` when the answer is compressed. A
//! compressed request's decompressed size is unknown until it is decoded, so
//! it reserves for the largest message it may decompress to (capped at the
//! budget): compressed classic calls run one at a time under a small budget,
//! and tonic refuses to decode one that inflates past half the budget (a
//! decompression bomb costs nothing; see `crate::run`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use tonic::Status;

use crate::error::Error;
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tower_service::Service;

use super::PREFIX_WAIT;
use crate::admission::{Admission, Permit};
use crate::gate::{self, Gate};
use crate::log::RequestLog;

/// Slices the answer is handed to the transport in.
const SLICE: usize = 1 << 20;

/// Bytes of protobuf framing around a classic image's pixels (field tags,
/// lengths, width, height, color, rotation): generous.
pub const FRAMING: u64 = 64;

/// The largest classic message the server takes, and the flag that sets it.
#[derive(Clone, Copy, Debug)]
pub struct MessageLimit {
    /// Bytes.
    pub bytes: u64,
    /// What to tell a client whose message is larger.
    pub why: &'static str,
    /// The flag that raises the limit.
    pub flag: &'static str,
}

/// The classic service behind its admission.
#[derive(Clone, Debug)]
pub struct ClassicAdmission<S> {
    inner: S,
    gate: Gate,
    admission: Arc<Admission>,
    limit: MessageLimit,
}

impl<S> ClassicAdmission<S> {
    /// Wraps `inner`: requests pass `gate`, then reserve from `admission`;
    /// messages over `limit` are refused.
    pub fn new(inner: S, gate: Gate, admission: Arc<Admission>, limit: MessageLimit) -> Self {
        Self {
            inner,
            gate,
            admission,
            limit,
        }
    }
}

impl<S: NamedService> NamedService for ClassicAdmission<S> {
    const NAME: &'static str = S::NAME;
}

/// The method name for logs and metrics.
fn method(path: &str) -> &'static str {
    match path {
        "/NLImageService/RotateImage" => "NLImageService/RotateImage",
        "/NLImageService/MeanFilter" => "NLImageService/MeanFilter",
        _ => "NLImageService/unknown",
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Memory a call whose message prefix says `compressed`/`len` will hold.
pub fn reservation(compressed: bool, len: u64, answer_compressed: bool, limit: u64) -> u64 {
    // Uncompressed: the message is the image; compressed: it may decompress
    // to anything up to the limit.
    let (received, image) = if compressed { (len, limit) } else { (0, len) };
    let answer = if answer_compressed { image } else { 0 };
    received
        .saturating_add(image.saturating_mul(2))
        .saturating_add(answer)
        .saturating_add(FRAMING)
}

impl<S> Service<http::Request<Body>> for ClassicAdmission<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The ready service goes with this call; a clone stays for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let this = Self {
            inner,
            gate: self.gate.clone(),
            admission: Arc::clone(&self.admission),
            limit: self.limit,
        };
        Box::pin(this.admit(req))
    }
}

impl<S> ClassicAdmission<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
{
    async fn admit(mut self, req: http::Request<Body>) -> Result<http::Response<Body>, Infallible> {
        let method = method(req.uri().path());
        let metadata = MetadataMap::from_headers(req.headers().clone());
        let refused = |e: Error| {
            RequestLog::start(method, gate::request_id(&metadata)).finish(Err(&e));
            Ok(Status::from(e).into_http())
        };
        // Draining and the token first: nothing is read before they pass.
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        let ext = req.extensions();
        let remote = ext
            .get::<TcpConnectInfo>()
            .or_else(|| {
                ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                    .map(|t| t.get_ref())
            })
            .and_then(|i| i.remote_addr())
            .map(|a| a.ip());
        if let Err(status) = self.gate.check_grpc(&metadata, remote) {
            return refused(status);
        }
        let deadline = gate::deadline(&metadata);
        let answer_compressed = req.headers().contains_key("grpc-accept-encoding");
        let (parts, mut body) = req.into_parts();
        let until = deadline.unwrap_or_else(|| tokio::time::Instant::now() + PREFIX_WAIT);
        let head = match tokio::time::timeout_at(until, read_prefix(&mut body)).await {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => return refused(e),
            Err(_) if deadline.is_some() => {
                return refused(Error::Deadline(
                    "the deadline passed before the request's message began".into(),
                ));
            }
            Err(_) => {
                return refused(Error::Cancelled(format!(
                    "no message arrived within {PREFIX_WAIT:?}"
                )));
            }
        };
        let permit = if head.len() >= 5 {
            let compressed = head[0] != 0;
            let len = u64::from(u32::from_be_bytes([head[1], head[2], head[3], head[4]]));
            if !compressed && len > self.limit.bytes {
                return refused(Error::TooLarge {
                    message: format!(
                        "the message is {len} bytes ({}), over the largest classic message of {} bytes ({}): {}",
                        mib(len),
                        self.limit.bytes,
                        mib(self.limit.bytes),
                        self.limit.why
                    ),
                    flag: Some(self.limit.flag),
                });
            }
            let bytes = reservation(compressed, len, answer_compressed, self.limit.bytes)
                .min(self.admission.budget());
            match self.admission.reserve(bytes, deadline).await {
                Ok(p) => Some(p),
                Err(status) => return refused(status),
            }
        } else {
            None // an empty or cut-off body: the service itself says what is wrong
        };
        let body = Body::new(Replay {
            head: (!head.is_empty()).then(|| head.freeze()),
            rest: body,
        });
        let response = self
            .inner
            .call(http::Request::from_parts(parts, body))
            .await?;
        Ok(response.map(|b| {
            Body::new(Held {
                inner: b,
                pending: Bytes::new(),
                permit,
            })
        }))
    }
}

/// Reads data frames until the 5-byte message prefix is in (or the body ends).
async fn read_prefix(body: &mut Body) -> Result<BytesMut, Error> {
    let mut head = BytesMut::new();
    while head.len() < 5 {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    head.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                return Err(Error::Cancelled(format!(
                    "the request body failed: {}",
                    e.message()
                )));
            }
        }
    }
    Ok(head)
}

/// The request body with the bytes read for admission put back in front.
struct Replay {
    head: Option<Bytes>,
    rest: Body,
}

impl HttpBody for Replay {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.is_end_stream()
    }
}

/// The answer, in slices of at most [`SLICE`] bytes, holding the call's
/// memory reservation until the last one has been taken.
struct Held {
    inner: Body,
    pending: Bytes,
    permit: Option<Permit>,
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if !self.pending.is_empty() {
            let n = self.pending.len().min(SLICE);
            let slice = self.pending.split_to(n);
            return Poll::Ready(Some(Ok(Frame::data(slice))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    let n = data.remaining().min(SLICE);
                    let first = data.split_to(n);
                    self.pending = data;
                    Poll::Ready(Some(Ok(Frame::data(first))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(None) => {
                self.permit.take();
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_cover_the_message_the_answer_and_its_encoding() {
        assert_eq!(reservation(false, 1000, false, 1 << 30), 2000 + FRAMING);
        assert_eq!(reservation(false, 1000, true, 1 << 30), 3000 + FRAMING);
        // Compressed: the received bytes and the largest decompressed image.
        assert_eq!(reservation(true, 10, false, 1000), 10 + 2000 + FRAMING);
        assert_eq!(reservation(true, 10, false, u64::MAX), u64::MAX);
    }
}
