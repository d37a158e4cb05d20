//! Undoing premultiplied alpha after a resize, in vectors.
//!
//! [`unpremultiply`](super::unpremultiply) divides each colour by its
//! alpha with a table of reciprocals, one pixel at a time: a twelfth of a
//! 4000x3000 RGBA resize to a quarter once the passes themselves were
//! vectorised. Here 16 pixels go at a time in f32: `q = c * (255 / a) +
//! 1/1024` with two roundings (the reciprocal, and one fused multiply-add),
//! so where `255 c / a` is below 256 (larger quotients clamp to 255) `q` is
//! within 3e-5 of it plus 1/1024. A quotient that is not an integer lies at
//! least `1 / a >= 1/254` below the next one, so truncating `q` gives
//! exactly `floor(255 c / a)` (tested on every colour and alpha).
#![allow(unsafe_code)]

use super::unpremultiply;
use crate::simd::Cpu;

/// [`unpremultiply`] on path `cpu`.
pub(crate) fn unpremultiply_with(cpu: Cpu, px: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx512 {
        let done = px.len() / 64 * 64;
        // SAFETY: the CPU runs AVX-512 F (`clamp`); whole 64-byte blocks.
        unsafe { x86::unpremultiply_512(&mut px[..done]) };
        return unpremultiply(&mut px[done..]);
    }
    let _ = cpu;
    unpremultiply(px)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX-512 F; `px.len()` is a multiple of 64.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn unpremultiply_512(px: &mut [u8]) {
        assert!(px.len().is_multiple_of(64));
        let byte = _mm512_set1_epi32(0xff);
        let (k255, eps) = (_mm512_set1_ps(255.0), _mm512_set1_ps(1.0 / 1024.0));
        for chunk in px.chunks_exact_mut(64) {
            // SAFETY: `chunk` is 64 bytes.
            let v = unsafe { _mm512_loadu_si512(chunk.as_ptr().cast()) };
            let a = _mm512_srli_epi32::<24>(v);
            // Alpha 0 and 255 keep their colours.
            let divide = _mm512_cmpneq_epi32_mask(a, _mm512_setzero_si512())
                & _mm512_cmpneq_epi32_mask(a, byte);
            if divide == 0 {
                continue;
            }
            let inv = _mm512_div_ps(k255, _mm512_cvtepi32_ps(a));
            let quotient = |c: __m512i| {
                let q = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), inv, eps);
                _mm512_min_epi32(_mm512_cvttps_epi32(q), byte)
            };
            let r = quotient(_mm512_and_si512(v, byte));
            let g = quotient(_mm512_and_si512(_mm512_srli_epi32::<8>(v), byte));
            let b = quotient(_mm512_and_si512(_mm512_srli_epi32::<16>(v), byte));
            let out = _mm512_or_si512(
                _mm512_or_si512(r, _mm512_slli_epi32::<8>(g)),
                _mm512_or_si512(_mm512_slli_epi32::<16>(b), _mm512_slli_epi32::<24>(a)),
            );
            let out = _mm512_mask_mov_epi32(v, divide, out);
            // SAFETY: as the load.
            unsafe { _mm512_storeu_si512(chunk.as_mut_ptr().cast(), out) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every colour with every alpha, on every path, at every length of a
    /// last partial block.
    #[test]
    fn every_path_divides_like_the_table() {
        let all: Vec<u8> = (0..=255u8)
            .flat_map(|a| (0..=255u8).flat_map(move |c| [c, 255 - c, c / 3, a]))
            .collect();
        let mut want = all.clone();
        unpremultiply(&mut want);
        for cpu in Cpu::available() {
            for cut in [0, 4, 60] {
                let n = all.len() - cut;
                let mut got = all[..n].to_vec();
                unpremultiply_with(cpu, &mut got);
                assert!(got == want[..n], "{cpu:?}, {n} bytes");
            }
        }
    }
}
