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
        Cpu::Avx512 if above.is_some() && below.is_some() => {
            let (a, b) = (above.expect("checked"), below.expect("checked"));
            // SAFETY: clamp() returned Avx512, so the CPU has AVX-512 F and BW.
            unsafe { x86::row3_avx512(a, cur, b, c, out) }
        }
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

/// Output bytes `from..to` of a row with both neighbour rows (vertical count
/// 3), one at a time, borders included: the edges and tails of the vector
/// kernels.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn row3_scalar(a: &[u8], b: &[u8], d: &[u8], c: usize, out: &mut [u8], from: usize, to: usize) {
    let n = b.len();
    let v = |i: usize| a[i] as u32 + b[i] as u32 + d[i] as u32;
    for (i, o) in out.iter_mut().enumerate().take(to).skip(from) {
        let (left, right) = (i >= c, i + c < n);
        let sum = v(i) + if left { v(i - c) } else { 0 } + if right { v(i + c) } else { 0 };
        *o = (sum / (3 * (1 + left as u32 + right as u32))) as u8;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{RECIP, row3_scalar};

    /// Sum of three 32-byte rows as 32 u16 lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn vsum32(x: &[u8], y: &[u8], z: &[u8]) -> __m512i {
        let (x, y, z): (&[u8; 32], &[u8; 32], &[u8; 32]) = (
            x.try_into().expect("32"),
            y.try_into().expect("32"),
            z.try_into().expect("32"),
        );
        // SAFETY: each array is 32 bytes.
        let (lx, ly, lz) = unsafe {
            (
                _mm256_loadu_si256(x.as_ptr().cast()),
                _mm256_loadu_si256(y.as_ptr().cast()),
                _mm256_loadu_si256(z.as_ptr().cast()),
            )
        };
        let (lx, ly, lz) = (
            _mm512_cvtepu8_epi16(lx),
            _mm512_cvtepu8_epi16(ly),
            _mm512_cvtepu8_epi16(lz),
        );
        _mm512_add_epi16(_mm512_add_epi16(lx, ly), lz)
    }

    /// A row with both neighbours, AVX-512, in one pass: each 32-byte block's
    /// vertical sums (32 u16 lanes) are computed once, and the sums one pixel
    /// left and right come from the previous, current and next blocks by a
    /// two-source word permute, so nothing goes through a scratch row. The
    /// first `c` bytes (left edge) and the tail after the last whole block
    /// are done by [`row3_scalar`].
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn row3_avx512(a: &[u8], b: &[u8], d: &[u8], c: usize, out: &mut [u8]) {
        let n = b.len();
        let (a, d) = (&a[..n], &d[..n]);
        assert!(
            out.len() == n && (1..=4).contains(&c),
            "row lengths disagree"
        );
        // Blocks k whose next block is whole: 32 * (k + 2) <= n.
        let blocks = (n / 32).saturating_sub(1);
        let vsum = |off: usize| vsum32(&a[off..off + 32], &b[off..off + 32], &d[off..off + 32]);
        if blocks > 0 {
            // Lane i of "left" is the sum at i - c: lane 32 + i - c of
            // (previous, current); of "right", at i + c: lane i + c of
            // (current, next).
            let left_idx: [i16; 32] = std::array::from_fn(|i| (32 + i - c) as i16);
            let right_idx: [i16; 32] = std::array::from_fn(|i| (i + c) as i16);
            // SAFETY: each index array is 32 lanes of i16.
            let (il, ir) = unsafe {
                (
                    _mm512_loadu_epi16(left_idx.as_ptr()),
                    _mm512_loadu_epi16(right_idx.as_ptr()),
                )
            };
            let m = _mm512_set1_epi16(RECIP[9] as i16);
            let mut prev = _mm512_setzero_si512();
            let mut cur = vsum(0);
            for k in 0..blocks {
                let next = vsum(32 * (k + 1));
                let left = _mm512_permutex2var_epi16(prev, il, cur);
                let right = _mm512_permutex2var_epi16(cur, ir, next);
                let sum = _mm512_add_epi16(_mm512_add_epi16(left, cur), right);
                let q = _mm512_cvtepi16_epi8(_mm512_mulhi_epu16(sum, m));
                let o = &mut out[32 * k..32 * k + 32];
                // SAFETY: `o` is 32 bytes.
                unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), q) };
                prev = cur;
                cur = next;
            }
        }
        row3_scalar(a, b, d, c, out, 0, c.min(n));
        row3_scalar(a, b, d, c, out, (32 * blocks).max(c.min(n)), n);
    }
}
