//! The compute pool: CPU work runs here, on rayon threads, never on the tokio
//! reactor threads. Async callers hand a closure over and await its answer.
//!
//! Work that holds an admission [`Permit`] takes it along
//! ([`Compute::run_admitted`]): the permit is dropped on the pool thread when
//! the closure returns, never before, so the worker slots and the memory
//! budget count work that is still running even after its caller has gone.
//! A caller that goes away (its future dropped: the client left, the
//! deadline passed, the job was cancelled) sets the work's [`Stop`], and the
//! pipeline ends at its next band.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use nlimage_core::Stop;
use tokio::sync::oneshot;

use crate::admission::Permit;
use crate::error::{Error, Result};

/// A handle to the rayon pool that runs the kernels; cheap to clone.
#[derive(Clone, Debug)]
pub struct Compute {
    pool: Arc<rayon::ThreadPool>,
}

/// Sets the stop flag when dropped before [`StopOnDrop::disarm`]: the
/// awaiting future went away, so its work should end.
struct StopOnDrop(Option<Stop>);

impl StopOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.stop();
        }
    }
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

    /// Queues `f` on the pool without waiting for it (the streaming driver
    /// schedules its compute task this way). A panic in `f` is caught and
    /// logged; `f` must report its own outcome.
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        self.pool.spawn(move || {
            if catch_unwind(AssertUnwindSafe(f)).is_err() {
                tracing::error!("an image worker panicked");
            }
        });
    }

    /// Runs `f` on the pool and returns its result. Parallel iterators inside
    /// `f` use the same pool. A panic in `f` becomes INTERNAL, not a crash.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
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
            Ok(Err(_)) => Err(Error::Internal(
                "internal error: an image worker panicked".into(),
            )),
            Err(_) => Err(Error::Internal(
                "internal error: the image worker pool stopped".into(),
            )),
        }
    }

    /// Runs `f(stop)` on the pool holding `permit` until `f` returns, and
    /// hands the permit back with the answer (for a caller that holds the
    /// memory on while it sends the answer). If this future is dropped before
    /// the answer (the caller went away), `stop` is set so that `f` ends at
    /// its next band, and the permit is given back on the pool thread when
    /// `f` has really returned, never before.
    pub async fn run_admitted<T, F>(&self, permit: Permit, stop: Stop, f: F) -> Result<(T, Permit)>
    where
        T: Send + 'static,
        F: FnOnce(&Stop) -> T + Send + 'static,
    {
        let mut guard = StopOnDrop(Some(stop.clone()));
        let out = self.run(move || (f(&stop), permit)).await;
        guard.disarm();
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::admission::Admission;

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
    async fn a_panic_is_an_internal_error() {
        let c = Compute::new(1).unwrap();
        let e = c.run(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert!(matches!(e, Error::Internal(_)), "{e}");
        assert_eq!(c.run(|| 7).await.unwrap(), 7, "the pool still works");
    }

    #[tokio::test]
    async fn a_caller_that_leaves_stops_the_work_which_keeps_its_permit_until_it_ends() {
        let c = Compute::new(1).unwrap();
        let a = Admission::new(1, 1 << 20, 4, Duration::from_secs(5));
        let permit = a.admit(1 << 19, None).await.unwrap();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let work = async move {
            c.run_admitted(permit, Stop::new(), move |stop| {
                started_tx.send(stop.clone()).unwrap();
                // Holds the worker until the test lets it go.
                let _ = release_rx.recv();
                stop.is_stopped()
            })
            .await
            .map(|(v, _permit)| v)
        };
        let work = tokio::spawn(work);
        let stop = tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        assert!(!stop.is_stopped());
        // The caller goes away.
        work.abort();
        let _ = work.await;
        assert!(stop.is_stopped(), "leaving sets the stop");
        assert_eq!(
            a.in_use(),
            1 << 19,
            "the running work still holds its memory"
        );
        release_tx.send(()).unwrap();
        // Once the work returns, its permit is given back.
        for _ in 0..200 {
            if a.in_use() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(a.in_use(), 0);
    }
}
