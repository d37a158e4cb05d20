//! The compute pool: CPU work runs here, on rayon threads, never on the tokio
//! reactor threads. Async handlers hand a closure over and await its answer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::sync::oneshot;
use tonic::Status;

/// A handle to the rayon pool that runs the kernels; cheap to clone.
#[derive(Clone, Debug)]
pub struct Compute {
    pool: Arc<rayon::ThreadPool>,
}

impl Compute {
    /// A pool of `workers` threads.
    pub fn new(workers: usize) -> Result<Self, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers.max(1))
            .thread_name(|i| format!("nl-compute-{i}"))
            .build()?;
        Ok(Self {
            pool: Arc::new(pool),
        })
    }

    /// Threads in the pool.
    pub fn workers(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `f` on the pool and returns its result. Parallel iterators inside
    /// `f` use the same pool. A panic in `f` becomes INTERNAL, not a crash.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.pool.spawn(move || {
            // The receiver may be gone (client left): nothing to report then.
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        });
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(Status::internal("internal error: an image worker panicked")),
            Err(_) => Err(Status::internal(
                "internal error: the image worker pool stopped",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_off_the_runtime_and_returns_the_value() {
        let c = Compute::new(2).unwrap();
        let name = c
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("nl-compute-"));
    }

    #[tokio::test]
    async fn a_panic_is_an_internal_status() {
        let c = Compute::new(1).unwrap();
        let e = c.run(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Internal);
        assert_eq!(c.run(|| 7).await.unwrap(), 7, "the pool still works");
    }
}
