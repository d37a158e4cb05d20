//! Server configuration: limits, admission, security, logging and shutdown,
//! with the defaults `nl-server` uses.

use std::path::PathBuf;
use std::time::Duration;

use nlimage_core::Limits;

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
    /// Largest classic-contract message, in bytes, each way.
    pub max_message_bytes: usize,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::DEFAULT,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue_depth: 256,
            queue_timeout: Duration::from_secs(30),
            memory_budget: crate::admission::default_budget(),
            // A 12-megapixel RGB image is 36 MiB; leave room for larger ones.
            max_message_bytes: 64 << 20,
            shutdown_grace: Duration::from_secs(30),
            spill_above: 1 << 30,
            spill_dir: std::env::temp_dir(),
            auth_token: None,
            tls: None,
        }
    }
}
