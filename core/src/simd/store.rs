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
