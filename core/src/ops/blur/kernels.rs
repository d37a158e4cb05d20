//! The gaussian blur's row kernel (and the unsharp mask's) for each CPU
//! level: the portable body in [`crate::ops::blur`], and AVX2 + FMA and
//! AVX-512 intrinsics here, computing the same integers (see that module: every sum
//! is exact, in u16 for the columns and f32 for the rows, so fusing a
//! multiply-add changes nothing).
//!
//! Written by hand because the compiler vectorised the portable body with
//! 128-bit vectors and spilled its accumulators: this path measured about
//! 2x faster on 3001x2003 gray.
#![allow(unsafe_code)]
// Kernels index several slices at the same offsets; index loops say so
// more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

use std::mem::MaybeUninit;

use crate::ops::blur::{Scratch, blur_row as portable, sharpen_value};
use crate::simd::Cpu;
use crate::simd::store::{as_uninit, zeroed};

/// One output row of the blur, or of the unsharp mask with `sharpen`, on
/// path `cpu` into memory that need not be initialised: every byte of
/// `out` is written. The AVX-512 kernel stores into it as it is; the other
/// paths get it zeroed first (zeroing before the kernel writes was 5-9% of
/// a blur or convolution in the pipeline).
pub(crate) fn blur_row_uninit(
    cpu: Cpu,
    taps: &[u16],
    rows: &[&[u8]],
    channels: usize,
    sharpen: Option<f32>,
    s: &mut Scratch,
    out: &mut [MaybeUninit<u8>],
) {
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx512 {
        // SAFETY: the CPU runs AVX-512 F and BW (checked by `clamp`).
        return unsafe { x86::blur_row_512(taps, rows, channels, s, out, sharpen) };
    }
    let out = zeroed(out);
    match sharpen {
        Some(amount) => blur_sharpen_row_with(cpu, taps, rows, channels, amount, s, out),
        None => blur_row_with(cpu, taps, rows, channels, s, out),
    }
}

/// One output row of the blur on path `cpu` (clamped to what this machine
/// runs): see [`crate::ops::blur::blur_row`].
pub(crate) fn blur_row_with(
    cpu: Cpu,
    taps: &[u16],
    rows: &[&[u8]],
    channels: usize,
    s: &mut Scratch,
    out: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx512 {
        // SAFETY: the CPU runs AVX-512 F and BW (checked by `clamp`); the
        // kernel only stores bytes.
        return unsafe { x86::blur_row_512(taps, rows, channels, s, as_uninit(out), None) };
    }
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx2 && has_fma() {
        // SAFETY: the CPU runs AVX2 (checked by `clamp`) and FMA.
        return unsafe { x86::blur_row(taps, rows, channels, s, out) };
    }
    let _ = cpu;
    portable(taps, rows, channels, s, out)
}

/// One output row of the unsharp mask ([`blur_row_with`] then
/// [`sharpen_row_with`] on the centre row): with AVX-512 in one pass, each
/// blurred vector sharpened before it is stored (about 1.2x the two passes
/// on 4000x3000 RGB).
pub(crate) fn blur_sharpen_row_with(
    cpu: Cpu,
    taps: &[u16],
    rows: &[&[u8]],
    channels: usize,
    amount: f32,
    s: &mut Scratch,
    out: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx512 {
        // SAFETY: the CPU runs AVX-512 F and BW (checked by `clamp`); the
        // kernel only stores bytes.
        return unsafe { x86::blur_row_512(taps, rows, channels, s, as_uninit(out), Some(amount)) };
    }
    blur_row_with(cpu, taps, rows, channels, s, out);
    sharpen_row_with(cpu, rows[rows.len() / 2], amount, out);
}

/// The unsharp mask of a row in place: `out` holds the blurred row, `src`
/// the original; see [`sharpen_value`].
pub(crate) fn sharpen_row_with(cpu: Cpu, src: &[u8], amount: f32, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx512 {
        // SAFETY: the CPU runs AVX-512 F and BW (checked by `clamp`).
        return unsafe { x86::sharpen_row_512(src, amount, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx2 {
        // SAFETY: the CPU runs AVX2 (checked by `clamp`).
        return unsafe { x86::sharpen_row(src, amount, out) };
    }
    for (o, &p) in out.iter_mut().zip(src) {
        *o = sharpen_value(p, *o, amount);
    }
}

/// Whether this machine has FMA (every AVX2 machine we know of does).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_fma() -> bool {
    static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FMA.get_or_init(|| std::arch::is_x86_feature_detected!("fma"))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use crate::ops::blur::{Scratch, sharpen_value};

    /// # Safety
    /// The CPU must support AVX2 and FMA. `rows` are `taps.len()` rows of
    /// `out.len()` bytes; the taps are symmetric, sum to 256, and every tap
    /// but the centre is at most 85.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn blur_row(
        taps: &[u16],
        rows: &[&[u8]],
        channels: usize,
        scratch: &mut Scratch,
        out: &mut [u8],
    ) {
        let n = taps.len();
        let r = n / 2;
        let len = out.len();
        assert!(rows.len() == n && rows.iter().all(|row| row.len() >= len));
        let pad = r * channels;
        let v = scratch.padded_mut(len + 2 * pad);
        // Columns: 16 values per vector, exact in u16.
        let full = len / 16 * 16;
        let tc = _mm256_set1_epi16(taps[r] as i16);
        let mut x = 0;
        while x < full {
            // SAFETY (loads): x + 16 <= len <= every row's length (asserted);
            // (stores) pad + x + 16 <= v.len().
            crate::simd::prefetch_ahead(rows[n - 1], x + crate::simd::NEWEST_ROW_AHEAD);
            unsafe {
                let load =
                    |row: &[u8]| _mm256_cvtepu8_epi16(_mm_loadu_si128(row.as_ptr().add(x).cast()));
                let mut acc = _mm256_mullo_epi16(load(rows[r]), tc);
                for k in 0..r {
                    let t = _mm256_set1_epi16(taps[k] as i16);
                    let ab = _mm256_add_epi16(load(rows[k]), load(rows[n - 1 - k]));
                    acc = _mm256_add_epi16(acc, _mm256_mullo_epi16(ab, t));
                }
                let lo = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(acc)));
                let hi =
                    _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(acc)));
                let dst = v.as_mut_ptr().add(pad + x);
                _mm256_storeu_ps(dst, lo);
                _mm256_storeu_ps(dst.add(8), hi);
            }
            x += 16;
        }
        crate::ops::blur::column_sums_from(taps, rows, v, pad, full);
        crate::ops::blur::pad_columns(v, r, channels, len);
        // Rows: 16 outputs per step in two f32 vectors, fused multiply-adds
        // (exact: every value is an integer below 2^24).
        let ft = crate::ops::blur::half_taps_f32(taps);
        let half = _mm256_set1_ps(32768.0);
        let scale = _mm256_set1_ps(1.0 / 65536.0);
        let mut x = 0;
        while x < full {
            // SAFETY: x + 16 + 2 pad <= v.len(); x + 16 <= out.len().
            unsafe {
                let p = v.as_ptr().add(x);
                let c = _mm256_set1_ps(ft[r]);
                let mut s0 = _mm256_mul_ps(c, _mm256_loadu_ps(p.add(pad)));
                let mut s1 = _mm256_mul_ps(c, _mm256_loadu_ps(p.add(pad + 8)));
                for k in 0..r {
                    let t = _mm256_set1_ps(ft[k]);
                    let (a, b) = (p.add(k * channels), p.add((n - 1 - k) * channels));
                    let ab0 = _mm256_add_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(b));
                    let ab1 = _mm256_add_ps(_mm256_loadu_ps(a.add(8)), _mm256_loadu_ps(b.add(8)));
                    s0 = _mm256_fmadd_ps(t, ab0, s0);
                    s1 = _mm256_fmadd_ps(t, ab1, s1);
                }
                // (s + 2^15) >> 16: exact scaling, truncation of a
                // non-negative value is the floor.
                let i0 = _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_add_ps(s0, half), scale));
                let i1 = _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_add_ps(s1, half), scale));
                let w = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(i0, i1));
                let b = _mm256_packus_epi16(w, w);
                let b = _mm256_permute4x64_epi64::<0b11_01_10_00>(b);
                _mm_storeu_si128(out.as_mut_ptr().add(x).cast(), _mm256_castsi256_si128(b));
            }
            x += 16;
        }
        crate::ops::blur::row_values_from(&ft[..=r], v, channels, out, full);
    }

    /// [`blur_row`] in 512-bit vectors: 32 column sums per step, 32 outputs
    /// per step of the rows in two 16-lane f32 vectors, the same exact
    /// integers. Where the vector units are 512 bits wide (AMD Zen 5, Intel
    /// server cores) this halves the instructions of both passes.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW. `rows` are `taps.len()` rows
    /// of `out.len()` bytes; the taps are symmetric, sum to 256, and every
    /// tap but the centre is at most 85. With `sharpen`, the row is the
    /// unsharp mask of that amount (the blur of each vector sharpened
    /// against the centre row before it is stored).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn blur_row_512(
        taps: &[u16],
        rows: &[&[u8]],
        channels: usize,
        scratch: &mut Scratch,
        out: &mut [MaybeUninit<u8>],
        sharpen: Option<f32>,
    ) {
        let n = taps.len();
        let r = n / 2;
        let len = out.len();
        assert!(rows.len() == n && rows.iter().all(|row| row.len() >= len));
        let pad = r * channels;
        let v = scratch.padded_mut(len + 2 * pad);
        let full = len / 32 * 32;
        let tc = _mm512_set1_epi16(taps[r] as i16);
        let mut x = 0;
        while x < full {
            // SAFETY (loads): x + 32 <= len <= every row's length (asserted);
            // (stores) pad + x + 32 <= v.len().
            crate::simd::prefetch_ahead(rows[n - 1], x + crate::simd::NEWEST_ROW_AHEAD);
            unsafe {
                let load = |row: &[u8]| {
                    _mm512_cvtepu8_epi16(_mm256_loadu_si256(row.as_ptr().add(x).cast()))
                };
                let mut acc = _mm512_mullo_epi16(load(rows[r]), tc);
                for k in 0..r {
                    let t = _mm512_set1_epi16(taps[k] as i16);
                    let ab = _mm512_add_epi16(load(rows[k]), load(rows[n - 1 - k]));
                    acc = _mm512_add_epi16(acc, _mm512_mullo_epi16(ab, t));
                }
                let lo = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(acc)));
                let hi =
                    _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64::<1>(acc)));
                let dst = v.as_mut_ptr().add(pad + x);
                _mm512_storeu_ps(dst, lo);
                _mm512_storeu_ps(dst.add(16), hi);
            }
            x += 32;
        }
        // The last values (fewer than 32): the same sums with the loads
        // and stores masked to the row (the portable tails of both passes
        // were a sixth of a 3001x2003 gray unsharp mask).
        let (tail_lo, tail_hi) = tail_masks(len - full);
        if full < len {
            let bytes = u64::from(tail_lo) | u64::from(tail_hi) << 16;
            // SAFETY: bytes full..len of every row (the loads masked to
            // them); values pad + full..pad + len of `v` (the stores).
            unsafe {
                let load = |row: &[u8]| {
                    let b = _mm512_maskz_loadu_epi8(bytes, row.as_ptr().add(full).cast());
                    _mm512_cvtepu8_epi16(_mm512_castsi512_si256(b))
                };
                let mut acc = _mm512_mullo_epi16(load(rows[r]), tc);
                for k in 0..r {
                    let t = _mm512_set1_epi16(taps[k] as i16);
                    let ab = _mm512_add_epi16(load(rows[k]), load(rows[n - 1 - k]));
                    acc = _mm512_add_epi16(acc, _mm512_mullo_epi16(ab, t));
                }
                let lo = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(acc)));
                let hi =
                    _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64::<1>(acc)));
                let dst = v.as_mut_ptr().add(pad + full);
                _mm512_mask_storeu_ps(dst, tail_lo, lo);
                _mm512_mask_storeu_ps(dst.add(16), tail_hi, hi);
            }
        }
        crate::ops::blur::pad_columns(v, r, channels, len);
        let ft = crate::ops::blur::half_taps_f32(taps);
        let half = _mm512_set1_ps(32768.0);
        let scale = _mm512_set1_ps(1.0 / 65536.0);
        let mut x = 0;
        while x < full {
            // SAFETY: x + 32 + 2 pad <= v.len(); x + 32 <= out.len().
            unsafe {
                let p = v.as_ptr().add(x);
                let c = _mm512_set1_ps(ft[r]);
                let mut s0 = _mm512_mul_ps(c, _mm512_loadu_ps(p.add(pad)));
                let mut s1 = _mm512_mul_ps(c, _mm512_loadu_ps(p.add(pad + 16)));
                for k in 0..r {
                    let t = _mm512_set1_ps(ft[k]);
                    let (a, b) = (p.add(k * channels), p.add((n - 1 - k) * channels));
                    let ab0 = _mm512_add_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(b));
                    let ab1 = _mm512_add_ps(_mm512_loadu_ps(a.add(16)), _mm512_loadu_ps(b.add(16)));
                    s0 = _mm512_fmadd_ps(t, ab0, s0);
                    s1 = _mm512_fmadd_ps(t, ab1, s1);
                }
                // (s + 2^15) >> 16, as in `blur_row`; the values are 0..=255,
                // so the saturating narrowing is a plain one.
                let i0 = _mm512_cvttps_epi32(_mm512_mul_ps(_mm512_add_ps(s0, half), scale));
                let i1 = _mm512_cvttps_epi32(_mm512_mul_ps(_mm512_add_ps(s1, half), scale));
                let o = out.as_mut_ptr().add(x);
                if let Some(amount) = sharpen {
                    let src = |at: usize| {
                        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                            rows[r].as_ptr().add(at).cast(),
                        )))
                    };
                    let a = _mm512_set1_ps(amount);
                    let b0 = sharpen16(src(x), _mm512_cvtepi32_ps(i0), a);
                    let b1 = sharpen16(src(x + 16), _mm512_cvtepi32_ps(i1), a);
                    _mm_storeu_si128(o.cast(), b0);
                    _mm_storeu_si128(o.add(16).cast(), b1);
                } else {
                    _mm_storeu_si128(o.cast(), _mm512_cvtusepi32_epi8(i0));
                    _mm_storeu_si128(o.add(16).cast(), _mm512_cvtusepi32_epi8(i1));
                }
            }
            x += 32;
        }
        if full < len {
            // SAFETY: the loads read values full + k c + lane of `v` for
            // the lanes inside the row (masked), all below len + 2 pad =
            // v.len(); the stores write out[full..len].
            unsafe {
                let p = v.as_ptr().add(full);
                let get = |at: *const f32, lanes: __mmask16| _mm512_maskz_loadu_ps(lanes, at);
                let c = _mm512_set1_ps(ft[r]);
                let mut s0 = _mm512_mul_ps(c, get(p.add(pad), tail_lo));
                let mut s1 = _mm512_mul_ps(c, get(p.add(pad + 16), tail_hi));
                for k in 0..r {
                    let t = _mm512_set1_ps(ft[k]);
                    let (a, b) = (p.add(k * channels), p.add((n - 1 - k) * channels));
                    let ab0 = _mm512_add_ps(get(a, tail_lo), get(b, tail_lo));
                    let ab1 = _mm512_add_ps(get(a.add(16), tail_hi), get(b.add(16), tail_hi));
                    s0 = _mm512_fmadd_ps(t, ab0, s0);
                    s1 = _mm512_fmadd_ps(t, ab1, s1);
                }
                let mut i0 = _mm512_cvttps_epi32(_mm512_mul_ps(_mm512_add_ps(s0, half), scale));
                let mut i1 = _mm512_cvttps_epi32(_mm512_mul_ps(_mm512_add_ps(s1, half), scale));
                if let Some(amount) = sharpen {
                    let src = |at: usize, lanes: __mmask16| {
                        let p = rows[r].as_ptr().add(at);
                        let b = _mm512_maskz_loadu_epi8(u64::from(lanes), p.cast());
                        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_castsi512_si128(b)))
                    };
                    let a = _mm512_set1_ps(amount);
                    i0 = _mm512_cvtepu8_epi32(sharpen16(
                        src(full, tail_lo),
                        _mm512_cvtepi32_ps(i0),
                        a,
                    ));
                    i1 = _mm512_cvtepu8_epi32(sharpen16(
                        src(full + 16, tail_hi),
                        _mm512_cvtepi32_ps(i1),
                        a,
                    ));
                }
                let o = out.as_mut_ptr().add(full).cast::<u8>();
                _mm512_mask_cvtusepi32_storeu_epi8(o.cast(), tail_lo, i0);
                _mm512_mask_cvtusepi32_storeu_epi8(o.add(16).cast(), tail_hi, i1);
            }
        }
    }

    /// The lane masks of a last block of `m < 32` values: its first 16
    /// lanes, then the next 16.
    fn tail_masks(m: usize) -> (__mmask16, __mmask16) {
        let bits = (1u32 << m.min(31)) - 1;
        (bits as __mmask16, (bits >> 16) as __mmask16)
    }

    /// The unsharp mask of 16 values (`s` the source, `b` the blur, `a` the
    /// amount, all in f32) as bytes: as `sharpen_row`, multiply then add,
    /// round half away from zero (truncate, then step away from a dropped
    /// half), clamp.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn sharpen16(s: __m512, b: __m512, a: __m512) -> __m128i {
        let one = _mm512_set1_ps(1.0);
        let y = _mm512_add_ps(s, _mm512_mul_ps(a, _mm512_sub_ps(s, b)));
        let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
        let d = _mm512_sub_ps(y, t);
        let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(d, _mm512_set1_ps(0.5));
        let t = _mm512_mask_add_ps(t, up, t, one);
        let down = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(d, _mm512_set1_ps(-0.5));
        let t = _mm512_mask_sub_ps(t, down, t, one);
        let y = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(255.0));
        _mm512_cvtusepi32_epi8(_mm512_cvttps_epi32(y))
    }

    /// [`sharpen_row`] in 512-bit vectors, 16 values per step.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW; `src.len() >= out.len()`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn sharpen_row_512(src: &[u8], amount: f32, out: &mut [u8]) {
        let len = out.len();
        assert!(src.len() >= len);
        let full = len / 16 * 16;
        let a = _mm512_set1_ps(amount);
        let mut x = 0;
        while x < full {
            // SAFETY: x + 16 <= len <= src.len().
            unsafe {
                let load = |p: *const u8| {
                    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.add(x).cast())))
                };
                let bytes = sharpen16(load(src.as_ptr()), load(out.as_ptr()), a);
                _mm_storeu_si128(out.as_mut_ptr().add(x).cast(), bytes);
            }
            x += 16;
        }
        for x in full..len {
            out[x] = sharpen_value(src[x], out[x], amount);
        }
    }

    /// # Safety
    /// The CPU must support AVX2; `src.len() >= out.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sharpen_row(src: &[u8], amount: f32, out: &mut [u8]) {
        let len = out.len();
        assert!(src.len() >= len);
        let full = len / 8 * 8;
        let a = _mm256_set1_ps(amount);
        let half = _mm256_set1_ps(0.5);
        let zero = _mm256_setzero_ps();
        let max = _mm256_set1_ps(255.0);
        let mut x = 0;
        while x < full {
            // SAFETY: x + 8 <= len <= src.len().
            unsafe {
                let load = |p: *const u8| {
                    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(x).cast())))
                };
                let s = load(src.as_ptr());
                let b = load(out.as_ptr());
                // s + amount * (s - b), multiply then add (as the portable
                // code: no fused rounding).
                let y = _mm256_add_ps(s, _mm256_mul_ps(a, _mm256_sub_ps(s, b)));
                // Round half away from zero: truncate, then step away when
                // the dropped fraction is at least a half (exact for
                // |y| < 2^23).
                let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
                let d = _mm256_sub_ps(y, t);
                let up = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(d, half), _mm256_set1_ps(1.0));
                let down = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_LE_OQ>(d, _mm256_set1_ps(-0.5)),
                    _mm256_set1_ps(1.0),
                );
                let y = _mm256_sub_ps(_mm256_add_ps(t, up), down);
                let y = _mm256_min_ps(_mm256_max_ps(y, zero), max);
                let i = _mm256_cvttps_epi32(y);
                let w = _mm256_packus_epi32(i, i); // 0..3 4..7 in each lane's low half
                let w = _mm256_permute4x64_epi64::<0b00_00_10_00>(w);
                let b8 = _mm256_packus_epi16(w, w);
                _mm_storel_epi64(out.as_mut_ptr().add(x).cast(), _mm256_castsi256_si128(b8));
            }
            x += 8;
        }
        for x in full..len {
            out[x] = sharpen_value(src[x], out[x], amount);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::blur::taps;

    /// Every path against the portable body, on widths around the vector
    /// sizes and with each channel count.
    #[test]
    fn every_path_equals_the_portable_rows() {
        for sigma in [0.3f32, 1.0, 2.0, 5.0] {
            let t = taps(sigma);
            for channels in [1, 3, 4] {
                for width in [1, 2, 3, 5, 7, 15, 16, 17, 31, 33, 47, 100] {
                    let len = width * channels;
                    let rows_data: Vec<Vec<u8>> = (0..t.len())
                        .map(|k| (0..len).map(|i| ((i * 37 + k * 101) % 256) as u8).collect())
                        .collect();
                    let rows: Vec<&[u8]> = rows_data.iter().map(Vec::as_slice).collect();
                    let mut want = vec![0u8; len];
                    portable(&t, &rows, channels, &mut Scratch::default(), &mut want);
                    let mut want_sharp = want.clone();
                    for (o, &p) in want_sharp.iter_mut().zip(rows[t.len() / 2]) {
                        *o = sharpen_value(p, *o, 1.7);
                    }
                    // Written over the complement of the answer, so a byte
                    // a path fails to write shows.
                    let unlike: Vec<u8> = want.iter().map(|b| !b).collect();
                    let unlike_sharp: Vec<u8> = want_sharp.iter().map(|b| !b).collect();
                    // Each row is followed by guard bytes, which no path may
                    // write.
                    const GUARD: u8 = 0xA5;
                    let guarded = |row: &[u8]| [row, &[GUARD; 64][..]].concat();
                    let unharmed = |b: &[u8]| b[len..].iter().all(|&g| g == GUARD);
                    for cpu in Cpu::available() {
                        let mut got = guarded(&unlike);
                        let row = &mut got[..len];
                        blur_row_with(cpu, &t, &rows, channels, &mut Scratch::default(), row);
                        assert_eq!(row, want, "{} sigma {sigma} {width}x{channels}", cpu.name());
                        sharpen_row_with(cpu, rows[t.len() / 2], 1.7, row);
                        assert_eq!(row, want_sharp, "sharpen {} {width}x{channels}", cpu.name());
                        assert!(unharmed(&got), "{} wrote past the row", cpu.name());
                        let mut fused = guarded(&unlike_sharp);
                        let mut s = Scratch::default();
                        let row = &mut fused[..len];
                        blur_sharpen_row_with(cpu, &t, &rows, channels, 1.7, &mut s, row);
                        assert_eq!(row, want_sharp, "fused {} {width}x{channels}", cpu.name());
                        assert!(unharmed(&fused), "fused {} wrote past the row", cpu.name());
                        // Into uninitialised memory, as the pipeline calls it.
                        for (sharpen, want) in [(None, &want), (Some(1.7), &want_sharp)] {
                            let mut out = vec![MaybeUninit::new(GUARD); len + 64];
                            out[..len].fill(MaybeUninit::uninit());
                            let mut s = Scratch::default();
                            let row = &mut out[..len];
                            blur_row_uninit(cpu, &t, &rows, channels, sharpen, &mut s, row);
                            // SAFETY: the row was written whole, the guard
                            // bytes were initialised.
                            let out = unsafe { crate::simd::store::assume_init(&mut out) };
                            assert_eq!(
                                out[..len],
                                **want,
                                "uninit {} {width}x{channels}",
                                cpu.name()
                            );
                            assert!(unharmed(out), "uninit {} wrote past the row", cpu.name());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn sharpen_rounds_ties_away_from_zero_on_every_path() {
        // 100 + 0.5 * (100 - 99) = 100.5 -> 101; 0.25 * (10 - 12) = -0.5 -> 10 - 1.
        let src = [100u8, 10, 200, 0, 255, 50, 51, 52, 100];
        for cpu in Cpu::available() {
            for amount in [0.5f32, 0.25, 1.0, 3.0] {
                let blurred = [99u8, 12, 190, 10, 200, 49, 60, 40, 101];
                let mut got = blurred;
                sharpen_row_with(cpu, &src, amount, &mut got);
                let want: Vec<u8> = src
                    .iter()
                    .zip(blurred)
                    .map(|(&s, b)| sharpen_value(s, b, amount))
                    .collect();
                assert_eq!(got.as_slice(), want, "{} amount {amount}", cpu.name());
            }
        }
    }
}
