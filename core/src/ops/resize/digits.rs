//! The resampler's column pass with byte digits: four taps per
//! multiply-add where every weight is below one half.
//!
//! See [`DigitTable`] for the arithmetic; the vertical pass does the same
//! across rows ([`super::rows`]). Columns come from [`super::strips`]: as
//! they are for 32-byte lanes (gray, RGBA), in 16-byte pieces plane by
//! plane for RGB's 48-byte ones ([`digits_layout`]).
#![allow(unsafe_code)]

use super::Coeffs;
use crate::simd::Cpu;

/// The horizontal weights laid out for [`columns_digits_with`]: each
/// output pixel's taps in groups of four adjacent input columns, and each
/// weight of a group written in three signed-byte digits,
/// `w = d2 * 2^14 + d1 * 2^7 + d0` with `d0`, `d1` in 0..128 and `d2` in
/// -128..128, which holds every weight of magnitude below 2^21 (one half:
/// any reduction to less than about half the size with these filters).
/// The byte multiply-add (`vpdpbusd`: four unsigned bytes times four
/// signed bytes into a 32-bit sum) then takes four taps per instruction
/// and digit, and `(S2 << 14) + (S1 << 7) + S0` is Pillow's exact sum: 12
/// multiply-adds per 4 taps of 32 values where the 16-bit pairs take 16,
/// and half the byte permutes.
#[derive(Debug)]
pub(crate) struct DigitTable {
    /// (offset of the first group in `groups`, groups) per output pixel.
    pixels: Vec<(usize, usize)>,
    /// (first column, the digits of its four taps: `d0`, `d1`, `d2`, each
    /// four bytes, the first column's in the low byte).
    groups: Vec<(usize, [i32; 3])>,
    /// The input width the groups were placed for.
    in_size: usize,
}

impl DigitTable {
    /// The table for `c`, or None when a weight does not fit three digits
    /// or the input is narrower than a group.
    pub(crate) fn new(c: &Coeffs, in_size: usize) -> Option<Self> {
        if in_size < 4 || !c.weights.iter().all(|&w| fits(w)) {
            return None;
        }
        let (mut pixels, mut groups) = (Vec::new(), Vec::new());
        for (xx, &(xmin, count)) in c.bounds.iter().enumerate() {
            let w = &c.weights[xx * c.ksize..][..count];
            let n = count.div_ceil(4);
            pixels.push((groups.len(), n));
            for g in 0..n {
                // A last group that would read past the input's end is
                // moved back onto columns it shares with the one before;
                // their weights there are 0 (already counted).
                let start = (xmin + 4 * g).min(in_size - 4);
                let digits = pack_digits(std::array::from_fn(|k| {
                    let tap = (start + k).wrapping_sub(xmin);
                    if (4 * g..count).contains(&tap) {
                        w[tap]
                    } else {
                        0
                    }
                }));
                groups.push((start, digits));
            }
        }
        Some(Self {
            pixels,
            groups,
            in_size,
        })
    }
}

/// Whether weight `w` (22 fractional bits) has three signed-byte digits:
/// magnitude below one half.
pub(crate) fn fits(w: i32) -> bool {
    (-(1 << 21)..1 << 21).contains(&w)
}

/// The digits of four weights that [`fits`], as the byte multiply-add
/// takes them: `[d0, d1, d2]`, each four bytes, weight `k`'s in byte `k`,
/// with `w = d2 * 2^14 + d1 * 2^7 + d0`.
pub(crate) fn pack_digits(weights: [i32; 4]) -> [i32; 3] {
    let mut digits = [0i32; 3];
    for (k, w) in weights.into_iter().enumerate() {
        for (digit, v) in digits.iter_mut().zip([w & 127, (w >> 7) & 127, w >> 14]) {
            *digit |= (v & 0xff) << (8 * k);
        }
    }
    digits
}

/// The exact sums from the three digit accumulators `[S0, S1, S2]`,
/// rounded as Pillow does: `((S2 << 14) + (S1 << 7) + S0 + HALF) >> 22`
/// (not yet clamped).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn recombine(acc: &[std::arch::x86_64::__m512i]) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    let s = _mm512_add_epi32(
        _mm512_add_epi32(
            _mm512_slli_epi32::<14>(acc[2]),
            _mm512_slli_epi32::<7>(acc[1]),
        ),
        _mm512_add_epi32(acc[0], _mm512_set1_epi32(super::HALF)),
    );
    _mm512_srai_epi32::<22>(s)
}

/// Whether [`columns_digits_with`] runs on `cpu` for `lane`-byte columns,
/// and whether it takes them in 16-byte pieces (see
/// [`super::strips::to_columns_with`]): `None` where it does not run.
pub(crate) fn digits_layout(cpu: Cpu, lane: usize) -> Option<bool> {
    match lane {
        32 | 48 if cpu.vbmi() && cpu.vnni() => Some(lane == 48),
        _ => None,
    }
}

/// [`super::kernels::columns_with`] with a [`DigitTable`]: the same
/// output, from columns laid out as [`digits_layout`] says. False, doing
/// nothing, where it gives `None`.
pub(crate) fn columns_digits_with(
    cpu: Cpu,
    cols: &[u8],
    lane: usize,
    table: &DigitTable,
    out: &mut [u8],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    match digits_layout(cpu, lane) {
        // SAFETY: the CPU runs AVX-512 F, BW, VBMI (`vbmi`) and VNNI.
        Some(false) => unsafe { x86::digits_32(cols, table, out) },
        // SAFETY: as above.
        Some(true) => unsafe { x86::digits_48(cols, table, out) },
        None => return false,
    }
    #[cfg(target_arch = "x86_64")]
    return true;
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (cpu, cols, lane, table, out);
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{DigitTable, recombine};

    /// [`DigitTable`] sums over 32-byte columns: per group, the four
    /// columns' 128 bytes in two loads, and for each 16 values one
    /// two-source byte permute gathering the four taps of a value into a
    /// 32-bit slot (first column in the low byte).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW, VBMI and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    pub(super) unsafe fn digits_32(cols: &[u8], table: &DigitTable, out: &mut [u8]) {
        const LANE: usize = 32;
        let in_w = cols.len() / LANE;
        let out_w = table.pixels.len();
        assert!(out.len() == out_w * LANE && cols.len() == in_w * LANE);
        // `DigitTable::new` keeps every group inside its input width and
        // gives each pixel its groups.
        assert!(table.in_size == in_w);
        // Column s + 3 comes first in memory, s last: value v of tap k
        // (column s + k) is byte (3 - k) * 32 + v of the two registers.
        let index = |half: usize| {
            let idx: [u8; 64] =
                std::array::from_fn(|i| ((3 - i % 4) * LANE + 16 * half + i / 4) as u8);
            // SAFETY: a 64-byte array.
            unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
        };
        let (lo, hi) = (index(0), index(1));
        let finish = |acc: &[__m512i]| {
            _mm512_cvtusepi32_epi8(_mm512_max_epi32(recombine(acc), _mm512_setzero_si512()))
        };
        for (xx, &(first, n)) in table.pixels.iter().enumerate() {
            let mut acc = [_mm512_setzero_si512(); 6];
            // SAFETY: `DigitTable::new` gave pixel xx groups first..first + n.
            let groups = unsafe { table.groups.get_unchecked(first..first + n) };
            for &(start, d) in groups {
                // SAFETY: columns start..start + 4 are inside `cols`
                // (asserted above): 128 bytes from column start + 3.
                let (a, b) = unsafe {
                    let p = cols.as_ptr().add((in_w - 4 - start) * LANE);
                    (
                        _mm512_loadu_si512(p.cast()),
                        _mm512_loadu_si512(p.add(64).cast()),
                    )
                };
                let v = [
                    _mm512_permutex2var_epi8(a, lo, b),
                    _mm512_permutex2var_epi8(a, hi, b),
                ];
                for (h, v) in v.into_iter().enumerate() {
                    for (k, &d) in d.iter().enumerate() {
                        acc[3 * h + k] =
                            _mm512_dpbusd_epi32(acc[3 * h + k], v, _mm512_set1_epi32(d));
                    }
                }
            }
            let o = (out_w - 1 - xx) * LANE;
            // SAFETY: output column xx's 32 bytes are inside `out`.
            unsafe {
                let p = out.as_mut_ptr().add(o);
                _mm_storeu_si128(p.cast(), finish(&acc[..3]));
                _mm_storeu_si128(p.add(16).cast(), finish(&acc[3..]));
            }
        }
    }

    /// [`DigitTable`] sums over RGB's 48-byte columns taken in three
    /// 16-byte pieces, plane by plane (`to_columns_with` with `planes`):
    /// per group and piece, the four columns' 64 bytes in one load and one
    /// byte permute.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW, VBMI and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    pub(super) unsafe fn digits_48(cols: &[u8], table: &DigitTable, out: &mut [u8]) {
        const LANE: usize = 48;
        const PIECE: usize = 16;
        let in_w = cols.len() / LANE;
        let out_w = table.pixels.len();
        assert!(out.len() == out_w * LANE && cols.len() == in_w * LANE);
        // `DigitTable::new` keeps every group inside its input width and
        // gives each pixel its groups.
        assert!(table.in_size == in_w);
        let plane = in_w * PIECE;
        // Column s + 3 comes first in memory, s last: value v of tap k
        // (column s + k) is byte (3 - k) * 16 + v of the load.
        let idx: [u8; 64] = std::array::from_fn(|i| ((3 - i % 4) * PIECE + i / 4) as u8);
        // SAFETY: a 64-byte array.
        let idx = unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) };
        let finish = |acc: &[__m512i]| {
            _mm512_cvtusepi32_epi8(_mm512_max_epi32(recombine(acc), _mm512_setzero_si512()))
        };
        for (xx, &(first, n)) in table.pixels.iter().enumerate() {
            let mut acc = [_mm512_setzero_si512(); 9];
            // SAFETY: `DigitTable::new` gave pixel xx groups first..first + n.
            let groups = unsafe { table.groups.get_unchecked(first..first + n) };
            for &(start, d) in groups {
                let at = (in_w - 4 - start) * PIECE;
                for s in 0..3 {
                    // SAFETY: columns start..start + 4 are inside the
                    // input: 64 bytes of plane s from column start + 3.
                    let v = unsafe { _mm512_loadu_si512(cols.as_ptr().add(s * plane + at).cast()) };
                    let v = _mm512_permutexvar_epi8(idx, v);
                    for (k, &d) in d.iter().enumerate() {
                        acc[3 * s + k] =
                            _mm512_dpbusd_epi32(acc[3 * s + k], v, _mm512_set1_epi32(d));
                    }
                }
            }
            let o = (out_w - 1 - xx) * LANE;
            // SAFETY: output column xx's 48 bytes are inside `out`.
            unsafe {
                let p = out.as_mut_ptr().add(o);
                for s in 0..3 {
                    _mm_storeu_si128(p.add(PIECE * s).cast(), finish(&acc[3 * s..3 * s + 3]));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::resize::{Filter, HALF, clip8};

    /// The digit kernel against the sums written out, for reductions whose
    /// weights fit three digits (windows at both edges, groups moved back
    /// at the right edge, odd tap counts), on every CPU path that has it.
    #[test]
    fn digit_sums_equal_the_weighted_sums() {
        let cases = [
            (64, 16, Filter::Lanczos3),
            (301, 75, Filter::Lanczos3),
            (1000, 257, Filter::Cubic),
            (37, 9, Filter::Linear),
            (50, 10, Filter::Box),
            (8, 3, Filter::Lanczos3),
            (4, 1, Filter::Box),
        ];
        for (in_w, out_w, filter) in cases {
            let c = Coeffs::new(in_w, out_w, filter);
            let table = DigitTable::new(&c, in_w).expect("weights below one half");
            for lane in [32, 48] {
                let cols: Vec<u8> = (0..in_w * lane)
                    .map(|i| ((i * 89 + i / 11) % 256) as u8)
                    .collect();
                let mut want = vec![0u8; out_w * lane];
                for xx in 0..out_w {
                    let (xmin, count) = c.bounds[xx];
                    for v in 0..lane {
                        let mut s = HALF;
                        for t in 0..count {
                            let px = cols[(in_w - 1 - (xmin + t)) * lane + v];
                            s += i32::from(px) * c.weights[xx * c.ksize + t];
                        }
                        want[(out_w - 1 - xx) * lane + v] = clip8(s);
                    }
                }
                for cpu in Cpu::available() {
                    // The columns as the kernel takes them: in 16-byte
                    // pieces, plane by plane, where it says so.
                    let input = match digits_layout(cpu, lane) {
                        None => continue,
                        Some(false) => cols.clone(),
                        Some(true) => {
                            let mut p = vec![0u8; cols.len()];
                            for j in 0..in_w {
                                for s in 0..lane / 16 {
                                    let from = (in_w - 1 - j) * lane + 16 * s;
                                    p[s * 16 * in_w + (in_w - 1 - j) * 16..][..16]
                                        .copy_from_slice(&cols[from..][..16]);
                                }
                            }
                            p
                        }
                    };
                    let mut got: Vec<u8> = want.iter().map(|b| !b).collect();
                    assert!(columns_digits_with(cpu, &input, lane, &table, &mut got));
                    assert!(
                        got == want,
                        "{cpu:?} lane {lane}: {in_w} -> {out_w} {filter:?}"
                    );
                }
            }
        }
    }

    /// Weights of one half or more (an enlargement, a slight reduction)
    /// have no digit table.
    #[test]
    fn large_weights_have_no_digit_table() {
        assert!(DigitTable::new(&Coeffs::new(10, 20, Filter::Lanczos3), 10).is_none());
        assert!(DigitTable::new(&Coeffs::new(100, 90, Filter::Cubic), 100).is_none());
        assert!(DigitTable::new(&Coeffs::new(100, 25, Filter::Lanczos3), 100).is_some());
    }
}
