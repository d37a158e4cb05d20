//! Server configuration: limits, admission, security, logging and shutdown,
//! with the defaults `nl-server` uses.

use std::path::PathBuf;
use std::time::Duration;

use nlimage_core::Limits;

use crate::middleware::classic_admission::{FRAMING, MessageLimit};
pub use crate::middleware::compression::ResponseCompression;

/// Largest pixel chunk a Process message may carry (the contract's 1 MiB);
/// output chunks are cut to the same size.
pub const MAX_CHUNK_BYTES: usize = 1 << 20;

/// A certificate chain and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct TlsPem {
    /// The certificate chain.
    pub cert: Vec<u8>,
    /// The private key.
    pub key: Vec<u8>,
}

/// Everything [`crate::run`] needs to know.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest image accepted, in pixels and per side.
    pub limits: Limits,
    /// Threads in the compute pool, and requests processed at once (>= 1).
    pub workers: usize,
    /// Requests that may wait for a worker or memory; more are refused.
    pub queue_depth: usize,
    /// How long a request may wait in the queue.
    pub queue_timeout: Duration,
    /// Bytes all admitted requests may hold together.
    pub memory_budget: u64,
    /// A hard ceiling on classic-contract messages, in bytes, each way, below
    /// what the image limits allow [default: none: any image within
    /// `limits` fits].
    pub max_message_bytes: Option<u64>,
    /// When answers are compressed (by default only when the request was).
    pub response_compression: ResponseCompression,
    /// How long in-flight requests may run on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Rotations of images larger than this many bytes spill to a file.
    pub spill_above: usize,
    /// Where spill files go.
    pub spill_dir: PathBuf,
    /// Bearer token the image services require, if any.
    pub auth_token: Option<String>,
    /// Serve TLS with this identity, if set.
    pub tls: Option<TlsPem>,
    /// Serve the plain-HTTP gateway on this address [default: off].
    pub http_addr: Option<std::net::SocketAddr>,
    /// With a key, every image GET over HTTP must be signed with it.
    pub url_signing_key: Option<Vec<u8>>,
    /// Requests each client may make (by verified token, else address).
    pub rate_limit: Option<crate::ratelimit::RateSpec>,
    /// The image store [default: none; `nl-server` keeps one in its data
    /// directory].
    pub store: crate::store::StoreConfig,
    /// Asynchronous jobs [default: none; `nl-server` keeps an SQLite queue in
    /// its data directory].
    pub jobs: crate::jobs::JobsConfig,
    /// Which addresses remote sources (URLs) may come from.
    pub sources: crate::exec::url::SourcePolicy,
    /// The kernels' code path [default: `None`, the widest this machine
    /// runs]; a path wider than the machine's runs the widest it has.
    pub cpu: Option<nlimage_core::Cpu>,
    /// Operations one request may ask for.
    pub max_operations: usize,
    /// The HTTP gateway's timeouts.
    pub http_timeouts: HttpTimeouts,
    /// Serve the HTTP gateway in plaintext beside TLS gRPC (by default the
    /// gateway serves TLS with the same certificate when gRPC does).
    pub http_plaintext: bool,
}

/// How long the HTTP gateway waits for a client, and for a render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// From the connection (or the previous request) to the end of a
    /// request's headers.
    pub header: Duration,
    /// Between two pieces of a request body (and of a gRPC upload).
    pub body_idle: Duration,
    /// A whole request, headers to the end of the answer's head.
    pub request: Duration,
    /// An image render (decode, operations, encode) of a GET.
    pub render: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            body_idle: Duration::from_secs(10),
            request: Duration::from_secs(300),
            render: Duration::from_secs(60),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::DEFAULT,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue_depth: 256,
            queue_timeout: Duration::from_secs(30),
            memory_budget: crate::admission::default_budget(),
            max_message_bytes: None,
            response_compression: ResponseCompression::None,
            shutdown_grace: Duration::from_secs(30),
            spill_above: 1 << 30,
            spill_dir: std::env::temp_dir(),
            auth_token: None,
            tls: None,
            http_addr: None,
            url_signing_key: None,
            rate_limit: None,
            store: crate::store::StoreConfig::default(),
            jobs: crate::jobs::JobsConfig::default(),
            sources: crate::exec::url::SourcePolicy::default(),
            cpu: None,
            max_operations: 32,
            http_timeouts: HttpTimeouts::default(),
            http_plaintext: false,
        }
    }
}

impl Config {
    /// The largest classic message: a color image of `--max-pixels` plus its
    /// framing, or the `--max-message-mib` ceiling if that is lower.
    pub fn classic_message_limit(&self) -> MessageLimit {
        let by_pixels = self
            .limits
            .max_pixels
            .saturating_mul(3)
            .saturating_add(FRAMING);
        match self.max_message_bytes {
            Some(ceiling) if ceiling < by_pixels => MessageLimit {
                bytes: ceiling,
                why: "send a smaller image or use the streaming Process call (nl-server --max-message-mib)",
                flag: "--max-message-mib",
            },
            _ => MessageLimit {
                bytes: by_pixels,
                why: "that is more than an RGB image of the server's pixel limit (nl-server --max-pixels)",
                flag: "--max-pixels",
            },
        }
    }
}
