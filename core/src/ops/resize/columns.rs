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
//! Where every weight is below one half the byte-digit kernels
//! ([`super::digits`]) run instead; these take the rest (enlargements and
//! slight reductions).
#![allow(unsafe_code)]

use super::kernels::PairTable;

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

    use super::PairTable;
    use crate::ops::resize::HALF;
    use crate::ops::resize::kernels::column_shape;

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

    /// 32-byte columns (gray strips, RGBA strips). Per 128-bit lane L the
    /// accumulators hold values 8L..8L+4 and 8L+4..8L+8 (the order of the
    /// 16-bit unpacks, which the final packs undo).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW, VBMI and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni")]
    pub(super) unsafe fn columns_32(cols: &[u8], table: &PairTable, out: &mut [u8]) {
        const LANE: usize = 32;
        let (in_w, out_w) = column_shape(cols, LANE, table, out);
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
        let (in_w, out_w) = column_shape(cols, LANE, table, out);
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
}
