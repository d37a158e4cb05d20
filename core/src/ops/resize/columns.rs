//! The resampler's column pass with AVX-512 VBMI: each pair of taps
//! fetched with one load and spread into 16-bit pairs by byte permutes.
//!
//! In a strip turned into columns (see [`super::strips`]) the two columns a
//! pair of taps reads lie side by side, `lane` bytes each, the second tap's
//! first. [`super::kernels`]' column pass loads each of them, widens each to
//! 16-bit values and interleaves the two (four shuffles per 32 values);
//! here one load takes both columns and one two-source byte permute per 32
//! values places each byte of the two columns in the low byte of its 16-bit
//! slot, zeroing the high bytes. The multiply-adds, their split weights and
//! the rounding are those of [`super::kernels`] (Pillow's exact sums).
#![allow(unsafe_code)]

use super::Coeffs;
use super::kernels::PairTable;
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
        if in_size < 4
            || c.weights
                .iter()
                .any(|&w| !(-(1 << 21)..1 << 21).contains(&w))
        {
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
                let mut digits = [0i32; 3];
                for k in 0..4 {
                    let tap = (start + k).wrapping_sub(xmin);
                    let weight = if (4 * g..count).contains(&tap) {
                        w[tap]
                    } else {
                        0
                    };
                    let d = [weight & 127, (weight >> 7) & 127, weight >> 14];
                    for (digit, v) in digits.iter_mut().zip(d) {
                        *digit |= (v & 0xff) << (8 * k);
                    }
                }
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

/// Whether [`columns_vbmi`] takes `lane`-byte columns.
pub(crate) fn takes(lane: usize) -> bool {
    lane == 32 || lane == 48
}

/// [`super::kernels::columns_with`] for 32- and 48-byte lanes with AVX-512
/// VBMI and VNNI.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VBMI and VNNI; [`takes`]`(lane)`.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn columns_vbmi(cols: &[u8], lane: usize, table: &PairTable, out: &mut [u8]) {
    // SAFETY: forwarded.
    unsafe {
        match lane {
            32 => x86::columns_32(cols, table, out),
            _ => x86::columns_48(cols, table, out),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{DigitTable, PairTable};
    use crate::ops::resize::HALF;

    /// Bytes 4k and 4k + 2 of each dword: the low bytes of its two 16-bit
    /// halves (the high bytes are zeroed by the permutes).
    const LOW_BYTES: __mmask64 = 0x5555_5555_5555_5555;
    /// Byte 4k of each dword: a lone tap's values (the second tap zero).
    const FIRST_BYTES: __mmask64 = 0x1111_1111_1111_1111;

    /// The permute indices putting value `v(k)` of the tap at byte `a` and
    /// of the tap at byte `b` (of the two-register table) into dword `k`'s
    /// 16-bit halves.
    fn pair_index(v: impl Fn(usize) -> usize, a: usize, b: usize) -> __m512i {
        let idx: [u8; 64] = std::array::from_fn(|i| {
            let k = i / 4;
            match i % 4 {
                0 => (a + v(k)) as u8,
                2 => (b + v(k)) as u8,
                _ => 0,
            }
        });
        // SAFETY: a 64-byte array; the load needs AVX-512 F, which the
        // callers (both AVX-512 kernels) have.
        unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
    }

    /// `(hi << 11) + lo + HALF >> 22` per dword.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn finish(hi: __m512i, lo: __m512i) -> __m512i {
        let s = _mm512_add_epi32(_mm512_slli_epi32::<11>(hi), lo);
        _mm512_srai_epi32::<22>(_mm512_add_epi32(s, _mm512_set1_epi32(HALF)))
    }

    /// Checks the arguments as `column_shape` does for the other column
    /// kernels; returns the input and output widths.
    fn shape(cols: &[u8], lane: usize, table: &PairTable, out: &[u8]) -> (usize, usize) {
        let in_w = cols.len() / lane;
        let out_w = table.pixels.len();
        assert!(out.len() == out_w * lane && cols.len() == in_w * lane);
        // Every window ends by `reach`, and `PairTable::new` gives each
        // pixel its pairs.
        assert!(table.reach <= in_w);
        (in_w, out_w)
    }

    /// 32-byte columns (gray strips, RGBA strips). Per 128-bit lane L the
    /// accumulators hold values 8L..8L+4 and 8L+4..8L+8 (the order of the
    /// 16-bit unpacks, which the final packs undo).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW, VBMI and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    pub(super) unsafe fn columns_32(cols: &[u8], table: &PairTable, out: &mut [u8]) {
        const LANE: usize = 32;
        let (in_w, out_w) = shape(cols, LANE, table, out);
        let v0 = |k: usize| 8 * (k / 4) + k % 4;
        let v1 = |k: usize| 8 * (k / 4) + 4 + k % 4;
        // A pair's 64 bytes: the second tap's column, then the first's.
        let (i0, i1) = (pair_index(v0, LANE, 0), pair_index(v1, LANE, 0));
        // A lone tap's 32 bytes.
        let (j0, j1) = (pair_index(v0, 0, 0), pair_index(v1, 0, 0));
        let col = |j: usize| (in_w - 1 - j) * LANE;
        for (xx, &(xmin, count, off)) in table.pixels.iter().enumerate() {
            let mut acc = [_mm512_setzero_si512(); 4];
            let mut add = |p0: __m512i, p1: __m512i, t: usize| {
                // SAFETY: the table holds count.div_ceil(2) pairs from `off`
                // (`shape`).
                let &(wh, wl) = unsafe { table.pairs.get_unchecked(off + t / 2) };
                let (wh, wl) = (_mm512_set1_epi32(wh), _mm512_set1_epi32(wl));
                acc[0] = _mm512_dpwssd_epi32(acc[0], p0, wh);
                acc[1] = _mm512_dpwssd_epi32(acc[1], p1, wh);
                acc[2] = _mm512_dpwssd_epi32(acc[2], p0, wl);
                acc[3] = _mm512_dpwssd_epi32(acc[3], p1, wl);
            };
            let pairs = count / 2 * 2;
            for t in (0..pairs).step_by(2) {
                // SAFETY: columns xmin + t + 1 and xmin + t are inside
                // `cols` (`shape`), 64 bytes from the first.
                let ab = unsafe { _mm512_loadu_si512(cols.as_ptr().add(col(xmin + t + 1)).cast()) };
                let p0 = _mm512_maskz_permutexvar_epi8(LOW_BYTES, i0, ab);
                let p1 = _mm512_maskz_permutexvar_epi8(LOW_BYTES, i1, ab);
                add(p0, p1, t);
            }
            if pairs < count {
                // SAFETY: column xmin + pairs is inside `cols`; the load is
                // masked to its 32 bytes.
                let a = unsafe {
                    _mm512_maskz_loadu_epi8(
                        u32::MAX.into(),
                        cols.as_ptr().add(col(xmin + pairs)).cast(),
                    )
                };
                let p0 = _mm512_maskz_permutexvar_epi8(FIRST_BYTES, j0, a);
                let p1 = _mm512_maskz_permutexvar_epi8(FIRST_BYTES, j1, a);
                add(p0, p1, pairs);
            }
            let w = _mm512_packs_epi32(finish(acc[0], acc[2]), finish(acc[1], acc[3]));
            let bytes = _mm512_cvtusepi16_epi8(_mm512_max_epi16(w, _mm512_setzero_si512()));
            let o = (out_w - 1 - xx) * LANE;
            // SAFETY: output column xx's 32 bytes are inside `out` (`shape`).
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(o).cast(), bytes) };
        }
    }

    /// 48-byte columns (RGB strips): values 0..32 as in [`columns_32`],
    /// values 32..48 in one more vector, in order.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW, VBMI and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    pub(super) unsafe fn columns_48(cols: &[u8], table: &PairTable, out: &mut [u8]) {
        const LANE: usize = 48;
        let (in_w, out_w) = shape(cols, LANE, table, out);
        let v0 = |k: usize| 8 * (k / 4) + k % 4;
        let v1 = |k: usize| 8 * (k / 4) + 4 + k % 4;
        let v2 = |k: usize| 32 + k;
        // A pair's 96 bytes (two registers): the second tap's column, then
        // the first's.
        let i = [
            pair_index(v0, LANE, 0),
            pair_index(v1, LANE, 0),
            pair_index(v2, LANE, 0),
        ];
        let j = [
            pair_index(v0, 0, 0),
            pair_index(v1, 0, 0),
            pair_index(v2, 0, 0),
        ];
        let col = |j: usize| (in_w - 1 - j) * LANE;
        const BYTES32: __mmask64 = u32::MAX as u64;
        const BYTES48: __mmask64 = (1 << 48) - 1;
        for (xx, &(xmin, count, off)) in table.pixels.iter().enumerate() {
            let mut acc = [_mm512_setzero_si512(); 6];
            let mut add = |p: [__m512i; 3], t: usize| {
                // SAFETY: as in `columns_32`.
                let &(wh, wl) = unsafe { table.pairs.get_unchecked(off + t / 2) };
                let (wh, wl) = (_mm512_set1_epi32(wh), _mm512_set1_epi32(wl));
                for n in 0..3 {
                    acc[n] = _mm512_dpwssd_epi32(acc[n], p[n], wh);
                    acc[3 + n] = _mm512_dpwssd_epi32(acc[3 + n], p[n], wl);
                }
            };
            let pairs = count / 2 * 2;
            for t in (0..pairs).step_by(2) {
                // SAFETY: columns xmin + t + 1 and xmin + t are inside
                // `cols` (`shape`): 96 bytes from the first, the second
                // load masked to its 32.
                let (lo, hi) = unsafe {
                    let p = cols.as_ptr().add(col(xmin + t + 1));
                    (
                        _mm512_loadu_si512(p.cast()),
                        _mm512_maskz_loadu_epi8(BYTES32, p.add(64).cast()),
                    )
                };
                let p = i.map(|idx| _mm512_maskz_permutex2var_epi8(LOW_BYTES, lo, idx, hi));
                add(p, t);
            }
            if pairs < count {
                // SAFETY: column xmin + pairs is inside `cols`; the load is
                // masked to its 48 bytes.
                let a = unsafe {
                    _mm512_maskz_loadu_epi8(BYTES48, cols.as_ptr().add(col(xmin + pairs)).cast())
                };
                let p = j.map(|idx| _mm512_maskz_permutexvar_epi8(FIRST_BYTES, idx, a));
                add(p, pairs);
            }
            let w = _mm512_packs_epi32(finish(acc[0], acc[3]), finish(acc[1], acc[4]));
            let first = _mm512_cvtusepi16_epi8(_mm512_max_epi16(w, _mm512_setzero_si512()));
            let last = _mm512_max_epi32(finish(acc[2], acc[5]), _mm512_setzero_si512());
            let o = (out_w - 1 - xx) * LANE;
            // SAFETY: output column xx's 48 bytes are inside `out` (`shape`).
            unsafe {
                let p = out.as_mut_ptr().add(o);
                _mm256_storeu_si256(p.cast(), first);
                _mm_storeu_si128(p.add(32).cast(), _mm512_cvtusepi32_epi8(last));
            }
        }
    }

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
        let half = _mm512_set1_epi32(HALF);
        let finish = |acc: &[__m512i]| {
            let s = _mm512_add_epi32(
                _mm512_add_epi32(
                    _mm512_slli_epi32::<14>(acc[2]),
                    _mm512_slli_epi32::<7>(acc[1]),
                ),
                _mm512_add_epi32(acc[0], half),
            );
            let s = _mm512_max_epi32(_mm512_srai_epi32::<22>(s), _mm512_setzero_si512());
            _mm512_cvtusepi32_epi8(s)
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
        let half = _mm512_set1_epi32(HALF);
        let finish = |acc: &[__m512i]| {
            let s = _mm512_add_epi32(
                _mm512_add_epi32(
                    _mm512_slli_epi32::<14>(acc[2]),
                    _mm512_slli_epi32::<7>(acc[1]),
                ),
                _mm512_add_epi32(acc[0], half),
            );
            let s = _mm512_max_epi32(_mm512_srai_epi32::<22>(s), _mm512_setzero_si512());
            _mm512_cvtusepi32_epi8(s)
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
