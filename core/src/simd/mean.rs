//! The 3x3 mean's row kernel, compiled once per CPU level.
//!
//! One plain-Rust body ([`row`]) is written so that LLVM vectorises it (zipped
//! slices, u16 lanes, division as a multiply-high); the wrappers compile that
//! body with AVX2 or AVX-512 enabled, which the release build's baseline
//! target would not use. Hand-written intrinsics were not needed: the
//! compiler's vector code for this shape is what a person would write
//! (checked with `bench/compare_kernels.py`).

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
    match cpu.clamp() {
        #[cfg(target_arch = "x86_64")]
        Cpu::Avx512 => {
            // SAFETY: clamp() returned Avx512, so the CPU has AVX-512 F and BW.
            unsafe { row_avx512(above, cur, below, c, scratch, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Cpu::Avx2 => {
            // SAFETY: clamp() returned Avx2, so the CPU has AVX2.
            unsafe { row_avx2(above, cur, below, c, scratch, out) }
        }
        _ => row(above, cur, below, c, scratch, out),
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
) {
    row(above, cur, below, c, scratch, out)
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
) {
    row(above, cur, below, c, scratch, out)
}

#[inline(always)]
fn row(
    above: Option<&[u8]>,
    cur: &[u8],
    below: Option<&[u8]>,
    c: usize,
    scratch: &mut Vec<u16>,
    out: &mut [u8],
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
            for (((s, &x), &y), &z) in vs.iter_mut().zip(a).zip(cur).zip(b) {
                *s = x as u16 + y as u16 + z as u16;
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
