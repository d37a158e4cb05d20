//! The 3x3 mean (box) filter.
//!
//! Each channel of each output pixel is `floor(sum / count)` over the pixels
//! of its 3x3 neighbourhood that lie inside the image: the window shrinks at
//! the border (count 4 in corners, 6 on edges, 9 inside; 2 or 3 for 1-pixel-wide
//! images, 1 for a 1x1 image). Alpha is filtered like any other channel.
//!
//! Three forms compute exactly what [`mean3x3_naive`] computes: whole image
//! ([`mean3x3`], [`mean3x3_into`], parallel over row bands), one output row
//! from its neighbours ([`mean3x3_row`], for callers with rows of their own),
//! and a run of rows held in a window (`Window::filter_into`), which both the
//! whole-image form and the streaming filter in [`stream`] are built
//! on.

pub(crate) mod kernels;
pub mod stream;
#[cfg(target_arch = "x86_64")]
mod x86;

use rayon::prelude::*;

use crate::error::{CoreError, Result};
use crate::pixel::{ImageBuf, ImageInfo};
use crate::simd::{self, Cpu};

/// The obviously-correct reference, straight from the definition.
pub fn mean3x3_naive(src: &ImageBuf) -> ImageBuf {
    let info = src.info();
    let (w, h, c) = (info.width() as i64, info.height() as i64, info.channels());
    let data = src.data();
    let mut out = vec![0u8; data.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let (mut sum, mut count) = (0u32, 0u32);
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (yy, xx) = (y + dy, x + dx);
                        if (0..h).contains(&yy) && (0..w).contains(&xx) {
                            sum += data[((yy * w + xx) as usize) * c + ch] as u32;
                            count += 1;
                        }
                    }
                }
                out[((y * w + x) as usize) * c + ch] = (sum / count) as u8;
            }
        }
    }
    ImageBuf::new(info, out).expect("same byte length")
}

/// Filters an image into a new buffer, in parallel.
pub fn mean3x3(src: &ImageBuf) -> Result<ImageBuf> {
    let mut out = ImageBuf::zeroed(src.info())?;
    mean3x3_into(src.data(), src.info(), out.data_mut())?;
    Ok(out)
}

/// Filters `src` (of geometry `info`) into `dst` of the same length, in
/// parallel bands of rows, on the best code path this CPU has.
pub fn mean3x3_into(src: &[u8], info: ImageInfo, dst: &mut [u8]) -> Result<()> {
    mean3x3_into_with(Cpu::detect(), src, info, dst)
}

/// [`mean3x3_into`] on a chosen code path (clamped to what the CPU runs).
pub fn mean3x3_into_with(cpu: Cpu, src: &[u8], info: ImageInfo, dst: &mut [u8]) -> Result<()> {
    let want = info.byte_len();
    if src.len() != want || dst.len() != want {
        return Err(CoreError::InvalidInput(format!(
            "mean filter of a {info} image needs {want} bytes in and out, got {} and {}",
            src.len(),
            dst.len()
        )));
    }
    let streaming_stores = want >= STREAM_STORES_ABOVE && cpu.clamp() >= Cpu::Ssse3;
    filter_image(cpu, src, info, dst, streaming_stores);
    Ok(())
}

/// [`mean3x3_into_with`] after its checks; `streaming_stores` picks how the
/// output is written.
fn filter_image(cpu: Cpu, src: &[u8], info: ImageInfo, dst: &mut [u8], streaming_stores: bool) {
    let rb = info.row_bytes();
    let band_rows = (BAND_BYTES / rb).clamp(1, 256);
    let rows = Window {
        rows: src,
        first_row: 0,
        height: info.height() as usize,
        row_bytes: rb,
    };
    // An image larger than the last-level cache is bound by memory traffic,
    // not arithmetic (bench/README.md): each row fetches the row after its
    // window ahead, so those misses overlap the work, and where the row
    // kernel can, the output goes out with non-temporal stores, sparing the
    // read of each output line that a normal store costs. Smaller images stay
    // in cache instead.
    let nontemporal = streaming_stores && kernels::stores_nontemporal(cpu);
    dst.par_chunks_mut(rb * band_rows)
        .enumerate()
        .for_each_init(
            || (Vec::new(), simd::store::FenceOnDrop(nontemporal)),
            |(scratch, _), (band, out)| {
                let first = band * band_rows;
                rows.filter_into(cpu, first, out, info.channels(), scratch, nontemporal)
            },
        );
}

/// Output size from which whole-image filtering writes with non-temporal
/// stores: about the last-level cache of the machines we measure on.
const STREAM_STORES_ABOVE: usize = 16 << 20;

/// A run of consecutive rows of an image of `height` rows: `rows` holds rows
/// `first_row..` of `row_bytes` bytes each.
#[derive(Clone, Copy)]
pub(crate) struct Window<'a> {
    pub rows: &'a [u8],
    pub first_row: usize,
    pub height: usize,
    pub row_bytes: usize,
}

impl Window<'_> {
    fn row(&self, y: usize) -> &[u8] {
        let i = y - self.first_row;
        &self.rows[i * self.row_bytes..(i + 1) * self.row_bytes]
    }

    /// Filters output rows `first..first + out.len() / row_bytes`; the window
    /// must hold each of those rows and its neighbours inside the image.
    /// `nontemporal` writes them with non-temporal stores (see
    /// [`kernels::Ahead`]); whole-image filtering also fetches the row
    /// after each window ahead when the window holds it.
    pub fn filter_into(
        &self,
        cpu: Cpu,
        first: usize,
        out: &mut [u8],
        channels: usize,
        scratch: &mut Vec<u16>,
        nontemporal: bool,
    ) {
        let last = self.first_row + self.rows.len() / self.row_bytes;
        for (i, o) in out.chunks_exact_mut(self.row_bytes).enumerate() {
            let y = first + i;
            let above = (y > 0).then(|| self.row(y - 1));
            let below = (y + 1 < self.height).then(|| self.row(y + 1));
            let ahead = kernels::Ahead {
                prefetch: (y + 2 < last).then(|| self.row(y + 2)),
                nontemporal,
            };
            kernels::row_ahead(cpu, above, self.row(y), below, channels, scratch, o, ahead);
        }
    }
}

const BAND_BYTES: usize = 256 * 1024;

/// Computes one output row of the filter from the row itself and its
/// neighbours above and below (`None` at the image's top or bottom edge).
///
/// All rows hold `row.len()` bytes of `channels`-byte pixels; `scratch` is
/// reused between calls to avoid allocation.
///
/// # Panics
/// If the rows or `out` differ in length, or the length is not a whole number
/// of pixels: callers slice whole rows of one image.
pub fn mean3x3_row(
    above: Option<&[u8]>,
    row: &[u8],
    below: Option<&[u8]>,
    channels: usize,
    scratch: &mut Vec<u16>,
    out: &mut [u8],
) {
    let ahead = kernels::Ahead::default();
    kernels::row_ahead(
        Cpu::detect(),
        above,
        row,
        below,
        channels,
        scratch,
        out,
        ahead,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::PixelFormat;

    #[test]
    fn reciprocal_division_is_exact_for_every_reachable_sum() {
        use kernels::RECIP;
        for d in 1..10u32 {
            for s in 0..=255 * d {
                assert_eq!((s * RECIP[d as usize]) >> 16, s / d, "s={s} d={d}");
            }
        }
    }

    #[test]
    fn hand_computed_3x3() {
        // 1 2 3 / 4 5 6 / 7 8 9 -> corners count 4, edges 6, centre 9.
        let img = ImageBuf::from_raw(3, 3, PixelFormat::Gray8, (1..=9).collect()).unwrap();
        let out = mean3x3(&img).unwrap();
        // (1+2+4+5)/4=3, (1+2+3+4+5+6)/6=3, (2+3+5+6)/4=4, ...
        assert_eq!(out.data(), &[3, 3, 4, 4, 5, 5, 6, 6, 7]);
    }

    #[test]
    fn one_by_one_is_unchanged_and_one_wide_uses_the_column() {
        let img = ImageBuf::from_raw(1, 1, PixelFormat::Rgb8, vec![9, 200, 255]).unwrap();
        assert_eq!(mean3x3(&img).unwrap().data(), &[9, 200, 255]);
        let col = ImageBuf::from_raw(1, 3, PixelFormat::Gray8, vec![0, 10, 255]).unwrap();
        // 10/2 = 5, 265/3 = 88, 265/2 = 132
        assert_eq!(mean3x3(&col).unwrap().data(), &[5, 88, 132]);
    }

    #[test]
    fn fast_path_matches_naive_on_odd_shapes() {
        let sizes = [1u32, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65];
        for f in [PixelFormat::Gray8, PixelFormat::Rgb8, PixelFormat::Rgba8] {
            for &w in &sizes {
                for &h in &[1u32, 2, 3, 4, 17] {
                    let info = ImageInfo::new(w, h, f).unwrap();
                    let data = (0..info.byte_len())
                        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
                        .collect();
                    let img = ImageBuf::new(info, data).unwrap();
                    let want = mean3x3_naive(&img);
                    for cpu in Cpu::available() {
                        for nt in [false, true] {
                            let mut out = vec![0; info.byte_len()];
                            filter_image(cpu, img.data(), info, &mut out, nt);
                            assert!(
                                out == want.data(),
                                "mean, {} path, nt {nt}, {w}x{h} {f}",
                                cpu.name()
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn saturated_input_stays_saturated() {
        let img = ImageBuf::from_raw(5, 4, PixelFormat::Rgba8, vec![255; 80]).unwrap();
        assert!(mean3x3(&img).unwrap().data().iter().all(|&v| v == 255));
    }
}
