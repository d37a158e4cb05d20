//! What every request of the image services passes before its handler runs:
//! the draining check (UNAVAILABLE once shutdown has begun), with
//! `--auth-token-file` the bearer token (UNAUTHENTICATED before any pixel is
//! read), and with `--rate-limit` the caller's rate. Also the per-request
//! metadata the handlers use: the deadline from `grpc-timeout` and a request
//! id.
//!
//! Rate buckets belong to *verified* callers: a request that presented the
//! right token takes from the token's bucket; every other request (no token
//! configured, none sent, a wrong one, a signed URL) takes from its
//! address's. So nobody without the token can spend a token holder's
//! requests, and a flood of bad tokens is limited like any other flood.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::error::Error;

/// The interceptor in front of the image services.
#[derive(Clone, Debug)]
pub struct Gate {
    token: Option<Arc<str>>,
    draining: Arc<AtomicBool>,
    rate: Option<Arc<crate::ratelimit::RateLimit>>,
}

impl Gate {
    /// A gate requiring `token` (if any), open until `draining` is set.
    pub fn new(token: Option<String>, draining: Arc<AtomicBool>) -> Self {
        Self {
            token: token.map(Into::into),
            draining,
            rate: None,
        }
    }

    /// The same gate, also limiting each client's request rate.
    pub fn with_rate_limit(mut self, rate: Option<Arc<crate::ratelimit::RateLimit>>) -> Self {
        self.rate = rate;
        self
    }

    /// Whether the server is shutting down.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether a token is required.
    pub fn requires_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `authorization` carries the configured token (false when
    /// there is none: then nobody is verified).
    pub fn is_verified(&self, authorization: Option<&[u8]>) -> bool {
        matches!(self.verify(authorization), Ok(true))
    }

    /// The token check alone: `Ok(true)` if `authorization` carries the
    /// configured token, `Ok(false)` if no token is configured, else the
    /// error a caller without it gets.
    fn verify(&self, authorization: Option<&[u8]>) -> Result<bool, Error> {
        let Some(token) = &self.token else {
            return Ok(false);
        };
        let given = authorization.unwrap_or_default();
        let want = format!("Bearer {token}");
        if same(given, want.as_bytes()) {
            return Ok(true);
        }
        let why = if given.is_empty() { "missing" } else { "wrong" };
        Err(Error::Unauthenticated(format!(
            "{why} bearer token: send the header 'authorization: Bearer <token>'"
        )))
    }

    /// Refuses a request while draining, over its caller's rate, or (unless
    /// `signed`: a valid URL signature stands in for the token) without the
    /// right bearer token. `authorization` is the header's value, if sent;
    /// `remote` the peer's address. A verified caller's rate is its token's
    /// bucket; anyone else's, its address's -- charged before a missing or
    /// wrong token is refused, so that such floods meet the limit too.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        remote: Option<IpAddr>,
        signed: bool,
    ) -> Result<(), Error> {
        if self.draining() {
            return Err(Error::Unavailable(
                "the server is shutting down: retry elsewhere or later".into(),
            ));
        }
        let verified = if signed {
            Ok(false)
        } else {
            self.verify(authorization)
        };
        if let Some(r) = &self.rate {
            let key = crate::ratelimit::client_key(verified == Ok(true), remote);
            r.check(&key).map_err(crate::ratelimit::RateLimit::error)?;
        }
        verified.map(|_| ())
    }
}

/// Compares without an early exit, so timing does not reveal the prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Gate {
    /// [`Gate::check`] of a gRPC request's metadata.
    pub fn check_grpc(&self, metadata: &MetadataMap, remote: Option<IpAddr>) -> Result<(), Error> {
        self.check(
            metadata.get("authorization").map(|v| v.as_bytes()),
            remote,
            false,
        )
    }
}

impl Interceptor for Gate {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check_grpc(req.metadata(), req.remote_addr().map(|a| a.ip()))
            .map_err(Status::from)?;
        Ok(req)
    }
}

/// The deadline a client set with `grpc-timeout`, if any.
pub fn deadline(metadata: &MetadataMap) -> Option<Instant> {
    let v = metadata.get("grpc-timeout")?.to_str().ok()?;
    parse_timeout(v).map(|d| Instant::now() + d)
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The client's `x-request-id` if it sent a reasonable one, else a new id.
pub fn request_id(metadata: &MetadataMap) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    if let Some(id) = metadata.get("x-request-id").and_then(|v| v.to_str().ok())
        && !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_graphic())
    {
        return id.to_owned();
    }
    format!(
        "{:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_per_the_grpc_spec() {
        assert_eq!(parse_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout("100n"), Some(Duration::from_nanos(100)));
        assert_eq!(parse_timeout("S"), None);
        assert_eq!(parse_timeout("12x"), None);
        assert_eq!(parse_timeout("123456789S"), None, "at most 8 digits");
    }

    #[test]
    fn the_gate_checks_token_and_draining() {
        let draining = Arc::new(AtomicBool::new(false));
        let mut gate = Gate::new(Some("s3cret".into()), draining.clone());
        let e = gate.call(Request::new(())).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(e.message().starts_with("missing"));
        let mut wrong = Request::new(());
        wrong
            .metadata_mut()
            .insert("authorization", "Bearer nope".parse().unwrap());
        assert!(gate.call(wrong).unwrap_err().message().starts_with("wrong"));
        let mut right = Request::new(());
        right
            .metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(gate.call(right).is_ok());
        draining.store(true, Ordering::SeqCst);
        assert_eq!(
            gate.call(Request::new(())).unwrap_err().code(),
            tonic::Code::Unavailable
        );
    }

    #[test]
    fn request_ids_are_taken_or_made() {
        let mut m = MetadataMap::new();
        m.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(request_id(&m), "abc-123");
        let a = request_id(&MetadataMap::new());
        assert_ne!(a, request_id(&MetadataMap::new()));
    }
}
