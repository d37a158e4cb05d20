//! A pipeline of operations over a streamed image.
//!
//! Rotations commute with the mean filter (property-tested), so the pipeline
//! runs every mean filter first, as streaming stages that hold a few rows, and
//! composes all rotations into one applied last. With no net rotation output
//! flows while input arrives; with one, the (filtered) image is buffered and
//! the rotated image is produced band by band after the input ends.

use crate::error::{CoreError, Result};
use crate::hold::{Hold, MemoryHold, Produce};
use crate::pixel::ImageInfo;
use crate::rotate::Rotation;
use crate::stream::StreamingMean;

/// One step of a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Rotate counter-clockwise.
    Rotate(Rotation),
    /// The 3x3 mean filter.
    Mean3x3,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operation::Rotate(r) => write!(f, "rotate{}", r.degrees()),
            Operation::Mean3x3 => f.write_str("mean3x3"),
        }
    }
}

/// The one rotation equivalent to all the rotations in `ops` (rotations
/// commute with the mean filter, so their order among filters is moot).
pub fn net_rotation(ops: &[Operation]) -> Rotation {
    ops.iter().fold(Rotation::None, |acc, op| match op {
        Operation::Rotate(r) => acc.then(*r),
        Operation::Mean3x3 => acc,
    })
}

/// Pixel bytes in, processed pixel bytes out.
#[derive(Debug)]
pub struct Pipeline {
    input: ImageInfo,
    received: usize,
    means: Vec<StreamingMean>,
    rotation: Rotation,
    /// Collects the filtered image when a rotation needs all of it.
    hold: Option<Box<dyn Hold>>,
}

impl Pipeline {
    /// Plans `ops` over an image of geometry `input`, holding the image in
    /// memory if a rotation needs it whole. The buffer is reserved here, so a
    /// lack of memory fails before any pixel is read.
    pub fn new(input: ImageInfo, ops: &[Operation]) -> Result<Self> {
        Self::with_hold(input, ops, |info, rotation| {
            Ok(Box::new(MemoryHold::new(info, rotation)?))
        })
    }

    /// Like [`Pipeline::new`], but a rotating pipeline keeps the image where
    /// `make_hold(image, net_rotation)` says (a file-backed
    /// [`crate::hold::StripHold`], say); it is not called without rotation.
    pub fn with_hold(
        input: ImageInfo,
        ops: &[Operation],
        make_hold: impl FnOnce(ImageInfo, Rotation) -> Result<Box<dyn Hold>>,
    ) -> Result<Self> {
        let rotation = net_rotation(ops);
        let means = ops
            .iter()
            .filter(|op| **op == Operation::Mean3x3)
            .map(|_| StreamingMean::new(input))
            .collect();
        let hold = if rotation == Rotation::None {
            None
        } else {
            Some(make_hold(input, rotation)?)
        };
        Ok(Self {
            input,
            received: 0,
            means,
            rotation,
            hold,
        })
    }

    /// The geometry of the input.
    pub fn input_info(&self) -> ImageInfo {
        self.input
    }

    /// The geometry of the output.
    pub fn output_info(&self) -> ImageInfo {
        self.rotation.output_info(self.input)
    }

    /// Whether output flows while input arrives (no net rotation).
    pub fn is_streaming(&self) -> bool {
        self.rotation == Rotation::None
    }

    /// Bytes of input received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Feeds the next input bytes, appending any output now ready to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
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
        let mut filtered = Vec::new();
        let sink = if self.hold.is_some() {
            &mut filtered
        } else {
            out
        };
        match self.means.as_mut_slice() {
            [] if self.hold.is_some() => {} // written to the hold below, uncopied
            [] => sink.extend_from_slice(data),
            [only] => only.push(data, sink)?,
            [first, rest @ ..] => {
                let mut cur = Vec::new();
                first.push(data, &mut cur)?;
                let (last, middle) = rest.split_last_mut().expect("two stages or more");
                for stage in middle {
                    let mut next = Vec::new();
                    stage.push(&cur, &mut next)?;
                    cur = next;
                }
                last.push(&cur, sink)?;
            }
        }
        if let Some(hold) = &mut self.hold {
            hold.write(if self.means.is_empty() {
                data
            } else {
                &filtered
            })?;
        }
        Ok(())
    }

    /// Ends the input. Fails if fewer bytes arrived than the header declared;
    /// otherwise returns what remains of the output (all of it when rotating).
    pub fn finish(self) -> Result<Remainder> {
        let total = self.input.byte_len();
        if self.received != total {
            return Err(CoreError::InvalidInput(format!(
                "pixel data ended early: a {} image has {} bytes, got {}",
                self.input, total, self.received
            )));
        }
        for stage in self.means {
            stage.finish()?;
        }
        Ok(Remainder {
            produce: self.hold.map(|h| h.finish()).transpose()?,
        })
    }
}

/// Output still to come after the input has ended: the rotated image, made
/// band by band so no second full-size buffer is needed.
#[derive(Debug)]
pub struct Remainder {
    produce: Option<Box<dyn Produce>>,
}

impl Remainder {
    /// The next band of whole output rows, about `target_bytes` long (at least
    /// one row), or `None` when everything has been produced.
    pub fn next_band(&mut self, target_bytes: usize) -> Result<Option<Vec<u8>>> {
        match &mut self.produce {
            Some(p) => p.next_band(target_bytes),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::{ImageBuf, PixelFormat};
    use crate::{mean3x3_naive, rotate_naive};

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
        let mut want = img.clone();
        for op in ops {
            want = match op {
                Operation::Rotate(r) => rotate_naive(&want, r),
                Operation::Mean3x3 => mean3x3_naive(&want),
            };
        }
        let (info, out) = run(&img, &ops, 4);
        assert_eq!(info, want.info());
        assert_eq!(out, want.data());
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
