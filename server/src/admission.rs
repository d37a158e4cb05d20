//! Admission control: at most `--workers` requests run at once, a bounded
//! queue (`--queue-depth`, `--queue-timeout`) holds the next ones, and the
//! memory every admitted request may hold is reserved from one budget
//! (`--memory-budget-mib`), so load is shed with RESOURCE_EXHAUSTED instead of
//! growing the process into the OOM killer. A [`Permit`] moves with the work
//! and gives its slot and its memory back when dropped, however the request
//! ends (finished, failed, cancelled by a client that left).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::metrics;

/// Memory is reserved in KiB units (a semaphore counts in `u32`).
const UNIT: u64 = 1024;

/// The gate every request passes before it allocates.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    workers: usize,
    memory: Arc<Semaphore>,
    budget_units: u32,
    queue_depth: usize,
    queue_timeout: Duration,
    queued: AtomicUsize,
}

/// A running request's slot and memory reservation (either may be absent:
/// a classic call's memory is reserved before its message is read, and its
/// worker slot taken only for the computation).
#[derive(Debug)]
pub struct Permit {
    slot: Option<OwnedSemaphorePermit>,
    memory: Option<OwnedSemaphorePermit>,
    bytes: u64,
    admission: Arc<Admission>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        // Give both back first, so the gauges show the state after.
        self.slot.take();
        self.memory.take();
        self.admission.report();
    }
}

impl Permit {
    /// Bytes reserved for this request.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
}

impl Admission {
    /// A gate for `workers` concurrent requests holding at most
    /// `memory_budget` bytes together.
    pub fn new(
        workers: usize,
        memory_budget: u64,
        queue_depth: usize,
        queue_timeout: Duration,
    ) -> Arc<Self> {
        let budget_units = (memory_budget / UNIT).clamp(1, u32::MAX as u64) as u32;
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(workers.max(1))),
            workers: workers.max(1),
            memory: Arc::new(Semaphore::new(budget_units as usize)),
            budget_units,
            queue_depth,
            queue_timeout,
            queued: AtomicUsize::new(0),
        })
    }

    /// The whole memory budget, in bytes.
    pub fn budget(&self) -> u64 {
        self.budget_units as u64 * UNIT
    }

    /// Whether a reservation of `bytes` could ever be granted.
    pub fn fits(&self, bytes: u64) -> bool {
        bytes.div_ceil(UNIT) <= self.budget_units as u64
    }

    /// Requests waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Bytes reserved by admitted requests now.
    pub fn in_use(&self) -> u64 {
        (self.budget_units as u64 - self.memory.available_permits() as u64) * UNIT
    }

    fn report(&self) {
        metrics::admission(
            self.workers - self.slots.available_permits(),
            self.queued.load(Ordering::Relaxed),
            self.in_use(),
        );
    }

    /// Waits for a slot and `bytes` of budget: at once if both are free,
    /// else in the queue, until `--queue-timeout` or the request's deadline.
    pub async fn admit(self: &Arc<Self>, bytes: u64, deadline: Option<Instant>) -> Result<Permit> {
        self.acquire(bytes, true, deadline).await
    }

    /// Waits for `bytes` of budget only (no worker slot), queued like
    /// [`Admission::admit`]: for memory a request holds while it is not
    /// computing (a classic message being received, an answer being sent).
    pub async fn reserve(
        self: &Arc<Self>,
        bytes: u64,
        deadline: Option<Instant>,
    ) -> Result<Permit> {
        self.acquire(bytes, false, deadline).await
    }

    async fn acquire(
        self: &Arc<Self>,
        bytes: u64,
        want_slot: bool,
        deadline: Option<Instant>,
    ) -> Result<Permit> {
        if !self.fits(bytes) {
            return Err(Error::too_large(
                format!(
                    "this request needs {} of memory, over the server's whole budget of {} (--memory-budget-mib)",
                    mib(bytes),
                    mib(self.budget())
                ),
                "--memory-budget-mib",
            ));
        }
        let units = bytes.div_ceil(UNIT) as u32;
        let permit = |slot, memory| Permit {
            slot,
            memory,
            bytes,
            admission: Arc::clone(self),
        };
        let try_slot = || {
            if want_slot {
                Arc::clone(&self.slots).try_acquire_owned().map(Some)
            } else {
                Ok(None)
            }
        };
        // Fast path: both are free (taken together or not at all).
        if let Ok(slot) = try_slot()
            && let Ok(memory) = self.try_memory(units)
        {
            let p = permit(slot, memory);
            self.report();
            return Ok(p);
        }
        // Queue, if there is room.
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.queue_depth {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Busy(format!(
                "server busy: {} requests running and {} queued; try again later (--workers, --queue-depth)",
                self.workers, self.queue_depth
            )));
        }
        struct Leave<'a>(&'a Admission);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.queued.fetch_sub(1, Ordering::SeqCst);
                self.0.report();
            }
        }
        let _leave = Leave(self);
        self.report();
        let wait = async {
            let slot = if want_slot {
                Some(
                    Arc::clone(&self.slots)
                        .acquire_owned()
                        .await
                        .expect("never closed"),
                )
            } else {
                None
            };
            let memory = if units == 0 {
                None
            } else {
                Some(
                    Arc::clone(&self.memory)
                        .acquire_many_owned(units)
                        .await
                        .expect("never closed"),
                )
            };
            (slot, memory)
        };
        let queue_end = Instant::now() + self.queue_timeout;
        let until = deadline.map_or(queue_end, |d| d.min(queue_end));
        match tokio::time::timeout_at(until, wait).await {
            Ok((slot, memory)) => Ok(permit(slot, memory)),
            Err(_) if deadline.is_some_and(|d| d <= queue_end) => Err(Error::Deadline(
                "the deadline passed while the request waited in the queue".into(),
            )),
            Err(_) if want_slot => Err(Error::Busy(format!(
                "server busy: no worker was free within {:?} (--queue-timeout)",
                self.queue_timeout
            ))),
            Err(_) => Err(Error::Busy(format!(
                "server busy: {} of memory did not come free within {:?} (--memory-budget-mib, --queue-timeout)",
                mib(bytes),
                self.queue_timeout
            ))),
        }
    }

    /// `units` of memory now, or an error if they are not free (none for 0).
    fn try_memory(&self, units: u32) -> std::result::Result<Option<OwnedSemaphorePermit>, ()> {
        if units == 0 {
            return Ok(None);
        }
        Arc::clone(&self.memory)
            .try_acquire_many_owned(units)
            .map(Some)
            .map_err(|_| ())
    }
}

/// The default memory budget: half of this machine's RAM (from
/// `/proc/meminfo`), or 4 GiB where that cannot be read.
pub fn default_budget() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(4 << 30, |kb| kb * 1024 / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_queue_and_timeout() {
        let a = Admission::new(1, 1 << 20, 1, Duration::from_millis(50));
        let first = a.admit(1000, None).await.unwrap();
        // One waits in the queue ...
        let a2 = Arc::clone(&a);
        let queued = tokio::spawn(async move { a2.admit(1000, None).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // ... so the next one is refused at once.
        let e = a.admit(1000, None).await.unwrap_err();
        assert!(matches!(e, Error::Busy(_)), "{e}");
        assert!(e.to_string().contains("server busy"), "{e}");
        // The queued one times out while `first` is held.
        let e = queued.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("--queue-timeout"), "{e}");
        drop(first);
        assert!(a.admit(1000, None).await.is_ok(), "free again");
    }

    #[tokio::test]
    async fn memory_is_reserved_and_returned() {
        let a = Admission::new(4, 10 << 20, 4, Duration::from_secs(5));
        let big = a.admit(8 << 20, None).await.unwrap();
        assert_eq!(a.in_use(), 8 << 20);
        let a2 = Arc::clone(&a);
        let waiting = tokio::spawn(async move { a2.admit(4 << 20, None).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "waits for memory");
        drop(big);
        let p = waiting.await.unwrap().unwrap();
        assert_eq!(p.bytes(), 4 << 20);
        let e = a.admit(11 << 20, None).await.unwrap_err();
        assert!(
            e.to_string().contains("over the server's whole budget"),
            "{e}"
        );
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_reservation_takes_memory_but_no_worker() {
        let a = Admission::new(1, 10 << 20, 4, Duration::from_millis(50));
        let memory = a.reserve(6 << 20, None).await.unwrap();
        assert_eq!(a.in_use(), 6 << 20);
        // The one worker is still free ...
        let slot = a.admit(0, None).await.unwrap();
        assert_eq!(slot.bytes(), 0);
        // ... and memory that is not free waits, then says which flags.
        let e = a.reserve(6 << 20, None).await.unwrap_err();
        assert!(matches!(e, Error::Busy(_)), "{e}");
        assert!(e.to_string().contains("--memory-budget-mib"), "{e}");
        drop(memory);
        assert!(a.reserve(6 << 20, None).await.is_ok());
    }

    #[tokio::test]
    async fn a_deadline_in_the_queue_is_deadline_exceeded() {
        let a = Admission::new(1, 1 << 20, 4, Duration::from_secs(10));
        let _held = a.admit(1, None).await.unwrap();
        let e = a
            .admit(1, Some(Instant::now() + Duration::from_millis(30)))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Deadline(_)), "{e}");
    }
}
