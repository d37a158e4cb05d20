//! The gRPC services, one file per RPC family: each handler decodes and
//! validates, runs the kernels on the compute pool, and encodes the answer.

pub mod classic;
pub mod jobs;
pub mod process;
pub mod store;

use std::sync::Arc;

use nlimage_core::Limits;

use crate::admission::Admission;
use crate::compute::Compute;

/// What every handler shares: the compute pool and the limits.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Where CPU work runs.
    pub compute: Compute,
    /// Largest image accepted.
    pub limits: Limits,
    /// Worker slots, the queue and the memory budget.
    pub admission: Arc<Admission>,
    /// Rotations of images over this many bytes spill to a file.
    pub spill_above: usize,
    /// Where spill files go.
    pub spill_dir: std::sync::Arc<std::path::Path>,
    /// The image store, if the server has one.
    pub store: Option<crate::store::Store>,
    /// Fetches remote sources (URLs) under the operator's address policy.
    pub sources: crate::store::fetch::Fetcher,
    /// The job queue, if the server runs jobs.
    pub jobs: Option<crate::jobs::Jobs>,
}

impl Shared {
    /// Threads in the compute pool.
    pub fn compute_workers(&self) -> usize {
        self.compute.workers()
    }

    /// The job queue, or UNAVAILABLE saying the server runs without one.
    pub fn jobs(&self) -> Result<&crate::jobs::Jobs, tonic::Status> {
        self.jobs.as_ref().ok_or_else(|| {
            tonic::Status::unavailable("this server runs without jobs (nl-server --database none)")
        })
    }

    /// The image store, or UNAVAILABLE saying the server runs without one.
    pub fn store(&self) -> Result<&crate::store::Store, tonic::Status> {
        self.store.as_ref().ok_or_else(|| {
            tonic::Status::unavailable("this server runs without a store (nl-server --store none)")
        })
    }
}
