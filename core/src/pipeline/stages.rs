//! From a planned [`Step`] to its family's stage: the one place that maps
//! steps to the stages the families implement (each in its `stream`
//! module, see [`crate::ops::stage`]).

use super::Run;
use super::plan::Step;
use crate::error::Result;
use crate::hold::Hold;
use crate::ops::blur::stream::BlurRows;
use crate::ops::convolve::stream::ConvolveRows;
use crate::ops::crop::CropStage;
use crate::ops::mean::stream::{MeanStage, StreamingMean};
use crate::ops::orient::Orientation;
use crate::ops::orient::stream::{HoldStage, MirrorStage};
use crate::ops::overlay::{OverlayStage, Prepared};
use crate::ops::point::stream::PointStage;
use crate::ops::resize::stream::ResizeStage;
use crate::ops::stage::Stage;
use crate::ops::stencil::StencilStage;
use crate::pixel::ImageInfo;
use crate::simd::Cpu;

/// Builds the stage for `step`, which receives images of geometry `info`
/// and runs as `run` says; holds are made by `make_hold`.
pub(crate) fn build(
    info: ImageInfo,
    step: &Step,
    run: &Run,
    make_hold: &mut dyn FnMut(ImageInfo, Orientation, Cpu) -> Result<Box<dyn Hold>>,
) -> Result<Box<dyn Stage>> {
    let cpu = run.cpu;
    let stop = || run.stop.clone();
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
        Step::Blur(t) => {
            let rows = BlurRows {
                taps: t.clone(),
                amount: None,
            };
            Box::new(StencilStage::new(info, rows, cpu, stop()))
        }
        Step::Sharpen(t, a) => {
            let rows = BlurRows {
                taps: t.clone(),
                amount: Some(*a),
            };
            Box::new(StencilStage::new(info, rows, cpu, stop()))
        }
        Step::Convolve(k) => Box::new(StencilStage::new(
            info,
            ConvolveRows(k.clone()),
            cpu,
            stop(),
        )),
        Step::Resize {
            width,
            height,
            filter,
        } => Box::new(ResizeStage::new(
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
