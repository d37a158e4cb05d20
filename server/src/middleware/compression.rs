//! Response compression as a choice, never a tax: raw pixels barely compress
//! and deflating them costs several times the computation, yet every stock
//! gRPC client advertises gzip in `grpc-accept-encoding`. tonic compresses
//! every response its client accepts, so this wrapper narrows the header to
//! what the server's policy allows before tonic reads it:
//!
//! - a client that compressed its request with an encoding it also accepts
//!   gets its answer in that encoding (it chose to spend CPU on bytes);
//! - otherwise the answer is compressed only with the operator's
//!   `--response-compression` encoding, if the client accepts it;
//! - otherwise it is sent uncompressed (the default).

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::HeaderValue;
use http::header::HeaderMap;
use tonic::body::Body;
use tonic::server::NamedService;
use tower_service::Service;

const ACCEPT: &str = "grpc-accept-encoding";
const ENCODING: &str = "grpc-encoding";

/// The encodings the server can compress answers with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResponseCompression {
    /// Only when the client compressed its request (the default).
    #[default]
    None,
    /// gzip whenever the client accepts it.
    Gzip,
    /// zstd whenever the client accepts it.
    Zstd,
}

impl ResponseCompression {
    fn name(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Gzip => Some("gzip"),
            Self::Zstd => Some("zstd"),
        }
    }
}

/// The encoding an answer to a request with `headers` may use under `policy`.
pub fn choose(headers: &HeaderMap, policy: ResponseCompression) -> Option<&'static str> {
    let accepted = |enc: &str| {
        headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|e| e.trim() == enc)
    };
    let requested = match headers.get(ENCODING).and_then(|v| v.to_str().ok()) {
        Some("gzip") => Some("gzip"),
        Some("zstd") => Some("zstd"),
        _ => None,
    };
    requested
        .filter(|e| accepted(e))
        .or_else(|| policy.name().filter(|e| accepted(e)))
}

/// Rewrites `grpc-accept-encoding` to the one encoding [`choose`] allows,
/// or removes it, so that tonic compresses exactly as the policy says.
pub fn apply(headers: &mut HeaderMap, policy: ResponseCompression) {
    match choose(headers, policy) {
        Some(enc) => {
            headers.insert(ACCEPT, HeaderValue::from_static(enc));
        }
        None => {
            headers.remove(ACCEPT);
        }
    }
}

/// A gRPC service whose answers are compressed only as the policy allows.
#[derive(Clone, Debug)]
pub struct CompressionPolicy<S> {
    inner: S,
    policy: ResponseCompression,
}

impl<S> CompressionPolicy<S> {
    /// Wraps `inner` under `policy`.
    pub fn new(inner: S, policy: ResponseCompression) -> Self {
        Self { inner, policy }
    }
}

impl<S: NamedService> NamedService for CompressionPolicy<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for CompressionPolicy<S>
where
    S: Service<http::Request<Body>, Error = Infallible>,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        apply(req.headers_mut(), self.policy);
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_stock_client_gets_uncompressed_answers_by_default() {
        // grpcio's default header: it accepts, but did not compress.
        let h = headers(&[(ACCEPT, "identity,deflate,gzip")]);
        assert_eq!(choose(&h, ResponseCompression::None), None);
        let mut h2 = h.clone();
        apply(&mut h2, ResponseCompression::None);
        assert!(h2.get(ACCEPT).is_none());
    }

    #[test]
    fn a_compressed_request_gets_a_compressed_answer() {
        let h = headers(&[(ENCODING, "gzip"), (ACCEPT, "identity, gzip")]);
        assert_eq!(choose(&h, ResponseCompression::None), Some("gzip"));
        let h = headers(&[(ENCODING, "zstd"), (ACCEPT, "gzip,zstd")]);
        assert_eq!(choose(&h, ResponseCompression::Gzip), Some("zstd"));
        // ... but never in an encoding the client does not accept.
        let h = headers(&[(ENCODING, "zstd"), (ACCEPT, "gzip")]);
        assert_eq!(choose(&h, ResponseCompression::None), None);
    }

    #[test]
    fn the_operator_may_turn_it_on() {
        let h = headers(&[(ACCEPT, "identity,deflate,gzip")]);
        assert_eq!(choose(&h, ResponseCompression::Gzip), Some("gzip"));
        assert_eq!(choose(&h, ResponseCompression::Zstd), None);
        let mut h2 = h.clone();
        apply(&mut h2, ResponseCompression::Gzip);
        assert_eq!(h2.get(ACCEPT).unwrap(), "gzip");
    }
}
