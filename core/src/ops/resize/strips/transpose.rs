//! Register-level transposes for the resampler's strips: 16x16 blocks
//! of bytes (gray) and of 4-byte values (RGBA pixels, RGB widened), shared
//! by the turns into columns and back ([`super::strips`]).
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
pub(super) use x86::*;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Round 1 and 2 of a transpose of 4-byte pixels: `r[i]` holds
    /// pixels 0..16 of row `i`; returns `v[4g + q]` holding, in 128-bit
    /// lane `L`, pixel `4L + q` of rows `4g..4g + 4`. (Loops, not
    /// closures: a closure here would not inherit the caller's target
    /// features, and each intrinsic would become a call.)
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[inline(always)]
    pub(crate) unsafe fn quads<const R: usize>(r: &[__m512i; R]) -> [__m512i; R] {
        // SAFETY (the block): the caller's target features.
        unsafe {
            // u[2p]: lane L holds pixels 4L, 4L+1 of rows 2p, 2p+1
            // (row-interleaved); u[2p + 1]: pixels 4L+2, 4L+3.
            let mut u = [_mm512_setzero_si512(); R];
            for p in 0..R / 2 {
                u[2 * p] = _mm512_unpacklo_epi32(r[2 * p], r[2 * p + 1]);
                u[2 * p + 1] = _mm512_unpackhi_epi32(r[2 * p], r[2 * p + 1]);
            }
            let mut v = [_mm512_setzero_si512(); R];
            for g in 0..R / 4 {
                for h in 0..2 {
                    let (a, b) = (u[4 * g + h], u[4 * g + 2 + h]);
                    v[4 * g + 2 * h] = _mm512_unpacklo_epi64(a, b);
                    v[4 * g + 2 * h + 1] = _mm512_unpackhi_epi64(a, b);
                }
            }
            v
        }
    }

    /// A 16x16 transpose of 4-byte values: `r[i]` holds values 0..16 of
    /// row `i`; returns `t[j]` holding value `j` of rows 0..16 (the
    /// transpose is its own inverse: rows in, columns out, or the reverse).
    /// Two rounds of unpacks ([`quads`]) and a 4x4 transpose of 128-bit
    /// lanes.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[inline(always)]
    pub(crate) unsafe fn dwords16x16(r: &[__m512i; 16]) -> [__m512i; 16] {
        // SAFETY (all blocks): the caller's target features.
        let v = unsafe { quads(r) };
        let mut t = [v[0]; 16];
        for q in 0..4 {
            // The 4x4 transpose of 128-bit lanes of v[q], v[4+q], v[8+q],
            // v[12+q]: lane L of the result holds rows 4L..4L+4.
            let (v0, v1, v2, v3) = (v[q], v[4 + q], v[8 + q], v[12 + q]);
            unsafe {
                let a0 = _mm512_shuffle_i64x2::<0x44>(v0, v1);
                let a1 = _mm512_shuffle_i64x2::<0xEE>(v0, v1);
                let a2 = _mm512_shuffle_i64x2::<0x44>(v2, v3);
                let a3 = _mm512_shuffle_i64x2::<0xEE>(v2, v3);
                t[q] = _mm512_shuffle_i64x2::<0x88>(a0, a2);
                t[4 + q] = _mm512_shuffle_i64x2::<0xDD>(a0, a2);
                t[8 + q] = _mm512_shuffle_i64x2::<0x88>(a1, a3);
                t[12 + q] = _mm512_shuffle_i64x2::<0xDD>(a1, a3);
            }
        }
        t
    }

    /// A 16x16 transpose of bytes in each 128-bit lane: `r[i]` holds, per
    /// lane, bytes 0..16 of row `i`; returns `t[p]` holding, per lane, byte
    /// `p` of rows 0..16 (its own inverse). Four rounds of unpacks: bytes,
    /// words, dwords, qwords.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline(always)]
    pub(crate) unsafe fn bytes16x16(r: &[__m256i; 16]) -> [__m256i; 16] {
        // SAFETY (the block): the caller's target features.
        unsafe {
            // a[k]: pixels 0..8 (k < 8) or 8..16 of rows 2k', 2k'+1 (k' =
            // k mod 8), as words.
            let mut a = [_mm256_setzero_si256(); 16];
            for k in 0..8 {
                a[k] = _mm256_unpacklo_epi8(r[2 * k], r[2 * k + 1]);
                a[8 + k] = _mm256_unpackhi_epi8(r[2 * k], r[2 * k + 1]);
            }
            // b[4g + k]: pixels 4g..4g+4 of rows 4k..4k+4, as dwords.
            let mut b = [_mm256_setzero_si256(); 16];
            for g in 0..4 {
                for k in 0..4 {
                    let (x, y) = (a[8 * (g / 2) + 2 * k], a[8 * (g / 2) + 2 * k + 1]);
                    b[4 * g + k] = if g % 2 == 0 {
                        _mm256_unpacklo_epi16(x, y)
                    } else {
                        _mm256_unpackhi_epi16(x, y)
                    };
                }
            }
            // c[4g + 2h + m]: pixels 4g + 2m, 4g + 2m + 1 of rows 8h..8h+8.
            let mut c = [_mm256_setzero_si256(); 16];
            for g in 0..4 {
                for h in 0..2 {
                    let (x, y) = (b[4 * g + 2 * h], b[4 * g + 2 * h + 1]);
                    c[4 * g + 2 * h] = _mm256_unpacklo_epi32(x, y);
                    c[4 * g + 2 * h + 1] = _mm256_unpackhi_epi32(x, y);
                }
            }
            // t[p]: pixel p = 4g + 2m + n of rows 0..16.
            let mut t = [_mm256_setzero_si256(); 16];
            for g in 0..4 {
                for m in 0..2 {
                    let (x, y) = (c[4 * g + m], c[4 * g + 2 + m]);
                    t[4 * g + 2 * m] = _mm256_unpacklo_epi64(x, y);
                    t[4 * g + 2 * m + 1] = _mm256_unpackhi_epi64(x, y);
                }
            }
            t
        }
    }

    /// The byte permutes between 16 RGB pixels (48 bytes) and the same
    /// pixels as 4-byte values (the fourth byte a copy of the third):
    /// `(widen, narrow)`.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[inline(always)]
    pub(crate) unsafe fn rgb_permutes() -> (__m512i, __m512i) {
        let widen: [u8; 64] = std::array::from_fn(|i| (i / 4 * 3 + (i % 4).min(2)) as u8);
        let narrow: [u8; 64] = std::array::from_fn(|i| (i / 3 * 4 + i % 3).min(63) as u8);
        // SAFETY: 64-byte arrays; the caller's target features.
        unsafe {
            (
                _mm512_loadu_si512(widen.as_ptr().cast()),
                _mm512_loadu_si512(narrow.as_ptr().cast()),
            )
        }
    }
}
