//! RGB to gray in AVX2: the same integer formula as
//! [`crate::ops::point::luma`], 16 pixels at a time (three 16-byte loads
//! deinterleaved with byte shuffles, then two 16-bit multiply-adds per
//! pixel pair). The compiler left the portable loop scalar (3-byte pixels);
//! this path measured about 3x faster.
#![allow(unsafe_code)]

use crate::ops::point::luma;
use crate::simd::Cpu;

/// RGB pixels of `src` to gray in `dst` (one byte per pixel) on path `cpu`.
pub(crate) fn gray_rgb_with(cpu: Cpu, src: &[u8], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx2 {
        // SAFETY: the CPU runs AVX2 (checked by `clamp`).
        return unsafe { x86::gray_rgb(src, dst) };
    }
    let _ = cpu;
    portable(src, dst)
}

fn portable(src: &[u8], dst: &mut [u8]) {
    let (px, _) = src.as_chunks::<3>();
    for (o, &[r, g, b]) in dst.iter_mut().zip(px) {
        *o = luma(r, g, b);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gray_rgb(src: &[u8], dst: &mut [u8]) {
        let n = (src.len() / 3).min(dst.len());
        let full = n / 16 * 16;
        // SAFETY: reads the 16 bytes of the array.
        let m = |v: [i8; 16]| unsafe { _mm_loadu_si128(v.as_ptr().cast()) };
        const Z: i8 = -128;
        let r = [
            m([0, 3, 6, 9, 12, 15, Z, Z, Z, Z, Z, Z, Z, Z, Z, Z]),
            m([Z, Z, Z, Z, Z, Z, 2, 5, 8, 11, 14, Z, Z, Z, Z, Z]),
            m([Z, Z, Z, Z, Z, Z, Z, Z, Z, Z, Z, 1, 4, 7, 10, 13]),
        ];
        let g = [
            m([1, 4, 7, 10, 13, Z, Z, Z, Z, Z, Z, Z, Z, Z, Z, Z]),
            m([Z, Z, Z, Z, Z, 0, 3, 6, 9, 12, 15, Z, Z, Z, Z, Z]),
            m([Z, Z, Z, Z, Z, Z, Z, Z, Z, Z, Z, 2, 5, 8, 11, 14]),
        ];
        let b = [
            m([2, 5, 8, 11, 14, Z, Z, Z, Z, Z, Z, Z, Z, Z, Z, Z]),
            m([Z, Z, Z, Z, Z, 1, 4, 7, 10, 13, Z, Z, Z, Z, Z, Z]),
            m([Z, Z, Z, Z, Z, Z, Z, Z, Z, Z, 0, 3, 6, 9, 12, 15]),
        ];
        let w_rg = _mm256_set1_epi32((19235 << 16) | 9798);
        let w_b1 = _mm256_set1_epi32((16384 << 16) | 3735);
        let ones = _mm256_set1_epi16(1);
        let mut i = 0;
        while i < full {
            // SAFETY: pixels i..i + 16 are 48 bytes inside `src`, 16 inside `dst`.
            unsafe {
                let p = src.as_ptr().add(3 * i);
                let v = [
                    _mm_loadu_si128(p.cast()),
                    _mm_loadu_si128(p.add(16).cast()),
                    _mm_loadu_si128(p.add(32).cast()),
                ];
                let gather = |mask: &[__m128i; 3]| {
                    _mm_or_si128(
                        _mm_or_si128(
                            _mm_shuffle_epi8(v[0], mask[0]),
                            _mm_shuffle_epi8(v[1], mask[1]),
                        ),
                        _mm_shuffle_epi8(v[2], mask[2]),
                    )
                };
                let (r16, g16, b16) = (
                    _mm256_cvtepu8_epi16(gather(&r)),
                    _mm256_cvtepu8_epi16(gather(&g)),
                    _mm256_cvtepu8_epi16(gather(&b)),
                );
                let y = |rg: __m256i, b1: __m256i| {
                    _mm256_srli_epi32::<15>(_mm256_add_epi32(
                        _mm256_madd_epi16(rg, w_rg),
                        _mm256_madd_epi16(b1, w_b1),
                    ))
                };
                let lo = y(
                    _mm256_unpacklo_epi16(r16, g16),
                    _mm256_unpacklo_epi16(b16, ones),
                );
                let hi = y(
                    _mm256_unpackhi_epi16(r16, g16),
                    _mm256_unpackhi_epi16(b16, ones),
                );
                let w = _mm256_packs_epi32(lo, hi);
                let bytes = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(w, w));
                _mm_storeu_si128(
                    dst.as_mut_ptr().add(i).cast(),
                    _mm256_castsi256_si128(bytes),
                );
            }
            i += 16;
        }
        super::portable(&src[3 * full..3 * n], &mut dst[full..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_equals_the_formula_on_every_colour_and_tail() {
        // All 2^24 colours, as one long row, then odd lengths for the tails.
        let all: Vec<u8> = (0u32..1 << 24)
            .flat_map(|c| [(c >> 16) as u8, (c >> 8) as u8, c as u8])
            .collect();
        let want: Vec<u8> = all
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect();
        for cpu in Cpu::available() {
            let mut got = vec![0u8; want.len()];
            gray_rgb_with(cpu, &all, &mut got);
            assert!(got == want, "{}", cpu.name());
            for n in [0, 1, 15, 16, 17, 31, 33] {
                let mut got = vec![0u8; n];
                gray_rgb_with(cpu, &all[..3 * n], &mut got);
                assert_eq!(got, want[..n], "{} length {n}", cpu.name());
            }
        }
    }
}
