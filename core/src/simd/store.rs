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

/// Appends `n` bytes to `out`, made in parallel: `fill(i, part)` writes the
/// `i`-th part of `part_len` bytes (the last may be shorter). Each part is
/// zeroed by the task that fills it, right before, while its lines are in
/// cache: a `resize` first would zero the whole output in one serial pass
/// (a gray conversion on two threads measured slower than on one).
pub(crate) fn par_extend(
    out: &mut Vec<u8>,
    n: usize,
    part_len: usize,
    fill: impl Fn(usize, &mut [u8]) + Sync + Send,
) {
    use rayon::prelude::*;
    use std::mem::MaybeUninit;
    out.reserve(n);
    let start = out.len();
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(part_len.max(1))
        .enumerate()
        .for_each(|(i, part)| {
            part.fill(MaybeUninit::new(0));
            // SAFETY: every element of `part` was initialised just above, and
            // `MaybeUninit<u8>` has the layout of `u8`.
            let part = unsafe { &mut *(part as *mut [MaybeUninit<u8>] as *mut [u8]) };
            fill(i, part);
        });
    // SAFETY: the parts cover all `n` bytes after `start`, each initialised
    // by its task (a panic in `fill` propagates before this line).
    unsafe { out.set_len(start + n) };
}
