//! The 3x3 mean's row kernel, compiled once per CPU level.
//!
//! One plain-Rust body ([`row`]) is written so that LLVM vectorises it (zipped
//! slices, u16 lanes, division as a multiply-high); the wrappers compile that
//! body with AVX2 or AVX-512 enabled, which the release build's baseline
//! target would not use. On AVX-512 a hand-written single-pass kernel
//! (`x86::row_avx512`) replaces it: it also fetches a later row ahead and can
//! write with non-temporal stores, which is what whole images larger than the
//! cache are bound by (see [`Ahead`]).

use super::Cpu;

/// `RECIP[d]` is `ceil(2^16 / d)`: for every `s <= 255 * d`,
/// `(s * RECIP[d]) >> 16 == s / d` (checked exhaustively in the tests), which
/// turns the division into a multiply-high the compiler vectorises.
pub(crate) const RECIP: [u32; 10] = {
    let mut t = [0u32; 10];
    let mut d = 1;
    while d < 10 {
        t[d] = 65536_u32.div_ceil(d as u32);
        d += 1;
    }
    t
};

/// How a whole-image filter wants one row written: the memory traffic that
/// bounds an image larger than the cache, not the arithmetic.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ahead<'a> {
    /// A row the caller reads soon (the one after `below`): fetched into the
    /// cache while this row is computed, so its misses overlap the work.
    pub prefetch: Option<&'a [u8]>,
    /// Write the output with non-temporal stores (no read of each output
    /// line before it is written; the caller issues a fence before another
    /// thread reads it).
    pub nontemporal: bool,
}

/// Whether [`row_ahead`] on `cpu` can write non-temporally. The compiled
/// two-pass body cannot; copying its finished rows out with non-temporal
/// stores measured slower than plain stores (bench/README.md).
pub(crate) fn stores_nontemporal(cpu: Cpu) -> bool {
    cpu.clamp() == Cpu::Avx512
}

/// One output row of the filter; see [`crate::mean3x3_row`].
pub(crate) fn row_with(
    cpu: Cpu,
    above: Option<&[u8]>,
    cur: &[u8],
    below: Option<&[u8]>,
    c: usize,
    scratch: &mut Vec<u16>,
    out: &mut [u8],
) {
    row_ahead(cpu, above, cur, below, c, scratch, out, Ahead::default())
}

/// [`row_with`] with the whole-image hints of `ahead`. `ahead.nontemporal`
/// is honoured only where [`stores_nontemporal`] says so.
#[allow(clippy::too_many_arguments)]
pub(crate) fn row_ahead(
    cpu: Cpu,
    above: Option<&[u8]>,
    cur: &[u8],
    below: Option<&[u8]>,
    c: usize,
    scratch: &mut Vec<u16>,
    out: &mut [u8],
    ahead: Ahead,
) {
    match cpu.clamp() {
        #[cfg(target_arch = "x86_64")]
        Cpu::Avx512 if cur.len() > c => {
            // SAFETY: clamp() returned Avx512, so the CPU has AVX-512 F and BW.
            unsafe { x86::row_avx512(above, cur, below, c, out, ahead) }
        }
        #[cfg(target_arch = "x86_64")]
        Cpu::Avx512 => {
            // One pixel wide: nothing to vectorise across.
            // SAFETY: clamp() returned Avx512, so the CPU has AVX-512 F and BW.
            unsafe { row_avx512(above, cur, below, c, scratch, out, None) }
        }
        #[cfg(target_arch = "x86_64")]
        Cpu::Avx2 => {
            // SAFETY: clamp() returned Avx2, so the CPU has AVX2.
            unsafe { row_avx2(above, cur, below, c, scratch, out, ahead.prefetch) }
        }
        _ => row(above, cur, below, c, scratch, out, ahead.prefetch),
    }
}

/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_avx2(
    above: Option<&[u8]>,
    cur: &[u8],
    below: Option<&[u8]>,
    c: usize,
    scratch: &mut Vec<u16>,
    out: &mut [u8],
    prefetch: Option<&[u8]>,
) {
    row(above, cur, below, c, scratch, out, prefetch)
}

/// # Safety
/// The CPU must support AVX-512 F and BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn row_avx512(
    above: Option<&[u8]>,
    cur: &[u8],
    below: Option<&[u8]>,
    c: usize,
    scratch: &mut Vec<u16>,
    out: &mut [u8],
    prefetch: Option<&[u8]>,
) {
    row(above, cur, below, c, scratch, out, prefetch)
}

/// The compiled two-pass row body; `prefetch` is a row to fetch into the
/// cache a line at a time while the vertical sums are made.
#[inline(always)]
fn row(
    above: Option<&[u8]>,
    cur: &[u8],
    below: Option<&[u8]>,
    c: usize,
    scratch: &mut Vec<u16>,
    out: &mut [u8],
    prefetch: Option<&[u8]>,
) {
    let n = cur.len();
    assert!(
        out.len() == n && n.is_multiple_of(c) && n > 0,
        "row lengths disagree"
    );
    // Vertical sums of the (up to) three rows.
    if scratch.len() != n {
        // Only on the first row of a band: later rows overwrite every sum.
        scratch.resize(n, 0);
    }
    let vs = &mut scratch[..n];
    let vcount = match (above, below) {
        (Some(a), Some(b)) => {
            let (a, b) = (&a[..n], &b[..n]);
            // A cache line at a time, so a line of `prefetch` can be
            // requested per line of work without stopping vectorisation.
            let lines = vs
                .chunks_mut(64)
                .zip(a.chunks(64).zip(cur.chunks(64)).zip(b.chunks(64)));
            for (k, (vs, ((a, cur), b))) in lines.enumerate() {
                if let Some(p) = prefetch.and_then(|p| p.get(64 * k..)) {
                    super::prefetch(p);
                }
                for (((s, &x), &y), &z) in vs.iter_mut().zip(a).zip(cur).zip(b) {
                    *s = x as u16 + y as u16 + z as u16;
                }
            }
            3
        }
        (Some(a), None) | (None, Some(a)) => {
            let a = &a[..n];
            for ((s, &x), &y) in vs.iter_mut().zip(a).zip(cur) {
                *s = x as u16 + y as u16;
            }
            2
        }
        (None, None) => {
            for (s, &y) in vs.iter_mut().zip(cur) {
                *s = y as u16;
            }
            1
        }
    };
    let vs = &scratch[..n];
    if n == c {
        // One pixel wide: the window is the column only.
        for (o, &s) in out.iter_mut().zip(vs) {
            *o = (s as u32 / vcount) as u8;
        }
        return;
    }
    // Left and right edge pixels: two columns each.
    let edge = 2 * vcount;
    for ch in 0..c {
        out[ch] = ((vs[ch] + vs[c + ch]) as u32 / edge) as u8;
        out[n - c + ch] = ((vs[n - 2 * c + ch] + vs[n - c + ch]) as u32 / edge) as u8;
    }
    // Interior: three columns. Sums stay below 2^16 and the reciprocal
    // below 2^15, so this is a 16-bit multiply-high per lane.
    let (l, mid, r) = (&vs[..n - 2 * c], &vs[c..n - c], &vs[2 * c..]);
    let o = &mut out[c..n - c];
    match vcount {
        3 => interior::<{ RECIP[9] }>(o, l, mid, r),
        2 => interior::<{ RECIP[6] }>(o, l, mid, r),
        _ => interior::<{ RECIP[3] }>(o, l, mid, r),
    }
}

/// `out[i] = (l[i] + mid[i] + r[i]) / d` with `M = RECIP[d]` a constant, so
/// the compiler emits a 16-bit multiply-high (`M < 2^15`, sums < 2^12).
#[inline(always)]
fn interior<const M: u32>(out: &mut [u8], l: &[u16], mid: &[u16], r: &[u16]) {
    for (((o, &a), &b), &d) in out.iter_mut().zip(l).zip(mid).zip(r) {
        *o = (((a + b + d) as u32 * M) >> 16) as u8;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Ahead, RECIP};

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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One output row straight from the definition: `rows` are the rows of
    /// the window that lie inside the image.
    fn reference(rows: &[&[u8]], c: usize) -> Vec<u8> {
        let n = rows[0].len();
        (0..n)
            .map(|i| {
                let cols: Vec<usize> = [i.checked_sub(c), Some(i), Some(i + c)]
                    .into_iter()
                    .flatten()
                    .filter(|&j| j < n)
                    .collect();
                let sum: u32 = rows
                    .iter()
                    .flat_map(|r| cols.iter().map(|&j| r[j] as u32))
                    .sum();
                (sum / (rows.len() * cols.len()) as u32) as u8
            })
            .collect()
    }

    #[test]
    fn every_path_matches_the_definition_at_every_alignment_and_width() {
        let widths = [
            1, 2, 3, 5, 8, 10, 11, 16, 21, 23, 24, 31, 32, 33, 43, 48, 64, 65, 100, 129,
        ];
        for c in 1..=4 {
            for &w in &widths {
                let n = w * c;
                let row = |k: usize| -> Vec<u8> {
                    (0..n).map(|i| (i * 37 + k * 101 + i * i) as u8).collect()
                };
                let (a, b, d, ahead_row) = (row(0), row(1), row(2), row(3));
                let (a, d) = (Some(&a[..]), Some(&d[..]));
                let windows = [(a, d), (a, None), (None, d), (None, None)];
                for (above, below) in windows {
                    let inside: Vec<&[u8]> =
                        [above, Some(&b[..]), below].into_iter().flatten().collect();
                    let want = reference(&inside, c);
                    for cpu in Cpu::available() {
                        for nontemporal in [false, true] {
                            for align in 0..64 {
                                let mut buf = vec![0xAAu8; n + 128];
                                let out = &mut buf[align..align + n];
                                let ahead = Ahead {
                                    prefetch: Some(&ahead_row),
                                    nontemporal,
                                };
                                let mut scratch = Vec::new();
                                row_ahead(cpu, above, &b, below, c, &mut scratch, out, ahead);
                                super::super::store::fence();
                                assert!(
                                    out == &want[..],
                                    "{} path, c {c}, width {w}, align {align}, nt {nontemporal}, \
                                     rows {}",
                                    cpu.name(),
                                    inside.len()
                                );
                                assert!(
                                    buf[..align]
                                        .iter()
                                        .chain(&buf[align + n..])
                                        .all(|&x| x == 0xAA),
                                    "wrote outside the row"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
