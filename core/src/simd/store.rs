//! Non-temporal (streaming) stores: writing a large output that will not be
//! read again soon without first reading each cache line into the cache.
//! The kernels issue them themselves (`_mm512_stream_si512`); this module
//! holds the fence that makes them visible to other threads, and the
//! parallel appends into a vector's spare capacity the stages write through.

use std::mem::MaybeUninit;

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

/// Appends `n` bytes to `out`, made in parallel without zeroing them first:
/// `fill(i, part)` writes the `i`-th part of `part_len` bytes (the last may
/// be shorter) into memory that may hold anything. For kernels that store
/// straight into uninitialised memory: zeroing each part first was a sixth
/// of a gray conversion, a pass over the output just before the kernel's
/// own. A kernel that needs initialised bytes gets each row [`zeroed`]
/// right before it writes it, in L1 (a `resize` of the whole output first
/// would zero it in one serial pass: a gray conversion on two threads
/// measured slower than on one).
///
/// # Safety
/// `fill` must initialise every byte of the part it is given.
pub(crate) unsafe fn par_extend_uninit(
    out: &mut Vec<u8>,
    n: usize,
    part_len: usize,
    nontemporal: bool,
    fill: impl Fn(usize, &mut [MaybeUninit<u8>]) + Sync + Send,
) {
    use rayon::prelude::*;
    out.reserve(n);
    let start = out.len();
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(part_len.max(1))
        .enumerate()
        .for_each(|(i, part)| {
            fill(i, part);
            if nontemporal {
                fence();
            }
        });
    // SAFETY: the parts cover all `n` bytes after `start`, each initialised
    // by `fill` (the caller's promise; a panic propagates before this line).
    unsafe { out.set_len(start + n) };
}

/// `bytes` as possibly uninitialised bytes, for a kernel that writes into
/// either.
///
/// # Safety
/// Nothing may write an uninitialised value through the result (the
/// kernels only store bytes), or `bytes` would hold one afterwards.
pub(crate) unsafe fn as_uninit(bytes: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; the caller promises
    // every write is of an initialised byte.
    unsafe { &mut *(bytes as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// `bytes`, every one of which has been written, as plain bytes.
///
/// # Safety
/// Every element of `bytes` must be initialised.
pub(crate) unsafe fn assume_init(bytes: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    // SAFETY: the layouts are the same and the caller promises every
    // element is initialised.
    unsafe { &mut *(bytes as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

/// Zeroes `bytes` and returns them as plain bytes (for a kernel that needs
/// initialised memory to write into).
pub(crate) fn zeroed(bytes: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    bytes.fill(MaybeUninit::new(0));
    // SAFETY: every element was initialised just above.
    unsafe { assume_init(bytes) }
}

/// Copies `src` into `dst` (same length) and returns it as plain bytes.
pub(crate) fn copy_to_uninit<'a>(src: &[u8], dst: &'a mut [MaybeUninit<u8>]) -> &'a mut [u8] {
    assert_eq!(src.len(), dst.len(), "same length");
    // SAFETY: both slices are `src.len()` long, cannot overlap (one is
    // borrowed shared, the other exclusively), and the copy initialises
    // every element of `dst`, which makes the cast sound.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len());
        assume_init(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_filled_once_each_after_what_was_there() {
        for (n, part_len, nt) in [
            (0, 1, false),
            (1, 1, true),
            (7, 3, false),
            (10, 4, true),
            (5, 1000, false),
        ] {
            let mut out = vec![9u8, 8];
            let calls = std::sync::atomic::AtomicUsize::new(0);
            let fill = |i: usize, part: &mut [MaybeUninit<u8>]| {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                assert!(part.len() == part_len.min(n - i * part_len));
                for (k, b) in part.iter_mut().enumerate() {
                    b.write((i * part_len + k) as u8 ^ 0x5A);
                }
            };
            // SAFETY: `fill` writes every byte of its part.
            unsafe { par_extend_uninit(&mut out, n, part_len, nt, fill) };
            let mut want = vec![9u8, 8];
            want.extend((0..n).map(|k| k as u8 ^ 0x5A));
            assert_eq!(out, want, "{n} bytes in parts of {part_len}");
            assert_eq!(calls.into_inner(), n.div_ceil(part_len));
        }
    }

    #[test]
    fn zeroed_and_copied_bytes_read_back() {
        let mut buf = [MaybeUninit::<u8>::uninit(); 5];
        assert_eq!(zeroed(&mut buf), &[0; 5]);
        let mut buf = [MaybeUninit::<u8>::uninit(); 3];
        assert_eq!(copy_to_uninit(&[1, 2, 3], &mut buf), &[1, 2, 3]);
    }
}
