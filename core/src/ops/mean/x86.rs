//! The 3x3 mean's single-pass row kernel for x86-64, written once over a
//! vector width ([`Avx512`]: 32 u16 lanes, [`Avx2`]: 16): a later row is
//! fetched ahead, and on AVX-512 whole images can be written with
//! non-temporal stores (see `super::mean::Ahead`).
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::kernels::{Ahead, RECIP};

/// The most lanes a width has: the size of the scratch arrays.
const MAX_B: usize = 32;

/// One vector width's operations on blocks of `B` bytes widened to `B` u16
/// lanes. Every method is `unsafe` and `#[inline(always)]`: it is only
/// called from the `#[target_feature]` entry point of its width
/// ([`row_avx512`], [`row_avx2`]), into which it inlines and whose
/// features it then compiles with (a `#[target_feature]` helper cannot be
/// forced inline, and a call per block costs more than the block).
///
/// # Safety (of every method)
/// The CPU must have the width's features.
trait Width {
    /// Bytes per block, u16 lanes per vector.
    const B: usize;
    type V: Copy;
    unsafe fn zero() -> Self::V;
    /// `bytes[..B]` widened to u16 lanes.
    unsafe fn widen(bytes: &[u8]) -> Self::V;
    /// Bytes `p..p + B` of `row` widened, those outside the row as 0
    /// (`p` may be negative or the block run past the row's end): through
    /// a zeroed copy, unless the width has masked loads.
    #[inline(always)]
    unsafe fn widen_part(row: &[u8], p: isize) -> Self::V {
        let (n, b) = (row.len() as isize, Self::B as isize);
        let (from, to) = (p.clamp(0, n) as usize, (p + b).clamp(0, n) as usize);
        let mut bytes = [0u8; MAX_B];
        if from < to {
            let at = (from as isize - p) as usize;
            bytes[at..at + to - from].copy_from_slice(&row[from..to]);
        }
        // SAFETY: the caller's features.
        unsafe { Self::widen(&bytes) }
    }
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn splat(x: u16) -> Self::V;
    /// `lanes[..B]` as a vector.
    unsafe fn load(lanes: &[u16]) -> Self::V;
    unsafe fn mulhi(a: Self::V, b: Self::V) -> Self::V;
    /// Lane i is lane i - C of (prev, cur) read as one run of 2B lanes.
    unsafe fn left<const C: usize>(prev: Self::V, cur: Self::V) -> Self::V;
    /// Lane i is lane i + C of (cur, next).
    unsafe fn right<const C: usize>(cur: Self::V, next: Self::V) -> Self::V;
    /// Lanes (each < 256) as bytes into `out[..B]`.
    unsafe fn narrow(v: Self::V, out: &mut [u8]);
    /// The lanes of block `p` (which may stick out of either end of the
    /// `n`-byte row) that lie inside it, as bytes into `out`: through a
    /// copy, unless the width has masked stores.
    #[inline(always)]
    unsafe fn narrow_part(v: Self::V, out: &mut [u8], p: isize) {
        let (n, b) = (out.len() as isize, Self::B as isize);
        let mut bytes = [0u8; MAX_B];
        // SAFETY: the caller's features.
        unsafe { Self::narrow(v, &mut bytes) };
        let (from, to) = (p.max(0) as usize, (p + b).min(n) as usize);
        let at = (from as isize - p) as usize;
        out[from..to].copy_from_slice(&bytes[at..at + to - from]);
    }
    /// The reciprocals of block `p`'s window sizes (`rows` rows, and 2 or
    /// 3 columns: fewer at the row's ends) in a row of `n` bytes of
    /// `c`-byte pixels, `n > c`.
    #[inline(always)]
    unsafe fn edge_recip(p: isize, n: isize, c: isize, rows: usize) -> Self::V {
        let mut m = [0u16; MAX_B];
        for (j, m) in m.iter_mut().enumerate() {
            let i = p + j as isize;
            let cols = 1 + usize::from(i >= c) + usize::from(i + c < n);
            // `cols >= 2` (the row is wider than a pixel), so the divisor
            // is at least 2 and its reciprocal fits in 16 bits.
            *m = RECIP[rows * cols.max(2)] as u16;
        }
        // SAFETY: the caller's features.
        unsafe { Self::load(&m) }
    }
    /// Lanes of `lo` then `hi` (each < 256) as bytes into `out[..2B]`,
    /// non-temporally if `stream` (then `out` is 2B-byte aligned).
    unsafe fn store_pair(lo: Self::V, hi: Self::V, out: &mut [u8], stream: bool);
}

/// The mask of the 32 lanes of block `p` whose bytes lie inside an
/// `n`-byte row (lanes `-p..n - p`).
#[inline(always)]
fn inside(p: isize, n: isize) -> u64 {
    let (lo, hi) = ((-p).clamp(0, 32) as u32, (n - p).clamp(0, 32) as u32);
    let below = |k: u32| (1u64 << k) - 1;
    below(hi) & !below(lo)
}

/// AVX-512 F + BW: neighbours by two-source word permutes.
pub(super) struct Avx512;

impl Width for Avx512 {
    const B: usize = 32;
    type V = __m512i;
    #[inline(always)]
    unsafe fn zero() -> __m512i {
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    unsafe fn widen(bytes: &[u8]) -> __m512i {
        let bytes: &[u8; 32] = bytes[..32].try_into().expect("32 bytes");
        unsafe { _mm512_cvtepu8_epi16(_mm256_loadu_si256(bytes.as_ptr().cast())) }
    }
    /// A masked load: the rows' edge blocks through a copy were a
    /// fifteenth of a 3001x2003 gray mean.
    #[inline(always)]
    unsafe fn widen_part(row: &[u8], p: isize) -> __m512i {
        let lanes = inside(p, row.len() as isize);
        // SAFETY: only the bytes the mask names are read, all inside the
        // row (masked lanes are never accessed, so the pointer may lie
        // outside it); the caller's features.
        unsafe {
            let at = row.as_ptr().wrapping_offset(p);
            let v = _mm512_maskz_loadu_epi8(lanes, at.cast());
            _mm512_cvtepu8_epi16(_mm512_castsi512_si256(v))
        }
    }
    #[inline(always)]
    unsafe fn add(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_add_epi16(a, b) }
    }
    #[inline(always)]
    unsafe fn splat(x: u16) -> __m512i {
        unsafe { _mm512_set1_epi16(x as i16) }
    }
    #[inline(always)]
    unsafe fn load(lanes: &[u16]) -> __m512i {
        let lanes: &[u16; 32] = lanes[..32].try_into().expect("32 lanes");
        unsafe { _mm512_loadu_epi16(lanes.as_ptr().cast()) }
    }
    #[inline(always)]
    unsafe fn mulhi(a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_mulhi_epu16(a, b) }
    }
    #[inline(always)]
    unsafe fn left<const C: usize>(prev: __m512i, cur: __m512i) -> __m512i {
        let index: [i16; 32] = std::array::from_fn(|i| (32 + i - C) as i16);
        unsafe { _mm512_permutex2var_epi16(prev, _mm512_loadu_epi16(index.as_ptr()), cur) }
    }
    #[inline(always)]
    unsafe fn right<const C: usize>(cur: __m512i, next: __m512i) -> __m512i {
        let index: [i16; 32] = std::array::from_fn(|i| (i + C) as i16);
        unsafe { _mm512_permutex2var_epi16(cur, _mm512_loadu_epi16(index.as_ptr()), next) }
    }
    #[inline(always)]
    unsafe fn narrow(v: __m512i, out: &mut [u8]) {
        let out: &mut [u8; 32] = (&mut out[..32]).try_into().expect("32 bytes");
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), _mm512_cvtepi16_epi8(v)) }
    }
    /// A masked store (the copy was, with the edges' loads, a fifteenth of
    /// a 3001x2003 gray mean).
    #[inline(always)]
    unsafe fn narrow_part(v: __m512i, out: &mut [u8], p: isize) {
        let lanes = inside(p, out.len() as isize);
        // SAFETY: only the bytes the mask names are written, all inside
        // `out` (masked lanes are never accessed); the caller's features.
        unsafe {
            let at = out.as_mut_ptr().wrapping_offset(p);
            let bytes = _mm512_castsi256_si512(_mm512_cvtepi16_epi8(v));
            _mm512_mask_storeu_epi8(at.cast(), lanes, bytes)
        }
    }
    /// Compares on the lane index instead of a loop per lane.
    #[inline(always)]
    unsafe fn edge_recip(p: isize, n: isize, c: isize, rows: usize) -> __m512i {
        // Lane j has both neighbours where j >= c - p and j < n - c - p
        // (thresholds clamped to the lanes, so they fit 16 bits).
        let (t1, t2) = (
            (c - p).clamp(-1, 33) as i16,
            (n - c - p).clamp(-1, 33) as i16,
        );
        let lanes: [i16; 32] = std::array::from_fn(|j| j as i16);
        unsafe {
            let j = _mm512_loadu_epi16(lanes.as_ptr());
            let both = _mm512_cmpge_epi16_mask(j, _mm512_set1_epi16(t1))
                & _mm512_cmplt_epi16_mask(j, _mm512_set1_epi16(t2));
            _mm512_mask_blend_epi16(
                both,
                _mm512_set1_epi16(RECIP[2 * rows] as i16),
                _mm512_set1_epi16(RECIP[3 * rows] as i16),
            )
        }
    }
    #[inline(always)]
    unsafe fn store_pair(lo: __m512i, hi: __m512i, out: &mut [u8], stream: bool) {
        let out: &mut [u8; 64] = (&mut out[..64]).try_into().expect("64 bytes");
        unsafe {
            // Packing interleaves 128-bit lanes; the permute restores order.
            let order = _mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0);
            let q = _mm512_permutexvar_epi64(order, _mm512_packus_epi16(lo, hi));
            if stream {
                _mm512_stream_si512(out.as_mut_ptr().cast(), q)
            } else {
                _mm512_storeu_si512(out.as_mut_ptr().cast(), q)
            }
        }
    }
}

/// AVX2: neighbours by a 128-bit lane swap and a byte align per side.
pub(super) struct Avx2;

impl Width for Avx2 {
    const B: usize = 16;
    type V = __m256i;
    #[inline(always)]
    unsafe fn zero() -> __m256i {
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn widen(bytes: &[u8]) -> __m256i {
        let bytes: &[u8; 16] = bytes[..16].try_into().expect("16 bytes");
        unsafe { _mm256_cvtepu8_epi16(_mm_loadu_si128(bytes.as_ptr().cast())) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_add_epi16(a, b) }
    }
    #[inline(always)]
    unsafe fn splat(x: u16) -> __m256i {
        unsafe { _mm256_set1_epi16(x as i16) }
    }
    #[inline(always)]
    unsafe fn load(lanes: &[u16]) -> __m256i {
        let lanes: &[u16; 16] = lanes[..16].try_into().expect("16 lanes");
        unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) }
    }
    #[inline(always)]
    unsafe fn mulhi(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_mulhi_epu16(a, b) }
    }
    #[inline(always)]
    unsafe fn left<const C: usize>(prev: __m256i, cur: __m256i) -> __m256i {
        unsafe {
            // (prev's high half, cur's low half): each 128-bit half of the
            // result takes its last C lanes from the half before it.
            let t = _mm256_permute2x128_si256::<0x21>(prev, cur);
            match C {
                1 => _mm256_alignr_epi8::<14>(cur, t),
                2 => _mm256_alignr_epi8::<12>(cur, t),
                3 => _mm256_alignr_epi8::<10>(cur, t),
                _ => _mm256_alignr_epi8::<8>(cur, t),
            }
        }
    }
    #[inline(always)]
    unsafe fn right<const C: usize>(cur: __m256i, next: __m256i) -> __m256i {
        unsafe {
            let t = _mm256_permute2x128_si256::<0x21>(cur, next);
            match C {
                1 => _mm256_alignr_epi8::<2>(t, cur),
                2 => _mm256_alignr_epi8::<4>(t, cur),
                3 => _mm256_alignr_epi8::<6>(t, cur),
                _ => _mm256_alignr_epi8::<8>(t, cur),
            }
        }
    }
    #[inline(always)]
    unsafe fn narrow(v: __m256i, out: &mut [u8]) {
        let out: &mut [u8; 16] = (&mut out[..16]).try_into().expect("16 bytes");
        unsafe {
            let q = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(v, v));
            _mm_storeu_si128(out.as_mut_ptr().cast(), _mm256_castsi256_si128(q))
        }
    }
    #[inline(always)]
    unsafe fn store_pair(lo: __m256i, hi: __m256i, out: &mut [u8], stream: bool) {
        let out: &mut [u8; 32] = (&mut out[..32]).try_into().expect("32 bytes");
        unsafe {
            let q = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(lo, hi));
            if stream {
                _mm256_stream_si256(out.as_mut_ptr().cast(), q)
            } else {
                _mm256_storeu_si256(out.as_mut_ptr().cast(), q)
            }
        }
    }
}

/// The rows of a window that lie inside the image (1 to 3 of them).
struct Rows<'a, const R: usize>([&'a [u8]; R]);

impl<const R: usize> Rows<'_, R> {
    /// Vertical sums of bytes `p..p + B`, all inside the row.
    #[inline(always)]
    unsafe fn inside<W: Width>(&self, p: usize) -> W::V {
        // SAFETY (all three): the caller guarantees the features.
        let mut s = unsafe { W::zero() };
        for row in &self.0 {
            s = unsafe { W::add(s, W::widen(&row[p..p + W::B])) };
        }
        s
    }

    /// [`Self::inside`] for any `p`: bytes outside the row (`p` may be
    /// negative or run past the end) count as 0.
    #[inline(always)]
    unsafe fn anywhere<W: Width>(&self, p: isize) -> W::V {
        let (n, b) = (self.0[0].len() as isize, W::B as isize);
        // SAFETY (all): the caller guarantees the features.
        if p >= 0 && p + b <= n {
            return unsafe { self.inside::<W>(p as usize) };
        }
        let mut s = unsafe { W::zero() };
        if p < n && p + b > 0 {
            // A block straddling an end of the row.
            for row in &self.0 {
                s = unsafe { W::add(s, W::widen_part(row, p)) };
            }
        }
        s
    }
}

/// One output row, AVX-512; see [`row`].
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn row_avx512(
    above: Option<&[u8]>,
    cur: &[u8],
    below: Option<&[u8]>,
    c: usize,
    out: &mut [u8],
    ahead: Ahead,
) {
    // SAFETY: the caller guarantees the features.
    unsafe { row::<Avx512>(above, cur, below, c, out, ahead) }
}

/// One output row, AVX2; see [`row`]. Never non-temporal: at this width
/// the kernel is bound by arithmetic, and streaming stores measured no
/// faster.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn row_avx2(
    above: Option<&[u8]>,
    cur: &[u8],
    below: Option<&[u8]>,
    c: usize,
    out: &mut [u8],
    ahead: Ahead,
) {
    let ahead = Ahead {
        nontemporal: false,
        ..ahead
    };
    // SAFETY: the caller guarantees the features.
    unsafe { row::<Avx2>(above, cur, below, c, out, ahead) }
}

/// One output row in one pass: each block's vertical sums are computed
/// once, and the sums one pixel left and right come from the previous,
/// current and next blocks. Blocks sticking out of the row read zeros, and
/// edge lanes divide by their own window size, so the borders need no
/// scalar code. The inner blocks go in pairs, one store each (non-temporal
/// and aligned if `ahead.nontemporal`), with a prefetch of the same bytes
/// of `ahead.prefetch`.
///
/// # Safety
/// The CPU must have `W`'s features.
#[inline(always)]
unsafe fn row<W: Width>(
    above: Option<&[u8]>,
    cur: &[u8],
    below: Option<&[u8]>,
    c: usize,
    out: &mut [u8],
    ahead: Ahead,
) {
    // SAFETY (every call): the caller guarantees the features.
    macro_rules! by_channels {
        ($rows:expr) => {
            match c {
                1 => unsafe { row_in::<W, _, 1>($rows, out, ahead) },
                2 => unsafe { row_in::<W, _, 2>($rows, out, ahead) },
                3 => unsafe { row_in::<W, _, 3>($rows, out, ahead) },
                4 => unsafe { row_in::<W, _, 4>($rows, out, ahead) },
                _ => panic!("{c} channels"),
            }
        };
    }
    match (above, below) {
        (Some(a), Some(b)) => by_channels!(Rows([a, cur, b])),
        (Some(a), None) | (None, Some(a)) => by_channels!(Rows([a, cur])),
        (None, None) => by_channels!(Rows([cur])),
    }
}

/// [`row`] for `R` rows in the window and `C` channels.
///
/// # Safety
/// The CPU must have `W`'s features.
#[inline(always)]
unsafe fn row_in<W: Width, const R: usize, const C: usize>(
    rows: Rows<'_, R>,
    out: &mut [u8],
    ahead: Ahead,
) {
    let (b, n) = (W::B, rows.0[0].len());
    assert!(
        rows.0.iter().all(|r| r.len() == n)
            && out.len() == n
            && n > C
            && ahead.prefetch.is_none_or(|r| r.len() >= n),
        "row lengths disagree"
    );
    // Pairs start at byte B (so no lane is on the left edge) or, for
    // non-temporal stores, where the output is 64-byte aligned at or after
    // it; they end a block before the row does (so `next` and every lane
    // are inside).
    let first_pair = if ahead.nontemporal {
        b + (out.as_ptr().align_offset(64) + 64 - b) % 64
    } else {
        b
    };
    let pairs = n.saturating_sub(first_pair + b) / (2 * b);
    // Single blocks before the pairs, from the one that ends at
    // `first_pair` back to byte 0; the pairs; single blocks after them.
    let head_start = first_pair as isize - (first_pair.div_ceil(b) * b) as isize;
    let mut p = head_start;
    // SAFETY (every call below): the caller guarantees the features.
    let mut prev = unsafe { rows.anywhere::<W>(p - b as isize) };
    let mut now = unsafe { rows.anywhere::<W>(p) };
    while p < first_pair as isize && pairs > 0 {
        let next = unsafe { rows.anywhere::<W>(p + b as isize) };
        unsafe { single::<W, R, C>(p, prev, now, next, out) };
        (prev, now, p) = (now, next, p + b as isize);
    }
    let inner = unsafe { W::splat(RECIP[3 * R] as u16) };
    // The pairs, with the store kind and the row to fetch fixed per loop
    // (tested once per row, not per pair: 3001x2003 gray 0.238 -> 0.234 ms).
    let fetch = ahead.prefetch.unwrap_or(rows.0[0]);
    macro_rules! pairs_loop {
        ($stream:expr) => {
            for k in 0..pairs {
                let at = first_pair + 2 * b * k;
                crate::simd::prefetch(&fetch[at..]);
                let mid = unsafe { rows.inside::<W>(at + b) };
                let next = unsafe { rows.inside::<W>(at + 2 * b) };
                unsafe {
                    let (lo, hi) = (
                        mean::<W, C>(prev, now, mid, inner),
                        mean::<W, C>(now, mid, next, inner),
                    );
                    // `at` follows the alignment when non-temporal.
                    W::store_pair(lo, hi, &mut out[at..], $stream);
                }
                (prev, now) = (mid, next);
            }
        };
    }
    if ahead.nontemporal {
        pairs_loop!(true);
    } else {
        pairs_loop!(false);
    }
    if pairs > 0 {
        p = (first_pair + 2 * b * pairs) as isize;
    }
    while p < n as isize {
        let next = unsafe { rows.anywhere::<W>(p + b as isize) };
        unsafe { single::<W, R, C>(p, prev, now, next, out) };
        (prev, now, p) = (now, next, p + b as isize);
    }
}

/// The means of the block whose vertical sums are `now`, between `prev`
/// and `next`, multiplied by the reciprocals `m` (lanes < 256).
///
/// # Safety
/// The CPU must have `W`'s features.
#[inline(always)]
unsafe fn mean<W: Width, const C: usize>(prev: W::V, now: W::V, next: W::V, m: W::V) -> W::V {
    // SAFETY: the caller guarantees the features.
    unsafe {
        let sum = W::add(
            W::add(W::left::<C>(prev, now), now),
            W::right::<C>(now, next),
        );
        W::mulhi(sum, m)
    }
}

/// Writes the part inside the row of the block at `p` (which may stick out
/// of either end), edge lanes divided by their own window size.
///
/// # Safety
/// The CPU must have `W`'s features.
#[inline(always)]
unsafe fn single<W: Width, const R: usize, const C: usize>(
    p: isize,
    prev: W::V,
    now: W::V,
    next: W::V,
    out: &mut [u8],
) {
    let (n, b, c) = (out.len() as isize, W::B as isize, C as isize);
    // SAFETY (all): the caller guarantees the features.
    let m = if p >= c && p + b <= n - c {
        unsafe { W::splat(RECIP[3 * R] as u16) }
    } else {
        unsafe { W::edge_recip(p, n, c, R) }
    };
    unsafe { W::narrow_part(mean::<W, C>(prev, now, next, m), out, p) };
}
