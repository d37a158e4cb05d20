//! Remote sources: an `http(s)://` URL fetched into the store, with the
//! protections image proxies adopted after SSRF reports. Every address a name
//! resolves to, and every IP literal (the first URL and each redirect), is
//! checked: loopback, private, link-local, carrier-grade NAT, multicast,
//! unspecified and other non-public ranges are refused unless the operator
//! allows a network (`--allow-source-net CIDR`). The connection goes only to
//! the checked addresses (the resolver filters them: no second lookup to
//! rebind), redirects are followed at most [`MAX_REDIRECTS`] times and
//! re-checked, proxies from the environment are ignored, and the body is
//! limited in size (the store's upload limit) and time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio_stream::StreamExt;

use crate::error::Error;
use crate::store::PutInfo;

/// What every refusal of an address says.
const POLICY: &str = "sources must be public (nl-server --allow-source-net CIDR allows a network)";

/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 5;

/// Which addresses sources may come from, and how long a fetch may take.
#[derive(Clone, Debug)]
pub struct SourcePolicy {
    /// Networks allowed even though they are not public.
    pub allow: Vec<IpNet>,
    /// The whole fetch's time limit.
    pub timeout: Duration,
}

impl Default for SourcePolicy {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Why `ip` is not a public address, if it is not.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    let v4 = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    if let Some(v4) = v4 {
        let o = v4.octets();
        return if v4.is_loopback() {
            Some("a loopback address")
        } else if v4.is_private() {
            Some("a private address")
        } else if v4.is_link_local() {
            Some("a link-local address")
        } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
            Some("a carrier-grade NAT address")
        } else if o[0] == 0 || v4.is_broadcast() {
            Some("a reserved address")
        } else if v4.is_multicast() || o[0] >= 240 {
            Some("a multicast or reserved address")
        } else if v4.is_documentation() || (o[0] == 198 && (o[1] & 0xfe) == 18) {
            Some("a documentation or benchmarking address")
        } else {
            None
        };
    }
    let IpAddr::V6(v6) = ip else { return None };
    let s = v6.segments();
    // Only global unicast (2000::/3) can be public; inside it, the ranges
    // that embed, tunnel to or translate IPv4, or are reserved, are not.
    if (s[0] & 0xe000) != 0x2000 {
        return Some(if v6.is_loopback() {
            "a loopback address"
        } else if v6.is_unspecified() {
            "the unspecified address"
        } else if s[..5] == [0; 5] && s[5] == 0 {
            "an IPv4-compatible address (deprecated; it embeds an IPv4 address)"
        } else if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
            "an IPv4-translated address"
        } else if s[0] == 0x64 && s[1] == 0xff9b {
            "a NAT64 address (it embeds an IPv4 address)"
        } else if (s[0] & 0xfe00) == 0xfc00 {
            "a unique local (private) address"
        } else if (s[0] & 0xffc0) == 0xfe80 {
            "a link-local address"
        } else if (s[0] & 0xffc0) == 0xfec0 {
            "a site-local address (deprecated, private)"
        } else if v6.is_multicast() {
            "a multicast address"
        } else {
            "not a global unicast address"
        });
    }
    if s[0] == 0x2002 {
        Some("a 6to4 address (it routes to an embedded IPv4 address)")
    } else if s[0] == 0x2001 && s[1] < 0x0200 {
        // 2001::/23: Teredo (2001::/32, tunnels to IPv4), benchmarking,
        // ORCHID and other protocol assignments.
        Some(if s[1] == 0 {
            "a Teredo address (it tunnels to IPv4)"
        } else {
            "an IETF protocol or benchmarking address"
        })
    } else if (s[0] == 0x2001 && s[1] == 0xdb8) || (s[0] & 0xfff0) == 0x3ff0 {
        Some("a documentation address")
    } else {
        None
    }
}

impl SourcePolicy {
    /// Refuses `ip` unless it is public or in an allowed network.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        match non_public(ip) {
            Some(why) if !self.allow.iter().any(|n| n.contains(&ip)) => {
                Err(format!("{ip} is {why}; {POLICY}"))
            }
            _ => Ok(()),
        }
    }

    fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "'{}' URLs are not fetched: use http:// or https://",
                url.scheme()
            ));
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err("the URL has no host".into()),
        }
    }
}

/// The resolver's refusal: a name with no address the policy allows.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Whether `e` or an error it wraps is the resolver's [`Refused`].
fn refused_by_policy(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<Refused>().is_some() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// A resolver that returns only the addresses the policy allows.
struct Checked(Arc<SourcePolicy>);

impl Resolve for Checked {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.0);
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let any = !found.is_empty();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| policy.check(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                // The policy, not the resolver's answers: those are the
                // operator's network, not the caller's business.
                let e: Box<dyn std::error::Error + Send + Sync> = if any {
                    Box::new(Refused(format!(
                        "'{host}' resolves to no public address; {POLICY}"
                    )))
                } else {
                    format!("'{host}': no address found").into()
                };
                return Err(e);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// A fetched body, chunk by chunk.
pub type Body =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<bytes::Bytes, Error>> + Send>>;

/// Fetches URLs under a policy.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<SourcePolicy>,
}

impl Fetcher {
    /// A fetcher enforcing `policy`.
    pub fn new(policy: SourcePolicy) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = Arc::new(policy);
        let redirects = Arc::clone(&policy);
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(Checked(Arc::clone(&policy))))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > MAX_REDIRECTS {
                    return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                }
                match redirects.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(e) => {
                        let to = attempt.url().to_string();
                        attempt.error(format!("redirected to {to}: {e}"))
                    }
                }
            }))
            .connect_timeout(Duration::from_secs(10))
            .timeout(policy.timeout)
            .user_agent(concat!("nlimage/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for sources: {e}"))?;
        Ok(Self { client, policy })
    }

    /// Opens `url` under the policy: what to store it as (with `labels`)
    /// and its body, to be stored like an upload.
    pub async fn open(
        &self,
        url: &str,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<(PutInfo, Body), Error> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| Error::invalid(format!("source URL '{url}': {e}")))?;
        self.policy
            .check_url(&parsed)
            .map_err(|e| Error::permission_denied(format!("source URL '{url}': {e}")))?;
        let response = self.client.get(parsed.clone()).send().await.map_err(|e| {
            let why = error_chain(&e);
            if e.is_timeout() {
                Error::deadline(format!("fetching '{url}': timed out: {why}"))
            } else if e.is_redirect() || refused_by_policy(&e) {
                Error::permission_denied(format!("fetching '{url}': {why}"))
            } else {
                Error::unavailable(format!("fetching '{url}': {why}"))
            }
        })?;
        let code = response.status();
        if !code.is_success() {
            let msg = format!("fetching '{url}': the server answered HTTP {code}");
            return Err(if code.is_server_error() || code.as_u16() == 429 {
                Error::unavailable(msg)
            } else {
                Error::precondition(msg)
            });
        }
        let length = response.content_length();
        let filename = parsed
            .path_segments()
            .and_then(|mut s| s.next_back().map(str::to_string))
            .unwrap_or_default();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = response
            .bytes_stream()
            .map(|r| r.map_err(|e| Error::unavailable(format!("fetching: {}", error_chain(&e)))));
        let info = PutInfo {
            filename,
            content_type,
            labels,
            length,
        };
        Ok((info, Box::pin(body)))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let t = inner.to_string();
        if !s.contains(&t) {
            s += ": ";
            s += &t;
        }
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_ranges_are_refused_and_allowed_networks_pass() {
        let p = SourcePolicy::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            // IPv6 forms that embed, tunnel to or translate IPv4, and
            // other non-public IPv6 ranges.
            "::127.0.0.1",
            "::a00:1",
            "::ffff:0:127.0.0.1",
            "::ffff:0:808:808",
            "2002:7f00:1::",
            "2002:808:808::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "3fff::1",
            "fec0::1",
            "100::1",
            "64:ff9b:1::1",
            "ff02::1",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(p.check(ip).is_err(), "{bad} must be refused");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "2a00:1450:4001:80b::200e",
            "172.32.0.1",
            "::ffff:8.8.8.8",
        ] {
            assert!(p.check(good.parse().unwrap()).is_ok(), "{good} is public");
        }
        let p = SourcePolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ..SourcePolicy::default()
        };
        assert!(p.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check("10.0.0.1".parse().unwrap()).is_err());
        let e = p.check("10.0.0.1".parse().unwrap()).unwrap_err();
        assert!(
            e.contains("private") && e.contains("--allow-source-net"),
            "{e}"
        );
    }

    #[test]
    fn only_http_urls_with_public_literal_hosts_pass() {
        let p = SourcePolicy::default();
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(p.check_url(&u("file:///etc/passwd")).is_err());
        assert!(p.check_url(&u("ftp://example.com/x.png")).is_err());
        assert!(p.check_url(&u("http://127.0.0.1:8080/x.png")).is_err());
        assert!(p.check_url(&u("http://[::1]/x.png")).is_err());
        assert!(p.check_url(&u("https://example.com/x.png")).is_ok());
    }
}
