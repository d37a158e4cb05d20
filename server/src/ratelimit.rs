//! Per-client rate limits (`--rate-limit N/s`, `--rate-burst B`), shared by
//! gRPC and HTTP: a token bucket (GCRA, the `governor` crate) per client:
//! the bearer token's when the caller presented it (verified), else the
//! caller's IP address (see [`crate::gate`]).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// How many requests a client may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateSpec {
    /// Requests per `per`.
    pub count: NonZeroU32,
    /// The period: a second or a minute.
    pub per: Duration,
    /// Requests allowed at once after a quiet spell [default: `count`].
    pub burst: Option<NonZeroU32>,
}

impl RateSpec {
    /// Parses `N/s`, `N/m` or `N` (per second).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (n, per) = match s.split_once('/') {
            None => (s, Duration::from_secs(1)),
            Some((n, "s")) => (n, Duration::from_secs(1)),
            Some((n, "m")) => (n, Duration::from_secs(60)),
            Some(_) => return Err(format!("'{s}' is not a rate: use N/s or N/m, e.g. 50/s")),
        };
        let count = n
            .trim()
            .parse::<NonZeroU32>()
            .map_err(|_| format!("'{s}' is not a rate: use N/s or N/m with N >= 1"))?;
        Ok(Self {
            count,
            per,
            burst: None,
        })
    }
}

/// The limiter: one bucket per client.
#[derive(Debug)]
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

/// Who is asking: the key a client's bucket is found by -- the token's
/// bucket for a caller that presented the configured token (the server has
/// one token, so its holders share it), else the address's.
pub fn client_key(verified: bool, addr: Option<IpAddr>) -> String {
    match (verified, addr) {
        (true, _) => "token".into(),
        (false, Some(a)) => format!("ip:{a}"),
        (false, None) => "unknown".into(),
    }
}

impl RateLimit {
    /// A limiter allowing `spec`.
    pub fn new(spec: RateSpec) -> Self {
        let period = spec.per / spec.count.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(spec.burst.unwrap_or(spec.count));
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `key`'s bucket, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets clients whose buckets are full again (bounded memory).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// The error a limited call gets, with its wait.
    pub fn error(wait: Duration) -> crate::error::Error {
        crate::error::Error::RateLimited {
            message: format!(
                "rate limit: too many requests from this client; retry in {} ms (nl-server --rate-limit)",
                wait.as_millis().max(1)
            ),
            wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let s = RateSpec::parse("50/s").unwrap();
        assert_eq!((s.count.get(), s.per), (50, Duration::from_secs(1)));
        assert_eq!(RateSpec::parse("6/m").unwrap().per, Duration::from_secs(60));
        assert_eq!(RateSpec::parse("7").unwrap().count.get(), 7);
        assert!(RateSpec::parse("0/s").is_err());
        assert!(RateSpec::parse("5/h").is_err());
        assert!(RateSpec::parse("x").is_err());
    }

    #[test]
    fn a_burst_passes_then_the_client_waits_and_others_do_not() {
        let l = RateLimit::new(RateSpec {
            count: NonZeroU32::new(2).unwrap(),
            per: Duration::from_secs(60),
            burst: Some(NonZeroU32::new(3).unwrap()),
        });
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        let wait = l.check("a").unwrap_err();
        assert!(
            wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(l.check("b").is_ok(), "buckets are per client");
        let ip = Some("10.0.0.1".parse().unwrap());
        assert_eq!(client_key(false, ip), "ip:10.0.0.1");
        assert_eq!(client_key(true, ip), "token");
    }
}
