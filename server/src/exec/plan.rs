//! Planning a request before anything is allocated for it: every image its
//! operations make is checked against the limits, and the memory it will
//! hold is taken from the core's plan -- with, for a streamed request, the
//! one decision of where its holds keep their images.

use nlimage_core::{CoreError, ImageInfo, Limits, Operation, Plan};

use super::spill::{HoldPlace, STRIP_BYTES, SpillConfig};
use crate::admission::Admission;
use crate::config::MAX_CHUNK_BYTES;
use crate::error::Result;

/// Output messages a gRPC stream buffers before its pipeline waits for the
/// client to read.
pub const OUTPUT_QUEUE: usize = 4;

/// Input chunks a stream queues ahead of its pipeline.
pub const INPUT_QUEUE: usize = 1;

/// Chunks in flight besides the queues: the one being pushed, the pushed
/// output waiting for room, the one handed to the sink side, and the one it
/// is sending.
const IN_FLIGHT: usize = 4;

/// Plans `ops` over an `info` image, checking the input and every image the
/// operations make (a resize can enlarge) against `limits` before anything is
/// allocated for them.
pub fn check_plan(info: ImageInfo, ops: &[Operation], limits: &Limits) -> Result<Plan> {
    limits.check(&info)?;
    let plan = Plan::new(info, ops)?;
    for made in plan
        .steps()
        .iter()
        .skip(1)
        .map(|(g, _)| *g)
        .chain([plan.output_info()])
    {
        limits.check(&made).map_err(|e| match e {
            CoreError::LimitExceeded(m) => {
                CoreError::LimitExceeded(format!("the operations make a {made} image: {m}"))
            }
            e => e,
        })?;
    }
    Ok(plan)
}

/// A streamed request, planned: what to run, what it may hold, and where
/// its holds keep their images.
#[derive(Clone, Debug)]
pub struct StreamPlan {
    /// The core's plan.
    pub plan: Plan,
    /// Bytes to reserve from the memory budget.
    pub memory: u64,
    /// Where every hold of the plan keeps its image.
    pub holds: HoldPlace,
}

/// Plans a streamed request: the core's streaming stages, the chunks in
/// flight on either side, and each hold's image -- in memory when each is
/// under the spill threshold and the budget could hold them all, else each
/// spilled to a file, holding one strip.
pub fn plan_stream(
    info: ImageInfo,
    ops: &[Operation],
    limits: &Limits,
    admission: &Admission,
    spill: &SpillConfig,
) -> Result<StreamPlan> {
    let plan = check_plan(info, ops, limits)?;
    let mem = plan.memory(MAX_CHUNK_BYTES);
    let streaming =
        mem.streaming + (INPUT_QUEUE + OUTPUT_QUEUE + IN_FLIGHT) as u64 * MAX_CHUNK_BYTES as u64;
    let whole: u64 = mem.holds.iter().map(|h| h.byte_len() as u64).sum();
    let in_memory =
        mem.holds.iter().all(|h| h.byte_len() <= spill.above) && admission.fits(whole + streaming);
    let (memory, holds) = if mem.holds.is_empty() || in_memory {
        (whole + streaming, HoldPlace::Memory)
    } else {
        (
            streaming + (mem.holds.len() * STRIP_BYTES) as u64,
            HoldPlace::Spill(spill.dir.clone()),
        )
    };
    Ok(StreamPlan {
        plan,
        memory,
        holds,
    })
}

/// Memory a whole-image fetch holds: the file, its decoded pixels (a
/// decoder may hold `decode_pixels` of 16-bit RGBA: eight bytes each), the
/// output pixels and their encoding.
pub fn whole_image_memory(file_bytes: u64, decode_pixels: u64, output: ImageInfo) -> u64 {
    file_bytes + 8 * decode_pixels + 2 * output.byte_len() as u64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use nlimage_core::{PixelFormat, Rotation};

    use super::*;

    fn spill(above: usize) -> SpillConfig {
        SpillConfig {
            above,
            dir: Arc::from(std::env::temp_dir().as_path()),
        }
    }

    #[test]
    fn holds_stay_in_memory_only_when_the_threshold_and_the_budget_allow() {
        let info = ImageInfo::new(1000, 1000, PixelFormat::Rgb8).unwrap();
        let turn = [Operation::Rotate(Rotation::Ccw90)];
        let roomy = Admission::new(1, 1 << 30, 1, Duration::from_secs(1));
        let p = plan_stream(info, &turn, &Limits::DEFAULT, &roomy, &spill(1 << 30)).unwrap();
        assert_eq!(p.holds, HoldPlace::Memory);
        assert!(p.memory >= 3_000_000, "the image is reserved");
        // Over the threshold: spilled, one strip reserved instead.
        let p = plan_stream(info, &turn, &Limits::DEFAULT, &roomy, &spill(1 << 20)).unwrap();
        assert!(matches!(p.holds, HoldPlace::Spill(_)));
        // Over what the budget could ever hold: spilled too.
        let tight = Admission::new(1, 40 << 20, 1, Duration::from_secs(1));
        let big = ImageInfo::new(4000, 4000, PixelFormat::Rgb8).unwrap();
        let p = plan_stream(big, &turn, &Limits::DEFAULT, &tight, &spill(1 << 30)).unwrap();
        assert!(matches!(p.holds, HoldPlace::Spill(_)));
        assert!(tight.fits(p.memory), "a spilled plan fits the budget");
        // Nothing held: memory, whatever the threshold.
        let p = plan_stream(
            info,
            &[Operation::Mean3x3],
            &Limits::DEFAULT,
            &tight,
            &spill(0),
        );
        assert_eq!(p.unwrap().holds, HoldPlace::Memory);
    }

    #[test]
    fn an_enlarging_operation_is_checked_against_the_limits() {
        let info = ImageInfo::new(100, 100, PixelFormat::Gray8).unwrap();
        let limits = Limits {
            max_pixels: 20_000,
            max_dimension: 1000,
        };
        let e = check_plan(
            info,
            &[Operation::parse("resize=500x500").unwrap()],
            &limits,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("the operations make a 500x500"),
            "{e}"
        );
        assert!(check_plan(info, &[Operation::Mean3x3], &limits).is_ok());
    }
}
