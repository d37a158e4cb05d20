//! The streaming frame every stencil family shares (the blur and unsharp
//! mask, the convolution): output row y is computed once input row y + r
//! has arrived (or the image has ended), from rows y - r ..= y + r with
//! reflect-101 at the top and bottom. The stage holds the window of rows
//! still needed and reads the latest push in place; the family gives the
//! per-row computation ([`StencilRows`]).

use std::fmt::Debug;
use std::mem::MaybeUninit;

use super::border::reflect101;
use super::stage::{Stage, TASK_BYTES};
use crate::error::Result;
use crate::pixel::ImageInfo;
use crate::simd::Cpu;
use crate::simd::store::par_extend_uninit;
use crate::stop::Stop;

/// A stencil family's per-row computation.
pub(crate) trait StencilRows: Send + Sync + Debug {
    /// Per-task scratch space.
    type Scratch: Default;

    /// Rows above and below an output row that it reads.
    fn radius(&self) -> usize;

    /// One output row from its window of input rows (`2 * radius + 1`,
    /// reflected at the borders) into `out`, every byte of which is written
    /// (it need not be initialised), on code path `cpu`.
    fn row(
        &self,
        cpu: Cpu,
        window: &[&[u8]],
        channels: usize,
        scratch: &mut Self::Scratch,
        out: &mut [MaybeUninit<u8>],
    );
}

/// Bytes a stencil of radius `radius` over `info` rows holds: its window.
pub(crate) fn memory(info: ImageInfo, radius: usize) -> u64 {
    let window = (2 * radius as u64 + 1).min(u64::from(info.height()));
    window * info.row_bytes() as u64
}

/// A stencil over streamed rows; see the module doc.
#[derive(Debug)]
pub(crate) struct StencilStage<R: StencilRows> {
    info: ImageInfo,
    rows: R,
    cpu: Cpu,
    /// Looked at before each task's rows: a stopped stage writes zeros
    /// instead of filtering and its push ends with `Cancelled`.
    stop: Stop,
    /// Input rows `first_row..rows_in`.
    buf: Vec<u8>,
    first_row: usize,
    rows_in: usize,
    rows_out: usize,
}

impl<R: StencilRows> StencilStage<R> {
    pub(crate) fn new(info: ImageInfo, rows: R, cpu: Cpu, stop: Stop) -> Self {
        Self {
            info,
            rows,
            cpu,
            stop,
            buf: Vec::new(),
            first_row: 0,
            rows_in: 0,
            rows_out: 0,
        }
    }
}

impl<R: StencilRows> Stage for StencilStage<R> {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let rb = self.info.row_bytes();
        let height = self.info.height() as usize;
        let r = self.rows.radius();
        // Rows first_row..new_first are in `buf`, new_first..rows_in in
        // `rows`: read from both without copying the push.
        let new_first = self.rows_in;
        self.rows_in += rows.len() / rb;
        let ready = if self.rows_in == height {
            height
        } else {
            self.rows_in.saturating_sub(r)
        };
        if ready > self.rows_out {
            let first = self.rows_out;
            let (buf, first_row, filter) = (&self.buf, self.first_row, &self.rows);
            let (cpu, stop) = (self.cpu, &self.stop);
            let channels = self.info.channels();
            let row = |y: usize| {
                if y < new_first {
                    &buf[(y - first_row) * rb..][..rb]
                } else {
                    &rows[(y - new_first) * rb..][..rb]
                }
            };
            let per_task = (TASK_BYTES / rb).max(1);
            let fill = |i: usize, band: &mut [MaybeUninit<u8>]| {
                // A wide stencil on a large push takes long: a stop ends it
                // here, a task (128 KiB of rows) later, not a push later.
                if stop.is_stopped() {
                    band.fill(MaybeUninit::new(0));
                    return;
                }
                let mut scratch = R::Scratch::default();
                let mut window = Vec::with_capacity(2 * r + 1);
                for (j, o) in band.chunks_exact_mut(rb).enumerate() {
                    let y = first + i * per_task + j;
                    window.clear();
                    window.extend(
                        (-(r as isize)..=r as isize)
                            .map(|d| row(reflect101(y as isize + d, height))),
                    );
                    filter.row(cpu, &window, channels, &mut scratch, o);
                }
            };
            // SAFETY: the parts are whole rows (the length appended and the
            // part length are multiples of `rb`), and `StencilRows::row`
            // writes every byte of each (a stopped task fills its part).
            #[allow(unsafe_code)]
            unsafe {
                par_extend_uninit(out, (ready - first) * rb, per_task * rb, false, fill)
            };
            self.stop.check()?;
            self.rows_out = ready;
        }
        // Keep the rows that later output rows read: from rows_out - r on.
        let keep_from = self.rows_out.saturating_sub(r).max(self.first_row);
        let drop_old = (keep_from.min(new_first) - self.first_row) * rb;
        self.buf.drain(..drop_old);
        let from_new = keep_from.max(new_first) - new_first;
        self.buf.extend_from_slice(&rows[from_new * rb..]);
        self.first_row = keep_from;
        Ok(())
    }
}
