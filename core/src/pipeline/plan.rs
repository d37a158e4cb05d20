//! The planner: an ordered list of operations becomes the stages that run
//! them, and the memory those stages hold.
//!
//! Rules, each exact (the pipeline's property tests compare every plan with
//! the operations applied one by one, in the order given):
//! - **Orientations compose.** Quarter turns and flips form one of eight
//!   orientations ([`Orientation`]), applied once, after everything else.
//!   Moving them last is exact because every other operation commutes with
//!   them: pixel-wise operations do not look at positions; the mean, blur and
//!   sharpen kernels are the same after any quarter turn or flip (square,
//!   symmetric, with the same border rule on both axes and, for the blur, the
//!   same taps both ways and one rounding of an exact sum); a convolution
//!   commutes once its kernel is turned the same way; a crop after an
//!   orientation is the crop of the box it came from, before it.
//! - **Pixel-wise operations fuse** into one pass per row (consecutive tone
//!   tables into one table).
//! - **A crop goes before the pixel-wise operations just before it** (they do
//!   not look at positions, and then run on fewer pixels).
//! - Nothing else moves: stencils and crops keep their order among
//!   themselves.
//!
//! An orientation that needs the whole image (anything but a plain
//! left-right mirror) becomes a hold stage: the image is kept (in memory or
//! spilled) until the input ends, then produced band by band.

use std::fmt;

use crate::error::{CoreError, Result};
use crate::ops::orient::Orientation;
use crate::ops::overlay::Overlay;
use crate::ops::point::{PointOps, is_point};
use crate::ops::resize::Filter;
use crate::ops::{CropBox, Kernel, Operation, blur, crop};
use crate::pixel::{ImageBuf, ImageInfo};

/// One planned stage.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Fused pixel-wise operations.
    Point(PointOps),
    /// Keep a box.
    Crop(CropBox),
    /// The 3x3 mean.
    Mean,
    /// Gaussian blur with these taps.
    Blur(Vec<u16>),
    /// Unsharp mask: blur taps and amount.
    Sharpen(Vec<u16>, f32),
    /// Integer convolution.
    Convolve(Kernel),
    /// Orient the image: a row-local mirror, or a hold when
    /// [`Orientation::needs_whole_image`].
    Orient(Orientation),
    /// Composite an overlay.
    Overlay(Overlay),
    /// Resample to this size.
    Resize {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// The filter.
        filter: Filter,
    },
}

impl Step {
    fn output_info(&self, info: ImageInfo) -> Result<ImageInfo> {
        match self {
            Step::Point(p) => Ok(p.output_info(info)),
            Step::Crop(b) => crop::output_info(*b, info),
            Step::Orient(o) => Ok(o.output_info(info)),
            Step::Resize { width, height, .. } => ImageInfo::new(*width, *height, info.format()),
            _ => Ok(info),
        }
    }

    /// Rows above and below an output row that the stage reads.
    pub fn radius(&self) -> usize {
        match self {
            Step::Mean => 1,
            Step::Blur(t) | Step::Sharpen(t, _) => t.len() / 2,
            Step::Convolve(k) => k.size / 2,
            _ => 0,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Point(p) => write!(f, "point[{}]", p.describe()),
            Step::Crop(b) => write!(f, "crop={},{},{},{}", b.x, b.y, b.width, b.height),
            Step::Mean => f.write_str("mean"),
            Step::Overlay(o) => write!(f, "overlay[{}]", o.image.info()),
            Step::Blur(t) => write!(f, "blur({} taps)", t.len()),
            Step::Sharpen(t, a) => write!(f, "sharpen({} taps, {a})", t.len()),
            Step::Convolve(k) => write!(f, "convolve{}x{}", k.size, k.size),
            Step::Resize {
                width,
                height,
                filter,
            } => write!(f, "resample={width}x{height}:{}", filter.name()),
            Step::Orient(o) if o.needs_whole_image() => write!(f, "hold {o}"),
            Step::Orient(o) => write!(f, "{o}"),
        }
    }
}

/// The stages for a list of operations over an image, with the geometry
/// before each.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    input: ImageInfo,
    steps: Vec<(ImageInfo, Step)>,
    output: ImageInfo,
}

/// What a plan holds, for the server to reserve from its memory budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Bytes the streaming stages hold at most (rows of the stencils'
    /// windows, one chunk's output per stage).
    pub streaming: u64,
    /// For each hold, the geometry of the image it keeps (whole, in memory,
    /// or spilled by the caller's choice).
    pub holds: Vec<ImageInfo>,
}

impl Plan {
    /// Plans `ops` over an image of geometry `input`; an operation that does
    /// not fit the image it meets (a crop box outside it) is an error naming
    /// the operation's position.
    pub fn new(input: ImageInfo, ops: &[Operation]) -> Result<Plan> {
        let mut steps: Vec<Step> = Vec::new();
        let mut pending = Orientation::IDENTITY;
        // The geometry after `steps`, and after `pending` too.
        let mut info = input;
        let at = |i: usize, e: CoreError| match e {
            CoreError::InvalidInput(m) => {
                CoreError::InvalidInput(format!("operation {i} ({}): {m}", ops[i]))
            }
            e => e,
        };
        for (i, op) in ops.iter().enumerate() {
            op.validate().map_err(|e| at(i, e))?;
            match op {
                Operation::Rotate(r) => pending = pending.then(Orientation::rotate(*r)),
                Operation::Flip(f) => pending = pending.then(Orientation::flip(*f)),
                Operation::Crop(b) => {
                    crop::output_info(*b, pending.output_info(info)).map_err(|e| at(i, e))?;
                    let source = pending.source_box(*b, info.width(), info.height());
                    // Before the pixel-wise stage just before it, if any.
                    let pos = match steps.last() {
                        Some(Step::Point(_)) => steps.len() - 1,
                        _ => steps.len(),
                    };
                    steps.insert(pos, Step::Crop(source));
                }
                Operation::Mean3x3 => steps.push(Step::Mean),
                Operation::Blur { sigma } => steps.push(Step::Blur(blur::taps(*sigma))),
                Operation::Sharpen { sigma, amount } => {
                    steps.push(Step::Sharpen(blur::taps(*sigma), *amount))
                }
                Operation::Convolve(k) => steps.push(Step::Convolve(orient_kernel(k, pending))),
                Operation::Overlay(o) => {
                    // Position-dependent: orient first.
                    if pending != Orientation::IDENTITY {
                        steps.push(Step::Orient(pending));
                        pending = Orientation::IDENTITY;
                    }
                    steps.push(Step::Overlay(o.clone()));
                }
                Operation::Resize(r) => {
                    // Resampling runs its passes in a fixed order, so it does
                    // not commute with a quarter turn: orient first.
                    if pending != Orientation::IDENTITY {
                        steps.push(Step::Orient(pending));
                        pending = Orientation::IDENTITY;
                        info = geometry(input, &steps)?;
                    }
                    let (width, height, crop_box) = r.plan(info.width(), info.height());
                    if (width, height) != (info.width(), info.height()) {
                        steps.push(Step::Resize {
                            width,
                            height,
                            filter: r.filter,
                        });
                    }
                    if let Some(b) = crop_box {
                        steps.push(Step::Crop(b));
                    }
                }
                op if is_point(op) => match steps.last_mut() {
                    Some(Step::Point(p)) => p.push(op),
                    _ => {
                        let mut p = PointOps::new(info.format());
                        p.push(op);
                        steps.push(Step::Point(p));
                    }
                },
                op => unreachable!("every operation has a rule: {op}"),
            }
            info = geometry(input, &steps)?;
        }
        if pending != Orientation::IDENTITY {
            steps.push(Step::Orient(pending));
        }
        let mut with_info = Vec::with_capacity(steps.len());
        let mut cur = input;
        for s in steps {
            let next = s.output_info(cur)?;
            with_info.push((cur, s));
            cur = next;
        }
        Ok(Plan {
            input,
            steps: with_info,
            output: cur,
        })
    }

    /// The geometry of the input.
    pub fn input_info(&self) -> ImageInfo {
        self.input
    }

    /// The geometry of the output.
    pub fn output_info(&self) -> ImageInfo {
        self.output
    }

    /// The stages, each with the geometry it receives.
    pub fn steps(&self) -> &[(ImageInfo, Step)] {
        &self.steps
    }

    /// Whether output flows while input arrives (no stage holds the image).
    pub fn is_streaming(&self) -> bool {
        !self
            .steps
            .iter()
            .any(|(_, s)| matches!(s, Step::Orient(o) if o.needs_whole_image()))
    }

    /// The memory the stages hold when fed chunks of at most `chunk_bytes`:
    /// each family's own estimate (see its `stream` module) plus a partial
    /// row and one chunk's output per stage.
    pub fn memory(&self, chunk_bytes: usize) -> MemoryPlan {
        let mut streaming = 0u64;
        let mut holds = Vec::new();
        for (info, step) in &self.steps {
            streaming += info.row_bytes() as u64 + chunk_bytes as u64;
            streaming += match step {
                Step::Orient(o) if o.needs_whole_image() => {
                    holds.push(*info);
                    0
                }
                Step::Overlay(o) => crate::ops::overlay::memory(o),
                Step::Resize {
                    width,
                    height,
                    filter,
                } => {
                    crate::ops::resize::stream::memory(*info, *width, *height, *filter, chunk_bytes)
                }
                s if s.radius() > 0 => crate::ops::stencil::memory(*info, s.radius()),
                _ => 0,
            };
        }
        MemoryPlan { streaming, holds }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let steps: Vec<String> = self.steps.iter().map(|(_, s)| s.to_string()).collect();
        write!(
            f,
            "{} -> [{}] -> {}",
            self.input,
            steps.join(", "),
            self.output
        )
    }
}

fn geometry(input: ImageInfo, steps: &[Step]) -> Result<ImageInfo> {
    steps.iter().try_fold(input, |info, s| s.output_info(info))
}

/// The kernel that, applied before orientation `o`, equals `k` applied
/// after it. With `o` mapping input offsets by L, `k` after `o` reads input
/// offset L^-1 d for its tap d, so the kernel before is `k` oriented by
/// `o`'s inverse (centre fixed).
pub fn orient_kernel(k: &Kernel, o: Orientation) -> Kernel {
    let o = o.inverse();
    let n = k.size as u32;
    let as_image = ImageBuf::from_raw(
        n,
        n,
        crate::pixel::PixelFormat::Gray8,
        vec![0; (n * n) as usize],
    )
    .expect("a small square");
    let mut weights = Vec::with_capacity(k.weights.len());
    let out = o.output_info(as_image.info());
    for y in 0..out.height() {
        for x in 0..out.width() {
            let (sx, sy) = o.source_of(x, y, n, n);
            weights.push(k.weights[(sy * n + sx) as usize]);
        }
    }
    Kernel {
        size: k.size,
        weights,
        divisor: k.divisor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Flip;
    use crate::pixel::PixelFormat;
    use crate::rotate::Rotation;

    fn info(w: u32, h: u32) -> ImageInfo {
        ImageInfo::new(w, h, PixelFormat::Rgb8).unwrap()
    }

    #[test]
    fn turns_and_flips_become_one_orientation_applied_last() {
        let ops = [
            Operation::Rotate(Rotation::Ccw90),
            Operation::Mean3x3,
            Operation::Flip(Flip::Horizontal),
            Operation::Rotate(Rotation::Ccw90),
            Operation::Gray,
        ];
        let plan = Plan::new(info(6, 4), &ops).unwrap();
        let names: Vec<String> = plan.steps().iter().map(|(_, s)| s.to_string()).collect();
        assert_eq!(names, ["mean", "point[gray]", "flip=h"]);
        assert!(plan.is_streaming(), "a plain mirror streams");
        assert_eq!(plan.output_info().format(), PixelFormat::Gray8);
        let turns = [
            Operation::Rotate(Rotation::Ccw90),
            Operation::Rotate(Rotation::Ccw270),
        ];
        assert!(Plan::new(info(6, 4), &turns).unwrap().steps().is_empty());
    }

    #[test]
    fn a_crop_after_a_turn_crops_its_source_first_and_shrinks_the_hold() {
        let ops = [
            Operation::Rotate(Rotation::Ccw90),
            Operation::Gray,
            Operation::Crop(CropBox {
                x: 0,
                y: 0,
                width: 2,
                height: 3,
            }),
        ];
        let plan = Plan::new(info(6, 4), &ops).unwrap();
        let names: Vec<String> = plan.steps().iter().map(|(_, s)| s.to_string()).collect();
        // rot90's output (0,0) is input (5,0): the box is the input's top-right.
        assert_eq!(names, ["crop=3,0,3,2", "point[gray]", "hold rotate=90"]);
        let mem = plan.memory(1 << 20);
        assert_eq!(
            mem.holds,
            [ImageInfo::new(3, 2, PixelFormat::Gray8).unwrap()]
        );
        assert_eq!(
            plan.output_info(),
            ImageInfo::new(2, 3, PixelFormat::Gray8).unwrap()
        );
    }

    #[test]
    fn a_crop_outside_the_oriented_image_names_the_operation() {
        let ops = [
            Operation::Rotate(Rotation::Ccw90),
            Operation::Crop(CropBox {
                x: 0,
                y: 0,
                width: 6,
                height: 4,
            }),
        ];
        let e = Plan::new(info(6, 4), &ops).unwrap_err().to_string();
        assert!(
            e.contains("operation 1 (crop=0,0,6,4)") && e.contains("4x6 image"),
            "{e}"
        );
    }

    #[test]
    fn stencil_windows_are_in_the_memory_plan() {
        let small = Plan::new(info(100, 50), &[Operation::Mean3x3])
            .unwrap()
            .memory(1000);
        let big = Plan::new(info(100, 50), &[Operation::Blur { sigma: 5.0 }])
            .unwrap()
            .memory(1000);
        assert_eq!(big.streaming - small.streaming, (31 - 3) * 300);
        assert!(small.holds.is_empty());
    }
}
