//! The streaming resampler: Pillow's two passes (see [`crate::ops::resize`])
//! run as input rows arrive. Each input row that some output row reads is
//! resampled horizontally at once (premultiplied, for RGBA) and kept; an
//! output row is made once the last row of its vertical window is in, and
//! rows no later output row reads are dropped. It holds one window of
//! horizontally resampled rows, never the image.

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use super::alpha::unpremultiply_with;
use super::digits::{DigitTable, columns_digits_with, digits_layout};
use super::kernels::{
    HorizontalTable, PairTable, columns_with, horizontal_row_with, premultiply_with, strip_rows,
    vertical_row_with,
};
use super::strips::back::from_columns_with;
use super::strips::to_columns_with;
use super::{Coeffs, Filter, nearest_indices};
use crate::error::Result;
use crate::ops::stage::{Stage, TASK_BYTES};
use crate::pixel::ImageInfo;
use crate::simd::Cpu;

/// How one axis maps input to output positions.
#[derive(Debug)]
enum Axis {
    /// Same size: not resampled.
    Keep,
    /// Convolution weights.
    Weights(Arc<Coeffs>),
    /// One input position per output position.
    Nearest(Vec<usize>),
}

impl Axis {
    fn new(input: usize, output: usize, filter: Filter) -> Axis {
        match filter {
            _ if input == output => Axis::Keep,
            Filter::Nearest => Axis::Nearest(nearest_indices(input, output)),
            f => Axis::Weights(Coeffs::shared(input, output, f)),
        }
    }

    /// The input positions output `i` reads.
    fn window(&self, i: usize) -> std::ops::Range<usize> {
        match self {
            Axis::Keep => i..i + 1,
            Axis::Weights(c) => c.window(i),
            Axis::Nearest(v) => v[i]..v[i] + 1,
        }
    }
}

/// The horizontal pass of one row.
#[derive(Debug)]
struct Horizontal {
    /// The code path of every kernel of this resize (both passes).
    cpu: Cpu,
    axis: Axis,
    /// The weights laid out for the row kernel, made when a row first
    /// goes that way (with the column kernel, only a last partial strip
    /// without one does).
    table: OnceLock<Option<HorizontalTable>>,
    /// With a column kernel on this CPU: its weights and the geometry of an
    /// input and an output strip (see [`Horizontal::strip`]).
    strips: Option<(PairTable, ImageInfo, ImageInfo)>,
    /// The same weights for the byte-digit column kernel, where it runs
    /// and they fit, and whether it takes its columns in pieces.
    digits: Option<(DigitTable, bool)>,
    channels: usize,
    premultiplied: bool,
}

/// A thread's buffers for the horizontal pass.
#[derive(Default)]
struct Scratch {
    row: Vec<u8>,
    cols: Vec<u8>,
    out: Vec<u8>,
    /// A padded last strip and its output.
    pad: Vec<u8>,
    pad_out: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

impl Horizontal {
    fn new(input: ImageInfo, out_width: u32, filter: Filter, cpu: Cpu) -> Self {
        let axis = Axis::new(input.width() as usize, out_width as usize, filter);
        let strips = match &axis {
            Axis::Weights(c) if cpu.clamp() >= Cpu::Avx2 => {
                let rows = strip_rows(input.channels()) as u32;
                let strip = |w| ImageInfo::new(w, rows, input.format()).ok();
                strip(input.width())
                    .zip(strip(out_width))
                    .filter(|_| rows > 0)
                    .map(|(i, o)| (PairTable::new(c), i, o))
            }
            _ => None,
        };
        let digits = match &axis {
            Axis::Weights(c) if strips.is_some() => {
                let lane = strip_rows(input.channels()) * input.channels();
                digits_layout(cpu, lane)
                    .and_then(|planes| Some((DigitTable::new(c, input.width() as usize)?, planes)))
            }
            _ => None,
        };
        Horizontal {
            cpu,
            digits,
            table: OnceLock::new(),
            axis,
            strips,
            channels: input.channels(),
            premultiplied: input.channels() == 4 && filter != Filter::Nearest,
        }
    }

    /// A strip of [`strip_rows`] input rows into `dst`, the same as
    /// [`Horizontal::row`] on each: turned by 90 degrees so that each
    /// input column is one vector of the strip's pixels, resampled down the
    /// columns (`columns_with`), and turned back. Per output value this
    /// is a few multiply-adds of whole vectors instead of one pixel's taps
    /// gathered and summed across a vector (gray to a quarter, 8000x8000:
    /// measured below in bench/README.md). False when there is no column
    /// kernel here (the caller goes row by row).
    fn strip(&self, src: &[u8], dst: &mut [u8], s: &mut Scratch) -> bool {
        let Some((pairs, strip_in, strip_out)) = &self.strips else {
            return false;
        };
        let cpu = self.cpu;
        s.cols.resize(src.len(), 0);
        let width = strip_in.width() as usize;
        to_columns_with(
            cpu,
            src,
            width,
            self.channels,
            self.premultiplied,
            self.digits.as_ref().is_some_and(|&(_, planes)| planes),
            &mut s.cols,
        );
        s.out.resize(dst.len(), 0);
        let lane = strip_in.height() as usize * self.channels;
        let digits = self.digits.as_ref();
        if !digits.is_some_and(|(d, _)| columns_digits_with(cpu, &s.cols, lane, d, &mut s.out))
            && !columns_with(cpu, &s.cols, lane, pairs, &mut s.out)
        {
            return false;
        }
        from_columns_with(cpu, &s.out, strip_out.width() as usize, self.channels, dst);
        true
    }

    /// One input row, horizontally resampled, into `dst` (an output-width row).
    fn row(&self, src: &[u8], dst: &mut [u8], scratch: &mut Vec<u8>) {
        let c = self.channels;
        let src = if self.premultiplied {
            scratch.clear();
            scratch.extend_from_slice(src);
            premultiply_with(self.cpu, scratch);
            &scratch[..]
        } else {
            src
        };
        match &self.axis {
            Axis::Keep => dst.copy_from_slice(src),
            Axis::Weights(k) => {
                let table = self.table.get_or_init(|| Some(HorizontalTable::new(k, c)));
                horizontal_row_with(self.cpu, src, k, table.as_ref(), c, dst)
            }
            Axis::Nearest(xs) => {
                for (o, &x) in dst.chunks_exact_mut(c).zip(xs) {
                    o.copy_from_slice(&src[x * c..(x + 1) * c]);
                }
            }
        }
    }
}

/// Bytes the resize stage over `info` rows to `width` x `height` holds
/// when pushed chunks of at most `chunk_bytes`: the window of horizontally
/// resampled rows, plus one chunk's rows of them.
pub(crate) fn memory(
    info: ImageInfo,
    width: u32,
    height: u32,
    filter: Filter,
    chunk_bytes: usize,
) -> u64 {
    let rb = info.row_bytes() as u64;
    let out_rb = u64::from(width) * info.channels() as u64;
    let rows = match filter {
        Filter::Nearest => 1,
        f => Coeffs::ksize(info.height() as usize, height as usize, f) as u64,
    };
    let chunk_rows = (chunk_bytes as u64).div_ceil(rb) + 1;
    (rows + chunk_rows) * out_rb
}

/// Resamples a streamed image to `out`.
#[derive(Debug)]
pub(crate) struct ResizeStage {
    input: ImageInfo,
    out: ImageInfo,
    horizontal: Horizontal,
    vertical: Axis,
    premultiplied: bool,
    /// Horizontally resampled rows `first_row..rows_in` (input numbering).
    buf: Vec<u8>,
    /// Input rows after `rows_in` held back until they make a whole strip
    /// (fewer than [`strip_rows`]; none without the column kernel).
    carry: Vec<u8>,
    first_row: usize,
    rows_in: usize,
    rows_out: usize,
}

impl ResizeStage {
    pub(crate) fn new(input: ImageInfo, out: ImageInfo, filter: Filter, cpu: Cpu) -> Self {
        Self {
            input,
            out,
            horizontal: Horizontal::new(input, out.width(), filter, cpu),
            vertical: Axis::new(input.height() as usize, out.height() as usize, filter),
            premultiplied: input.channels() == 4 && filter != Filter::Nearest,
            buf: Vec::new(),
            carry: Vec::new(),
            first_row: 0,
            rows_in: 0,
            rows_out: 0,
        }
    }
}

impl Stage for ResizeStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        // In blocks of about BLOCK_BYTES of input, so that the resampled rows
        // kept between the passes stay small and in cache however large the
        // push (a whole image at once measured 1.2x slower: page faults and
        // reallocation copies of the intermediate rows).
        let in_rb = self.input.row_bytes();
        // Whole strips per block (see `push_block`).
        let strip = match self.horizontal.strips {
            Some(_) => strip_rows(self.input.channels()),
            None => 1,
        };
        let mut rows = rows;
        if strip > 1 {
            // The server pushes chunks of any number of rows: the rows past
            // the last whole strip wait for the next push, so that only the
            // image's last rows can be a partial strip (each partial strip
            // went row by row, a tenth of a 4000x3000 RGB resize pushed in
            // 1 MiB chunks).
            let total = self.input.height() as usize;
            if !self.carry.is_empty() {
                let take = (strip * in_rb - self.carry.len()).min(rows.len());
                self.carry.extend_from_slice(&rows[..take]);
                rows = &rows[take..];
                let held = self.carry.len() / in_rb;
                if held < strip && self.rows_in + held < total {
                    return Ok(());
                }
                let carry = std::mem::take(&mut self.carry);
                self.push_block(&carry, out);
                self.carry = carry;
                self.carry.clear();
            }
            let n = rows.len() / in_rb;
            let wait = if self.rows_in + n == total {
                0
            } else {
                n % strip
            };
            self.carry.extend_from_slice(&rows[(n - wait) * in_rb..]);
            rows = &rows[..(n - wait) * in_rb];
        }
        let share = strip * 2 * rayon::current_num_threads();
        let block = (BLOCK_BYTES / in_rb).max(1).next_multiple_of(share) * in_rb;
        for part in rows.chunks(block) {
            self.push_block(part, out);
        }
        Ok(())
    }
}

/// Rows per parallel task for `rows` rows of `row_bytes`: at most
/// [`TASK_BYTES`], and at least four tasks per thread when there are rows
/// enough (a block's few output rows would otherwise run on one thread).
fn split_rows(rows: usize, row_bytes: usize) -> usize {
    let by_size = (TASK_BYTES / row_bytes).max(1);
    let by_threads = rows.div_ceil(4 * rayon::current_num_threads()).max(1);
    by_size.min(by_threads)
}

/// Input bytes resampled per block of [`ResizeStage::push`]. Each block is
/// two parallel passes, and a thread that waits between them goes to
/// sleep: 1 MiB blocks left two threads 10-25% slower than 4 MiB ones on
/// whole-image pushes (4000x3000 RGB and RGBA to 1024x768, 8000x8000 gray
/// to a quarter; one thread the same; 8 MiB no better). The server's
/// pushes are chunks of at most a few MiB, one block each.
const BLOCK_BYTES: usize = 4 << 20;

impl ResizeStage {
    fn push_block(&mut self, rows: &[u8], out: &mut Vec<u8>) {
        let in_rb = self.input.row_bytes();
        let rb = self.out.row_bytes();
        let first_new = self.rows_in;
        let n = rows.len() / in_rb;
        self.rows_in += n;
        // The rows of this push that some output row still reads: from the
        // next output row's window start on (earlier ones are skipped).
        let out_h = self.out.height() as usize;
        let keep_from = if self.rows_out < out_h {
            self.vertical.window(self.rows_out).start
        } else {
            self.rows_in
        };
        // Kept rows are contiguous from `first_row` (windows only move
        // down), so start the buffer at the first row kept.
        if self.buf.is_empty() {
            self.first_row = keep_from.max(first_new);
        }
        let skip = self.first_row.saturating_sub(first_new).min(n);
        let base = self.buf.len();
        self.buf.resize(base + (n - skip) * rb, 0);
        let horizontal = &self.horizontal;
        // Whole strips per task where the column kernel runs; the rows of
        // a last partial strip go one by one.
        let strip = if horizontal.strips.is_some() {
            strip_rows(self.input.channels())
        } else {
            1
        };
        let per_task = split_rows(n - skip, in_rb).next_multiple_of(strip);
        self.buf[base..]
            .par_chunks_mut(per_task * rb)
            .zip(rows[skip * in_rb..].par_chunks(per_task * in_rb))
            .for_each(|(dst, src)| {
                // The thread's buffers: rayon calls an init closure per
                // split, not per thread, and fresh 100-KiB buffers cost page
                // faults every time.
                SCRATCH.with_borrow_mut(|scratch| {
                    let mut done = 0;
                    if strip > 1 {
                        for (d, s) in dst
                            .chunks_exact_mut(strip * rb)
                            .zip(src.chunks_exact(strip * in_rb))
                        {
                            if !horizontal.strip(s, d, scratch) {
                                break;
                            }
                            done += strip;
                        }
                    }
                    let (dst, src) = (&mut dst[done * rb..], &src[done * in_rb..]);
                    let left = src.len() / in_rb;
                    if strip > 1 && left > 0 && left < strip {
                        // A last partial strip (the image's last rows, or
                        // after rows no output reads): padded with copies
                        // of its last row, of which only its own are kept.
                        let mut padded = std::mem::take(&mut scratch.pad);
                        padded.clear();
                        padded.extend_from_slice(src);
                        for _ in left..strip {
                            padded.extend_from_slice(&src[(left - 1) * in_rb..]);
                        }
                        let mut out = std::mem::take(&mut scratch.pad_out);
                        out.resize(strip * rb, 0);
                        if horizontal.strip(&padded, &mut out, scratch) {
                            dst.copy_from_slice(&out[..left * rb]);
                            done = left;
                        } else {
                            done = 0;
                        }
                        scratch.pad = padded;
                        scratch.pad_out = out;
                    } else {
                        done = 0;
                    }
                    let (dst, src) = (&mut dst[done * rb..], &src[done * in_rb..]);
                    for (d, s) in dst.chunks_exact_mut(rb).zip(src.chunks_exact(in_rb)) {
                        horizontal.row(s, d, &mut scratch.row);
                    }
                })
            });
        // Output rows whose whole window is in.
        let mut ready = self.rows_out;
        while ready < out_h && self.vertical.window(ready).end <= self.rows_in {
            ready += 1;
        }
        if ready > self.rows_out {
            let start = out.len();
            out.resize(start + (ready - self.rows_out) * rb, 0);
            let (buf, first_row, first_out) = (&self.buf, self.first_row, self.rows_out);
            let vertical = &self.vertical;
            let premultiplied = self.premultiplied;
            let cpu = self.horizontal.cpu;
            let row = |y: usize| &buf[(y - first_row) * rb..][..rb];
            let per_task = split_rows(ready - first_out, rb);
            out[start..]
                .par_chunks_mut(per_task * rb)
                .enumerate()
                .for_each_init(Vec::new, |window, (i, band)| {
                    for (j, o) in band.chunks_exact_mut(rb).enumerate() {
                        let yy = first_out + i * per_task + j;
                        match vertical {
                            Axis::Weights(c) => {
                                window.clear();
                                window.extend(c.window(yy).map(row));
                                let (_, count) = c.bounds[yy];
                                let k = &c.weights[yy * c.ksize..][..count];
                                vertical_row_with(cpu, window, k, o);
                            }
                            other => o.copy_from_slice(row(other.window(yy).start)),
                        }
                        if premultiplied {
                            unpremultiply_with(cpu, o);
                        }
                    }
                });
            self.rows_out = ready;
        }
        // Drop the rows no later output row reads.
        let keep = if self.rows_out < out_h {
            self.vertical.window(self.rows_out).start
        } else {
            self.rows_in
        }
        .max(self.first_row);
        let drop = (keep - self.first_row).min(self.buf.len() / rb);
        self.buf.drain(..drop * rb);
        self.first_row += drop;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::resize::resample_image;
    use crate::pixel::PixelFormat;

    /// The stage (strips through the column kernel where this CPU has it,
    /// the rows of partial strips one by one) against the plain whole-image
    /// resample, on odd shapes, pushed whole and in uneven parts.
    #[test]
    fn streamed_strips_equal_the_plain_resample() {
        let formats = [PixelFormat::Gray8, PixelFormat::Rgb8, PixelFormat::Rgba8];
        let shapes = [
            (1, 40, 1, 9),
            (40, 1, 9, 1),
            (7, 33, 3, 70),
            (301, 67, 75, 17),
            (33, 70, 100, 35),
            (97, 50, 96, 50),
            (16, 64, 5, 64),
        ];
        for f in formats {
            for &(w, h, ow, oh) in &shapes {
                let c = f.channels();
                let src: Vec<u8> = (0..w * h * c)
                    .map(|i| ((i * 97 + i / 7) % 251) as u8)
                    .collect();
                for filter in [Filter::Lanczos3, Filter::Cubic, Filter::Box] {
                    let want = resample_image(&src, w, h, c, ow, oh, filter);
                    let info = ImageInfo::new(w as u32, h as u32, f).unwrap();
                    let out_info = ImageInfo::new(ow as u32, oh as u32, f).unwrap();
                    for (cpu, part_rows) in Cpu::available()
                        .into_iter()
                        .flat_map(|cpu| [h, 1, 5, 17, 33].map(|p| (cpu, p)))
                    {
                        let mut stage = ResizeStage::new(info, out_info, filter, cpu);
                        let mut got = Vec::new();
                        for part in src.chunks(part_rows * w * c) {
                            stage.push(part, &mut got).unwrap();
                        }
                        assert!(
                            got == want,
                            "{f:?} {w}x{h} -> {ow}x{oh} {filter:?}, parts of {part_rows} rows, {}",
                            cpu.name()
                        );
                    }
                }
            }
        }
    }
}
