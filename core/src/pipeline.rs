//! A pipeline of operations over a streamed image.
//!
//! Rotations commute with the mean filter (property-tested), so the pipeline
//! runs every mean filter first, as streaming stages that hold a few rows, and
//! composes all rotations into one applied last. With no net rotation output
//! flows while input arrives; with one, the (filtered) image is buffered and
//! the rotated image is produced band by band after the input ends.

use rayon::prelude::*;

use crate::error::{CoreError, Result};
use crate::pixel::ImageInfo;
use crate::rotate::{Rotation, rotate_rows_into};
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

/// Pixel bytes in, processed pixel bytes out.
#[derive(Debug)]
pub struct Pipeline {
    input: ImageInfo,
    received: usize,
    means: Vec<StreamingMean>,
    rotation: Rotation,
    /// The filtered image, collected when a rotation needs all of it.
    held: Vec<u8>,
}

impl Pipeline {
    /// Plans `ops` over an image of geometry `input`. A rotating pipeline
    /// reserves its buffer here, so a lack of memory fails before any pixel
    /// is read.
    pub fn new(input: ImageInfo, ops: &[Operation]) -> Result<Self> {
        let rotation = ops.iter().fold(Rotation::None, |acc, op| match op {
            Operation::Rotate(r) => acc.then(*r),
            Operation::Mean3x3 => acc,
        });
        let means = ops
            .iter()
            .filter(|op| **op == Operation::Mean3x3)
            .map(|_| StreamingMean::new(input))
            .collect();
        let mut held = Vec::new();
        if rotation != Rotation::None {
            held.try_reserve_exact(input.byte_len())
                .map_err(|_| CoreError::OutOfMemory(input.byte_len()))?;
        }
        Ok(Self {
            input,
            received: 0,
            means,
            rotation,
            held,
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
        let sink = if self.is_streaming() {
            out
        } else {
            &mut self.held
        };
        match self.means.as_mut_slice() {
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
            src: self.held,
            input: self.input,
            rotation: self.rotation,
            next_row: 0,
        })
    }
}

/// Output still to come after the input has ended: the rotated image, made
/// band by band so no second full-size buffer is needed.
#[derive(Debug)]
pub struct Remainder {
    src: Vec<u8>,
    input: ImageInfo,
    rotation: Rotation,
    next_row: usize,
}

impl Remainder {
    /// The next band of whole output rows, about `target_bytes` long (at least
    /// one row), or `None` when everything has been produced.
    pub fn next_band(&mut self, target_bytes: usize) -> Option<Vec<u8>> {
        if self.rotation == Rotation::None {
            return None;
        }
        let out = self.rotation.output_info(self.input);
        let (rb, height) = (out.row_bytes(), out.height() as usize);
        if self.next_row >= height {
            self.src = Vec::new();
            return None;
        }
        let rows = (target_bytes / rb).clamp(1, height - self.next_row);
        let mut band = vec![0u8; rows * rb];
        // Split the band across the pool: a few rows per task.
        let per_task = (rows / (4 * rayon::current_num_threads())).max(1);
        let (src, input, rotation, first) = (&self.src, self.input, self.rotation, self.next_row);
        band.par_chunks_mut(per_task * rb)
            .enumerate()
            .for_each(|(i, part)| {
                rotate_rows_into(src, input, rotation, first + i * per_task, part)
                    .expect("band lies inside the output");
            });
        self.next_row += rows;
        Some(band)
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
        while let Some(b) = rest.next_band(100) {
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
