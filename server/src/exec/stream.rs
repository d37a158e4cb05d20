//! The streaming driver: pixel chunks from a [`ChunkSource`] go through one
//! core [`Pipeline`] and its output to a [`ChunkSink`]; neither side is a
//! wire type (the gRPC front adapts tonic's stream and channel, tests use
//! plain vectors).
//!
//! One compute task owns the pipeline for the whole request. It lives on the
//! compute pool only while it has work: it takes the input chunks that are
//! queued (a bounded channel the source feeds), pushes them, hands the output
//! to a bounded channel the sink drains, and parks when its input is empty or
//! its output is full; the side that unblocks it schedules it again. The
//! pipeline never moves, and a task that finds several chunks waiting takes
//! them all in one go, so the tokio <-> rayon crossings ("hops") are at most
//! one per chunk each way and fewer when the network is faster than the
//! work (counted in [`StreamStats::hops`]). The task never blocks a pool
//! thread on the network.
//!
//! The request's admission permit lives with the task: when the stream ends
//! early (the client left, the deadline passed, a bad chunk), the pipeline's
//! stop is set, the task ends at its next band, and only then are its worker
//! slot and memory given back.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use nlimage_core::{ImageInfo, Operation, Pipeline, Remainder, Stop};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::time::Instant;

use super::Executor;
use super::compute::Compute;
use super::plan::{INPUT_QUEUE, plan_stream};
use super::spill::hold_for;
use crate::admission::Permit;
use crate::config::MAX_CHUNK_BYTES;
use crate::error::{Error, Result};

/// Where a stream's pixel chunks come from.
pub trait ChunkSource: Send {
    /// The next chunk, or `None` at the end of the input.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>>> + Send;
}

/// Where a stream's output goes.
pub trait ChunkSink: Send {
    /// Sends `chunk` (of any length: the sink cuts it for its wire).
    fn send_chunk(&mut self, chunk: Bytes) -> impl Future<Output = Result<()>> + Send;

    /// Resolves once the receiving side is gone (the client left), so that
    /// work with no output yet stops at once instead of at its next send.
    fn closed(&mut self) -> impl Future<Output = ()> + Send;
}

/// What a finished stream did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Pixel bytes in.
    pub bytes_in: u64,
    /// Pixel bytes out.
    pub bytes_out: u64,
    /// Crossings between the async side and the pool: the compute task
    /// scheduled, plus the sink woken for output.
    pub hops: u64,
}

/// A planned and admitted stream, ready to run.
#[derive(Debug)]
pub struct Admitted {
    pipeline: Pipeline,
    permit: Permit,
    stop: Stop,
    compute: Compute,
    deadline: Option<Instant>,
}

impl Executor {
    /// Plans a stream of an `info` image through `ops`, waits for a worker
    /// slot and its memory (until `deadline`), and builds its pipeline.
    /// Nothing is allocated before the plan passed the limits.
    pub async fn admit_stream(
        &self,
        info: ImageInfo,
        ops: &[Operation],
        deadline: Option<Instant>,
    ) -> Result<Admitted> {
        self.check_operations(ops.len())?;
        let plan = plan_stream(info, ops, &self.limits, &self.admission, &self.spill)?;
        let permit = self.admission.admit(plan.memory, deadline).await?;
        let stop = Stop::new();
        let place = plan.holds;
        let pipeline = Pipeline::from_plan(
            &plan.plan,
            &self.run_with(stop.clone()),
            |info, orientation, cpu| hold_for(info, orientation, cpu, &place),
        )?;
        Ok(Admitted {
            pipeline,
            permit,
            stop,
            compute: self.compute.clone(),
            deadline,
        })
    }
}

impl Admitted {
    /// The output's geometry.
    pub fn output_info(&self) -> ImageInfo {
        self.pipeline.output_info()
    }

    /// Runs the stream to its end: every chunk of `source` through the
    /// pipeline, the output to `sink`. Ends with the first error of either
    /// side or of the pipeline, or DEADLINE_EXCEEDED past the deadline; then
    /// (and if this future is dropped) the work stops at its next band.
    pub async fn run<S: ChunkSource, K: ChunkSink>(
        self,
        source: S,
        sink: K,
    ) -> Result<StreamStats> {
        let deadline = self.deadline;
        let stop = self.stop.clone();
        // However this ends, the pipeline stops (a no-op after success).
        struct StopOnDrop(Stop);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.stop();
            }
        }
        let _stop = StopOnDrop(stop);
        let work = drive(self, source, sink);
        match deadline {
            Some(d) => tokio::time::timeout_at(d, work)
                .await
                .unwrap_or_else(|_| Err(Error::Deadline(super::DEADLINE_PASSED.into()))),
            None => work.await,
        }
    }
}

/// What the source side sends the compute task.
enum Input {
    Chunk(Bytes),
    End,
}

/// The compute task is parked (nothing scheduled on the pool).
const IDLE: u8 = 0;
/// It is scheduled or running.
const RUNNING: u8 = 1;
/// It is running and was woken meanwhile: it looks again before parking.
const NOTIFIED: u8 = 2;

/// The state shared by the async side and the compute task.
struct Task {
    state: AtomicU8,
    /// The task parked with output the sink had no room for.
    blocked_on_output: AtomicBool,
    hops: AtomicU64,
    compute: Compute,
    stop: Stop,
    /// The error that ended the work, read by the sink side once the output
    /// channel closes.
    error: Mutex<Option<Error>>,
    inner: Mutex<Work>,
}

/// What only the running compute task touches.
struct Work {
    input: mpsc::Receiver<Input>,
    /// Closed (dropped) when the work has ended, however it ended.
    output: Option<mpsc::Sender<Bytes>>,
    pipeline: Option<Pipeline>,
    rest: Option<Remainder>,
    /// Output the channel had no room for yet.
    pending: Option<Bytes>,
    /// Held until the work has ended.
    permit: Option<Permit>,
}

/// Why the compute task stopped looking for work.
enum Park {
    /// It waits for input or for room in the output.
    Wait,
    /// It has ended.
    Done,
}

impl Task {
    /// Schedules the compute task unless it is running (then it looks again
    /// before it parks).
    fn wake(self: &Arc<Self>) {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let next = match s {
                IDLE => RUNNING,
                RUNNING => NOTIFIED,
                _ => return,
            };
            match self
                .state
                .compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if next == RUNNING => {
                    self.hops.fetch_add(1, Ordering::Relaxed);
                    let task = Arc::clone(self);
                    self.compute.spawn(move || task.run());
                    return;
                }
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }

    /// The compute task: works until it must wait, then parks (or, woken
    /// meanwhile, works again).
    fn run(self: Arc<Self>) {
        loop {
            {
                let mut work = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                let park = catch_unwind(AssertUnwindSafe(|| self.advance(&mut work)))
                    .unwrap_or_else(|_| {
                        self.fail(Error::Internal(
                            "internal error: an image worker panicked".into(),
                        ))
                    });
                if let Park::Done = park {
                    // Memory, the worker slot and the output channel go now.
                    work.pipeline = None;
                    work.rest = None;
                    work.pending = None;
                    work.permit = None;
                    work.output = None;
                    work.input.close();
                }
            }
            if self
                .state
                .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
            self.state.store(RUNNING, Ordering::Release);
        }
    }

    fn fail(&self, e: Error) -> Park {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
        Park::Done
    }

    /// Pushes queued input and sends output until one side must wait.
    fn advance(&self, w: &mut Work) -> Park {
        let Some(output) = w.output.clone() else {
            return Park::Done;
        };
        loop {
            if self.stop.is_stopped() {
                return Park::Done;
            }
            if let Some(out) = w.pending.take() {
                match output.try_send(out) {
                    Ok(()) => continue,
                    Err(TrySendError::Closed(_)) => return Park::Done,
                    Err(TrySendError::Full(out)) => {
                        // Say so, then look once more: the sink may have made
                        // room before it could see the flag.
                        self.blocked_on_output.store(true, Ordering::SeqCst);
                        match output.try_send(out) {
                            Ok(()) => continue,
                            Err(TrySendError::Closed(_)) => return Park::Done,
                            Err(TrySendError::Full(out)) => {
                                w.pending = Some(out);
                                return Park::Wait;
                            }
                        }
                    }
                }
            }
            if let Some(rest) = &mut w.rest {
                match rest.next_band(MAX_CHUNK_BYTES) {
                    Ok(Some(band)) => w.pending = Some(band),
                    Ok(None) => return Park::Done,
                    Err(e) => return self.fail(e.into()),
                }
                continue;
            }
            match w.input.try_recv() {
                Ok(Input::Chunk(chunk)) => {
                    let Some(p) = w.pipeline.as_mut() else {
                        return self.fail(Error::Internal("a chunk after the end".into()));
                    };
                    let mut out = Vec::new();
                    if let Err(e) = p.push(&chunk, &mut out) {
                        return self.fail(e.into());
                    }
                    if !out.is_empty() {
                        w.pending = Some(out.into());
                    }
                }
                Ok(Input::End) => match w.pipeline.take().map(Pipeline::finish) {
                    Some(Ok(rest)) => w.rest = Some(rest),
                    Some(Err(e)) => return self.fail(e.into()),
                    None => return Park::Done,
                },
                Err(TryRecvError::Empty) => return Park::Wait,
                // The source side went away without an end: stopped.
                Err(TryRecvError::Disconnected) => return Park::Done,
            }
        }
    }
}

/// Feeds the source into the task and the task's output into the sink, at
/// the same time.
async fn drive<S: ChunkSource, K: ChunkSink>(
    admitted: Admitted,
    mut source: S,
    mut sink: K,
) -> Result<StreamStats> {
    let (in_tx, in_rx) = mpsc::channel(INPUT_QUEUE);
    // One output in hand-over: the sink side queues more (OUTPUT_QUEUE).
    let (out_tx, mut out_rx) = mpsc::channel(1);
    let task = Arc::new(Task {
        state: AtomicU8::new(IDLE),
        blocked_on_output: AtomicBool::new(false),
        hops: AtomicU64::new(0),
        compute: admitted.compute,
        stop: admitted.stop,
        error: Mutex::new(None),
        inner: Mutex::new(Work {
            input: in_rx,
            output: Some(out_tx),
            pipeline: Some(admitted.pipeline),
            rest: None,
            pending: None,
            permit: Some(admitted.permit),
        }),
    });
    let feed = async {
        let mut bytes_in = 0u64;
        loop {
            let next = source.next_chunk().await?;
            let end = next.is_none();
            if let Some(c) = &next {
                bytes_in += c.len() as u64;
            }
            let msg = next.map_or(Input::End, Input::Chunk);
            if in_tx.send(msg).await.is_err() {
                // The work has ended (failed or stopped): the sink side says
                // why.
                return Ok(bytes_in);
            }
            task.wake();
            if end {
                return Ok::<_, Error>(bytes_in);
            }
        }
    };
    let forward = async {
        let mut bytes_out = 0u64;
        loop {
            let next = match out_rx.try_recv() {
                Ok(b) => Some(b),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => {
                    task.hops.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        biased;
                        next = out_rx.recv() => next,
                        () = sink.closed() => {
                            return Err(Error::cancelled("the client went away"));
                        }
                    }
                }
            };
            let Some(chunk) = next else {
                let failed = task.error.lock().unwrap_or_else(|p| p.into_inner()).take();
                return match failed {
                    Some(e) => Err(e),
                    // Closed without an error: the end, or a stop (which
                    // only this side or the source side sets).
                    None if task.stop.is_stopped() => {
                        Err(Error::Cancelled("the stream was stopped".into()))
                    }
                    None => Ok(bytes_out),
                };
            };
            if task.blocked_on_output.swap(false, Ordering::SeqCst) {
                task.wake();
            }
            bytes_out += chunk.len() as u64;
            sink.send_chunk(chunk).await?;
        }
    };
    let (bytes_in, bytes_out) = tokio::try_join!(feed, forward)?;
    Ok(StreamStats {
        bytes_in,
        bytes_out,
        hops: task.hops.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use nlimage_core::{ImageBuf, PixelFormat};

    use super::*;
    use crate::admission::Admission;
    use crate::exec::spill::SpillConfig;

    fn executor(workers: usize, budget: u64) -> Executor {
        Executor {
            compute: Compute::new(workers).unwrap(),
            limits: nlimage_core::Limits::DEFAULT,
            admission: Admission::new(workers, budget, 8, Duration::from_secs(5)),
            cpu: nlimage_core::Cpu::detect(),
            spill: SpillConfig {
                above: 1 << 30,
                dir: Arc::from(std::env::temp_dir().as_path()),
            },
            store: None,
            sources: super::super::url::Fetcher::new(Default::default()).unwrap(),
            max_operations: 32,
            body_idle: Duration::from_secs(10),
        }
    }

    /// Chunks from memory, then the end (or an error in place of the end).
    struct Chunks(VecDeque<Bytes>, Option<Error>);

    impl ChunkSource for Chunks {
        async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
            match self.0.pop_front() {
                Some(c) => Ok(Some(c)),
                None => self.1.take().map_or(Ok(None), Err),
            }
        }
    }

    /// Collects the output; stops taking it after `limit` bytes if set.
    struct Collect(Vec<u8>, Option<usize>);

    impl ChunkSink for &mut Collect {
        async fn send_chunk(&mut self, chunk: Bytes) -> Result<()> {
            if self.1.is_some_and(|l| self.0.len() >= l) {
                return Err(Error::Cancelled("the client stopped reading".into()));
            }
            self.0.extend_from_slice(&chunk);
            Ok(())
        }

        async fn closed(&mut self) {
            std::future::pending().await
        }
    }

    fn picture(w: u32, h: u32, f: PixelFormat) -> ImageBuf {
        let info = ImageInfo::new(w, h, f).unwrap();
        let data = (0..info.byte_len())
            .map(|i| (i * 131 % 253) as u8)
            .collect();
        ImageBuf::new(info, data).unwrap()
    }

    fn chunks(data: &[u8], size: usize) -> VecDeque<Bytes> {
        data.chunks(size).map(Bytes::copy_from_slice).collect()
    }

    #[tokio::test]
    async fn streams_equal_the_naive_result_for_any_chunking() {
        let ex = executor(2, 1 << 30);
        let img = picture(301, 207, PixelFormat::Rgb8);
        for ops in [
            vec![Operation::Mean3x3],
            vec![Operation::parse("rotate=90").unwrap(), Operation::Gray],
            vec![
                Operation::parse("blur=2").unwrap(),
                Operation::parse("resize=100x").unwrap(),
            ],
        ] {
            let want = nlimage_core::ops::naive::apply_all(&img, &ops).unwrap();
            for size in [1000, 7777, 1 << 20] {
                let s = ex.admit_stream(img.info(), &ops, None).await.unwrap();
                assert_eq!(s.output_info(), want.info());
                let mut out = Collect(Vec::new(), None);
                let stats = s
                    .run(Chunks(chunks(img.data(), size), None), &mut out)
                    .await
                    .unwrap();
                assert!(out.0 == want.data(), "{ops:?} in chunks of {size}");
                assert_eq!(stats.bytes_in, img.data().len() as u64);
                assert_eq!(stats.bytes_out, want.data().len() as u64);
                assert!(stats.hops >= 1);
            }
        }
        assert_eq!(ex.admission.in_use(), 0, "every permit came back");
    }

    #[tokio::test]
    async fn bad_streams_fail_with_their_reason_and_free_what_they_held() {
        let ex = executor(1, 1 << 30);
        let img = picture(64, 64, PixelFormat::Gray8);
        // Too many bytes.
        let s = ex
            .admit_stream(img.info(), &[Operation::Mean3x3], None)
            .await
            .unwrap();
        let mut more = chunks(img.data(), 1000);
        more.push_back(Bytes::from_static(&[0; 10]));
        let e = s
            .run(Chunks(more, None), &mut Collect(Vec::new(), None))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("more pixel data"), "{e}");
        // Too few.
        let s = ex
            .admit_stream(img.info(), &[Operation::Mean3x3], None)
            .await
            .unwrap();
        let short = chunks(&img.data()[..100], 30);
        let e = s
            .run(Chunks(short, None), &mut Collect(Vec::new(), None))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("ended early"), "{e}");
        // The source fails.
        let s = ex
            .admit_stream(img.info(), &[Operation::Mean3x3], None)
            .await
            .unwrap();
        let e = s
            .run(
                Chunks(
                    chunks(&img.data()[..100], 30),
                    Some(Error::invalid("a second header")),
                ),
                &mut Collect(Vec::new(), None),
            )
            .await
            .unwrap_err();
        assert_eq!(e, Error::invalid("a second header"));
        // The sink stops reading.
        let s = ex
            .admit_stream(img.info(), &[Operation::Mean3x3], None)
            .await
            .unwrap();
        let e = s
            .run(
                Chunks(chunks(img.data(), 64), None),
                &mut Collect(Vec::new(), Some(64)),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Cancelled(_)), "{e}");
        for _ in 0..400 {
            if ex.admission.in_use() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            ex.admission.in_use(),
            0,
            "the stopped work gave its memory back"
        );
        // And the one worker is free again.
        let s = ex
            .admit_stream(img.info(), &[Operation::Mean3x3], None)
            .await
            .unwrap();
        let mut out = Collect(Vec::new(), None);
        s.run(Chunks(chunks(img.data(), 500), None), &mut out)
            .await
            .unwrap();
        assert_eq!(out.0.len(), img.data().len());
    }
}
