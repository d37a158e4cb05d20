//! Non-temporal (streaming) stores: writing a large output that will not be
//! read again soon without first reading each cache line into the cache.
//! The kernels issue them themselves (`_mm512_stream_si512`); this module
//! holds the fence that makes them visible to other threads.

/// Orders earlier non-temporal stores before later stores (`sfence`): call
/// it before another thread reads what they wrote.
pub(crate) fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` has no preconditions; SSE is part of every x86-64 CPU.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

/// Calls [`fence`] when dropped, if armed: a parallel loop that streams
/// keeps one per split of its work (`for_each_init`), so each thread fences
/// once after its run of bands instead of after every band (an `sfence`
/// waits for the write-combining buffers to drain: fencing every band cost
/// 3% of a half turn and 5% of a mean, interleaved A/B).
pub(crate) struct FenceOnDrop(pub bool);

impl Drop for FenceOnDrop {
    fn drop(&mut self) {
        if self.0 {
            fence();
        }
    }
}
