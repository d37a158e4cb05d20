//! The running form of each planned [`Step`]: whole input rows in, output
//! rows out as soon as they are ready.
//!
//! Every stage knows its image's height, so it emits all of its output by the
//! time its last input row arrives, except a hold, which emits nothing until
//! the input has ended and then produces its image band by band
//! ([`Stage::drain`]).

use std::fmt::Debug;
use std::mem::MaybeUninit;

use bytes::Bytes;
use rayon::prelude::*;

use super::Run;
use super::plan::Step;
use crate::error::Result;
use crate::hold::{Hold, Produce};
use crate::ops::blur::Scratch;
use crate::ops::blur::kernels::blur_row_uninit;
use crate::ops::border::reflect101;
use crate::ops::convolve;
use crate::ops::convolve::kernels::convolve_row_uninit;
use crate::ops::orient::{Orientation, mirror_rows_into_uninit};
use crate::ops::overlay::Prepared;
use crate::ops::point::PointOps;
use crate::ops::{CropBox, Kernel};
use crate::pixel::ImageInfo;
use crate::simd::Cpu;
use crate::simd::store::par_extend_uninit;
use crate::stop::Stop;
use crate::stream::StreamingMean;

/// Input bytes a parallel task takes when a push brings many rows.
const TASK_BYTES: usize = 128 * 1024;

/// Bytes per parallel task of a mirror: whole rows, made last to first (see
/// [`mirror_rows_into_uninit`]), so a longer task is a longer descending
/// read.
const MIRROR_TASK_BYTES: usize = 1 << 20;

/// Pushes whose output is at least this large are written with
/// non-temporal stores where a kernel has them (the mirror of RGBA, a gray
/// conversion): an output that large leaves the cache before anything
/// reads it. The server's pushes are chunks, far smaller, read again at
/// once by the encoder.
const STREAM_BYTES: usize = 16 << 20;

/// One running stage.
pub(crate) trait Stage: Send + Debug {
    /// Takes whole input rows (in order, exactly the image's rows over all
    /// calls) and appends the output rows now ready to `out`.
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()>;

    /// After the last push: the next band of output still to come (about
    /// `target_bytes`), or `None`. Only holds have any.
    fn drain(&mut self, _target_bytes: usize) -> Result<Option<Bytes>> {
        Ok(None)
    }
}

/// Builds the stage for `step`, which receives images of geometry `info`
/// and runs as `run` says; holds are made by `make_hold`.
pub(crate) fn build(
    info: ImageInfo,
    step: &Step,
    run: &Run,
    make_hold: &mut dyn FnMut(ImageInfo, Orientation, Cpu) -> Result<Box<dyn Hold>>,
) -> Result<Box<dyn Stage>> {
    let cpu = run.cpu;
    let stencil = |filter| Box::new(StencilStage::new(info, filter, cpu, run.stop.clone()));
    Ok(match step {
        Step::Point(p) => Box::new(PointStage {
            ops: p.clone(),
            in_row: info.row_bytes(),
            cpu,
        }),
        Step::Crop(b) => Box::new(CropStage {
            b: *b,
            info,
            next_row: 0,
        }),
        Step::Mean => Box::new(MeanStage(StreamingMean::with_cpu(info, cpu))),
        Step::Blur(t) => stencil(Filter::Blur(t.clone())),
        Step::Sharpen(t, a) => stencil(Filter::Sharpen(t.clone(), *a)),
        Step::Convolve(k) => stencil(Filter::Convolve(k.clone())),
        Step::Resize {
            width,
            height,
            filter,
        } => Box::new(super::resample::ResizeStage::new(
            info,
            ImageInfo::new(*width, *height, info.format())?,
            *filter,
            cpu,
        )),
        Step::Overlay(o) => Box::new(OverlayStage {
            prepared: Prepared::new(o, info.format()),
            row_bytes: info.row_bytes(),
            next_row: 0,
        }),
        Step::Orient(o) if !o.needs_whole_image() => Box::new(MirrorStage {
            row_bytes: info.row_bytes(),
            channels: info.channels(),
            cpu,
        }),
        Step::Orient(o) => Box::new(HoldStage {
            hold: Some(make_hold(info, *o, cpu)?),
            produce: None,
        }),
    })
}

#[derive(Debug)]
struct PointStage {
    ops: PointOps,
    in_row: usize,
    cpu: Cpu,
}

impl Stage for PointStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let out_row = self.ops.output_len(self.in_row);
        let per_task = (TASK_BYTES / self.in_row).max(1);
        let (in_part, ops) = (per_task * self.in_row, &self.ops);
        let n = ops.output_len(rows.len());
        // As for the mirror: only a push whose output is far past the cache.
        let nt = n >= STREAM_BYTES;
        // SAFETY: `apply_into_uninit` writes every byte of its output (it
        // checks the lengths: one output row per input row here).
        #[allow(unsafe_code)]
        unsafe {
            par_extend_uninit(out, n, per_task * out_row, nt, |i, dst| {
                ops.apply_into_uninit(
                    &rows[i * in_part..][..dst.len() / out_row * self.in_row],
                    dst,
                    nt,
                    self.cpu,
                )
            })
        };
        Ok(())
    }
}

#[derive(Debug)]
struct CropStage {
    b: CropBox,
    info: ImageInfo,
    next_row: usize,
}

impl Stage for CropStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        for row in rows.chunks_exact(self.info.row_bytes()) {
            crate::ops::crop::crop_row(self.b, self.next_row, row, self.info.channels(), out);
            self.next_row += 1;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct MirrorStage {
    row_bytes: usize,
    channels: usize,
    cpu: Cpu,
}

impl Stage for MirrorStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let (rb, c, cpu) = (self.row_bytes, self.channels, self.cpu);
        let nt = rows.len() >= STREAM_BYTES;
        // Whole rows per part; the mirror takes each part's rows last to
        // first (see `mirror_rows_into_uninit`), one call per part rather
        // than per row (the per-row setup was a sixth of a 3001x2003 gray
        // mirror).
        let part = (MIRROR_TASK_BYTES / rb).max(1) * rb;
        // SAFETY: the parts are whole rows and the mirror writes every byte
        // of its part.
        #[allow(unsafe_code)]
        unsafe {
            par_extend_uninit(out, rows.len(), part, nt, |i, dst| {
                mirror_rows_into_uninit(cpu, &rows[i * part..][..dst.len()], dst, rb, c, nt)
            })
        };
        Ok(())
    }
}

#[derive(Debug)]
struct OverlayStage {
    prepared: Prepared,
    row_bytes: usize,
    next_row: usize,
}

impl Stage for OverlayStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(rows);
        let (first, rb, p) = (self.next_row, self.row_bytes, &self.prepared);
        out[start..]
            .par_chunks_mut(rb)
            .enumerate()
            .for_each(|(i, row)| p.row(first + i, row));
        self.next_row += rows.len() / rb;
        Ok(())
    }
}

#[derive(Debug)]
struct MeanStage(StreamingMean);

impl Stage for MeanStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.0.push(rows, out)
    }
}

/// A stencil's per-row computation.
#[derive(Debug)]
enum Filter {
    Blur(Vec<u16>),
    Sharpen(Vec<u16>, f32),
    Convolve(Kernel),
}

impl Filter {
    fn radius(&self) -> usize {
        match self {
            Filter::Blur(t) | Filter::Sharpen(t, _) => t.len() / 2,
            Filter::Convolve(k) => k.size / 2,
        }
    }

    /// One output row into `out`, every byte of which is written (it need
    /// not be initialised).
    fn row(
        &self,
        cpu: Cpu,
        rows: &[&[u8]],
        channels: usize,
        s: &mut RowScratch,
        out: &mut [MaybeUninit<u8>],
    ) {
        match self {
            Filter::Blur(t) => blur_row_uninit(cpu, t, rows, channels, None, &mut s.blur, out),
            Filter::Sharpen(t, amount) => {
                blur_row_uninit(cpu, t, rows, channels, Some(*amount), &mut s.blur, out)
            }
            Filter::Convolve(k) => {
                convolve_row_uninit(cpu, k, rows, channels, &mut s.convolve, out)
            }
        }
    }
}

#[derive(Debug, Default)]
struct RowScratch {
    blur: Scratch,
    convolve: convolve::Scratch,
}

/// A stencil of radius r over streamed rows: output row y is computed once
/// input row y + r has arrived (or the image has ended), from rows y - r ..=
/// y + r with reflect-101 at the top and bottom. Holds the window of rows
/// still needed and the rows of the latest push.
#[derive(Debug)]
struct StencilStage {
    info: ImageInfo,
    filter: Filter,
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

impl StencilStage {
    fn new(info: ImageInfo, filter: Filter, cpu: Cpu, stop: Stop) -> Self {
        Self {
            info,
            filter,
            cpu,
            stop,
            buf: Vec::new(),
            first_row: 0,
            rows_in: 0,
            rows_out: 0,
        }
    }
}

impl Stage for StencilStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let rb = self.info.row_bytes();
        let height = self.info.height() as usize;
        let r = self.filter.radius();
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
            let (buf, first_row, filter) = (&self.buf, self.first_row, &self.filter);
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
                let mut scratch = RowScratch::default();
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
            // part length are multiples of `rb`), and `Filter::row` writes
            // every byte of each.
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

/// Keeps the image in a [`Hold`] and produces it oriented.
#[derive(Debug)]
struct HoldStage {
    hold: Option<Box<dyn Hold>>,
    produce: Option<Box<dyn Produce>>,
}

impl Stage for HoldStage {
    fn push(&mut self, rows: &[u8], _out: &mut Vec<u8>) -> Result<()> {
        self.hold
            .as_mut()
            .expect("pushed before drained")
            .write(rows)
    }

    fn drain(&mut self, target_bytes: usize) -> Result<Option<Bytes>> {
        if let Some(hold) = self.hold.take() {
            self.produce = Some(hold.finish()?);
        }
        match self.produce.as_mut() {
            Some(p) => p.next_band(target_bytes),
            None => Ok(None),
        }
    }
}
