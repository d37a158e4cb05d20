//! The resampler's vertical pass with byte digits: four input rows per
//! multiply-add.
//!
//! Every value of an output row has the same weights, so the pass runs
//! across the row, 64 values at a time. Each weight below one half in
//! magnitude is written in three signed-byte digits as in
//! [`super::digits::DigitTable`]; the bytes of four rows are interleaved
//! (two rounds of unpacks) so that each 32-bit slot holds one value of the
//! four rows, and the byte multiply-add (`vpdpbusd`) takes all four taps
//! per digit: 12 multiply-adds and 8 unpacks per 64 values and 4 rows,
//! where the 16-bit pairs take 16 multiply-adds and 16 widenings and
//! unpacks. `(S2 << 14) + (S1 << 7) + S0` is Pillow's exact sum; the packs
//! that narrow the sums undo the unpacks' order.
#![allow(unsafe_code)]

use super::digits::{fits, pack_digits};
use crate::simd::Cpu;

/// Whether [`vertical_digits_with`] runs on `cpu` for weights `k`.
pub(crate) fn takes(cpu: Cpu, k: &[i32]) -> bool {
    cpu.vnni() && k.iter().all(|&w| fits(w))
}

/// One output row from `rows` (one per weight of `k`, each at least
/// `out.len()` bytes): the sums of [`super::vertical_row`]. False, doing
/// nothing, where [`takes`] is false.
pub(crate) fn vertical_digits_with(cpu: Cpu, rows: &[&[u8]], k: &[i32], out: &mut [u8]) -> bool {
    if !takes(cpu, k) || rows.is_empty() {
        return false;
    }
    assert!(rows.len() == k.len() && rows.iter().all(|r| r.len() >= out.len()));
    // Groups of four taps; a missing tap repeats the last row with weight 0.
    let groups: Vec<([&[u8]; 4], [i32; 3])> = (0..k.len().div_ceil(4))
        .map(|g| {
            let tap = |i: usize| (4 * g + i).min(k.len() - 1);
            let digits = pack_digits(std::array::from_fn(|i| {
                k.get(4 * g + i).copied().unwrap_or(0)
            }));
            (std::array::from_fn(|i| rows[tap(i)]), digits)
        })
        .collect();
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU runs AVX-512 F, BW and VNNI (`takes`); every row
        // holds `out.len()` bytes (asserted).
        unsafe { x86::vertical(&groups, out) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (groups, out);
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::ops::resize::digits::recombine;

    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI; every row holds at
    /// least `out.len()` bytes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn vertical(groups: &[([&[u8]; 4], [i32; 3])], out: &mut [u8]) {
        for x in (0..out.len()).step_by(64) {
            // The last block masked to the row's end.
            let n = (out.len() - x).min(64);
            let mask: __mmask64 = if n == 64 { !0 } else { (1 << n) - 1 };
            let mut acc = [_mm512_setzero_si512(); 12];
            for (rows, d) in groups {
                // SAFETY: bytes x..x + n of each row exist (the caller's
                // contract); the loads are masked to them.
                let r: [__m512i; 4] = std::array::from_fn(|i| unsafe {
                    _mm512_maskz_loadu_epi8(mask, rows[i].as_ptr().add(x).cast())
                });
                let (a_lo, a_hi) = (
                    _mm512_unpacklo_epi8(r[0], r[1]),
                    _mm512_unpackhi_epi8(r[0], r[1]),
                );
                let (b_lo, b_hi) = (
                    _mm512_unpacklo_epi8(r[2], r[3]),
                    _mm512_unpackhi_epi8(r[2], r[3]),
                );
                // Per 128-bit lane: values 0..4, 4..8, 8..12, 12..16.
                let v = [
                    _mm512_unpacklo_epi16(a_lo, b_lo),
                    _mm512_unpackhi_epi16(a_lo, b_lo),
                    _mm512_unpacklo_epi16(a_hi, b_hi),
                    _mm512_unpackhi_epi16(a_hi, b_hi),
                ];
                let w = d.map(|d| _mm512_set1_epi32(d));
                for (q, v) in v.into_iter().enumerate() {
                    for j in 0..3 {
                        acc[3 * q + j] = _mm512_dpbusd_epi32(acc[3 * q + j], v, w[j]);
                    }
                }
            }
            let s: [__m512i; 4] = std::array::from_fn(|q| recombine(&acc[3 * q..3 * q + 3]));
            let bytes = _mm512_packus_epi16(
                _mm512_packs_epi32(s[0], s[1]),
                _mm512_packs_epi32(s[2], s[3]),
            );
            // SAFETY: bytes x..x + n of `out`, the store masked to them.
            unsafe { _mm512_mask_storeu_epi8(out.as_mut_ptr().add(x).cast(), mask, bytes) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::resize::{Coeffs, Filter, vertical_row};

    /// Against the portable pass on every path that runs it: windows of
    /// every reduction's output rows (tap counts not multiples of four,
    /// rows whose length is not a multiple of 64).
    #[test]
    fn digit_rows_equal_the_portable_pass() {
        for (in_h, out_h, filter) in [
            (301, 75, Filter::Lanczos3),
            (40, 9, Filter::Cubic),
            (10, 5, Filter::Box),
            (23, 4, Filter::Linear),
        ] {
            let c = Coeffs::new(in_h, out_h, filter);
            for len in [1, 63, 64, 65, 200] {
                let img: Vec<Vec<u8>> = (0..in_h)
                    .map(|y| {
                        (0..len)
                            .map(|x| ((x * 37 + y * 101 + x * y) % 256) as u8)
                            .collect()
                    })
                    .collect();
                for yy in 0..out_h {
                    let rows: Vec<&[u8]> = c.window(yy).map(|y| &img[y][..]).collect();
                    let k = &c.weights[yy * c.ksize..][..rows.len()];
                    let mut want = vec![0u8; len];
                    vertical_row(&rows, k, &mut want);
                    for cpu in Cpu::available() {
                        let mut got: Vec<u8> = want.iter().map(|b| !b).collect();
                        if vertical_digits_with(cpu, &rows, k, &mut got) {
                            assert!(
                                got == want,
                                "{cpu:?} {in_h} -> {out_h} {filter:?}, row {yy}"
                            );
                        } else {
                            assert!(!takes(cpu, k));
                        }
                    }
                }
            }
        }
    }

    /// Weights of one half or more go to the other kernels.
    #[test]
    fn large_weights_are_not_taken() {
        let c = Coeffs::new(10, 30, Filter::Lanczos3);
        assert!(!takes(Cpu::detect(), &c.weights[..c.bounds[0].1]));
    }
}
