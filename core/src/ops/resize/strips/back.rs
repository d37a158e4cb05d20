//! Strips of columns turned back into rows, after the column pass: the
//! inverse of [`super::to_columns_with`], on the same register transposes.
#![allow(unsafe_code)]

use crate::ops::resize::kernels::strip_rows;
use crate::ops::rotate::{Rotation, kernels::rows_with as turn_rows};
use crate::pixel::{ImageInfo, PixelFormat};
use crate::simd::Cpu;

/// The inverse of [`super::to_columns_with`] without pieces or premultiplying:
/// `cols` holds `width` columns of a strip of [`strip_rows`]`(channels)`
/// rows, column `j` at `cols[(width - 1 - j) * lane..]`, and `dst` gets the
/// strip's rows. Every byte of `dst` is written.
///
/// # Panics
/// If `cols` is not such a strip or `dst` not the same length.
pub(crate) fn from_columns_with(
    cpu: Cpu,
    cols: &[u8],
    width: usize,
    channels: usize,
    dst: &mut [u8],
) {
    let rows = strip_rows(channels);
    let lane = rows * channels;
    assert!(cols.len() == width * lane && dst.len() == cols.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if width >= 16 {
        done = match channels {
            // SAFETY: the CPU runs AVX-512 F and BW (`clamp`); the shapes
            // were just checked.
            4 if cpu.clamp() >= Cpu::Avx512 => unsafe { x86::rows_rgba(cols, width, dst) },
            // SAFETY: as above, and VBMI (`vbmi`).
            3 if cpu.vbmi() => unsafe { x86::rows_rgb(cols, width, dst) },
            // SAFETY: the CPU runs AVX2 (`clamp`).
            1 if cpu.clamp() >= Cpu::Avx2 => unsafe { x86::rows_gray(cols, width, dst) },
            _ => 0,
        };
    }
    if done == 0 {
        let format = match channels {
            1 => PixelFormat::Gray8,
            3 => PixelFormat::Rgb8,
            _ => PixelFormat::Rgba8,
        };
        let turned = ImageInfo::new(rows as u32, width as u32, format).expect("a strip's geometry");
        return turn_rows(cpu, cols, turned, Rotation::Ccw270, 0, dst, false);
    }
    for j in done..width {
        for r in 0..rows {
            dst[(r * width + j) * channels..][..channels]
                .copy_from_slice(&cols[(width - 1 - j) * lane + r * channels..][..channels]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::transpose::{bytes16x16, dwords16x16, rgb_permutes};

    /// RGBA columns (8 rows) back to rows, 16 columns at a time: each
    /// column's 8 pixels as the first half of a register, a 16x16
    /// transpose, the first 8 results stored. Returns the columns done.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW; `cols` and `dst` hold
    /// `8 * width` pixels.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn rows_rgba(cols: &[u8], width: usize, dst: &mut [u8]) -> usize {
        const R: usize = 8;
        assert!(cols.len() == R * width * 4 && dst.len() == cols.len());
        if width < 16 {
            return 0;
        }
        for x0 in (0..width - 15).step_by(16) {
            let mut c = [_mm512_setzero_si512(); 16];
            for (j, c) in c.iter_mut().enumerate() {
                // SAFETY: column x0 + j's 32 bytes are inside `cols`.
                *c = unsafe {
                    let p = cols.as_ptr().add((width - 1 - x0 - j) * 32);
                    _mm512_zextsi256_si512(_mm256_loadu_si256(p.cast()))
                };
            }
            // SAFETY: the target features.
            let t = unsafe { dwords16x16(&c) };
            for (r, row) in t[..R].iter().enumerate() {
                // SAFETY: pixels x0..x0 + 16 of row r are inside `dst`.
                unsafe {
                    _mm512_storeu_si512(dst.as_mut_ptr().add((r * width + x0) * 4).cast(), *row)
                };
            }
        }
        width / 16 * 16
    }

    /// RGB columns (16 rows, 48 bytes) back to rows, 16 columns at a time:
    /// widened to 4-byte pixels, turned, narrowed. Returns the columns done.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VBMI; `cols` and `dst` hold
    /// `16 * width` pixels.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn rows_rgb(cols: &[u8], width: usize, dst: &mut [u8]) -> usize {
        const R: usize = 16;
        const BYTES48: __mmask64 = (1 << 48) - 1;
        assert!(cols.len() == R * width * 3 && dst.len() == cols.len());
        if width < 16 {
            return 0;
        }
        // SAFETY: the target features.
        let (widen, narrow) = unsafe { rgb_permutes() };
        for x0 in (0..width - 15).step_by(16) {
            let mut c = [_mm512_setzero_si512(); 16];
            for (j, c) in c.iter_mut().enumerate() {
                // SAFETY: column x0 + j's 48 bytes are inside `cols`; the
                // load is masked to them.
                *c = unsafe {
                    let p = cols.as_ptr().add((width - 1 - x0 - j) * 48);
                    _mm512_permutexvar_epi8(widen, _mm512_maskz_loadu_epi8(BYTES48, p.cast()))
                };
            }
            // SAFETY: the target features.
            let t = unsafe { dwords16x16(&c) };
            for (r, row) in t.iter().enumerate() {
                // SAFETY: pixels x0..x0 + 16 of row r (48 bytes, the store
                // masked to them) are inside `dst`.
                unsafe {
                    let p = dst.as_mut_ptr().add((r * width + x0) * 3);
                    _mm512_mask_storeu_epi8(
                        p.cast(),
                        BYTES48,
                        _mm512_permutexvar_epi8(narrow, *row),
                    );
                }
            }
        }
        width / 16 * 16
    }

    /// Gray columns (32 rows) back to rows, 16 columns at a time: each
    /// column is one register (rows 0..16 and 16..32 in its lanes), and
    /// the in-lane 16x16 byte transpose gives rows i and i + 16. Returns
    /// the columns done.
    ///
    /// # Safety
    /// The CPU must support AVX2; `cols` and `dst` hold `32 * width` bytes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows_gray(cols: &[u8], width: usize, dst: &mut [u8]) -> usize {
        const R: usize = 32;
        assert!(cols.len() == R * width && dst.len() == cols.len());
        if width < 16 {
            return 0;
        }
        for x0 in (0..width - 15).step_by(16) {
            let mut c = [_mm256_setzero_si256(); 16];
            for (j, c) in c.iter_mut().enumerate() {
                // SAFETY: column x0 + j's 32 bytes are inside `cols`.
                *c = unsafe {
                    _mm256_loadu_si256(cols.as_ptr().add((width - 1 - x0 - j) * R).cast())
                };
            }
            // SAFETY: the target features.
            let t = unsafe { bytes16x16(&c) };
            for (r, row) in t.iter().enumerate() {
                // SAFETY: pixels x0..x0 + 16 of rows r and r + 16 are
                // inside `dst`.
                unsafe {
                    let p = dst.as_mut_ptr().add(r * width + x0);
                    _mm_storeu_si128(p.cast(), _mm256_castsi256_si128(*row));
                    _mm_storeu_si128(
                        p.add(16 * width).cast(),
                        _mm256_extracti128_si256::<1>(*row),
                    );
                }
            }
        }
        width / 16 * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The turn back against the definition on every path, for widths
    /// around the 16-column blocks, over the complement of the answer.
    #[test]
    fn rows_equal_the_definition_on_every_path() {
        for channels in [1, 3, 4] {
            let rows = strip_rows(channels);
            let lane = rows * channels;
            for width in [1, 2, 15, 16, 17, 31, 32, 33, 100, 257] {
                let cols: Vec<u8> = (0..rows * width * channels)
                    .map(|i| ((i * 131 + i / 5) % 256) as u8)
                    .collect();
                let mut want = vec![0u8; cols.len()];
                for j in 0..width {
                    for r in 0..rows {
                        for ch in 0..channels {
                            want[(r * width + j) * channels + ch] =
                                cols[(width - 1 - j) * lane + r * channels + ch];
                        }
                    }
                }
                for cpu in Cpu::available() {
                    let mut got: Vec<u8> = want.iter().map(|b| !b).collect();
                    from_columns_with(cpu, &cols, width, channels, &mut got);
                    assert!(got == want, "{cpu:?} {channels} channels, width {width}");
                }
            }
        }
    }
}
