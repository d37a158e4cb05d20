//! The in-memory hold: the whole image in one buffer, and the spare buffer
//! a finished hold leaves for the next.

use bytes::Bytes;
use rayon::prelude::*;

use super::{Hold, Produce, advise_huge_pages, orient_band};
use crate::error::{CoreError, Result};
use crate::ops::Flip;
use crate::ops::orient::Orientation;
use crate::pixel::ImageInfo;
use crate::simd::Cpu;

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
    cpu: Cpu,
}

impl MemoryHold {
    /// Reserves room for an image of geometry `input`, to be oriented on
    /// code path `cpu`.
    pub fn new(input: ImageInfo, orientation: Orientation, cpu: Cpu) -> Result<Self> {
        let buf = take_buffer(input.byte_len())?;
        Ok(Self {
            buf,
            input,
            orientation,
            written: 0,
            cpu,
        })
    }

    /// Whether rows are stored bottom to top (a top-bottom flip).
    fn upside_down(&self) -> bool {
        self.orientation == Orientation::flip(Flip::Vertical)
    }
}

/// Writes of at least this many bytes into an upside-down hold copy their
/// whole rows in parallel.
const PARALLEL_BYTES: usize = 1 << 20;

/// Copies `data` into `buf`'s spare capacity, `at` bytes past its end
/// (panics if that is past the capacity).
fn write_spare(buf: &mut Vec<u8>, at: usize, data: &[u8]) {
    crate::simd::store::copy_to_uninit(data, &mut buf.spare_capacity_mut()[at..at + data.len()]);
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
        // Whole rows of a large write on the pool: a copy in cache is faster
        // on two threads than on one (3001x2003 gray, 6 MB in one push:
        // 0.10 -> 0.06 ms).
        if self.written.is_multiple_of(rb) && data.len() >= PARALLEL_BYTES {
            let (y0, rows) = (self.written / rb, data.len() / rb);
            let spare = &mut self.buf.spare_capacity_mut()[..len];
            // Input rows y0..y0 + rows go to rows h - 1 - y0 down to
            // h - y0 - rows: the same span, in reverse order.
            let dst = &mut spare[(h - y0 - rows) * rb..(h - y0) * rb];
            dst.par_chunks_mut(rb)
                .rev()
                .zip(data[..rows * rb].par_chunks(rb))
                .with_min_len((PARALLEL_BYTES / 8 / rb).max(1))
                .for_each(|(d, s)| {
                    crate::simd::store::copy_to_uninit(s, d);
                });
            self.written += rows * rb;
            data = &data[rows * rb..];
        }
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
        orient_band(
            &h.buf,
            h.input,
            h.orientation,
            self.next_row,
            &mut band,
            h.cpu,
        )?;
        self.next_row += rows;
        Ok(Some(band.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hold::held_orientations;
    use crate::pixel::{ImageBuf, PixelFormat};
    use crate::rotate::Rotation;

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
                    let mut hold: Box<dyn Hold> =
                        Box::new(MemoryHold::new(info, o, Cpu::detect()).unwrap());
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
        let mut hold: Box<dyn Hold> = Box::new(MemoryHold::new(info, flip, Cpu::detect()).unwrap());
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
        let little = MemoryHold::new(small, flip, Cpu::detect()).unwrap();
        assert_ne!(little.buf.as_ptr(), a, "a small hold takes a fresh buffer");
        drop(little);
        assert_eq!(spare(), a, "the larger spare kept");
        // A quarter turn of the same image takes it and gives it back when
        // dropped.
        let turn =
            MemoryHold::new(info, Orientation::rotate(Rotation::Ccw90), Cpu::detect()).unwrap();
        assert_eq!(turn.buf.as_ptr(), a, "the spare reused");
        assert_ne!(spare(), a, "taken");
        drop(turn);
        assert_eq!(spare(), a, "given back on drop");
    }

    #[test]
    fn a_memory_hold_refuses_too_much_or_too_little_data() {
        let info = ImageInfo::new(3, 2, PixelFormat::Gray8).unwrap();
        for o in held_orientations() {
            let mut hold: Box<dyn Hold> =
                Box::new(MemoryHold::new(info, o, Cpu::detect()).unwrap());
            hold.write(&[1; 5]).unwrap();
            assert!(hold.write(&[1; 2]).is_err(), "{o:?}: seven bytes for six");
            assert!(hold.finish().is_err(), "{o:?}: five bytes for six");
        }
    }
}
