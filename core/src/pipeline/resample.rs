//! The streaming resampler: Pillow's two passes (see [`crate::ops::resize`])
//! run as input rows arrive. Each input row that some output row reads is
//! resampled horizontally at once (premultiplied, for RGBA) and kept; an
//! output row is made once the last row of its vertical window is in, and
//! rows no later output row reads are dropped. It holds one window of
//! horizontally resampled rows, never the image.

use rayon::prelude::*;

use super::stages::Stage;
use crate::error::Result;
use crate::ops::resize::kernels::{HorizontalTable, horizontal_row_with, vertical_row_with};
use crate::ops::resize::{Coeffs, Filter, nearest_indices, premultiply, unpremultiply};
use crate::pixel::ImageInfo;
use crate::simd::Cpu;

/// Input rows (or output rows) a parallel task takes.
const TASK_BYTES: usize = 128 * 1024;

/// How one axis maps input to output positions.
#[derive(Debug)]
enum Axis {
    /// Same size: not resampled.
    Keep,
    /// Convolution weights.
    Weights(Coeffs),
    /// One input position per output position.
    Nearest(Vec<usize>),
}

impl Axis {
    fn new(input: usize, output: usize, filter: Filter) -> Axis {
        match filter {
            _ if input == output => Axis::Keep,
            Filter::Nearest => Axis::Nearest(nearest_indices(input, output)),
            f => Axis::Weights(Coeffs::new(input, output, f)),
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
    axis: Axis,
    /// The weights laid out for the vector kernel.
    table: Option<HorizontalTable>,
    channels: usize,
    premultiplied: bool,
}

impl Horizontal {
    /// One input row, horizontally resampled, into `dst` (an output-width row).
    fn row(&self, src: &[u8], dst: &mut [u8], scratch: &mut Vec<u8>) {
        let c = self.channels;
        let src = if self.premultiplied {
            scratch.clear();
            scratch.extend_from_slice(src);
            premultiply(scratch);
            &scratch[..]
        } else {
            src
        };
        match &self.axis {
            Axis::Keep => dst.copy_from_slice(src),
            Axis::Weights(k) => {
                horizontal_row_with(Cpu::detect(), src, k, self.table.as_ref(), c, dst)
            }
            Axis::Nearest(xs) => {
                for (o, &x) in dst.chunks_exact_mut(c).zip(xs) {
                    o.copy_from_slice(&src[x * c..(x + 1) * c]);
                }
            }
        }
    }
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
    first_row: usize,
    rows_in: usize,
    rows_out: usize,
}

impl ResizeStage {
    pub(crate) fn new(input: ImageInfo, out: ImageInfo, filter: Filter) -> Self {
        let axis = Axis::new(input.width() as usize, out.width() as usize, filter);
        Self {
            input,
            out,
            horizontal: Horizontal {
                table: match &axis {
                    Axis::Weights(c) => Some(HorizontalTable::new(c, input.channels())),
                    _ => None,
                },
                axis,
                channels: input.channels(),
                premultiplied: input.channels() == 4 && filter != Filter::Nearest,
            },
            vertical: Axis::new(input.height() as usize, out.height() as usize, filter),
            premultiplied: input.channels() == 4 && filter != Filter::Nearest,
            buf: Vec::new(),
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
        let block = (BLOCK_BYTES / in_rb).max(1) * in_rb;
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

/// Input bytes resampled per block of [`ResizeStage::push`].
const BLOCK_BYTES: usize = 1 << 20;

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
        let per_task = split_rows(n - skip, in_rb);
        self.buf[base..]
            .par_chunks_mut(per_task * rb)
            .zip(rows[skip * in_rb..].par_chunks(per_task * in_rb))
            .for_each_init(Vec::new, |scratch, (dst, src)| {
                for (d, s) in dst.chunks_exact_mut(rb).zip(src.chunks_exact(in_rb)) {
                    horizontal.row(s, d, scratch);
                }
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
            let cpu = Cpu::detect();
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
                            unpremultiply(o);
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
