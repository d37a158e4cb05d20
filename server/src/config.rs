//! Server configuration: limits, worker count, logging and shutdown, with the
//! defaults `nl-server` uses.

use std::path::PathBuf;
use std::time::Duration;

use nlimage_core::Limits;

/// Largest pixel chunk a Process message may carry (the contract's 1 MiB);
/// output chunks are cut to the same size.
pub const MAX_CHUNK_BYTES: usize = 1 << 20;

/// Everything [`crate::run`] needs to know.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest image accepted, in pixels and per side.
    pub limits: Limits,
    /// Threads in the compute pool (at least 1).
    pub workers: usize,
    /// Largest classic-contract message, in bytes, each way.
    pub max_message_bytes: usize,
    /// How long in-flight requests may run on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Rotations of images larger than this many bytes spill to a file.
    pub spill_above: usize,
    /// Where spill files go.
    pub spill_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::DEFAULT,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            // A 12-megapixel RGB image is 36 MiB; leave room for larger ones.
            max_message_bytes: 64 << 20,
            shutdown_grace: Duration::from_secs(30),
            spill_above: 1 << 30,
            spill_dir: std::env::temp_dir(),
        }
    }
}
