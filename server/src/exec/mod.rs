//! The executor: the one place that turns a request into work. A request is
//! a source (pixel chunks streamed in, a stored image, a URL), operations and
//! an output; the executor checks it against the limits, plans it (the
//! memory it will hold, where its holds keep their images: decided once),
//! admits it (a worker slot and its memory from the one budget), runs decode,
//! the core pipeline and encode on the compute pool, and stops the work when
//! its caller goes away.
//!
//! The gRPC services, the HTTP gateway and the job worker are thin fronts
//! over it: they turn their wire format into calls here and the answers (and
//! [`crate::error::Error`]s) back into theirs.
//!
//! - [`compute`]: the rayon pool; work carries its admission permit.
//! - [`plan`]: limit checks and the memory plan of a request.
//! - [`spill`]: where a hold keeps an image too large for memory.
//! - [`decode`]: a stored file decoded, oriented and processed.
//! - [`render`]: a stored image fetched as it is or derived (with the cache).
//! - [`negotiate`]: the format a client's `Accept` header asks for.
//! - [`stream`]: the streaming driver, generic over a chunk source and sink.
//! - [`upload`]: an upload's memory reserved as its bytes arrive.
//! - [`url`]: remote sources under the operator's address policy.

pub mod compute;
pub mod decode;
pub mod negotiate;
pub mod plan;
pub mod render;
pub mod spill;
pub mod stream;
pub mod upload;
pub mod url;

use std::sync::Arc;

use bytes::Bytes;
use nlimage_core::{Cpu, ImageInfo, Limits, Run, Stop};
use tokio::time::Instant;
use tokio_stream::Stream;

use crate::admission::{Admission, Permit};
use crate::error::{Error, Result};
use crate::store::{Meta, PutInfo, Store};
use compute::Compute;
use spill::SpillConfig;

/// What every request's work runs on: the pool, the limits, admission, the
/// CPU path, where holds spill, the store and remote sources. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct Executor {
    /// Where CPU work runs.
    pub compute: Compute,
    /// Largest image accepted.
    pub limits: Limits,
    /// Worker slots, the queue and the memory budget.
    pub admission: Arc<Admission>,
    /// The code path of every kernel, chosen once at start (`--cpu`).
    pub cpu: Cpu,
    /// Where holds too large for memory go.
    pub spill: SpillConfig,
    /// The image store, if the server has one.
    pub store: Option<Store>,
    /// Fetches remote sources (URLs) under the operator's address policy.
    pub sources: url::Fetcher,
    /// Operations one request may ask for (`--max-operations`).
    pub max_operations: usize,
    /// How long an upload may send nothing before it is cut off.
    pub body_idle: std::time::Duration,
}

/// The message of work stopped by its deadline.
pub const DEADLINE_PASSED: &str = "the request's deadline passed; its work was stopped";

impl Executor {
    /// Threads in the compute pool.
    pub fn workers(&self) -> usize {
        self.compute.workers()
    }

    /// The image store, or UNAVAILABLE saying the server runs without one.
    pub fn store(&self) -> Result<&Store> {
        self.store.as_ref().ok_or_else(|| {
            Error::Unavailable("this server runs without a store (nl-server --store none)".into())
        })
    }

    /// How a pipeline of this server runs, stopped by `stop`.
    pub fn run_with(&self, stop: Stop) -> Run {
        Run {
            cpu: self.cpu,
            stop,
        }
    }

    /// Runs `work` on the pool with a worker slot and `memory` bytes of the
    /// budget, which it keeps until it returns. Past `deadline`, or if this
    /// future is dropped, the work's stop is set and it ends at its next band.
    pub async fn admitted<T, F>(&self, memory: u64, deadline: Option<Instant>, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Stop) -> Result<T> + Send + 'static,
    {
        let permit = self.admission.admit(memory, deadline).await?;
        self.run_admitted(permit, deadline, work).await
    }

    /// [`Executor::admitted`] with the permit already taken (the caller read
    /// what the work needs after it was admitted).
    pub async fn run_admitted<T, F>(
        &self,
        permit: Permit,
        deadline: Option<Instant>,
        work: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Stop) -> Result<T> + Send + 'static,
    {
        self.run_holding(permit, deadline, work)
            .await
            .map(|(v, _)| v)
    }

    /// [`Executor::run_admitted`], handing the permit back with the answer:
    /// for an answer that holds its memory while it is sent.
    pub async fn run_holding<T, F>(
        &self,
        permit: Permit,
        deadline: Option<Instant>,
        work: F,
    ) -> Result<(T, Permit)>
    where
        T: Send + 'static,
        F: FnOnce(&Stop) -> Result<T> + Send + 'static,
    {
        let run = self.compute.run_admitted(permit, Stop::new(), work);
        let (out, permit) = match deadline {
            Some(d) => tokio::time::timeout_at(d, run)
                .await
                .unwrap_or_else(|_| Err(Error::Deadline(DEADLINE_PASSED.into())))?,
            None => run.await?,
        };
        Ok((out?, permit))
    }

    /// A classic call's kernel over `data` (validated as `info`) into a
    /// fresh buffer of `out_info`'s size. Its memory was reserved before its
    /// message was read (`middleware::classic_admission`); it needs a worker.
    pub async fn kernel(
        &self,
        data: Bytes,
        info: ImageInfo,
        out_info: ImageInfo,
        deadline: Option<Instant>,
        kernel: impl FnOnce(Cpu, &[u8], ImageInfo, &mut [u8]) -> nlimage_core::Result<()>
        + Send
        + 'static,
    ) -> Result<Vec<u8>> {
        let cpu = self.cpu;
        self.admitted(0, deadline, move |_| {
            let mut out = nlimage_core::error::try_alloc(out_info.byte_len())?;
            kernel(cpu, &data, info, &mut out)?;
            Ok(out)
        })
        .await
    }

    /// Stores the file `chunks` carry (checked like every upload), holding
    /// memory from the budget for the bytes as they arrive (see [`upload`]).
    pub async fn upload<S>(
        &self,
        info: PutInfo,
        chunks: S,
        deadline: Option<Instant>,
    ) -> Result<Meta>
    where
        S: Stream<Item = Result<Bytes>> + Unpin + Send + 'static,
    {
        let store = self.store()?;
        let mut metered = upload::metered(
            chunks,
            Arc::clone(&self.admission),
            self.body_idle,
            deadline,
        );
        let stored = store.put(info, &self.limits, &mut metered).await;
        if let Err(Error::InvalidInput(_) | Error::TooLarge { .. }) = &stored {
            // Refused while the client was still sending: the rest is read
            // (and dropped) so that a client that sends its whole body
            // before it reads gets the answer, not a reset connection.
            upload::drain(&mut metered, upload::DRAIN_MAX).await;
        }
        stored
    }

    /// Fetches `url` (under the address policy) into the store, its bytes
    /// metered like an upload's.
    pub async fn upload_url(
        &self,
        url: &str,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<Meta> {
        let store = self.store()?;
        crate::store::upload::check_labels(&labels)?;
        let (info, body) = self.sources.open(url, labels).await?;
        let metered = upload::metered(body, Arc::clone(&self.admission), self.body_idle, None);
        store.put(info, &self.limits, metered).await
    }

    /// Refuses more operations than `--max-operations`.
    pub fn check_operations(&self, n: usize) -> Result<()> {
        if n > self.max_operations {
            return Err(Error::too_large(
                format!(
                    "{n} operations in one request, over the limit of {} (nl-server --max-operations)",
                    self.max_operations
                ),
                "--max-operations",
            ));
        }
        Ok(())
    }
}
