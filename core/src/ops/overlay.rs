//! Overlay (watermark): another image composited over this one, straight
//! alpha, "over", clipped to the image.
//!
//! For every pixel the overlay covers, with `a` its alpha (255 for an
//! overlay without alpha) scaled by the opacity — `a = round(alpha *
//! opacity)`, half away from zero — each colour channel becomes
//! `div255(fg * a + bg * (255 - a))`, where `div255(x) = ((x + 128) +
//! ((x + 128) >> 8)) >> 8` equals `round(x / 255)` for every sum that occurs.
//! An RGBA background's alpha becomes `a + div255(bg_alpha * (255 - a))`
//! (the "over" rule for coverage). A gray background takes the overlay's
//! luma (as `gray` computes it); a colour background takes a gray overlay on
//! every channel. The position (x, y) of the overlay's top-left corner may be
//! negative or past the edges: only the part inside the image is drawn.
//!
//! The stage is row-local: output row y reads overlay row y - Y only.

use std::sync::Arc;

use super::point::luma;
use crate::error::{CoreError, Result};
use crate::pixel::{ImageBuf, PixelFormat};

/// An overlay and where and how strongly to draw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlay {
    /// The overlay's pixels (any format).
    pub image: Arc<ImageBuf>,
    /// Column of its top-left corner in the image (may be negative).
    pub x: i32,
    /// Row of its top-left corner in the image (may be negative).
    pub y: i32,
    /// Opacity in [0, 1].
    pub opacity: f32,
}

/// The largest overlay accepted, in pixels (it travels in the request's
/// header and is held whole).
pub const MAX_OVERLAY_PIXELS: u64 = 16 << 20;

impl Overlay {
    /// Checks the opacity and the overlay's size.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.opacity) {
            return Err(CoreError::InvalidInput(format!(
                "overlay opacity {} is outside 0..1",
                self.opacity
            )));
        }
        if self.image.info().pixels() > MAX_OVERLAY_PIXELS {
            return Err(CoreError::LimitExceeded(format!(
                "overlay of {} is over the limit of {MAX_OVERLAY_PIXELS} pixels",
                self.image.info()
            )));
        }
        Ok(())
    }
}

/// `round(x / 255)` for `x` in 0..=255*255.
#[inline(always)]
pub fn div255(x: u32) -> u32 {
    let t = x + 128;
    (t + (t >> 8)) >> 8
}

/// The overlay ready for one background format: per overlay pixel, the
/// colour values in the background's channel layout and the effective alpha.
#[derive(Debug)]
pub struct Prepared {
    width: usize,
    height: usize,
    x: i64,
    y: i64,
    /// `colours` values per pixel (the background's colour channels).
    colours: usize,
    fg: Vec<u8>,
    alpha: Vec<u8>,
    background: PixelFormat,
}

impl Prepared {
    /// Converts `o` for backgrounds of `background` format.
    pub fn new(o: &Overlay, background: PixelFormat) -> Prepared {
        let info = o.image.info();
        let colours = match background {
            PixelFormat::Gray8 => 1,
            _ => 3,
        };
        let n = info.pixels() as usize;
        let (mut fg, mut alpha) = (Vec::with_capacity(n * colours), Vec::with_capacity(n));
        for p in o.image.data().chunks_exact(info.channels()) {
            let (rgb, a) = match info.format() {
                PixelFormat::Gray8 => ([p[0]; 3], 255),
                PixelFormat::Rgb8 => ([p[0], p[1], p[2]], 255),
                PixelFormat::Rgba8 => ([p[0], p[1], p[2]], p[3]),
            };
            if colours == 1 {
                fg.push(if info.format() == PixelFormat::Gray8 {
                    p[0]
                } else {
                    luma(rgb[0], rgb[1], rgb[2])
                });
            } else {
                fg.extend_from_slice(&rgb);
            }
            alpha.push((f32::from(a) * o.opacity).round().clamp(0.0, 255.0) as u8);
        }
        Prepared {
            width: info.width() as usize,
            height: info.height() as usize,
            x: i64::from(o.x),
            y: i64::from(o.y),
            colours,
            fg,
            alpha,
            background,
        }
    }

    /// Composites the overlay onto image row `y` (`row` holds `width` pixels
    /// of the background format) in place.
    pub fn row(&self, y: usize, row: &mut [u8]) {
        let oy = y as i64 - self.y;
        if oy < 0 || oy >= self.height as i64 {
            return;
        }
        let c = self.background.channels();
        let width = (row.len() / c) as i64;
        let x0 = self.x.max(0);
        let x1 = (self.x + self.width as i64).min(width);
        let base = oy as usize * self.width;
        for x in x0..x1 {
            let i = base + (x - self.x) as usize;
            let a = u32::from(self.alpha[i]);
            let px = &mut row[x as usize * c..(x as usize + 1) * c];
            let fg = &self.fg[i * self.colours..(i + 1) * self.colours];
            for (b, &f) in px.iter_mut().zip(fg) {
                *b = div255(u32::from(f) * a + u32::from(*b) * (255 - a)) as u8;
            }
            if c == 4 {
                px[3] = (a + div255(u32::from(px[3]) * (255 - a))) as u8;
            }
        }
    }
}

/// The overlay's stage: each pushed row composited in place, in parallel.
#[derive(Debug)]
pub(crate) struct OverlayStage {
    pub(crate) prepared: Prepared,
    pub(crate) row_bytes: usize,
    pub(crate) next_row: usize,
}

impl crate::ops::stage::Stage for OverlayStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> crate::Result<()> {
        use rayon::prelude::*;
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

/// Bytes the overlay's stage holds besides its rows: the overlay prepared
/// for the background (colours and alpha, four bytes a pixel).
pub(crate) fn memory(o: &Overlay) -> u64 {
    o.image.info().pixels() * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn div255_rounds_every_product() {
        for x in 0..=255u32 * 255 {
            let want = (f64::from(x) / 255.0).round() as u32;
            assert_eq!(div255(x), want, "{x}");
        }
    }

    #[test]
    fn composites_clipped_with_opacity_and_coverage() {
        // A 2x1 RGBA overlay: opaque red, half-transparent blue, at x = -1.
        let image = ImageBuf::from_raw(
            2,
            1,
            PixelFormat::Rgba8,
            vec![255, 0, 0, 255, 0, 0, 255, 128],
        )
        .unwrap();
        let o = Overlay {
            image: Arc::new(image),
            x: -1,
            y: 0,
            opacity: 1.0,
        };
        let p = Prepared::new(&o, PixelFormat::Rgba8);
        let mut row = vec![100, 100, 100, 0, 7, 7, 7, 7];
        p.row(0, &mut row);
        // Only the blue pixel lands (on pixel 0): 0*128 + 100*127 -> 50;
        // 255*128 + 100*127 -> 178; alpha 128 + 0.
        assert_eq!(row, [50, 50, 178, 128, 7, 7, 7, 7]);
        let mut other = vec![1, 2, 3, 4, 5, 6, 7, 8];
        p.row(1, &mut other);
        assert_eq!(
            other,
            [1, 2, 3, 4, 5, 6, 7, 8],
            "rows below the overlay are untouched"
        );
        let faint = Prepared::new(
            &Overlay {
                opacity: 0.5,
                x: 0,
                ..o
            },
            PixelFormat::Gray8,
        );
        let mut g = vec![0, 0];
        faint.row(0, &mut g);
        // Red's luma 76 at alpha 128; blue's 29 at alpha 64.
        assert_eq!(g, [38, 7]);
    }
}
