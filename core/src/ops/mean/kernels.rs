//! The 3x3 mean's row kernel, per CPU level.
//!
//! On AVX-512 and AVX2 a hand-written single-pass kernel (`super::x86`,
//! one body over both vector widths) fetches a later row ahead and, on
//! AVX-512, can write with non-temporal stores: whole images larger than the
//! cache are bound by that traffic (see [`Ahead`]). Elsewhere (SSSE3 and
//! portable, and rows one pixel wide) one plain-Rust body ([`row`]) is
//! written so that LLVM vectorises it for the baseline target (zipped
//! slices, u16 lanes, division as a multiply-high).
#![allow(unsafe_code)]

use crate::simd::Cpu;

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

/// Whether [`row_ahead`] on `cpu` writes non-temporally when asked: the
/// AVX-512 kernel does. At AVX2 width the kernel is bound by arithmetic and
/// streaming stores measured no faster; the compiled two-pass body cannot
/// stream, and copying its finished rows out with non-temporal stores
/// measured slower than plain stores (bench/README.md).
pub(crate) fn stores_nontemporal(cpu: Cpu) -> bool {
    cpu.clamp() >= Cpu::Avx512
}

/// One output row of the filter (see [`crate::mean3x3_row`]), with the
/// whole-image hints of `ahead` (`Ahead::default()` for none).
/// `ahead.nontemporal` is honoured only where [`stores_nontemporal`] says so.
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
    // A row one pixel wide has nothing to vectorise across: the plain body.
    match cpu.clamp() {
        #[cfg(target_arch = "x86_64")]
        Cpu::Avx512 | Cpu::Avx512Icl if cur.len() > c => {
            // SAFETY: clamp() returned an AVX-512 level, so the CPU has
            // AVX-512 F and BW.
            unsafe { super::x86::row_avx512(above, cur, below, c, out, ahead) }
        }
        #[cfg(target_arch = "x86_64")]
        Cpu::Avx2 if cur.len() > c => {
            // SAFETY: clamp() returned Avx2, so the CPU has AVX2.
            unsafe { super::x86::row_avx2(above, cur, below, c, out, ahead) }
        }
        _ => row(above, cur, below, c, scratch, out, ahead.prefetch),
    }
}

/// The compiled two-pass row body (SSSE3 and portable paths, and rows one
/// pixel wide); `prefetch` is a row to fetch into the cache a line at a
/// time while the vertical sums are made.
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
                    crate::simd::prefetch(p);
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
            1, 2, 3, 5, 8, 10, 11, 16, 21, 23, 24, 31, 32, 33, 43, 48, 64, 65, 100, 129, 200, 257,
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
                                crate::simd::store::fence();
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
