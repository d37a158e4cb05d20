//! The resampler's two passes in AVX2, computing exactly Pillow's integer
//! sums (see [`crate::ops::resize`]).
//!
//! Pillow's weights have 22 fractional bits: too wide for the 16-bit
//! multiply-add (`vpmaddwd`) that makes convolutions fast. Each weight is
//! split as `w = hi * 2^11 + lo` (`lo` in 0..2^11, `hi` signed, both fit
//! i16), the two halves are multiply-added separately (each sum exact in
//! i32) and recombined as `(sum_hi << 11) + sum_lo`: the same i32 as Pillow's
//! sum, so the result is identical, at twice the multiply-adds of a 16-bit
//! kernel.
//!
//! - Vertical: every output value of a row uses the same weights, so the
//!   pass runs across 16 values at a time, two input rows per multiply-add.
//! - Horizontal: each output pixel has its own window; its taps are taken in
//!   groups (16 taps of gray, 4 pixels of RGB/RGBA), the group's bytes are
//!   shuffled into channel-wise tap pairs, and multiply-added with weight
//!   vectors laid out the same way ([`HorizontalTable`], built once per
//!   resize). Pixels whose last group would read past the row use the
//!   portable code.
#![allow(unsafe_code)]
// Kernels index several slices at the same offsets; index loops say so
// more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

use crate::ops::resize::{Coeffs, horizontal_row, vertical_row};
use crate::simd::Cpu;

/// Taps per group of the horizontal kernel for `channels`.
fn group_taps(channels: usize) -> usize {
    if channels == 1 { 16 } else { 4 }
}

/// A weight split into the two i16 halves of [`self`](crate::ops::resize::kernels).
fn split(w: i32) -> (i16, i16) {
    ((w >> 11) as i16, (w & 0x7ff) as i16)
}

/// The horizontal weights of one resize laid out for the AVX2 kernel: per
/// output pixel, per group of taps, a vector of 16 i16 for each half.
#[derive(Debug)]
pub(crate) struct HorizontalTable {
    channels: usize,
    /// (first input pixel, groups, offset of the first vector in `hi`/`lo`).
    pixels: Vec<(usize, usize, usize)>,
    hi: Vec<i16>,
    lo: Vec<i16>,
}

impl HorizontalTable {
    /// Lays out `c` for `channels`-byte pixels.
    pub(crate) fn new(c: &Coeffs, channels: usize) -> Self {
        let t = group_taps(channels);
        let (mut hi, mut lo, mut pixels) = (Vec::new(), Vec::new(), Vec::new());
        for (xx, &(xmin, count)) in c.bounds.iter().enumerate() {
            let w = &c.weights[xx * c.ksize..xx * c.ksize + count];
            let groups = count.div_ceil(t);
            pixels.push((xmin, groups, hi.len()));
            for g in 0..groups {
                let tap = |i: usize| w.get(g * t + i).copied().unwrap_or(0);
                for lane in 0..16 {
                    let weight = if channels == 1 {
                        tap(lane)
                    } else {
                        // [t t+1 t t+1 ...] in the low half, t+2, t+3 in the high.
                        let half = lane / 8;
                        tap(2 * half + lane % 2)
                    };
                    let (h, l) = split(weight);
                    hi.push(h);
                    lo.push(l);
                }
            }
        }
        Self {
            channels,
            pixels,
            hi,
            lo,
        }
    }
}

/// One row horizontally on path `cpu`: as [`horizontal_row`].
pub(crate) fn horizontal_row_with(
    cpu: Cpu,
    src: &[u8],
    c: &Coeffs,
    table: Option<&HorizontalTable>,
    channels: usize,
    out: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(table) = table.filter(|_| cpu.clamp() >= Cpu::Avx2 && channels != 2) {
        // SAFETY: the CPU runs AVX2 (checked by `clamp`).
        return unsafe { x86::horizontal(src, c, table, out) };
    }
    let _ = (cpu, table);
    horizontal_row(src, channels, c, out)
}

/// One output row vertically on path `cpu`: as [`vertical_row`].
pub(crate) fn vertical_row_with(cpu: Cpu, rows: &[&[u8]], k: &[i32], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx2 {
        // SAFETY: the CPU runs AVX2 (checked by `clamp`).
        return unsafe { x86::vertical(rows, k, out) };
    }
    let _ = cpu;
    vertical_row(rows, k, out)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{HorizontalTable, group_taps, split};
    use crate::ops::resize::{Coeffs, HALF, clip8};

    /// `(hi << 11) + lo + HALF >> 22`, clamped to bytes by the packs.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn finish(hi: __m256i, lo: __m256i) -> __m256i {
        let s = _mm256_add_epi32(
            _mm256_add_epi32(_mm256_slli_epi32::<11>(hi), lo),
            _mm256_set1_epi32(HALF),
        );
        _mm256_srai_epi32::<22>(s)
    }

    /// # Safety
    /// The CPU must support AVX2; `rows.len() == k.len()`, every row at least
    /// `out.len()` bytes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn vertical(rows: &[&[u8]], k: &[i32], out: &mut [u8]) {
        let len = out.len();
        assert!(rows.len() == k.len() && rows.iter().all(|r| r.len() >= len));
        let full = len / 16 * 16;
        let zero = [0u8; 16];
        let mut x = 0;
        while x < full {
            // SAFETY: x + 16 <= len <= every row's length; `zero` is 16 bytes.
            unsafe {
                let mut acc = [_mm256_setzero_si256(); 4]; // hi lo-lanes, hi hi-lanes, lo..., lo...
                let mut i = 0;
                while i < rows.len() {
                    let a = _mm256_cvtepu8_epi16(_mm_loadu_si128(rows[i].as_ptr().add(x).cast()));
                    let (b, wb) = if i + 1 < rows.len() {
                        (rows[i + 1].as_ptr().add(x), k[i + 1])
                    } else {
                        (zero.as_ptr(), 0)
                    };
                    let b = _mm256_cvtepu8_epi16(_mm_loadu_si128(b.cast()));
                    let (ah, al) = split(k[i]);
                    let (bh, bl) = split(wb);
                    let wh = _mm256_set1_epi32((i32::from(bh) << 16) | i32::from(ah as u16));
                    let wl = _mm256_set1_epi32((i32::from(bl) << 16) | i32::from(al as u16));
                    let p0 = _mm256_unpacklo_epi16(a, b);
                    let p1 = _mm256_unpackhi_epi16(a, b);
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(p0, wh));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(p1, wh));
                    acc[2] = _mm256_add_epi32(acc[2], _mm256_madd_epi16(p0, wl));
                    acc[3] = _mm256_add_epi32(acc[3], _mm256_madd_epi16(p1, wl));
                    i += 2;
                }
                let v0 = finish(acc[0], acc[2]); // values 0..4 | 8..12
                let v1 = finish(acc[1], acc[3]); // values 4..8 | 12..16
                let w = _mm256_packs_epi32(v0, v1);
                let b = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(w, w));
                _mm_storeu_si128(out.as_mut_ptr().add(x).cast(), _mm256_castsi256_si128(b));
            }
            x += 16;
        }
        for x in full..len {
            let mut s = HALF;
            for (row, &w) in rows.iter().zip(k) {
                s += i32::from(row[x]) * w;
            }
            out[x] = clip8(s);
        }
    }

    /// # Safety
    /// The CPU must support AVX2; `table` was built from `c` for the row's
    /// channel count (1, 3 or 4), `out` holds `c.bounds.len()` pixels.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn horizontal(
        src: &[u8],
        c: &Coeffs,
        table: &HorizontalTable,
        out: &mut [u8],
    ) {
        let ch = table.channels;
        let t = group_taps(ch);
        assert!(out.len() == c.bounds.len() * ch && table.pixels.len() == c.bounds.len());
        let shuffle = match ch {
            1 => _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            3 => _mm_setr_epi8(0, 3, 1, 4, 2, 5, -128, -128, 6, 9, 7, 10, 8, 11, -128, -128),
            _ => _mm_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15),
        };
        for (xx, &(xmin, groups, off)) in table.pixels.iter().enumerate() {
            let o = &mut out[xx * ch..(xx + 1) * ch];
            // The last group loads 16 bytes from its first tap's pixel.
            if (xmin + (groups.max(1) - 1) * t) * ch + 16 > src.len() {
                scalar_pixel(src, c, xx, ch, o);
                continue;
            }
            // SAFETY: every load ends at or before the last group's end,
            // checked above; the table has `groups` vectors from `off`.
            unsafe {
                let mut hi = _mm256_setzero_si256();
                let mut lo = _mm256_setzero_si256();
                for g in 0..groups {
                    let p = src.as_ptr().add((xmin + g * t) * ch);
                    let px =
                        _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_loadu_si128(p.cast()), shuffle));
                    let wh = _mm256_loadu_si256(table.hi.as_ptr().add(off + 16 * g).cast());
                    let wl = _mm256_loadu_si256(table.lo.as_ptr().add(off + 16 * g).cast());
                    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(px, wh));
                    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(px, wl));
                }
                // Per channel: the sum of the two 128-bit halves (gray: of
                // all eight lanes).
                let h = _mm_add_epi32(
                    _mm256_castsi256_si128(hi),
                    _mm256_extracti128_si256::<1>(hi),
                );
                let l = _mm_add_epi32(
                    _mm256_castsi256_si128(lo),
                    _mm256_extracti128_si256::<1>(lo),
                );
                let (h, l) = if ch == 1 {
                    let h = _mm_hadd_epi32(h, h);
                    let l = _mm_hadd_epi32(l, l);
                    (_mm_hadd_epi32(h, h), _mm_hadd_epi32(l, l))
                } else {
                    (h, l)
                };
                let s = _mm_add_epi32(
                    _mm_add_epi32(_mm_slli_epi32::<11>(h), l),
                    _mm_set1_epi32(HALF),
                );
                let s = _mm_srai_epi32::<22>(s);
                let b = _mm_packus_epi16(_mm_packs_epi32(s, s), _mm_setzero_si128());
                let bytes = (_mm_cvtsi128_si32(b) as u32).to_le_bytes();
                o.copy_from_slice(&bytes[..ch]);
            }
        }
    }

    /// One output pixel the portable way.
    fn scalar_pixel(src: &[u8], c: &Coeffs, xx: usize, ch: usize, o: &mut [u8]) {
        let (xmin, count) = c.bounds[xx];
        let k = &c.weights[xx * c.ksize..xx * c.ksize + count];
        for j in 0..ch {
            let mut s = HALF;
            for (x, &w) in k.iter().enumerate() {
                s += i32::from(src[(xmin + x) * ch + j]) * w;
            }
            o[j] = clip8(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::resize::Filter;

    #[test]
    fn every_path_equals_the_portable_passes() {
        for filter in [Filter::Lanczos3, Filter::Cubic, Filter::Linear, Filter::Box] {
            for (i, o) in [
                (1, 3),
                (3, 1),
                (5, 4),
                (17, 5),
                (40, 9),
                (9, 40),
                (100, 25),
                (33, 64),
                (301, 97),
            ] {
                let c = Coeffs::new(i, o, filter);
                for ch in [1, 3, 4] {
                    let src: Vec<u8> = (0..i * ch).map(|v| ((v * 89 + 7) % 256) as u8).collect();
                    let mut want = vec![0u8; o * ch];
                    horizontal_row(&src, ch, &c, &mut want);
                    let table = HorizontalTable::new(&c, ch);
                    for cpu in Cpu::available() {
                        let mut got = vec![0u8; o * ch];
                        horizontal_row_with(cpu, &src, &c, Some(&table), ch, &mut got);
                        assert_eq!(got, want, "{} {filter:?} {i}->{o} x{ch}", cpu.name());
                    }
                }
                // Vertical: the windows of output rows over rows of 37 values.
                let rows_data: Vec<Vec<u8>> = (0..i)
                    .map(|y| (0..37).map(|x| ((x * 31 + y * 113) % 256) as u8).collect())
                    .collect();
                for yy in 0..o {
                    let rows: Vec<&[u8]> = c.window(yy).map(|y| rows_data[y].as_slice()).collect();
                    let k = &c.weights[yy * c.ksize..yy * c.ksize + rows.len()];
                    let mut want = vec![0u8; 37];
                    vertical_row(&rows, k, &mut want);
                    for cpu in Cpu::available() {
                        let mut got = vec![0u8; 37];
                        vertical_row_with(cpu, &rows, k, &mut got);
                        assert_eq!(got, want, "{} {filter:?} {i}->{o} row {yy}", cpu.name());
                    }
                }
            }
        }
    }

    #[test]
    fn split_weights_recombine_exactly() {
        for w in [
            0,
            1,
            2047,
            2048,
            -1,
            -2048,
            -2049,
            1 << 22,
            -(1 << 21),
            3_000_000,
            -123_456,
        ] {
            let (h, l) = split(w);
            assert_eq!((i32::from(h) << 11) + i32::from(l), w, "{w}");
            assert!((0..2048).contains(&l));
        }
    }
}
