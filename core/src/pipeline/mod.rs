//! A pipeline of operations over a streamed image.
//!
//! [`Plan`] turns the operations into stages (see [`plan`] for the rules:
//! orientations composed and applied last, pixel-wise operations fused, crops
//! moved before them); [`Pipeline`] runs them on pixel chunks of any size and
//! alignment. With no hold (no quarter or half turn, no top-bottom flip) output
//! flows while input arrives and only a few rows are held; with one, the image
//! is kept until the input ends and then produced band by band.

pub mod plan;
mod stages;

use bytes::Bytes;

use crate::error::{CoreError, Result};
use crate::hold::{Hold, MemoryHold};
use crate::ops::Operation;
use crate::ops::orient::Orientation;
use crate::ops::stage::Stage;
use crate::pixel::{ImageBuf, ImageInfo};
use crate::simd::Cpu;
use crate::stop::Stop;
pub use plan::{MemoryPlan, Plan, Step};

/// Input bytes [`Pipeline::apply_with`] pushes at a time: the bands between
/// two looks at the stop flag (the resampler takes blocks of this size from
/// a whole-image push anyway).
pub const APPLY_BAND_BYTES: usize = 4 << 20;

/// How a pipeline runs: the code path its kernels take and the flag that
/// stops it. Chosen once by the caller and carried by the pipeline; no stage
/// probes the CPU itself, so a forced path holds end to end.
#[derive(Clone, Debug)]
pub struct Run {
    /// The code path of every kernel (never wider than the machine's: see
    /// [`Cpu`]).
    pub cpu: Cpu,
    /// Looked at before every push and band: once set, the pipeline ends
    /// with [`CoreError::Cancelled`].
    pub stop: Stop,
}

impl Default for Run {
    /// The machine's widest path, never stopped.
    fn default() -> Self {
        Self {
            cpu: Cpu::detect(),
            stop: Stop::new(),
        }
    }
}

impl Run {
    /// The machine's widest path with `stop`.
    pub fn with_stop(stop: Stop) -> Self {
        Self {
            stop,
            ..Self::default()
        }
    }
}

/// Pixel bytes in, processed pixel bytes out.
#[derive(Debug)]
pub struct Pipeline {
    input: ImageInfo,
    output: ImageInfo,
    streaming: bool,
    stages: Vec<Box<dyn Stage>>,
    /// The start of an input row whose end has not arrived yet.
    partial: Vec<u8>,
    received: usize,
    /// The stages' outputs between pushes, kept for the next push.
    bufs: Vec<Vec<u8>>,
    run: Run,
}

impl Pipeline {
    /// Plans `ops` over an image of geometry `input`, holding the image in
    /// memory where an orientation needs it whole. Buffers are reserved here,
    /// so a lack of memory fails before any pixel is read.
    pub fn new(input: ImageInfo, ops: &[Operation]) -> Result<Self> {
        Self::from_plan(
            &Plan::new(input, ops)?,
            &Run::default(),
            |info, orientation, cpu| Ok(Box::new(MemoryHold::new(info, orientation, cpu)?)),
        )
    }

    /// Like [`Pipeline::new`], but each hold keeps its image where
    /// `make_hold(image, orientation)` says (a file-backed
    /// [`crate::hold::StripHold`], say); not called without a hold.
    pub fn with_hold(
        input: ImageInfo,
        ops: &[Operation],
        make_hold: impl FnMut(ImageInfo, Orientation, Cpu) -> Result<Box<dyn Hold>>,
    ) -> Result<Self> {
        Self::from_plan(&Plan::new(input, ops)?, &Run::default(), make_hold)
    }

    /// Runs a plan (the caller has checked its [`Plan::memory`]) as `run`
    /// says; `make_hold(image, orientation, cpu)` makes each hold.
    pub fn from_plan(
        plan: &Plan,
        run: &Run,
        mut make_hold: impl FnMut(ImageInfo, Orientation, Cpu) -> Result<Box<dyn Hold>>,
    ) -> Result<Self> {
        let stages = plan
            .steps()
            .iter()
            .map(|(info, step)| stages::build(*info, step, run, &mut make_hold))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            input: plan.input_info(),
            output: plan.output_info(),
            streaming: plan.is_streaming(),
            stages,
            partial: Vec::new(),
            received: 0,
            bufs: Vec::new(),
            run: run.clone(),
        })
    }

    /// Applies `ops` to a whole image in memory (for callers that hold the
    /// image already, such as the store decoding a file).
    pub fn apply(img: &ImageBuf, ops: &[Operation]) -> Result<ImageBuf> {
        Self::apply_with(img, ops, &Run::default())
    }

    /// [`Pipeline::apply`] as `run` says: the image goes in in bands of
    /// [`APPLY_BAND_BYTES`] and comes out in bands, so a stop ends it at the
    /// next band (the result is the same however the input is cut).
    pub fn apply_with(img: &ImageBuf, ops: &[Operation], run: &Run) -> Result<ImageBuf> {
        let mut p = Self::from_plan(&Plan::new(img.info(), ops)?, run, |info, o, cpu| {
            Ok(Box::new(MemoryHold::new(info, o, cpu)?))
        })?;
        let out_info = p.output_info();
        let mut out = Vec::new();
        out.try_reserve_exact(out_info.byte_len())
            .map_err(|_| CoreError::OutOfMemory(out_info.byte_len()))?;
        let band = APPLY_BAND_BYTES.max(img.info().row_bytes());
        for chunk in img.data().chunks(band) {
            p.push(chunk, &mut out)?;
        }
        let mut rest = p.finish()?;
        while let Some(band) = rest.next_band(APPLY_BAND_BYTES)? {
            out.extend_from_slice(&band);
        }
        ImageBuf::new(out_info, out)
    }

    /// The geometry of the input.
    pub fn input_info(&self) -> ImageInfo {
        self.input
    }

    /// The geometry of the output.
    pub fn output_info(&self) -> ImageInfo {
        self.output
    }

    /// Whether output flows while input arrives (nothing holds the image).
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// Bytes of input received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Feeds the next input bytes, appending any output now ready to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.run.stop.check()?;
        let total = self.input.byte_len();
        if data.len() > total - self.received {
            return Err(CoreError::InvalidInput(format!(
                "more pixel data than the header declares: a {} image has {} bytes, got at least {}",
                self.input,
                total,
                self.received + data.len()
            )));
        }
        self.received += data.len();
        let rb = self.input.row_bytes();
        let mut data = data;
        if !self.partial.is_empty() {
            let take = (rb - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() == rb {
                let row = std::mem::take(&mut self.partial);
                run(&mut self.stages, &row, out, &mut self.bufs, &self.run.stop)?;
            }
        }
        let whole = data.len() / rb * rb;
        if whole > 0 {
            run(
                &mut self.stages,
                &data[..whole],
                out,
                &mut self.bufs,
                &self.run.stop,
            )?;
        }
        self.partial.extend_from_slice(&data[whole..]);
        Ok(())
    }

    /// Ends the input. Fails if fewer bytes arrived than the header declared;
    /// otherwise returns what remains of the output (all of it after a hold).
    pub fn finish(self) -> Result<Remainder> {
        let total = self.input.byte_len();
        if self.received != total {
            return Err(CoreError::InvalidInput(format!(
                "pixel data ended early: a {} image has {} bytes, got {}",
                self.input, total, self.received
            )));
        }
        Ok(Remainder {
            stages: self.stages,
            draining: 0,
            bufs: self.bufs,
            stop: self.run.stop,
        })
    }
}

/// Pushes whole rows through `stages` in order; the last stage's output is
/// appended to `out`. A set `stop` ends it before the next stage.
fn run(
    stages: &mut [Box<dyn Stage>],
    rows: &[u8],
    out: &mut Vec<u8>,
    bufs: &mut Vec<Vec<u8>>,
    stop: &Stop,
) -> Result<()> {
    let Some((last, first)) = stages.split_last_mut() else {
        out.extend_from_slice(rows);
        return Ok(());
    };
    // Each stage before the last writes into its own buffer, kept from push
    // to push: fresh buffers cost page faults every time (a whole-image
    // push through two stages measured several times slower).
    if bufs.len() < first.len() {
        bufs.resize_with(first.len(), Vec::new);
    }
    let mut prev: Option<(usize, Vec<u8>)> = None;
    for (i, stage) in first.iter_mut().enumerate() {
        let input = prev.as_ref().map_or(rows, |(_, v)| v.as_slice());
        if input.is_empty() {
            break;
        }
        stop.check()?;
        let mut next = std::mem::take(&mut bufs[i]);
        next.clear();
        stage.push(input, &mut next)?;
        if let Some((j, v)) = prev.replace((i, next)) {
            bufs[j] = v;
        }
    }
    let input = prev.as_ref().map_or(rows, |(_, v)| v.as_slice());
    // Stages after an empty output see nothing this time.
    let reached = prev.as_ref().map_or(0, |(j, _)| j + 1) == first.len();
    if reached && !input.is_empty() {
        last.push(input, out)?;
    }
    if let Some((j, v)) = prev {
        bufs[j] = v;
    }
    Ok(())
}

/// Output still to come after the input has ended: what the holds produce,
/// band by band, through the stages after them, so no second full-size
/// buffer is needed.
#[derive(Debug)]
pub struct Remainder {
    stages: Vec<Box<dyn Stage>>,
    /// Stages before this one have nothing more to give.
    draining: usize,
    /// As [`Pipeline`]'s.
    bufs: Vec<Vec<u8>>,
    stop: Stop,
}

impl Remainder {
    /// The next band of whole output rows, about `target_bytes` long (at least
    /// one row), or `None` when everything has been produced.
    pub fn next_band(&mut self, target_bytes: usize) -> Result<Option<Bytes>> {
        while self.draining < self.stages.len() {
            self.stop.check()?;
            let (head, tail) = self.stages.split_at_mut(self.draining + 1);
            match head[self.draining].drain(target_bytes)? {
                // The last stage's band is the output as it is.
                Some(band) if tail.is_empty() => return Ok(Some(band)),
                Some(band) => {
                    let mut out = Vec::new();
                    run(tail, &band, &mut out, &mut self.bufs, &self.stop)?;
                    if !out.is_empty() {
                        return Ok(Some(out.into()));
                    }
                }
                None => self.draining += 1,
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::naive;
    use crate::pixel::{ImageBuf, PixelFormat};
    use crate::rotate::Rotation;

    fn run(img: &ImageBuf, ops: &[Operation], chunk: usize) -> (ImageInfo, Vec<u8>) {
        let mut p = Pipeline::new(img.info(), ops).unwrap();
        let mut out = Vec::new();
        for c in img.data().chunks(chunk) {
            p.push(c, &mut out).unwrap();
        }
        let info = p.output_info();
        let mut rest = p.finish().unwrap();
        while let Some(b) = rest.next_band(100).unwrap() {
            out.extend(b);
        }
        (info, out)
    }

    #[test]
    fn a_large_push_mirrors_with_streamed_stores_like_the_plain_mirror() {
        // Past the mirror's 16 MB threshold for non-temporal stores, with
        // rows not a multiple of 64 bytes, so rows start at every alignment.
        let info = ImageInfo::new(2051, 2053, PixelFormat::Rgba8).unwrap();
        let data: Vec<u8> = (0..info.byte_len())
            .map(|i| (i * 13 + i / 7) as u8)
            .collect();
        let mut want = data.clone();
        crate::ops::orient::mirror_rows(&mut want, info.row_bytes(), 4);
        let img = ImageBuf::new(info, data).unwrap();
        let (_, got) = run(
            &img,
            &[Operation::parse("flip=h").unwrap()],
            info.byte_len(),
        );
        assert!(got == want);
    }

    #[test]
    fn mixed_pipeline_equals_ops_in_order() {
        let img = ImageBuf::from_raw(
            7,
            5,
            PixelFormat::Rgb8,
            (0..105).map(|i| (i * 29) as u8).collect(),
        )
        .unwrap();
        let ops = [
            Operation::Rotate(Rotation::Ccw90),
            Operation::Mean3x3,
            Operation::Rotate(Rotation::Ccw180),
            Operation::Mean3x3,
        ];
        let want = naive::apply_all(&img, &ops).unwrap();
        let (info, out) = run(&img, &ops, 4);
        assert_eq!(info, want.info());
        assert_eq!(out, want.data());
    }

    #[test]
    fn every_forced_code_path_runs_end_to_end_and_equals_the_naive_result() {
        // Odd sizes so every stage meets vector tails; every family once.
        let img = ImageBuf::from_raw(
            67,
            45,
            PixelFormat::Rgba8,
            (0..67 * 45 * 4).map(|i| (i * 37 + i / 11) as u8).collect(),
        )
        .unwrap();
        let ops: Vec<Operation> = [
            "blur=1.5",
            "convolve=0,-1,0,-1,5,-1,0,-1,0",
            "mean",
            "gamma=1.7",
            "flip=h",
            "resize=31x",
            "sharpen=1,2",
            "rotate=90",
            "gray",
        ]
        .iter()
        .map(|s| Operation::parse(s).unwrap())
        .collect();
        let want = naive::apply_all(&img, &ops).unwrap();
        for cpu in Cpu::available() {
            let run = Run {
                cpu,
                stop: Stop::new(),
            };
            let got = Pipeline::apply_with(&img, &ops, &run).unwrap();
            assert!(got == want, "the {} path", cpu.name());
        }
    }

    #[test]
    fn a_stop_ends_the_pipeline_at_its_next_band() {
        let info = ImageInfo::new(300, 200, PixelFormat::Rgb8).unwrap();
        let stop = Stop::new();
        let run = Run {
            cpu: Cpu::detect(),
            stop: stop.clone(),
        };
        let plan = Plan::new(
            info,
            &[Operation::Mean3x3, Operation::Rotate(Rotation::Ccw90)],
        )
        .unwrap();
        let mut p = Pipeline::from_plan(&plan, &run, |i, o, c| {
            Ok(Box::new(MemoryHold::new(i, o, c)?))
        })
        .unwrap();
        let data = vec![7u8; info.byte_len()];
        p.push(&data[..info.byte_len() / 2], &mut Vec::new())
            .unwrap();
        stop.stop();
        let e = p.push(&data[info.byte_len() / 2..], &mut Vec::new());
        assert!(matches!(e, Err(CoreError::Cancelled)), "{e:?}");
    }

    #[test]
    fn no_operations_echo_the_input() {
        let img = ImageBuf::from_raw(3, 2, PixelFormat::Gray8, vec![1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(run(&img, &[], 4).1, img.data());
    }

    #[test]
    fn short_input_is_an_error_at_finish() {
        let info = ImageInfo::new(2, 2, PixelFormat::Gray8).unwrap();
        let mut p = Pipeline::new(info, &[Operation::Rotate(Rotation::Ccw90)]).unwrap();
        p.push(&[1, 2, 3], &mut Vec::new()).unwrap();
        let e = p.finish().unwrap_err().to_string();
        assert!(e.contains("ended early") && e.contains("got 3"), "{e}");
    }

    #[test]
    fn long_input_is_an_error_at_push() {
        let info = ImageInfo::new(2, 2, PixelFormat::Gray8).unwrap();
        let mut p = Pipeline::new(info, &[Operation::Mean3x3]).unwrap();
        let e = p.push(&[0; 5], &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("more pixel data"), "{e}");
    }
}
