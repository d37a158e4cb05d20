//! Cropping: keep a box of the image. It streams: rows above the box are
//! dropped as they arrive, rows inside it are cut to the box's columns, and
//! the output is complete once the box's last row has arrived.

use super::CropBox;
use super::stage::Stage;
use crate::error::{CoreError, Result};
use crate::pixel::ImageInfo;

/// Checks that `b` lies inside an image of geometry `info` and returns the
/// output geometry; the message names the box and the size.
pub fn output_info(b: CropBox, info: ImageInfo) -> Result<ImageInfo> {
    let fits = |start: u32, len: u32, max: u32| start.checked_add(len).is_some_and(|e| e <= max);
    if b.width == 0
        || b.height == 0
        || !fits(b.x, b.width, info.width())
        || !fits(b.y, b.height, info.height())
    {
        return Err(CoreError::InvalidInput(format!(
            "crop box {b} (x={}, y={}, w={}, h={}) is not inside the {}x{} image",
            b.x,
            b.y,
            b.width,
            b.height,
            info.width(),
            info.height()
        )));
    }
    ImageInfo::new(b.width, b.height, info.format())
}

/// Appends the part of input row `y` (whole row `row` of `channels`-byte
/// pixels) that lies in `b` to `out`; rows outside the box add nothing.
pub fn crop_row(b: CropBox, y: usize, row: &[u8], channels: usize, out: &mut Vec<u8>) {
    if y >= b.y as usize && y < (b.y + b.height) as usize {
        let x0 = b.x as usize * channels;
        out.extend_from_slice(&row[x0..x0 + b.width as usize * channels]);
    }
}

/// The crop's stage: each row cut to the box as it arrives.
#[derive(Debug)]
pub(crate) struct CropStage {
    pub(crate) b: CropBox,
    pub(crate) info: ImageInfo,
    pub(crate) next_row: usize,
}

impl Stage for CropStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        for row in rows.chunks_exact(self.info.row_bytes()) {
            crop_row(self.b, self.next_row, row, self.info.channels(), out);
            self.next_row += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::PixelFormat;

    #[test]
    fn boxes_outside_the_image_are_named() {
        let info = ImageInfo::new(10, 5, PixelFormat::Rgb8).unwrap();
        let ok = CropBox {
            x: 2,
            y: 1,
            width: 8,
            height: 4,
        };
        assert_eq!(output_info(ok, info).unwrap().width(), 8);
        for b in [
            CropBox {
                x: 3,
                y: 0,
                width: 8,
                height: 1,
            },
            CropBox {
                x: 0,
                y: 5,
                width: 1,
                height: 1,
            },
            CropBox {
                x: u32::MAX,
                y: 0,
                width: 2,
                height: 1,
            },
        ] {
            let e = output_info(b, info).unwrap_err().to_string();
            assert!(
                e.contains("not inside the 10x5 image") && e.contains(&format!("x={}", b.x)),
                "{e}"
            );
        }
    }
}
