//! The 3x3 mean's AVX-512 row kernel: one pass per row, a later row fetched
//! ahead, and optionally non-temporal stores (see `super::mean::Ahead`).

use std::arch::x86_64::*;

use super::mean::{Ahead, RECIP};

/// Bytes per block: one 256-bit load of each row, widened to 32 u16 lanes.
const B: usize = 32;

/// The rows of a window that lie inside the image (1 to 3 of them).
struct Rows<'a, const R: usize>([&'a [u8]; R]);

impl<const R: usize> Rows<'_, R> {
    /// Vertical sums of bytes `p..p + 32`, all inside the row, as 32 u16
    /// lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn inside(&self, p: usize) -> __m512i {
        let mut s = _mm512_setzero_si512();
        for row in &self.0 {
            let bytes: &[u8; B] = row[p..p + B].try_into().expect("32 bytes");
            // SAFETY: `bytes` is 32 readable bytes.
            let v = unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) };
            s = _mm512_add_epi16(s, _mm512_cvtepu8_epi16(v));
        }
        s
    }

    /// [`Self::inside`] for any `p`: bytes outside the row (`p` may be
    /// negative or run past the end) count as 0.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn anywhere(&self, p: isize) -> __m512i {
        let n = self.0[0].len() as isize;
        if p >= 0 && p + B as isize <= n {
            return self.inside(p as usize);
        }
        let mut s = _mm512_setzero_si512();
        if p < n && p + (B as isize) > 0 {
            // A block straddling an end of the row: through a zeroed copy.
            let (from, to) = (p.max(0) as usize, (p + B as isize).min(n) as usize);
            let at = (from as isize - p) as usize;
            for row in &self.0 {
                let mut bytes = [0u8; B];
                bytes[at..at + to - from].copy_from_slice(&row[from..to]);
                // SAFETY: `bytes` is 32 readable bytes.
                let v = unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) };
                s = _mm512_add_epi16(s, _mm512_cvtepu8_epi16(v));
            }
        }
        s
    }
}

/// The per-lane state of one row: neighbour permutes and divisors.
struct Lanes {
    /// Lane i of `permutex2var(prev, left, cur)` is the sum at i - c.
    left: __m512i,
    /// Lane i of `permutex2var(cur, right, next)` is the sum at i + c.
    right: __m512i,
    /// `RECIP[9]`, `RECIP[6]` or `RECIP[3]` (rows in the window x 3).
    inner: __m512i,
    n: usize,
    c: usize,
    rows: usize,
}

impl Lanes {
    /// Multipliers for the block at `p`: the inner one, except for lanes
    /// on the left or right edge of the image (two columns in the window).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn divisors(&self, p: isize) -> __m512i {
        let (n, c) = (self.n as isize, self.c as isize);
        if p >= c && p + (B as isize) <= n - c {
            return self.inner;
        }
        let m: [u16; B] = std::array::from_fn(|j| {
            let i = p + j as isize;
            let cols = 1 + usize::from(i >= c) + usize::from(i + c < n);
            // `cols >= 2` (the row is wider than a pixel), so the divisor
            // is at least 2 and its reciprocal fits in 16 bits.
            RECIP[self.rows * cols.max(2)] as u16
        });
        // SAFETY: `m` is 32 u16 lanes.
        unsafe { _mm512_loadu_epi16(m.as_ptr().cast()) }
    }

    /// The output block whose vertical sums are `cur`, between `prev`
    /// and `next`, as 32 u16 lanes (each < 256).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn mean(&self, prev: __m512i, cur: __m512i, next: __m512i, m: __m512i) -> __m512i {
        let left = _mm512_permutex2var_epi16(prev, self.left, cur);
        let right = _mm512_permutex2var_epi16(cur, self.right, next);
        let sum = _mm512_add_epi16(_mm512_add_epi16(left, cur), right);
        _mm512_mulhi_epu16(sum, m)
    }
}

/// One output row, AVX-512, in one pass: each 32-byte block's vertical
/// sums are computed once, and the sums one pixel left and right come
/// from the previous, current and next blocks by two-source word
/// permutes. Blocks sticking out of the row read zeros, and edge lanes
/// divide by their own window size, so the borders need no scalar code.
/// The inner blocks go in pairs: one 64-byte store each (non-temporal
/// and 64-byte aligned if `ahead.nontemporal`), with a prefetch of the
/// same line of `ahead.prefetch`.
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
    match (above, below) {
        (Some(a), Some(b)) => row_in(Rows([a, cur, b]), c, out, ahead),
        (Some(a), None) | (None, Some(a)) => row_in(Rows([a, cur]), c, out, ahead),
        (None, None) => row_in(Rows([cur]), c, out, ahead),
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn row_in<const R: usize>(rows: Rows<'_, R>, c: usize, out: &mut [u8], ahead: Ahead) {
    let n = rows.0[0].len();
    assert!(
        rows.0.iter().all(|r| r.len() == n)
            && out.len() == n
            && n > c
            && (1..=4).contains(&c)
            && ahead.prefetch.is_none_or(|r| r.len() >= n),
        "row lengths disagree"
    );
    let left: [i16; B] = std::array::from_fn(|i| (B + i - c) as i16);
    let right: [i16; B] = std::array::from_fn(|i| (i + c) as i16);
    // SAFETY: each index array is 32 lanes of i16.
    let lanes = unsafe {
        Lanes {
            left: _mm512_loadu_epi16(left.as_ptr()),
            right: _mm512_loadu_epi16(right.as_ptr()),
            inner: _mm512_set1_epi16(RECIP[3 * R] as i16),
            n,
            c,
            rows: R,
        }
    };
    // Pairs start where the output is 64-byte aligned (only needed for
    // non-temporal stores), at or after byte 32 (so no lane is on the
    // left edge) and end 32 bytes before the row does (so `next` and
    // every lane are inside).
    let align = if ahead.nontemporal {
        out.as_ptr().align_offset(64)
    } else {
        0
    };
    let first_pair = B + (align + 64 - B) % 64;
    let pairs = n.saturating_sub(first_pair + B) / 64;
    let end_pairs = first_pair + 64 * pairs;
    // Single blocks before the pairs, from the one that ends at
    // `first_pair` back to byte 0; the pairs; single blocks after them.
    let head_start = first_pair as isize - (first_pair.div_ceil(B) * B) as isize;
    let mut p = head_start;
    let mut prev = rows.anywhere(p - B as isize);
    let mut now = rows.anywhere(p);
    let single = |p: isize, prev, now, next, out: &mut [u8]| {
        let q = lanes.mean(prev, now, next, lanes.divisors(p));
        let mut bytes = [0u8; B];
        // SAFETY: `bytes` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(bytes.as_mut_ptr().cast(), _mm512_cvtepi16_epi8(q)) };
        let (from, to) = (p.max(0) as usize, (p + B as isize).min(n as isize) as usize);
        let at = (from as isize - p) as usize;
        out[from..to].copy_from_slice(&bytes[at..at + to - from]);
    };
    while p < first_pair as isize && pairs > 0 {
        let next = rows.anywhere(p + B as isize);
        single(p, prev, now, next, out);
        (prev, now, p) = (now, next, p + B as isize);
    }
    if pairs > 0 {
        // SAFETY: index array of 8 u64 lanes.
        let order = unsafe { _mm512_loadu_epi64([0i64, 2, 4, 6, 1, 3, 5, 7].as_ptr()) };
        for k in 0..pairs {
            let at = first_pair + 64 * k;
            if let Some(row) = ahead.prefetch {
                _mm_prefetch::<_MM_HINT_T0>(row[at..].as_ptr().cast());
            }
            let mid = rows.inside(at + B);
            let next = rows.inside(at + 2 * B);
            let lo = lanes.mean(prev, now, mid, lanes.inner);
            let hi = lanes.mean(now, mid, next, lanes.inner);
            // Packing interleaves 128-bit lanes; the permute restores order.
            let q = _mm512_permutexvar_epi64(order, _mm512_packus_epi16(lo, hi));
            let o: &mut [u8; 64] = (&mut out[at..at + 64]).try_into().expect("64 bytes");
            // SAFETY: `o` is 64 writable bytes, 64-byte aligned when
            // non-temporal (`at` follows `align`).
            unsafe {
                if ahead.nontemporal {
                    _mm512_stream_si512(o.as_mut_ptr().cast(), q)
                } else {
                    _mm512_storeu_si512(o.as_mut_ptr().cast(), q)
                }
            }
            (prev, now) = (mid, next);
        }
        p = end_pairs as isize;
    }
    while p < n as isize {
        let next = rows.anywhere(p + B as isize);
        single(p, prev, now, next, out);
        (prev, now, p) = (now, next, p + B as isize);
    }
}
