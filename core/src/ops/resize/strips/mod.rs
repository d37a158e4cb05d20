//! A strip of rows turned into columns for the resampler's column kernel.
//!
//! The horizontal pass runs down columns ([`super::kernels::columns_with`]):
//! a strip of [`strip_rows`] rows is first turned by 90 degrees, so that
//! input column `j` (one pixel of each row, top down) lies at
//! `cols[(w - 1 - j) * lane..]`. That turn was the general quarter-turn
//! kernel, a third of a 4000x3000 RGB resize to a quarter: it is built for
//! images whose output rows lie far apart in memory, while here the
//! columns are written one after another into a buffer that stays in the
//! cache, and it waited on memory (a strip's rows are read once, from
//! DRAM for a large image): the kernels below turn 16 pixels of the strip's
//! rows at a time (RGBA and RGB in 512-bit registers, RGB widened to 4-byte
//! pixels and back with byte permutes; gray in 256-bit ones), fetch each
//! row 1 KiB ahead, and premultiply RGBA on the way (the column kernel
//! resamples premultiplied values), which was a pass of its own over the
//! columns. [`back`] turns the column pass's output back into rows;
//! `transpose` holds the register transposes both use.
#![allow(unsafe_code)]

pub(crate) mod back;
mod transpose;

use super::kernels::{premultiply_with, strip_rows};
use crate::ops::rotate::{Rotation, kernels::rows_with as turn_rows};
use crate::pixel::{ImageInfo, PixelFormat};
use crate::simd::Cpu;

/// Turns `src`, [`strip_rows`]`(channels)` rows of `width` pixels, into
/// columns in `cols` as described in [`self`], premultiplied when
/// `premultiply` (RGBA only). With `planes`, each column is cut into
/// 16-byte pieces and piece `s` of column `j` goes to
/// `cols[s * 16 * width + (width - 1 - j) * 16..]` instead: the layout of
/// the byte-digit kernel for RGB's 48-byte columns
/// ([`super::digits::columns_digits_with`]), where the four columns of a
/// group of taps are then one 64-byte load per piece. Every byte of `cols`
/// is written.
///
/// # Panics
/// If `src` is not that strip or `cols` not the same length.
pub(crate) fn to_columns_with(
    cpu: Cpu,
    src: &[u8],
    width: usize,
    channels: usize,
    premultiply: bool,
    planes: bool,
    cols: &mut [u8],
) {
    let rows = strip_rows(channels);
    let lane = rows * channels;
    assert!(src.len() == rows * width * channels && cols.len() == src.len());
    assert!(!planes || lane.is_multiple_of(16));
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if width >= 16 {
        done = match channels {
            // SAFETY: the CPU runs AVX-512 F and BW (`clamp`); the strip's
            // shape was just checked.
            4 if cpu.clamp() >= Cpu::Avx512 && !planes => unsafe {
                x86::columns_rgba(src, width, premultiply, cols)
            },
            // SAFETY: as above, and VBMI (`vbmi`).
            3 if cpu.vbmi() => unsafe { x86::columns_rgb(src, width, planes, cols) },
            // SAFETY: the CPU runs AVX2 (`clamp`).
            1 if cpu.clamp() >= Cpu::Avx2 && !planes => unsafe {
                x86::columns_gray(src, width, cols)
            },
            _ => 0,
        };
    }
    if done == 0 && !planes {
        let format = match channels {
            1 => PixelFormat::Gray8,
            3 => PixelFormat::Rgb8,
            _ => PixelFormat::Rgba8,
        };
        let info = ImageInfo::new(width as u32, rows as u32, format).expect("a strip's geometry");
        turn_rows(cpu, src, info, Rotation::Ccw90, 0, cols, false);
        if premultiply {
            premultiply_with(cpu, cols);
        }
        return;
    }
    // The last pixels (fewer than 16; all of them where no kernel wrote
    // pieces), one column at a time.
    let mut col = vec![0u8; lane];
    for j in done..width {
        for (r, px) in col.chunks_exact_mut(channels).enumerate() {
            px.copy_from_slice(&src[(r * width + j) * channels..][..channels]);
        }
        if premultiply {
            premultiply_with(Cpu::Portable, &mut col);
        }
        if planes {
            for (s, piece) in col.chunks_exact(16).enumerate() {
                cols[s * 16 * width + (width - 1 - j) * 16..][..16].copy_from_slice(piece);
            }
        } else {
            cols[(width - 1 - j) * lane..][..lane].copy_from_slice(&col);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::transpose::{bytes16x16, dwords16x16, quads, rgb_permutes};
    use crate::ops::resize::kernels::premultiply_words_512;

    /// How far ahead along each row the kernels fetch (a prefetch may
    /// point past the strip: it never faults).
    const AHEAD: usize = 1024;

    /// RGBA strips (8 rows, 32-byte columns), 16 pixels at a time,
    /// premultiplied on the way when `premultiply`. Returns the pixels done
    /// (a multiple of 16); the caller does the rest.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW; `src` and `cols` hold
    /// `8 * width` pixels.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn columns_rgba(
        src: &[u8],
        width: usize,
        premultiply: bool,
        cols: &mut [u8],
    ) -> usize {
        const R: usize = 8;
        assert!(src.len() == R * width * 4 && cols.len() == src.len());
        let row = width * 4;
        // Qword picks (bit 3: second source) for the last two rounds.
        let m_idx = |m: i64| {
            _mm512_setr_epi64(
                4 * m,
                4 * m + 1,
                4 * m + 2,
                4 * m + 3,
                8 + 4 * m,
                9 + 4 * m,
                10 + 4 * m,
                11 + 4 * m,
            )
        };
        let s_idx = |s: i64| {
            _mm512_setr_epi64(
                2 * s,
                2 * s + 1,
                4 + 2 * s,
                5 + 2 * s,
                8 + 2 * s,
                9 + 2 * s,
                12 + 2 * s,
                13 + 2 * s,
            )
        };
        let (mi, si) = ([m_idx(0), m_idx(1)], [s_idx(0), s_idx(1)]);
        if width < 16 {
            return 0;
        }
        for x0 in (0..width - 15).step_by(16) {
            // SAFETY: rows 0..8, pixels x0..x0 + 16 are inside `src`.
            let r: [__m512i; R] = std::array::from_fn(|i| unsafe {
                let p = src.as_ptr().add(i * row + x0 * 4);
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(AHEAD).cast());
                _mm512_loadu_si512(p.cast())
            });
            // v[4g + q]: lane L holds rows 4g..4g+4 of pixel 4L + q.
            // SAFETY: the target features.
            let v = unsafe { quads(&r) };
            for m in 0..2 {
                // w[q]: lanes hold rows 0..4 of pixels 8m+q, 8m+4+q, then
                // rows 4..8 of the same two.
                let w: [__m512i; 4] =
                    std::array::from_fn(|q| _mm512_permutex2var_epi64(v[q], mi[m], v[4 + q]));
                for s in 0..2 {
                    for q1 in [1, 3] {
                        // Pixel j = 8m + 4s + q1 and j - 1: column j lies
                        // just before column j - 1.
                        let j = 8 * m + 4 * s + q1;
                        let mut out = _mm512_permutex2var_epi64(w[q1], si[s], w[q1 - 1]);
                        if premultiply {
                            // SAFETY: the target features.
                            out = unsafe { premultiply64(out) };
                        }
                        let o = (width - 1 - x0 - j) * 32;
                        // SAFETY: columns x0 + j - 1 and x0 + j, 64 bytes
                        // from `o`, are inside `cols`.
                        unsafe { _mm512_storeu_si512(cols.as_mut_ptr().add(o).cast(), out) };
                    }
                }
            }
        }
        width / 16 * 16
    }

    /// 16 RGBA pixels premultiplied (`premultiply_words_512` on each half).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW.
    #[inline(always)]
    unsafe fn premultiply64(v: __m512i) -> __m512i {
        // SAFETY (the block): the caller's target features.
        unsafe {
            let zero = _mm512_setzero_si512();
            let lo = premultiply_words_512(_mm512_unpacklo_epi8(v, zero));
            let hi = premultiply_words_512(_mm512_unpackhi_epi8(v, zero));
            // In-lane unpacks and packs undo each other's order.
            _mm512_packus_epi16(lo, hi)
        }
    }

    /// RGB strips (16 rows, 48-byte columns), 16 pixels at a time: each
    /// row's 48 bytes widened to 4-byte pixels, turned as 4-byte pixels,
    /// each column narrowed back. Returns the pixels done (a multiple of
    /// 16); the caller does the rest.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VBMI; `src` and `cols` hold
    /// `16 * width` pixels.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn columns_rgb(
        src: &[u8],
        width: usize,
        planes: bool,
        cols: &mut [u8],
    ) -> usize {
        const R: usize = 16;
        assert!(src.len() == R * width * 3 && cols.len() == src.len());
        let row = width * 3;
        // SAFETY: the target features.
        let (widen, narrow) = unsafe { rgb_permutes() };
        const BYTES48: __mmask64 = (1 << 48) - 1;
        if width < 16 {
            return 0;
        }
        for x0 in (0..width - 15).step_by(16) {
            // SAFETY: rows 0..16, pixels x0..x0 + 16 (48 bytes, the load
            // masked to them) are inside `src`.
            let r: [__m512i; R] = std::array::from_fn(|i| unsafe {
                let p = src.as_ptr().add(i * row + x0 * 3);
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(AHEAD).cast());
                _mm512_permutexvar_epi8(widen, _mm512_maskz_loadu_epi8(BYTES48, p.cast()))
            });
            // SAFETY: the target features.
            let px = unsafe { dwords16x16(&r) };
            for (j, col) in px.into_iter().enumerate() {
                let c = _mm512_permutexvar_epi8(narrow, col);
                if planes {
                    // SAFETY: column x0 + j's 16 bytes in each plane
                    // are inside `cols`.
                    unsafe {
                        let p = cols.as_mut_ptr().add((width - 1 - x0 - j) * 16);
                        let plane = width * 16;
                        _mm_storeu_si128(p.cast(), _mm512_castsi512_si128(c));
                        _mm_storeu_si128(p.add(plane).cast(), _mm512_extracti32x4_epi32::<1>(c));
                        _mm_storeu_si128(
                            p.add(2 * plane).cast(),
                            _mm512_extracti32x4_epi32::<2>(c),
                        );
                    }
                    continue;
                }
                let o = (width - 1 - x0 - j) * 48;
                // SAFETY: column x0 + j, 48 bytes from `o` (the store
                // masked to them), is inside `cols`.
                unsafe {
                    let p = cols.as_mut_ptr().add(o);
                    _mm512_mask_storeu_epi8(p.cast(), BYTES48, c);
                }
            }
        }
        width / 16 * 16
    }

    /// Gray strips (32 rows, 32-byte columns), 16 pixels at a time: each
    /// 256-bit register holds 16 pixels of row i and of row i + 16 (one per
    /// 128-bit lane), and four rounds of in-lane unpacks (bytes, words,
    /// dwords, qwords) leave each register one column: rows 0..16 in one
    /// lane, 16..32 in the other. Returns the pixels done (a multiple of
    /// 16); the caller does the rest.
    ///
    /// # Safety
    /// The CPU must support AVX2; `src` and `cols` hold `32 * width` bytes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn columns_gray(src: &[u8], width: usize, cols: &mut [u8]) -> usize {
        const R: usize = 32;
        assert!(src.len() == R * width && cols.len() == src.len());
        if width < 16 {
            return 0;
        }
        for x0 in (0..width - 15).step_by(16) {
            // SAFETY: rows i and i + 16, pixels x0..x0 + 16, are inside `src`.
            let r: [__m256i; 16] = std::array::from_fn(|i| unsafe {
                let (a, b) = (
                    src.as_ptr().add(i * width + x0),
                    src.as_ptr().add((i + 16) * width + x0),
                );
                _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(AHEAD).cast());
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(AHEAD).cast());
                _mm256_loadu2_m128i(b.cast(), a.cast())
            });
            // SAFETY: the target features.
            let cols16 = unsafe { bytes16x16(&r) };
            for (p, col) in cols16.into_iter().enumerate() {
                let o = (width - 1 - x0 - p) * R;
                // SAFETY: column x0 + p's 32 bytes are inside `cols`.
                unsafe { _mm256_storeu_si256(cols.as_mut_ptr().add(o).cast(), col) };
            }
        }
        width / 16 * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::resize::premultiply;

    /// The columns against the definition, premultiplied or not, on every
    /// CPU path, for widths around the 16-pixel blocks.
    #[test]
    fn columns_equal_the_definition_on_every_path() {
        for channels in [1, 3, 4] {
            let rows = strip_rows(channels);
            for width in [1, 2, 15, 16, 17, 31, 32, 33, 47, 100, 257] {
                let src: Vec<u8> = (0..rows * width * channels)
                    .map(|i| ((i * 131 + i / 5) % 256) as u8)
                    .collect();
                let lane = rows * channels;
                let mut want = vec![0u8; src.len()];
                for j in 0..width {
                    for r in 0..rows {
                        for ch in 0..channels {
                            want[(width - 1 - j) * lane + r * channels + ch] =
                                src[(r * width + j) * channels + ch];
                        }
                    }
                }
                let mut want_pre = want.clone();
                premultiply(&mut want_pre);
                // The same columns cut into 16-byte pieces, plane by plane.
                let pieces = |cols: &[u8]| -> Vec<u8> {
                    let mut out = vec![0u8; cols.len()];
                    for j in 0..width {
                        for s in 0..lane / 16 {
                            out[s * 16 * width + (width - 1 - j) * 16..][..16]
                                .copy_from_slice(&cols[(width - 1 - j) * lane + 16 * s..][..16]);
                        }
                    }
                    out
                };
                for cpu in Cpu::available() {
                    for pre in [false, channels == 4] {
                        for planes in [false, true] {
                            let expect = if pre { &want_pre } else { &want };
                            let expect = if planes {
                                pieces(expect)
                            } else {
                                expect.clone()
                            };
                            // Over the complement of the answer: a byte not
                            // written shows.
                            let mut got: Vec<u8> = expect.iter().map(|b| !b).collect();
                            to_columns_with(cpu, &src, width, channels, pre, planes, &mut got);
                            assert!(
                                got == expect,
                                "{cpu:?} {channels} channels, width {width}, premultiplied {pre}, planes {planes}"
                            );
                        }
                    }
                }
            }
        }
    }
}
