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

use crate::ops::resize::{Coeffs, horizontal_row, premultiply, vertical_row};
use crate::simd::Cpu;

/// Taps per group of the horizontal kernel for `channels`.
fn group_taps(channels: usize) -> usize {
    if channels == 1 { 16 } else { 4 }
}

/// The split weights of two taps (the second 0 if absent), each half's
/// two i16 side by side in one i32, as the 16-bit multiply-add takes them.
fn split_pair(p: &[i32]) -> (i32, i32) {
    let pair = |a: i16, b: i16| (i32::from(b) << 16) | i32::from(a as u16);
    let (h0, l0) = split(p[0]);
    let (h1, l1) = split(p.get(1).copied().unwrap_or(0));
    (pair(h0, h1), pair(l0, l1))
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
    if super::rows::vertical_digits_with(cpu, rows, k, out) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if cpu.vnni() {
        // SAFETY: the CPU runs AVX-512 (so AVX2), VNNI and VL (`vnni`).
        return unsafe { x86::vertical_vnni(rows, k, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx2 {
        // SAFETY: the CPU runs AVX2 (checked by `clamp`).
        return unsafe { x86::vertical(rows, k, out) };
    }
    let _ = cpu;
    vertical_row(rows, k, out)
}

/// Checks `columns_*`'s arguments: `cols` holds whole `lane`-byte
/// columns and `out` one lane per output pixel, every tap window is
/// inside the columns and every pixel's pairs inside the table. Returns
/// the input and output widths.
pub(crate) fn column_shape(
    cols: &[u8],
    lane: usize,
    table: &PairTable,
    out: &[u8],
) -> (usize, usize) {
    let in_w = cols.len() / lane;
    let out_w = table.pixels.len();
    assert!(out.len() == out_w * lane && cols.len() == in_w * lane);
    // Every window ends by `reach`, and `PairTable::new` gives each
    // pixel its pairs.
    assert!(table.reach <= in_w);
    (in_w, out_w)
}

/// Rows per strip of the column kernel for `channels`-byte pixels, so that
/// a strip's column (one pixel of each of its rows) is 32 bytes (gray,
/// RGBA) or 48 (RGB): whole 16-byte vectors.
pub(crate) fn strip_rows(channels: usize) -> usize {
    match channels {
        1 => 32,
        3 => 16,
        4 => 8,
        _ => 0,
    }
}

/// The horizontal weights laid out for [`columns_with`]: per output pixel,
/// its taps in pairs, each pair's split weights as one i32 per half (the
/// two taps' 16-bit halves side by side, as the 16-bit multiply-add takes
/// them; an odd last tap pairs with a zero weight).
#[derive(Debug)]
pub(crate) struct PairTable {
    /// (first input pixel, taps, offset of the first pair in `pairs`).
    pub(super) pixels: Vec<(usize, usize, usize)>,
    /// Per pair of taps: the high halves' i32, the low halves' i32.
    pub(super) pairs: Vec<(i32, i32)>,
    /// The input columns the taps reach (the end of the last window):
    /// checked against the strip once per call instead of per pixel.
    pub(super) reach: usize,
}

impl PairTable {
    pub(crate) fn new(c: &Coeffs) -> Self {
        let (mut pairs, mut pixels) = (Vec::new(), Vec::new());
        for (xx, &(xmin, count)) in c.bounds.iter().enumerate() {
            let w = &c.weights[xx * c.ksize..xx * c.ksize + count];
            pixels.push((xmin, count, pairs.len()));
            pairs.extend(w.chunks(2).map(split_pair));
        }
        let reach = c.bounds.iter().map(|&(x, n)| x + n).max().unwrap_or(0);
        Self {
            pixels,
            pairs,
            reach,
        }
    }
}

/// The horizontal pass of a strip of rows, given as columns: `cols` holds
/// input column `j` of the strip (`lane` bytes: one pixel of each row, top
/// down) at `cols[(in_w - 1 - j) * lane..]`, which is the strip turned by
/// 90 degrees; output column `x` goes to `out[(out_w - 1 - x) * lane..]`,
/// so that a turn by 270 degrees makes the output strip. Every value is
/// the sum [`horizontal_row`] computes, but the multiply-adds run down the
/// columns (each weight applies to a whole vector of rows), as in the
/// vertical pass, instead of across one pixel's taps. Returns false, doing
/// nothing, when `cpu` has no such kernel (the caller resamples row by row).
pub(crate) fn columns_with(
    cpu: Cpu,
    cols: &[u8],
    lane: usize,
    table: &PairTable,
    out: &mut [u8],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if cpu.vbmi() && cpu.vnni() && super::columns::takes(lane) {
        // SAFETY: the CPU runs AVX-512 F, BW, VBMI (`vbmi`) and VNNI; the
        // lane is one the kernel takes.
        unsafe { super::columns::columns_vbmi(cols, lane, table, out) };
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if cpu.vnni() && (lane.is_multiple_of(32) || lane == 48) {
        // SAFETY: the CPU runs AVX-512 F, BW, VNNI and VL (`vnni`).
        unsafe { x86::columns_512(cols, lane, table, out) };
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx2 && lane.is_multiple_of(16) {
        if cpu.vnni() {
            // SAFETY: the CPU runs AVX-512 (checked by `clamp`), VNNI and VL
            // (just checked).
            unsafe { x86::columns_vnni(cols, lane, table, out) };
        } else {
            // SAFETY: the CPU runs AVX2 (checked by `clamp`).
            unsafe { x86::columns(cols, lane, table, out) };
        }
        return true;
    }
    let _ = (cpu, cols, lane, table, out);
    false
}

/// [`premultiply`] on path `cpu`.
pub(crate) fn premultiply_with(cpu: Cpu, px: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx512 {
        // SAFETY: the CPU runs AVX-512 F and BW (checked by `clamp`).
        return unsafe { x86::premultiply_512(px) };
    }
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx2 {
        // SAFETY: the CPU runs AVX2 (checked by `clamp`).
        return unsafe { x86::premultiply(px) };
    }
    let _ = cpu;
    premultiply(px)
}

/// 8 RGBA pixels of 16-bit values (two per 128-bit lane) premultiplied:
/// `c * a / 255` rounded as [`premultiply`] does, alpha words kept. Shared
/// by the AVX-512 premultiply and the RGBA strip turn, which applies it on
/// the way.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) fn premultiply_words_512(v: std::arch::x86_64::__m512i) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    // Per 128-bit lane: each pixel's alpha word in all four of its words.
    let alpha = _mm512_broadcast_i32x4(_mm_setr_epi8(
        6, 7, 6, 7, 6, 7, 6, 7, 14, 15, 14, 15, 14, 15, 14, 15,
    ));
    let a = _mm512_shuffle_epi8(v, alpha);
    let t = _mm512_add_epi16(_mm512_mullo_epi16(v, a), _mm512_set1_epi16(128));
    let r = _mm512_srli_epi16::<8>(_mm512_add_epi16(t, _mm512_srli_epi16::<8>(t)));
    // Words 3 and 7 of each lane are alpha: kept.
    _mm512_mask_blend_epi16(0x8888_8888, r, v)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{
        HorizontalTable, PairTable, column_shape, group_taps, premultiply_words_512, split_pair,
    };
    use crate::ops::resize::{Coeffs, HALF, clip8, premultiply as premultiply_portable};

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
        // SAFETY: forwarded; AVX2 is enabled here.
        unsafe { vertical_body::<Madd>(rows, k, out) }
    }

    /// [`vertical`] with the VNNI multiply-accumulate (see [`columns_vnni`]),
    /// 32 values per 512-bit step, then the 256-bit body for the rest.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW, VNNI and VL; otherwise as
    /// [`vertical`].
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni,avx512vl")]
    pub(super) unsafe fn vertical_vnni(rows: &[&[u8]], k: &[i32], out: &mut [u8]) {
        let len = out.len();
        assert!(rows.len() == k.len() && rows.iter().all(|r| r.len() >= len));
        let (w, ptrs) = pairs(rows, k);
        let zero = [0u8; 32];
        let mut x = 0;
        while x + 32 <= len {
            let mut acc = [_mm512_setzero_si512(); 4];
            for (&(a, b), &(wh, wl)) in ptrs.iter().zip(&w) {
                // SAFETY: x + 32 <= len <= every row's length; an odd last
                // row's partner is `zero`, 32 bytes.
                unsafe {
                    pair_512(
                        &mut acc,
                        a.add(x),
                        b.map_or(zero.as_ptr(), |b| b.add(x)),
                        wh,
                        wl,
                    )
                };
            }
            // SAFETY: out holds x + 32 bytes.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(x).cast(), bytes32(acc)) };
            x += 32;
        }
        // SAFETY: forwarded; the features are enabled here.
        unsafe { vertical_from::<Vnni>(rows, k, &w, &ptrs, out, x) }
    }

    /// A row pair's split weights, and its rows' starts (an odd last row
    /// pairs with zeros, weight 0).
    type Pairs = (Vec<(i32, i32)>, Vec<(*const u8, Option<*const u8>)>);

    /// The weights in pairs, split once per output row, and the rows'
    /// starts: see [`Pairs`].
    fn pairs(rows: &[&[u8]], k: &[i32]) -> Pairs {
        let w = k.chunks(2).map(split_pair).collect();
        let ptrs = rows
            .chunks(2)
            .map(|p| match p {
                [a, b] => (a.as_ptr(), Some(b.as_ptr())),
                _ => (p[0].as_ptr(), None),
            })
            .collect();
        (w, ptrs)
    }

    /// The body of [`vertical`], inlined into it.
    ///
    /// # Safety
    /// As [`vertical`], with `D`'s features.
    #[inline(always)]
    unsafe fn vertical_body<D: Dot>(rows: &[&[u8]], k: &[i32], out: &mut [u8]) {
        let len = out.len();
        assert!(rows.len() == k.len() && rows.iter().all(|r| r.len() >= len));
        let (w, ptrs) = pairs(rows, k);
        // SAFETY: forwarded.
        unsafe { vertical_from::<D>(rows, k, &w, &ptrs, out, 0) }
    }

    /// Output values `from..` of the vertical pass, 32 and 16 at a time,
    /// then one by one.
    ///
    /// # Safety
    /// As [`vertical`], with `D`'s features; `w` and `ptrs` are
    /// [`pairs`]`(rows, k)`, every row at least `out.len()` bytes.
    #[inline(always)]
    unsafe fn vertical_from<D: Dot>(
        rows: &[&[u8]],
        k: &[i32],
        w: &[(i32, i32)],
        ptrs: &[(*const u8, Option<*const u8>)],
        out: &mut [u8],
        from: usize,
    ) {
        let len = out.len();
        let zero = [0u8; 32];
        let mut x = from;
        // SAFETY (both loops): x + 16 * N <= len <= every row's length, and
        // an odd last row's partner is read at offset 0 of `zero`, 32 bytes.
        while x + 32 <= len {
            unsafe { vertical_n::<2, D>(ptrs, w, &zero, x, out) };
            x += 32;
        }
        while x + 16 <= len {
            unsafe { vertical_n::<1, D>(ptrs, w, &zero, x, out) };
            x += 16;
        }
        for x in x..len {
            let mut s = HALF;
            for (row, &w) in rows.iter().zip(k) {
                s += i32::from(row[x]) * w;
            }
            out[x] = clip8(s);
        }
    }

    /// `16 * N` output values from `x` of the vertical pass: for each pair
    /// of rows (their starts; an odd last row has no second, read from
    /// `zero` instead), two rows per multiply-add.
    ///
    /// # Safety
    /// The CPU must support AVX2; every row holds `x + 16 * N` bytes, as does
    /// `out`; `w` has a pair of weights per pair of rows.
    #[inline(always)]
    unsafe fn vertical_n<const N: usize, D: Dot>(
        ptrs: &[(*const u8, Option<*const u8>)],
        w: &[(i32, i32)],
        zero: &[u8; 32],
        x: usize,
        out: &mut [u8],
    ) {
        // SAFETY: the caller guarantees AVX2.
        let mut acc = [[unsafe { _mm256_setzero_si256() }; 4]; N];
        for (&(a, b), &(wh, wl)) in ptrs.iter().zip(w) {
            // SAFETY: the caller's contract.
            unsafe {
                let a = a.add(x);
                let b = match b {
                    Some(b) => b.add(x),
                    None => zero.as_ptr(),
                };
                let (wh, wl) = (_mm256_set1_epi32(wh), _mm256_set1_epi32(wl));
                for (n, acc) in acc.iter_mut().enumerate() {
                    let a = _mm256_cvtepu8_epi16(_mm_loadu_si128(a.add(16 * n).cast()));
                    let b = _mm256_cvtepu8_epi16(_mm_loadu_si128(b.add(16 * n).cast()));
                    let p0 = _mm256_unpacklo_epi16(a, b);
                    let p1 = _mm256_unpackhi_epi16(a, b);
                    acc[0] = D::dot(acc[0], p0, wh);
                    acc[1] = D::dot(acc[1], p1, wh);
                    acc[2] = D::dot(acc[2], p0, wl);
                    acc[3] = D::dot(acc[3], p1, wl);
                }
            }
        }
        for (n, acc) in acc.into_iter().enumerate() {
            // SAFETY: out holds x + 16 * N bytes.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().add(x + 16 * n).cast(), bytes16(acc)) };
        }
    }

    /// The 16 bytes of the four accumulators of 16 sums (hi halves of
    /// values 0..4 | 8..12 and 4..8 | 12..16, then the lo halves).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn bytes16(acc: [__m256i; 4]) -> __m128i {
        let v0 = finish(acc[0], acc[2]); // values 0..4 | 8..12
        let v1 = finish(acc[1], acc[3]); // values 4..8 | 12..16
        let w = _mm256_packs_epi32(v0, v1);
        let b = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(w, w));
        _mm256_castsi256_si128(b)
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

    /// # Safety
    /// The CPU must support AVX2; `lane` is a multiple of 16, `cols` holds
    /// the strip's input columns and `out` one lane per output pixel of
    /// `table` (see [`super::columns_with`]).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn columns(cols: &[u8], lane: usize, table: &PairTable, out: &mut [u8]) {
        // SAFETY: forwarded.
        unsafe {
            match lane {
                32 => columns_n::<2, Madd>(cols, table, out),
                48 => columns_n::<3, Madd>(cols, table, out),
                _ => columns_n::<1, Madd>(cols, table, out),
            }
        }
    }

    /// [`columns`] with the VNNI multiply-accumulate (`vpdpwssd`, 256-bit):
    /// one instruction for each multiply-add and sum, where AVX2 needs two.
    /// Resizes to a quarter and to 1024 pixels wide, one thread: 10-20%
    /// faster in all (4000x3000 RGB 11.8 -> 9.5 ms).
    ///
    /// # Safety
    /// The CPU must support AVX2, AVX-512 VNNI and VL; otherwise as
    /// [`columns`].
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    pub(super) unsafe fn columns_vnni(cols: &[u8], lane: usize, table: &PairTable, out: &mut [u8]) {
        // SAFETY: forwarded.
        unsafe {
            match lane {
                32 => columns_n::<2, Vnni>(cols, table, out),
                48 => columns_n::<3, Vnni>(cols, table, out),
                _ => columns_n::<1, Vnni>(cols, table, out),
            }
        }
    }

    /// Adds 32 values of two rows (or columns), `a` and `b` (32 bytes each),
    /// times their split weight pair `(wh, wl)`, to the four accumulators
    /// (per 128-bit lane L: values 8L..8L+4 and 8L+4..8L+8, hi then lo
    /// halves).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI; `a` and `b` point to 32
    /// readable bytes.
    #[inline(always)]
    unsafe fn pair_512(acc: &mut [__m512i; 4], a: *const u8, b: *const u8, wh: i32, wl: i32) {
        // SAFETY: the caller's contract.
        unsafe {
            let (wh, wl) = (_mm512_set1_epi32(wh), _mm512_set1_epi32(wl));
            let a = _mm512_cvtepu8_epi16(_mm256_loadu_si256(a.cast()));
            let b = _mm512_cvtepu8_epi16(_mm256_loadu_si256(b.cast()));
            let (p0, p1) = (_mm512_unpacklo_epi16(a, b), _mm512_unpackhi_epi16(a, b));
            acc[0] = _mm512_dpwssd_epi32(acc[0], p0, wh);
            acc[1] = _mm512_dpwssd_epi32(acc[1], p1, wh);
            acc[2] = _mm512_dpwssd_epi32(acc[2], p0, wl);
            acc[3] = _mm512_dpwssd_epi32(acc[3], p1, wl);
        }
    }

    /// The 32 bytes of [`pair_512`]'s accumulators: each sum
    /// `(hi << 11) + lo + HALF >> 22`, clamped to 0..=255, in order.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW.
    #[inline(always)]
    unsafe fn bytes32(acc: [__m512i; 4]) -> __m256i {
        // SAFETY: the caller's contract.
        unsafe {
            let half = _mm512_set1_epi32(HALF);
            let finish = |hi: __m512i, lo: __m512i| {
                let s = _mm512_add_epi32(_mm512_add_epi32(_mm512_slli_epi32::<11>(hi), lo), half);
                _mm512_srai_epi32::<22>(s)
            };
            let w = _mm512_packs_epi32(finish(acc[0], acc[2]), finish(acc[1], acc[3]));
            _mm512_cvtusepi16_epi8(_mm512_max_epi16(w, _mm512_setzero_si512()))
        }
    }

    /// [`columns_vnni`] in 512-bit vectors, for lanes of 32 bytes or a
    /// multiple: 32 values of a column per multiply-accumulate, where the
    /// 256-bit form takes 16. RGB's 48-byte lanes go to [`columns_512_48`].
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW, VNNI and VL; `lane` is a
    /// multiple of 32, or 48; otherwise as [`columns`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl")]
    pub(super) unsafe fn columns_512(cols: &[u8], lane: usize, table: &PairTable, out: &mut [u8]) {
        if lane == 48 {
            // SAFETY: forwarded.
            return unsafe { columns_512_48(cols, table, out) };
        }
        assert!(lane.is_multiple_of(32));
        let (in_w, out_w) = column_shape(cols, lane, table, out);
        let zero = [0u8; 32];
        let col = |j: usize| (in_w - 1 - j) * lane;
        for (xx, &(xmin, count, off)) in table.pixels.iter().enumerate() {
            let o = (out_w - 1 - xx) * lane;
            for v in (0..lane).step_by(32) {
                // SAFETY: as in `columns_n`: taps xmin..xmin + count are
                // input columns (`column_shape`), each `lane` bytes with
                // v + 32 <= lane; an odd last tap pairs with `zero`; the
                // table holds count.div_ceil(2) pairs from `off`; the store
                // is output column xx's lane.
                unsafe {
                    let mut acc = [_mm512_setzero_si512(); 4];
                    for t in (0..count).step_by(2) {
                        let a = cols.as_ptr().add(col(xmin + t) + v);
                        let b = if t + 1 < count {
                            cols.as_ptr().add(col(xmin + t + 1) + v)
                        } else {
                            zero.as_ptr()
                        };
                        let &(wh, wl) = table.pairs.get_unchecked(off + t / 2);
                        pair_512(&mut acc, a, b, wh, wl);
                    }
                    _mm256_storeu_si256(out.as_mut_ptr().add(o + v).cast(), bytes32(acc));
                }
            }
        }
    }

    /// [`columns_512`] for RGB's 48-byte lanes: each pair of taps goes
    /// through the lane's first 32 bytes in one 512-bit vector and its last
    /// 16 in one 256-bit vector, with the weights broadcast once.
    ///
    /// # Safety
    /// As [`columns_512`], with `lane` 48.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl")]
    unsafe fn columns_512_48(cols: &[u8], table: &PairTable, out: &mut [u8]) {
        const LANE: usize = 48;
        let (in_w, out_w) = column_shape(cols, LANE, table, out);
        let zero = [0u8; LANE];
        let col = |j: usize| (in_w - 1 - j) * LANE;
        for (xx, &(xmin, count, off)) in table.pixels.iter().enumerate() {
            let o = (out_w - 1 - xx) * LANE;
            // SAFETY: as in `columns_512`, with each column 48 bytes.
            unsafe {
                let mut acc = [_mm512_setzero_si512(); 4];
                let mut acc16 = [_mm256_setzero_si256(); 4];
                for t in (0..count).step_by(2) {
                    let a = cols.as_ptr().add(col(xmin + t));
                    let b = if t + 1 < count {
                        cols.as_ptr().add(col(xmin + t + 1))
                    } else {
                        zero.as_ptr()
                    };
                    let &(wh, wl) = table.pairs.get_unchecked(off + t / 2);
                    pair_512(&mut acc, a, b, wh, wl);
                    let a16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(a.add(32).cast()));
                    let b16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(b.add(32).cast()));
                    let (q0, q1) = (
                        _mm256_unpacklo_epi16(a16, b16),
                        _mm256_unpackhi_epi16(a16, b16),
                    );
                    let (wh, wl) = (_mm256_set1_epi32(wh), _mm256_set1_epi32(wl));
                    acc16[0] = _mm256_dpwssd_epi32(acc16[0], q0, wh);
                    acc16[1] = _mm256_dpwssd_epi32(acc16[1], q1, wh);
                    acc16[2] = _mm256_dpwssd_epi32(acc16[2], q0, wl);
                    acc16[3] = _mm256_dpwssd_epi32(acc16[3], q1, wl);
                }
                _mm256_storeu_si256(out.as_mut_ptr().add(o).cast(), bytes32(acc));
                _mm_storeu_si128(out.as_mut_ptr().add(o + 32).cast(), bytes16(acc16));
            }
        }
    }

    /// `acc + madd(p, w)`: the sums of the products of 16-bit pairs added
    /// to the 32-bit lanes of `acc`, by one instruction or two. Inlined into
    /// the `#[target_feature]` entry point that calls [`columns_n`].
    trait Dot {
        /// # Safety
        /// The CPU must have the implementation's features.
        unsafe fn dot(acc: __m256i, p: __m256i, w: __m256i) -> __m256i;
    }

    /// AVX2: `vpmaddwd` then `vpaddd`.
    struct Madd;

    impl Dot for Madd {
        #[inline(always)]
        unsafe fn dot(acc: __m256i, p: __m256i, w: __m256i) -> __m256i {
            // SAFETY: the caller guarantees AVX2.
            unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(p, w)) }
        }
    }

    /// AVX-512 VNNI + VL: `vpdpwssd`.
    struct Vnni;

    impl Dot for Vnni {
        #[inline(always)]
        unsafe fn dot(acc: __m256i, p: __m256i, w: __m256i) -> __m256i {
            // SAFETY: the caller guarantees AVX-512 VNNI and VL.
            unsafe { _mm256_dpwssd_epi32(acc, p, w) }
        }
    }

    /// [`columns`] with lanes of `N` vectors of 16 bytes (or one vector at a
    /// time for other lanes): the `N` vectors of a column go through each
    /// pair of taps together, so a weight is broadcast once per pair.
    ///
    /// # Safety
    /// As [`columns`].
    #[inline(always)]
    unsafe fn columns_n<const N: usize, D: Dot>(cols: &[u8], table: &PairTable, out: &mut [u8]) {
        let lane = if N == 1 {
            out.len() / table.pixels.len().max(1)
        } else {
            16 * N
        };
        assert!(lane.is_multiple_of(16) && lane >= 16 * N);
        let (in_w, out_w) = column_shape(cols, lane, table, out);
        let zero = [0u8; 16];
        let col = |j: usize| (in_w - 1 - j) * lane;
        for (xx, &(xmin, count, off)) in table.pixels.iter().enumerate() {
            let o = (out_w - 1 - xx) * lane;
            for v in (0..lane).step_by(16 * N) {
                // SAFETY: taps xmin..xmin + count are input columns
                // (asserted), each `lane` bytes with `v + 16 * N <= lane`;
                // an odd last tap pairs with `zero` (read at offset 0 only);
                // the table holds count.div_ceil(2) pairs from `off`
                // (asserted); the stores are output column xx's lane.
                unsafe {
                    let mut acc = [[_mm256_setzero_si256(); 4]; N];
                    let mut t = 0;
                    while t < count {
                        let a = cols.as_ptr().add(col(xmin + t) + v);
                        let (b, bstep) = if t + 1 < count {
                            (cols.as_ptr().add(col(xmin + t + 1) + v), 16)
                        } else {
                            (zero.as_ptr(), 0)
                        };
                        let &(wh, wl) = table.pairs.get_unchecked(off + t / 2);
                        let (wh, wl) = (_mm256_set1_epi32(wh), _mm256_set1_epi32(wl));
                        for (n, acc) in acc.iter_mut().enumerate() {
                            let a = _mm256_cvtepu8_epi16(_mm_loadu_si128(a.add(16 * n).cast()));
                            let b = _mm256_cvtepu8_epi16(_mm_loadu_si128(b.add(bstep * n).cast()));
                            let p0 = _mm256_unpacklo_epi16(a, b);
                            let p1 = _mm256_unpackhi_epi16(a, b);
                            acc[0] = D::dot(acc[0], p0, wh);
                            acc[1] = D::dot(acc[1], p1, wh);
                            acc[2] = D::dot(acc[2], p0, wl);
                            acc[3] = D::dot(acc[3], p1, wl);
                        }
                        t += 2;
                    }
                    for (n, acc) in acc.into_iter().enumerate() {
                        _mm_storeu_si128(out.as_mut_ptr().add(o + v + 16 * n).cast(), bytes16(acc));
                    }
                }
            }
        }
    }

    /// [`super::premultiply`] 8 pixels at a time: in 16-bit lanes,
    /// `t = c * a + 128` (at most 65153) and `(t + (t >> 8)) >> 8` (the
    /// sum at most 65407) are exact, so the bytes are the portable ones;
    /// alpha is blended back unchanged. The last pixels (fewer than 8) go
    /// the portable way.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn premultiply(px: &mut [u8]) {
        let full = px.len() / 32 * 32;
        // Per 128-bit lane (two pixels of 16-bit values): each pixel's alpha
        // word in all four of its words.
        let alpha = _mm256_setr_epi8(
            6, 7, 6, 7, 6, 7, 6, 7, 14, 15, 14, 15, 14, 15, 14, 15, 6, 7, 6, 7, 6, 7, 6, 7, 14, 15,
            14, 15, 14, 15, 14, 15,
        );
        let round = _mm256_set1_epi16(128);
        let one = |v: __m256i| {
            let a = _mm256_shuffle_epi8(v, alpha);
            let t = _mm256_add_epi16(_mm256_mullo_epi16(v, a), round);
            let r = _mm256_srli_epi16::<8>(_mm256_add_epi16(t, _mm256_srli_epi16::<8>(t)));
            // Words 3 and 7 of each lane are alpha: kept.
            _mm256_blend_epi16::<0b1000_1000>(r, v)
        };
        for chunk in px[..full].chunks_exact_mut(32) {
            // SAFETY: `chunk` is 32 bytes: two 16-byte loads, one 32-byte store.
            unsafe {
                let p = chunk.as_mut_ptr();
                let lo = _mm256_cvtepu8_epi16(_mm_loadu_si128(p.cast()));
                let hi = _mm256_cvtepu8_epi16(_mm_loadu_si128(p.add(16).cast()));
                let b = _mm256_packus_epi16(one(lo), one(hi));
                let b = _mm256_permute4x64_epi64::<0b11_01_10_00>(b);
                _mm256_storeu_si256(p.cast(), b);
            }
        }
        premultiply_portable(&mut px[full..]);
    }

    /// [`premultiply`] in 512-bit vectors, 16 pixels per step, the same
    /// arithmetic as the AVX2 body (which takes the end): a sixth of a
    /// 4000x3000 RGBA resize was the AVX2 body.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn premultiply_512(px: &mut [u8]) {
        let full = px.len() / 64 * 64;
        let one = |v: __m512i| premultiply_words_512(v);
        // The pack interleaves the halves' 8-byte groups lane by lane.
        let order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
        for chunk in px[..full].chunks_exact_mut(64) {
            // SAFETY: `chunk` is 64 bytes: two 32-byte loads, one 64-byte store.
            unsafe {
                let p = chunk.as_mut_ptr();
                let lo = _mm512_cvtepu8_epi16(_mm256_loadu_si256(p.cast()));
                let hi = _mm512_cvtepu8_epi16(_mm256_loadu_si256(p.add(32).cast()));
                let b = _mm512_packus_epi16(one(lo), one(hi));
                _mm512_storeu_si512(p.cast(), _mm512_permutexvar_epi64(order, b));
            }
        }
        // SAFETY: AVX-512 implies AVX2.
        unsafe { premultiply(&mut px[full..]) }
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
    fn premultiply_equals_the_portable_loop_on_every_colour_and_alpha() {
        // Every (colour, alpha) pair, at every offset of the 8-pixel blocks
        // and with a ragged tail.
        let mut px: Vec<u8> = (0..256 * 256)
            .flat_map(|i| {
                let (c, a) = ((i % 256) as u8, (i / 256) as u8);
                [c, 255 - c, c / 3, a]
            })
            .collect();
        px.extend_from_slice(&[9, 200, 77, 130, 255, 0, 3, 1]);
        let mut want = px.clone();
        premultiply(&mut want);
        for cpu in Cpu::available() {
            for skip in [0, 4, 12] {
                let mut got = px[skip..].to_vec();
                premultiply_with(cpu, &mut got);
                assert!(got == want[skip..], "{} skip {skip}", cpu.name());
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
