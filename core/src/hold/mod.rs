//! Where a rotating pipeline keeps the image until its input has ended, and
//! how it then produces the rotated output band by band.
//!
//! Two kinds: [`MemoryHold`] keeps the image in one buffer; [`StripHold`]
//! writes it to positional storage (the server gives it a temporary file) in
//! a layout that the rotation reads back a strip at a time, so memory stays
//! bounded by the strip size whatever the image size. Both produce exactly
//! what [`crate::rotate_naive`] gives (tested with an in-memory store).

use std::fmt::Debug;

use bytes::Bytes;
use rayon::prelude::*;

use crate::error::Result;
use crate::ops::Flip;
use crate::ops::orient::{Orientation, mirror_rows};
use crate::pixel::ImageInfo;
use crate::rotate::rotate_rows_into_with;
use crate::simd::Cpu;

/// Collects the image a rotation needs whole.
pub trait Hold: Send + Debug {
    /// Appends the next bytes of the image (any chunking).
    fn write(&mut self, data: &[u8]) -> Result<()>;
    /// All bytes are in: start producing the rotated output.
    fn finish(self: Box<Self>) -> Result<Box<dyn Produce>>;
}

/// Produces a rotated image band by band.
pub trait Produce: Send + Debug {
    /// The next band of whole output rows, about `target_bytes` long (at
    /// least one row), or `None` at the end. A band may share memory with
    /// the hold (a top-bottom flip hands out its buffer without a copy).
    fn next_band(&mut self, target_bytes: usize) -> Result<Option<Bytes>>;
}

/// Storage addressed by byte offset: a file, or memory in tests.
pub trait Positional: Send + Debug {
    /// Writes all of `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()>;
    /// Fills `buf` from `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

/// Computes output rows `first..` of orientation `o` applied to `src`
/// (geometry `info`) into `dst`, in parallel sub-bands: a top-bottom flip
/// copies rows; anything else rotates with the blocked kernels and mirrors
/// each sub-band while it is in cache.
fn orient_band(
    src: &[u8],
    info: ImageInfo,
    o: Orientation,
    first: usize,
    dst: &mut [u8],
    cpu: Cpu,
) -> Result<()> {
    let out = o.output_info(info);
    let rb = out.row_bytes();
    let rows = dst.len() / rb;
    if o == Orientation::flip(Flip::Vertical) {
        let h = info.height() as usize;
        dst.par_chunks_mut(rb).enumerate().for_each(|(i, row)| {
            let y = h - 1 - (first + i);
            row.copy_from_slice(&src[y * rb..(y + 1) * rb]);
        });
        return Ok(());
    }
    // Whole sub-bands of the kernels (32 rows: see `ops::rotate::kernels`) per
    // task, a few tasks per thread.
    let per_task = (rows / (4 * rayon::current_num_threads()))
        .max(1)
        .next_multiple_of(32);
    dst.par_chunks_mut(per_task * rb)
        .enumerate()
        .try_for_each(|(i, part)| {
            rotate_rows_into_with(cpu, src, info, o.rotation, first + i * per_task, part)?;
            if o.mirror {
                mirror_rows(part, rb, out.channels());
            }
            Ok(())
        })
}

/// Asks Linux to back `mem` with transparent huge pages where it can (most
/// distributions enable them only where asked, as numpy does for its
/// arrays). A hold is written once, top to bottom, right after it is
/// allocated: on 4 KiB pages that is one page fault per 4 KiB, and on this
/// project's VMs those faults took most of a 36 MB vertical flip (97 ms of
/// faults and zeroing against 4.5 ms for OpenCV's flip; see bench/README.md).
/// Only a hint: memory that cannot get huge pages stays as it is.
fn advise_huge_pages<T>(mem: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let (start, len) = (mem.as_mut_ptr() as usize, std::mem::size_of_val(mem));
        // The whole 2 MiB pages inside `mem`.
        let first = start.next_multiple_of(HUGE);
        let end = (start + len) / HUGE * HUGE;
        if end > first {
            // SAFETY: madvise only advises about the pages of this range,
            // which lie inside memory this process owns (`mem`); it does not
            // change their contents or validity.
            #[allow(unsafe_code)]
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = mem;
}

mod memory;
mod strip;

pub use memory::{MemoryHold, SPARE_HOLD_BYTES};
pub use strip::StripHold;

/// Every orientation a hold is made for, with and without the mirror.
#[cfg(test)]
fn held_orientations() -> impl Iterator<Item = Orientation> {
    use crate::rotate::Rotation;
    [
        Rotation::None,
        Rotation::Ccw90,
        Rotation::Ccw180,
        Rotation::Ccw270,
    ]
    .into_iter()
    .flat_map(|rotation| [false, true].map(|mirror| Orientation { rotation, mirror }))
    .filter(|o| o.needs_whole_image())
}
