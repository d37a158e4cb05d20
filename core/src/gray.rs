//! Gray images stored in colour: finding them, and sending one channel
//! instead of three or four.
//!
//! An RGB image with R = G = B everywhere (or an RGBA one that is also fully
//! opaque) carries a gray image three (four) times over. [`GrayRows`] reads
//! it as GRAY8 and [`ExpandRows`] turns gray output back into the colour
//! format it would have had; for every operation that treats colour channels
//! alike (all but `overlay`, whose colours differ from their luma) the result
//! is identical to processing the colour image (tested in the client).

use crate::error::Result;
use crate::pixel::{ImageInfo, PixelFormat};
use crate::rows::{RowReader, RowWriter};

/// Whether `px` (`format` pixels) are gray: R = G = B, and alpha 255 for
/// RGBA. GRAY8 is trivially gray.
pub fn is_gray_pixels(px: &[u8], format: PixelFormat) -> bool {
    match format {
        PixelFormat::Gray8 => true,
        PixelFormat::Rgb8 => px
            .as_chunks::<3>()
            .0
            .iter()
            .all(|&[r, g, b]| r == g && g == b),
        PixelFormat::Rgba8 => px
            .as_chunks::<4>()
            .0
            .iter()
            .all(|&[r, g, b, a]| r == g && g == b && a == 255),
    }
}

/// Reads `reader` to its end (or to its first colour pixel) and says
/// whether the image is gray. Rows are read a band at a time.
pub fn is_gray(reader: &mut dyn RowReader) -> Result<bool> {
    let info = reader.info();
    if let Some(all) = reader.decoded() {
        return Ok(is_gray_pixels(all, info.format()));
    }
    let rb = info.row_bytes();
    let per = ((1 << 20) / rb).max(1);
    let height = info.height() as usize;
    let mut buf = Vec::new();
    let mut y = 0;
    while y < height {
        let n = per.min(height - y);
        buf.resize(n * rb, 0);
        reader.read_rows(&mut buf)?;
        if !is_gray_pixels(&buf, info.format()) {
            return Ok(false);
        }
        y += n;
    }
    Ok(true)
}

/// A colour source known to be gray, read as GRAY8 (its first channel).
pub struct GrayRows {
    inner: Box<dyn RowReader>,
    info: ImageInfo,
    scratch: Vec<u8>,
}

impl GrayRows {
    /// Wraps `inner` (RGB8 or RGBA8 with R = G = B).
    pub fn new(inner: Box<dyn RowReader>) -> Result<Self> {
        let i = inner.info();
        let info = ImageInfo::new(i.width(), i.height(), PixelFormat::Gray8)?;
        Ok(Self {
            inner,
            info,
            scratch: Vec::new(),
        })
    }
}

impl RowReader for GrayRows {
    fn info(&self) -> ImageInfo {
        self.info
    }
    fn is_streaming(&self) -> bool {
        self.inner.is_streaming()
    }
    fn read_rows(&mut self, buf: &mut [u8]) -> Result<()> {
        let c = self.inner.info().channels();
        self.scratch.resize(buf.len() * c, 0);
        self.inner.read_rows(&mut self.scratch)?;
        for (o, px) in buf.iter_mut().zip(self.scratch.chunks_exact(c)) {
            *o = px[0];
        }
        Ok(())
    }
}

/// A sink that takes GRAY8 bytes and writes them as `to` (R = G = B, alpha
/// 255) into `inner`.
pub struct ExpandRows {
    inner: Box<dyn RowWriter>,
    to: PixelFormat,
    scratch: Vec<u8>,
}

impl ExpandRows {
    /// Expands gray into `to` for `inner`.
    pub fn new(inner: Box<dyn RowWriter>, to: PixelFormat) -> Self {
        Self {
            inner,
            to,
            scratch: Vec::new(),
        }
    }
}

impl RowWriter for ExpandRows {
    fn is_streaming(&self) -> bool {
        self.inner.is_streaming()
    }
    fn write(&mut self, data: &[u8]) -> Result<()> {
        match self.to {
            PixelFormat::Gray8 => return self.inner.write(data),
            PixelFormat::Rgb8 => {
                self.scratch.clear();
                self.scratch.extend(data.iter().flat_map(|&v| [v, v, v]));
            }
            PixelFormat::Rgba8 => {
                self.scratch.clear();
                self.scratch
                    .extend(data.iter().flat_map(|&v| [v, v, v, 255]));
            }
        }
        self.inner.write(&self.scratch)
    }
    fn finish(self: Box<Self>) -> Result<()> {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_needs_equal_channels_and_opaque_alpha() {
        assert!(is_gray_pixels(&[5, 5, 5, 9, 9, 9], PixelFormat::Rgb8));
        assert!(!is_gray_pixels(&[5, 5, 5, 9, 9, 8], PixelFormat::Rgb8));
        assert!(is_gray_pixels(&[5, 5, 5, 255], PixelFormat::Rgba8));
        assert!(!is_gray_pixels(&[5, 5, 5, 254], PixelFormat::Rgba8));
        assert!(is_gray_pixels(&[1, 2, 3], PixelFormat::Gray8));
    }
}
