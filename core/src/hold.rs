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

use crate::error::{CoreError, Result};
use crate::ops::Flip;
use crate::ops::orient::{Orientation, mirror_rows};
use crate::pixel::ImageInfo;
use crate::rotate::{Rotation, rotate_rows_into};

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
            rotate_rows_into(src, info, o.rotation, first + i * per_task, part)?;
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

/// Holds up to this size (a 24-megapixel RGBA image: 96 MB) leave their
/// buffer behind for the next hold when they end (one buffer, the largest).
pub const SPARE_HOLD_BYTES: usize = 128 << 20;

/// The buffer the last in-memory hold left behind. Fresh memory costs a
/// page fault and the kernel's zeroing per page: for a 36 MB flip that was
/// more than the copy itself (4000x3000 RGB `flip=v` 3.3 -> 1.4 ms, see
/// bench/README.md). Buffers under 32 MiB are often reused by the
/// allocator anyway (glibc keeps them in its heap), larger ones go back to
/// the system on every free; this keeps the largest freed one up to
/// [`SPARE_HOLD_BYTES`]. The server admits a hold in memory only within its
/// memory budget, so the spare is never larger than what the budget let one
/// request hold.
static SPARE: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// A buffer with room for `len` bytes: the spare if it fits (at least `len`
/// and at most twice that: a small image does not take a large image's
/// buffer), else a fresh one.
fn take_buffer(len: usize) -> Result<Vec<u8>> {
    let reused = {
        let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
        let cap = spare.capacity();
        (cap >= len && cap / 2 <= len).then(|| std::mem::take(&mut *spare))
    };
    if let Some(mut buf) = reused {
        buf.clear();
        return Ok(buf);
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(len)
        .map_err(|_| CoreError::OutOfMemory(len))?;
    advise_huge_pages(buf.spare_capacity_mut());
    Ok(buf)
}

/// Leaves `buf` for the next hold if it is larger than the spare (and no
/// larger than [`SPARE_HOLD_BYTES`]); otherwise frees it.
fn give_back(buf: Vec<u8>) {
    if buf.capacity() > SPARE_HOLD_BYTES {
        return;
    }
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    let freed = if buf.capacity() > spare.capacity() {
        std::mem::replace(&mut *spare, buf)
    } else {
        buf
    };
    drop(spare);
    // Freed outside the lock.
    drop(freed);
}

/// A hold's buffer shared by the bands handed out from it
/// ([`Bytes::from_owner`]); the last band dropped gives it back.
struct Recycled(Vec<u8>);

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.0));
    }
}

/// The whole image in one buffer (reserved up front, so a lack of memory is
/// reported before any pixel is read).
///
/// A top-bottom flip stores each row where the output wants it (row `y` at
/// row `h - 1 - y`), so the output is the buffer itself, handed out band by
/// band without a copy: one pass over the image, as a flip from one array
/// into another is (before: a pass into the hold, one zeroing each band and
/// one copying into it; 4000x3000 RGB with each band then copied out 7.2 ->
/// 5.9 ms, see bench/README.md).
#[derive(Debug)]
pub struct MemoryHold {
    buf: Vec<u8>,
    input: ImageInfo,
    orientation: Orientation,
    /// Bytes written so far.
    written: usize,
}

impl MemoryHold {
    /// Reserves room for an image of geometry `input`.
    pub fn new(input: ImageInfo, orientation: Orientation) -> Result<Self> {
        let buf = take_buffer(input.byte_len())?;
        Ok(Self {
            buf,
            input,
            orientation,
            written: 0,
        })
    }

    /// Whether rows are stored bottom to top (a top-bottom flip).
    fn upside_down(&self) -> bool {
        self.orientation == Orientation::flip(Flip::Vertical)
    }
}

/// Copies `data` into `buf`'s spare capacity, `at` bytes past its end
/// (panics if that is past the capacity).
fn write_spare(buf: &mut Vec<u8>, at: usize, data: &[u8]) {
    let spare = &mut buf.spare_capacity_mut()[at..at + data.len()];
    // SAFETY: `spare` is `data.len()` bytes of `buf`'s allocation (the
    // indexing above checked it), `MaybeUninit<u8>` has the layout of `u8`,
    // and the two slices cannot overlap (one is borrowed shared, the other
    // exclusively). Writing initialises those bytes.
    #[allow(unsafe_code)]
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), spare.as_mut_ptr().cast::<u8>(), data.len());
    }
}

impl Hold for MemoryHold {
    fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let len = self.input.byte_len();
        if data.len() > len - self.written {
            return Err(CoreError::InvalidInput(format!(
                "more pixel data than a {} image holds",
                self.input
            )));
        }
        if !self.upside_down() {
            self.buf.extend_from_slice(data);
            self.written += data.len();
            return Ok(());
        }
        let rb = self.input.row_bytes();
        let h = self.input.height() as usize;
        while !data.is_empty() {
            let (y, x) = (self.written / rb, self.written % rb);
            let take = (rb - x).min(data.len());
            write_spare(&mut self.buf, (h - 1 - y) * rb + x, &data[..take]);
            self.written += take;
            data = &data[take..];
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Box<dyn Produce>> {
        let len = self.input.byte_len();
        if self.written != len {
            return Err(CoreError::InvalidInput(format!(
                "pixel data ended early: a {} image has {} bytes, got {}",
                self.input, len, self.written
            )));
        }
        if self.upside_down() {
            // SAFETY: the capacity is at least `len` (`take_buffer`) and
            // bytes 0..len are initialised: `write` put byte `n` of the input, for
            // each `n` in 0..len (`written == len`), at the offset of the
            // same column in row `h - 1 - n / rb`, which maps 0..len onto
            // 0..len one to one.
            #[allow(unsafe_code)]
            unsafe {
                self.buf.set_len(len);
            }
            return Ok(Box::new(ReadyProduce {
                rest: Bytes::from_owner(Recycled(std::mem::take(&mut self.buf))),
                row_bytes: self.input.row_bytes(),
            }));
        }
        Ok(Box::new(MemoryProduce {
            hold: *self,
            next_row: 0,
        }))
    }
}

impl Drop for MemoryHold {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.buf));
    }
}

/// An output already in order in memory, handed out band by band.
#[derive(Debug)]
struct ReadyProduce {
    rest: Bytes,
    row_bytes: usize,
}

impl Produce for ReadyProduce {
    fn next_band(&mut self, target_bytes: usize) -> Result<Option<Bytes>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let rb = self.row_bytes;
        let rows = (target_bytes / rb).clamp(1, self.rest.len() / rb);
        Ok(Some(self.rest.split_to(rows * rb)))
    }
}

#[derive(Debug)]
struct MemoryProduce {
    hold: MemoryHold,
    next_row: usize,
}

impl Produce for MemoryProduce {
    fn next_band(&mut self, target_bytes: usize) -> Result<Option<Bytes>> {
        let h = &self.hold;
        let out = h.orientation.output_info(h.input);
        let (rb, height) = (out.row_bytes(), out.height() as usize);
        if self.next_row >= height {
            give_back(std::mem::take(&mut self.hold.buf));
            return Ok(None);
        }
        let rows = (target_bytes / rb).clamp(1, height - self.next_row);
        let mut band = vec![0u8; rows * rb];
        orient_band(&h.buf, h.input, h.orientation, self.next_row, &mut band)?;
        self.next_row += rows;
        Ok(Some(band.into()))
    }
}

/// The image in positional storage, laid out as strips the rotation reads
/// back one at a time: for quarter turns, vertical strips of whole columns
/// (each stored as its own small image); for half turns, the rows in order,
/// read back a band of rows at a time from the bottom. Memory: one input
/// row, one strip (about `strip_bytes`), one output band.
#[derive(Debug)]
pub struct StripHold<S: Positional> {
    store: S,
    input: ImageInfo,
    orientation: Orientation,
    /// Columns per strip (quarter turns) or rows per band (half turns).
    strip: usize,
    row: Vec<u8>,
    rows_done: usize,
}

impl<S: Positional> StripHold<S> {
    /// A hold writing into `store`, reading back about `strip_bytes` at a time.
    pub fn new(store: S, input: ImageInfo, orientation: Orientation, strip_bytes: usize) -> Self {
        let (w, h, c) = (
            input.width() as usize,
            input.height() as usize,
            input.channels(),
        );
        let strip = match orientation.rotation {
            Rotation::Ccw90 | Rotation::Ccw270 => (strip_bytes / (h * c)).clamp(1, w),
            _ => (strip_bytes / input.row_bytes()).clamp(1, h),
        };
        Self {
            store,
            input,
            orientation,
            strip,
            row: Vec::with_capacity(input.row_bytes()),
            rows_done: 0,
        }
    }

    fn quarter(&self) -> bool {
        matches!(
            self.orientation.rotation,
            Rotation::Ccw90 | Rotation::Ccw270
        )
    }

    /// Strip `k` of a quarter turn: first column, width, byte offset.
    fn strip_at(&self, k: usize) -> (usize, usize, u64) {
        let (w, h, c) = (
            self.input.width() as usize,
            self.input.height() as usize,
            self.input.channels(),
        );
        let x0 = k * self.strip;
        (x0, self.strip.min(w - x0), (x0 * h * c) as u64)
    }

    fn store_row(&mut self, row: &[u8]) -> Result<()> {
        let y = self.rows_done;
        if self.quarter() {
            let (w, c) = (self.input.width() as usize, self.input.channels());
            for k in 0..w.div_ceil(self.strip) {
                let (x0, sw, off) = self.strip_at(k);
                let at = off + (y * sw * c) as u64;
                self.store.write_at(at, &row[x0 * c..(x0 + sw) * c])?;
            }
        } else {
            self.store
                .write_at((y * self.input.row_bytes()) as u64, row)?;
        }
        self.rows_done += 1;
        Ok(())
    }
}

impl<S: Positional + 'static> Hold for StripHold<S> {
    fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let rb = self.input.row_bytes();
        while !data.is_empty() {
            if self.row.is_empty() && data.len() >= rb {
                // Whole rows straight from the input, without a copy.
                let (row, rest) = data.split_at(rb);
                self.store_row(row)?;
                data = rest;
                continue;
            }
            let take = (rb - self.row.len()).min(data.len());
            self.row.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.row.len() == rb {
                let row = std::mem::take(&mut self.row);
                self.store_row(&row)?;
                self.row = row;
                self.row.clear();
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Box<dyn Produce>> {
        let pieces = if self.quarter() {
            (self.input.width() as usize).div_ceil(self.strip)
        } else {
            (self.input.height() as usize).div_ceil(self.strip)
        };
        Ok(Box::new(StripProduce {
            hold: *self,
            pieces,
            next_piece: 0,
            loaded: None,
        }))
    }
}

#[derive(Debug)]
struct StripProduce<S: Positional> {
    hold: StripHold<S>,
    pieces: usize,
    next_piece: usize,
    /// The strip being emitted: its pixels, geometry, next output row.
    loaded: Option<(Vec<u8>, ImageInfo, usize)>,
}

impl<S: Positional> StripProduce<S> {
    /// Reads the next strip in output order.
    fn load(&mut self) -> Result<Option<(Vec<u8>, ImageInfo, usize)>> {
        if self.next_piece == self.pieces {
            return Ok(None);
        }
        let h = &mut self.hold;
        let (w, rows, c) = (
            h.input.width() as usize,
            h.input.height() as usize,
            h.input.channels(),
        );
        let i = self.next_piece;
        self.next_piece += 1;
        let (info, off, len) = match h.orientation.rotation {
            // A quarter turn's output rows run over input columns right to
            // left (90) or left to right (270).
            Rotation::Ccw90 | Rotation::Ccw270 => {
                let k = if h.orientation.rotation == Rotation::Ccw90 {
                    self.pieces - 1 - i
                } else {
                    i
                };
                let (_, sw, off) = h.strip_at(k);
                (
                    ImageInfo::new(sw as u32, rows as u32, h.input.format())?,
                    off,
                    sw * rows * c,
                )
            }
            // A half turn's output starts with the bottom rows.
            _ => {
                let y1 = rows - i * h.strip;
                let y0 = y1.saturating_sub(h.strip);
                let info = ImageInfo::new(w as u32, (y1 - y0) as u32, h.input.format())?;
                (
                    info,
                    (y0 * h.input.row_bytes()) as u64,
                    (y1 - y0) * h.input.row_bytes(),
                )
            }
        };
        let mut buf = crate::error::try_alloc(len)?;
        h.store.read_at(off, &mut buf)?;
        Ok(Some((buf, info, 0)))
    }
}

impl<S: Positional> Produce for StripProduce<S> {
    fn next_band(&mut self, target_bytes: usize) -> Result<Option<Bytes>> {
        loop {
            if self.loaded.is_none() {
                self.loaded = self.load()?;
                if self.loaded.is_none() {
                    return Ok(None);
                }
            }
            let orientation = self.hold.orientation;
            let (src, info, next) = self.loaded.as_mut().expect("loaded above");
            let out = orientation.output_info(*info);
            let (rb, height) = (out.row_bytes(), out.height() as usize);
            if *next >= height {
                self.loaded = None;
                continue;
            }
            let rows = (target_bytes / rb).clamp(1, height - *next);
            let mut band = vec![0u8; rows * rb];
            orient_band(src, *info, orientation, *next, &mut band)?;
            *next += rows;
            return Ok(Some(band.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::{ImageBuf, PixelFormat};

    /// Positional storage in memory, for testing the strip layout.
    #[derive(Debug, Default)]
    struct MemStore(Vec<u8>);

    impl Positional for MemStore {
        fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            let end = offset as usize + data.len();
            if self.0.len() < end {
                self.0.resize(end, 0);
            }
            self.0[offset as usize..end].copy_from_slice(data);
            Ok(())
        }
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
            buf.copy_from_slice(&self.0[offset as usize..offset as usize + buf.len()]);
            Ok(())
        }
    }

    /// Every orientation a hold is made for, with and without the mirror.
    fn held_orientations() -> impl Iterator<Item = Orientation> {
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

    #[test]
    fn memory_holds_fed_any_chunks_orient_like_the_reference() {
        for (w, h, f) in [
            (1, 1, PixelFormat::Gray8),
            (1, 9, PixelFormat::Rgb8),
            (9, 1, PixelFormat::Gray8),
            (13, 7, PixelFormat::Rgb8),
            (5, 19, PixelFormat::Rgba8),
        ] {
            let info = ImageInfo::new(w, h, f).unwrap();
            let data: Vec<u8> = (0..info.byte_len()).map(|i| (i * 37 % 251) as u8).collect();
            let img = ImageBuf::new(info, data.clone()).unwrap();
            for o in held_orientations() {
                let want = crate::ops::naive::orient(&img, o).unwrap();
                // Chunks smaller than, equal to and larger than a row.
                for chunk in [1, 2, 5, info.row_bytes(), info.row_bytes() + 3, data.len()] {
                    let mut hold: Box<dyn Hold> = Box::new(MemoryHold::new(info, o).unwrap());
                    for piece in data.chunks(chunk) {
                        hold.write(piece).unwrap();
                    }
                    let mut p = hold.finish().unwrap();
                    let mut out = Vec::new();
                    let row = o.output_info(info).row_bytes();
                    while let Some(b) = p.next_band(2 * row + 1).unwrap() {
                        assert_eq!(b.len() % row, 0, "whole rows");
                        assert!(b.len() <= 2 * row + 1, "no longer than asked for");
                        out.extend_from_slice(&b);
                    }
                    assert_eq!(out, want.data(), "{o:?} {w}x{h} {f} chunks of {chunk}");
                }
            }
        }
    }

    #[test]
    fn a_finished_hold_leaves_its_buffer_to_the_next_of_its_size() {
        // A size no other test holds (theirs are far smaller), so no test
        // running beside this one takes the spare in between.
        let info = ImageInfo::new(1031, 1021, PixelFormat::Rgb8).unwrap();
        let data: Vec<u8> = (0..info.byte_len()).map(|i| (i % 249) as u8).collect();
        let spare = || SPARE.lock().unwrap().as_ptr();
        let flip = Orientation::flip(Flip::Vertical);
        // The flip's band is its hold's buffer, left as the spare once the
        // band is dropped.
        let mut hold: Box<dyn Hold> = Box::new(MemoryHold::new(info, flip).unwrap());
        hold.write(&data).unwrap();
        let mut p = hold.finish().unwrap();
        let band = p.next_band(usize::MAX).unwrap().unwrap();
        assert!(p.next_band(1).unwrap().is_none(), "one band");
        let a = band.as_ptr();
        assert_ne!(spare(), a, "still in use");
        drop((band, p));
        assert_eq!(spare(), a, "left as the spare");
        // A small hold neither takes it nor replaces it.
        let small = ImageInfo::new(7, 5, PixelFormat::Rgb8).unwrap();
        let little = MemoryHold::new(small, flip).unwrap();
        assert_ne!(little.buf.as_ptr(), a, "a small hold takes a fresh buffer");
        drop(little);
        assert_eq!(spare(), a, "the larger spare kept");
        // A quarter turn of the same image takes it and gives it back when
        // dropped.
        let turn = MemoryHold::new(info, Orientation::rotate(Rotation::Ccw90)).unwrap();
        assert_eq!(turn.buf.as_ptr(), a, "the spare reused");
        assert_ne!(spare(), a, "taken");
        drop(turn);
        assert_eq!(spare(), a, "given back on drop");
    }

    #[test]
    fn a_memory_hold_refuses_too_much_or_too_little_data() {
        let info = ImageInfo::new(3, 2, PixelFormat::Gray8).unwrap();
        for o in held_orientations() {
            let mut hold: Box<dyn Hold> = Box::new(MemoryHold::new(info, o).unwrap());
            hold.write(&[1; 5]).unwrap();
            assert!(hold.write(&[1; 2]).is_err(), "{o:?}: seven bytes for six");
            assert!(hold.finish().is_err(), "{o:?}: five bytes for six");
        }
    }

    #[test]
    fn strips_of_any_size_rotate_like_the_reference() {
        for (w, h, f) in [
            (1, 1, PixelFormat::Gray8),
            (13, 7, PixelFormat::Rgb8),
            (5, 19, PixelFormat::Rgba8),
        ] {
            let info = ImageInfo::new(w, h, f).unwrap();
            let data: Vec<u8> = (0..info.byte_len()).map(|i| (i * 31 % 253) as u8).collect();
            let img = ImageBuf::new(info, data.clone()).unwrap();
            for rot in held_orientations() {
                let want = crate::ops::naive::orient(&img, rot).unwrap();
                for strip_bytes in [1, 10, 50, 1000] {
                    let mut hold: Box<dyn Hold> =
                        Box::new(StripHold::new(MemStore::default(), info, rot, strip_bytes));
                    for chunk in data.chunks(6) {
                        hold.write(chunk).unwrap();
                    }
                    let mut p = hold.finish().unwrap();
                    let mut out = Vec::new();
                    while let Some(b) = p.next_band(17).unwrap() {
                        out.extend_from_slice(&b);
                    }
                    assert_eq!(
                        out,
                        want.data(),
                        "{rot:?} {w}x{h} {f} strips of {strip_bytes} bytes"
                    );
                }
            }
        }
    }
}
