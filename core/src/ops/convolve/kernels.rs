//! The integer convolution's row kernel for each CPU level: one portable
//! body ([`crate::ops::convolve::convolve_row`], written so that the compiler
//! vectorises its exact f32 multiply-adds), instantiated again with AVX2
//! enabled, and for kernels of divisor 1 with small sums a 16-bit integer
//! path in AVX2 and AVX-512. Bit-exact: exact sums throughout.
#![allow(unsafe_code)]
// Kernels index several slices at the same offsets; index loops say so
// more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

use std::mem::MaybeUninit;

use crate::ops::Kernel;
use crate::ops::convolve::{Scratch, accumulate, convolve_row as body, finish, sums_fit_f32};
use crate::simd::Cpu;
#[cfg(target_arch = "x86_64")]
use crate::simd::store::as_uninit;
use crate::simd::store::zeroed;

/// One output row of the convolution on path `cpu` into memory that need
/// not be initialised: every byte of `out` is written. The AVX-512 16-bit
/// kernel stores into it as it is; the other paths get it zeroed first
/// (zeroing before the kernel writes was 5-9% of a 3x3 convolution in the
/// pipeline).
pub(crate) fn convolve_row_uninit(
    cpu: Cpu,
    k: &Kernel,
    rows: &[&[u8]],
    channels: usize,
    s: &mut Scratch,
    out: &mut [MaybeUninit<u8>],
) {
    #[cfg(target_arch = "x86_64")]
    if k.divisor == 1 && sums_fit_i16(k) && cpu.clamp() >= Cpu::Avx512 {
        // SAFETY: the CPU runs AVX-512 F and BW (checked by `clamp`); the
        // sums fit.
        return unsafe { direct_i16_512(k, rows, channels, out) };
    }
    convolve_row_with(cpu, k, rows, channels, s, zeroed(out))
}

/// One output row of the convolution on path `cpu` (clamped to what this
/// machine runs).
pub(crate) fn convolve_row_with(
    cpu: Cpu,
    k: &Kernel,
    rows: &[&[u8]],
    channels: usize,
    s: &mut Scratch,
    out: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if k.divisor == 1 && sums_fit_i16(k) {
        if cpu.clamp() >= Cpu::Avx512 {
            // SAFETY: the CPU runs AVX-512 F and BW (checked by `clamp`);
            // the sums fit; the kernel only stores bytes.
            return unsafe { direct_i16_512(k, rows, channels, as_uninit(out)) };
        }
        if cpu.clamp() >= Cpu::Avx2 {
            // SAFETY: the CPU runs AVX2 (checked by `clamp`); the sums fit.
            return unsafe { direct_i16_avx2(k, rows, channels, out) };
        }
    }
    #[cfg(target_arch = "x86_64")]
    if cpu.clamp() >= Cpu::Avx2 {
        // SAFETY: the CPU runs AVX2 (checked by `clamp`).
        return unsafe { convolve_row_avx2(k, rows, channels, s, out) };
    }
    let _ = cpu;
    body(k, rows, channels, s, out)
}

/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn convolve_row_avx2(
    k: &Kernel,
    rows: &[&[u8]],
    channels: usize,
    s: &mut Scratch,
    out: &mut [u8],
) {
    let in_f32 = if sums_fit_f32(k) && crate::ops::blur::kernels::has_fma() {
        // SAFETY: AVX2 is enabled in this function; FMA checked.
        unsafe { accumulate_avx2(k, rows, channels, s, out.len()) };
        true
    } else {
        accumulate(k, rows, channels, s, out.len())
    };
    if in_f32 && k.divisor != 1 {
        // SAFETY: AVX2 is enabled in this function.
        unsafe { divide_avx2(s.f32_sums(), k.divisor, out) }
    } else {
        finish(k, s, out)
    }
}

/// The exact f32 sums of a row (see [`crate::ops::convolve::convolve_row`]),
/// 16 values at a time with every tap summed in registers: each input row is
/// read at each tap's shift, widened to f32 and multiply-added (exact:
/// [`sums_fit_f32`]). The interior reads the rows in place; only the
/// columns within `r` pixels of an edge go through reflect-101 padded copies.
/// Summing tap by tap into memory measured about 2x slower, padding every
/// row 1.3x.
///
/// # Safety
/// The CPU must support AVX2 and FMA and `sums_fit_f32(k)`; `rows` are
/// `k.size` rows of at least `len` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2(
    k: &Kernel,
    rows: &[&[u8]],
    channels: usize,
    s: &mut Scratch,
    len: usize,
) {
    use std::arch::x86_64::*;
    let r = k.size / 2;
    let pad = r * channels;
    // Interior outputs x in [pad, len - pad) read x - pad + j c of each row.
    let taps: Vec<(usize, usize, f32)> = (0..k.size * k.size)
        .filter(|&t| k.weights[t] != 0)
        .map(|t| (t / k.size, (t % k.size) * channels, k.weights[t] as f32))
        .collect();
    let sums = s.sums_mut(len);
    let mut x = pad;
    if len >= 2 * pad {
        while x + 16 <= len - pad {
            crate::simd::prefetch_ahead(rows[k.size - 1], x + crate::simd::NEWEST_ROW_AHEAD);
            // SAFETY: each read is at x - pad + j c + 16 <= len (j c <= 2 pad)
            // of a row of at least len bytes; sums has len values.
            unsafe {
                let mut a0 = _mm256_setzero_ps();
                let mut a1 = _mm256_setzero_ps();
                for &(i, off, w) in &taps {
                    let p = rows[i].as_ptr().add(x - pad + off);
                    let w = _mm256_set1_ps(w);
                    let v0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())));
                    let v1 =
                        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(8).cast())));
                    a0 = _mm256_fmadd_ps(w, v0, a0);
                    a1 = _mm256_fmadd_ps(w, v1, a1);
                }
                _mm256_storeu_ps(sums.as_mut_ptr().add(x), a0);
                _mm256_storeu_ps(sums.as_mut_ptr().add(x + 8), a1);
            }
            x += 16;
        }
    }
    // Edges and the interior's tail, through the portable sums.
    let done = if len >= 2 * pad { pad..x } else { 0..0 };
    edge_sums(k, rows, channels, s, len, done);
}

/// Whether every partial sum of the kernel fits an i16 (`255 * sum |w|`
/// at most 32767): sharpen, edge, emboss and Laplacian kernels do.
#[cfg(target_arch = "x86_64")]
fn sums_fit_i16(k: &Kernel) -> bool {
    let abs: i64 = k.weights.iter().map(|&w| i64::from(w).abs()).sum();
    255 * abs <= i64::from(i16::MAX)
}

/// The nonzero taps of a kernel whose sums fit an i16, at most 25 (5x5):
/// each tap's row offset by the tap's column (the interior's reads then
/// start at `x - pad`), and its weight, in a fixed array (a vector
/// allocated per row measured a fifth of a 3x3 kernel's time on 3001-pixel
/// gray rows). Returns the count and the array.
#[cfg(target_arch = "x86_64")]
fn i16_taps(k: &Kernel, rows: &[&[u8]], channels: usize) -> (usize, [(*const u8, i16); 25]) {
    let mut taps = [(std::ptr::null(), 0i16); 25];
    let mut n = 0;
    for t in (0..k.size * k.size).filter(|&t| k.weights[t] != 0) {
        let p = rows[t / k.size]
            .as_ptr()
            .wrapping_add((t % k.size) * channels);
        taps[n] = (p, k.weights[t] as i16);
        n += 1;
    }
    (n, taps)
}

/// The starts of the vectors of `v` values covering the interior
/// `pad..len - pad`: every `v` from `pad`, the last moved back to end at
/// `len - pad` (overlapping the one before it: the same values again), so
/// only the `2 pad` edge values are left to the scalar code. Empty when the
/// interior is narrower than a vector.
#[cfg(target_arch = "x86_64")]
fn vector_starts(len: usize, pad: usize, v: usize) -> impl Iterator<Item = usize> {
    let end = len.saturating_sub(pad);
    let n = if end >= pad + v {
        (end - pad).div_ceil(v)
    } else {
        0
    };
    (0..n).map(move |i| (pad + i * v).min(end - v))
}

/// A kernel of divisor 1 whose sums fit an i16 ([`sums_fit_i16`]), straight
/// into bytes: 32 values at a time, each tap a 16-bit multiply and add of
/// the row read at its shift, and the saturating pack to bytes is the clamp
/// (no division, so no rounding). Twice the values per instruction of the
/// f32 path, and no pass over the sums in memory: about 2x faster on
/// 4000x3000 RGB with the 3x3 sharpen kernel. Exact: integers throughout.
///
/// # Safety
/// The CPU must support AVX2; `k.divisor == 1` and `sums_fit_i16(k)`;
/// `rows` are `k.size` rows of at least `out.len()` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn direct_i16_avx2(k: &Kernel, rows: &[&[u8]], channels: usize, out: &mut [u8]) {
    use std::arch::x86_64::*;
    let len = out.len();
    assert!(rows.len() == k.size && rows.iter().all(|row| row.len() >= len));
    let pad = k.size / 2 * channels;
    let (n, taps) = i16_taps(k, rows, channels);
    let weights: [__m256i; 25] = std::array::from_fn(|t| _mm256_set1_epi16(taps[t].1));
    // The sum of 16 values from x, each tap's row read at x - pad + j c.
    // SAFETY (caller): x - pad + j c + 16 <= len (j c <= 2 pad) bytes of a
    // row of at least len bytes.
    let sum16 = |x: usize| unsafe {
        let mut acc = _mm256_setzero_si256();
        for t in 0..n {
            let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(taps[t].0.add(x - pad).cast()));
            acc = _mm256_add_epi16(acc, _mm256_mullo_epi16(v, weights[t]));
        }
        acc
    };
    // 32 values a step (two sums, one pack), or 16 on a narrower interior.
    let wide = len >= 2 * pad + 32;
    let mut done = 0..0;
    let newest = rows[k.size - 1];
    for x in vector_starts(len, pad, if wide { 32 } else { 16 }) {
        crate::simd::prefetch_ahead(newest, x + crate::simd::NEWEST_ROW_AHEAD);
        // SAFETY: as `sum16`, for x (and x + 16 when wide); out holds
        // x + 32 (x + 16) bytes.
        unsafe {
            let hi = if wide {
                sum16(x + 16)
            } else {
                _mm256_setzero_si256()
            };
            let b = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi16(sum16(x), hi));
            if wide {
                _mm256_storeu_si256(out.as_mut_ptr().add(x).cast(), b);
            } else {
                _mm_storeu_si128(out.as_mut_ptr().add(x).cast(), _mm256_castsi256_si128(b));
            }
        }
        done = pad..len - pad;
    }
    // SAFETY: the edges are only stored into.
    clamped_outside(k, rows, channels, unsafe { as_uninit(out) }, done);
}

/// [`direct_i16_avx2`] in 512-bit vectors, 32 values per sum; negative sums
/// are raised to 0 before the unsigned narrowing to bytes (which saturates
/// at 255 and keeps the order, unlike the lane-wise packs).
///
/// # Safety
/// The CPU must support AVX-512 F and BW; `k.divisor == 1` and
/// `sums_fit_i16(k)`; `rows` are `k.size` rows of at least `out.len()`
/// bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn direct_i16_512(k: &Kernel, rows: &[&[u8]], channels: usize, out: &mut [MaybeUninit<u8>]) {
    use std::arch::x86_64::*;
    let len = out.len();
    assert!(rows.len() == k.size && rows.iter().all(|row| row.len() >= len));
    let pad = k.size / 2 * channels;
    let (n, taps) = i16_taps(k, rows, channels);
    let weights: [__m512i; 25] = std::array::from_fn(|t| _mm512_set1_epi16(taps[t].1));
    let zero = _mm512_setzero_si512();
    let mut done = 0..0;
    let newest = rows[k.size - 1];
    for x in vector_starts(len, pad, 32) {
        crate::simd::prefetch_ahead(newest, x + crate::simd::NEWEST_ROW_AHEAD);
        // SAFETY: each read is at x - pad + j c + 32 <= len (j c <= 2 pad)
        // of a row of at least len bytes; out holds x + 32 bytes.
        unsafe {
            let mut acc = zero;
            for t in 0..n {
                let v = _mm512_cvtepu8_epi16(_mm256_loadu_si256(taps[t].0.add(x - pad).cast()));
                acc = _mm512_add_epi16(acc, _mm512_mullo_epi16(v, weights[t]));
            }
            let b = _mm512_cvtusepi16_epi8(_mm512_max_epi16(acc, zero));
            _mm256_storeu_si256(out.as_mut_ptr().add(x).cast(), b);
        }
        done = pad..len - pad;
    }
    clamped_outside(k, rows, channels, out, done);
}

/// The outputs outside `done` of a divisor-1 kernel (the edges, and the
/// vector loop's tail when the interior is narrower than a vector): exact
/// sums value by value, clamped.
#[cfg(target_arch = "x86_64")]
fn clamped_outside(
    k: &Kernel,
    rows: &[&[u8]],
    channels: usize,
    out: &mut [MaybeUninit<u8>],
    done: std::ops::Range<usize>,
) {
    let len = out.len();
    for x in (0..done.start).chain(done.end..len) {
        out[x].write(edge_sum(k, rows, channels, len, x).clamp(0.0, 255.0) as u8);
    }
}

/// The sums outside `done`, value by value (see [`edge_sum`]).
fn edge_sums(
    k: &Kernel,
    rows: &[&[u8]],
    channels: usize,
    s: &mut Scratch,
    len: usize,
    done: std::ops::Range<usize>,
) {
    let sums = s.sums_mut(len);
    for x in (0..done.start).chain(done.end..len) {
        sums[x] = edge_sum(k, rows, channels, len, x);
    }
}

/// The exact sum of value `x` of a row of `len` values, with reflect-101
/// columns.
fn edge_sum(k: &Kernel, rows: &[&[u8]], channels: usize, len: usize, x: usize) -> f32 {
    let r = k.size / 2;
    let width = len / channels;
    let (px, ch) = (x / channels, x % channels);
    let mut acc = 0f32;
    for (i, row) in rows.iter().enumerate() {
        for j in 0..k.size {
            let w = k.weights[i * k.size + j];
            let xx = crate::ops::border::reflect101(px as isize + j as isize - r as isize, width);
            acc += w as f32 * f32::from(row[xx * channels + ch]);
        }
    }
    acc
}

/// `out = clamp(round_half_away(sums / d))` for exact integer sums below
/// 2^24 in magnitude, 8 at a time in i32: an estimate through the f32
/// reciprocal (off by at most one), corrected with the exact remainder of
/// `2 sum + d` by `2 d` (the quotient is clamped to 256 first, so every
/// product fits an i32). A vector division measured 1.7x slower.
///
/// # Safety
/// The CPU must support AVX2; `sums.len() >= out.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn divide_avx2(sums: &[f32], d: i32, out: &mut [u8]) {
    use std::arch::x86_64::*;
    let len = out.len();
    assert!(sums.len() >= len);
    let (sign, d) = if d < 0 { (-1.0f32, -d) } else { (1.0, d) };
    let two_d = 2 * d;
    let full = len / 8 * 8;
    let mut x = 0;
    while x < full {
        // SAFETY: x + 8 <= len <= sums.len().
        unsafe {
            let v = _mm256_max_ps(
                _mm256_mul_ps(_mm256_loadu_ps(sums.as_ptr().add(x)), _mm256_set1_ps(sign)),
                _mm256_setzero_ps(),
            );
            let n = _mm256_add_epi32(
                _mm256_slli_epi32::<1>(_mm256_cvtps_epi32(v)),
                _mm256_set1_epi32(d),
            );
            let est = _mm256_cvttps_epi32(_mm256_mul_ps(
                _mm256_cvtepi32_ps(n),
                _mm256_set1_ps(1.0 / two_d as f32),
            ));
            let q = _mm256_min_epi32(est, _mm256_set1_epi32(256));
            let rem = _mm256_sub_epi32(n, _mm256_mullo_epi32(q, _mm256_set1_epi32(two_d)));
            // rem < 0: one too many; rem >= 2d: one too few (compares give -1).
            let q = _mm256_add_epi32(q, _mm256_cmpgt_epi32(_mm256_setzero_si256(), rem));
            let q = _mm256_sub_epi32(q, _mm256_cmpgt_epi32(rem, _mm256_set1_epi32(two_d - 1)));
            let q = _mm256_min_epi32(q, _mm256_set1_epi32(255));
            let w = _mm256_packus_epi32(q, q);
            let w = _mm256_permute4x64_epi64::<0b00_00_10_00>(w);
            let b = _mm256_packus_epi16(w, w);
            _mm_storel_epi64(out.as_mut_ptr().add(x).cast(), _mm256_castsi256_si128(b));
        }
        x += 8;
    }
    for x in full..len {
        out[x] = crate::ops::convolve::divide(sums[x] as i64, if sign < 0.0 { -d } else { d });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_divisor_rounds_like_the_exact_division_on_every_path() {
        // Sums around every tie for small and large divisors.
        for d in [2, 3, 7, 16, 25, 255, 1000, 65536, -2, -9] {
            let sums: Vec<f32> = (-600i64..600)
                .map(|i| i * (d as i64).abs() / 2 + i % 3)
                .chain([16_000_000, -16_000_000, 255 * 65536])
                .map(|v| v as f32)
                .collect();
            let k = Kernel {
                size: 3,
                weights: vec![1; 9],
                divisor: d,
            };
            let want: Vec<u8> = sums
                .iter()
                .map(|&v| crate::ops::convolve::divide(v as i64, d))
                .collect();
            for cpu in Cpu::available() {
                let mut got = vec![0u8; sums.len()];
                #[cfg(target_arch = "x86_64")]
                if cpu.clamp() >= Cpu::Avx2 {
                    // SAFETY: checked above.
                    unsafe { divide_avx2(&sums, d, &mut got) };
                    assert_eq!(got, want, "avx2, divisor {d}");
                    continue;
                }
                let _ = (&k, cpu);
            }
        }
    }

    #[test]
    fn every_path_equals_the_portable_rows() {
        let kernel = |size: usize, weights: Vec<i32>, divisor: i32| Kernel {
            size,
            weights,
            divisor,
        };
        let kernels = [
            kernel(5, (0..25).map(|i| (i % 7) - 3).collect(), 3),
            // Divisor 1 with sums that fit an i16: sharpen, edge, 5x5 mixed.
            kernel(3, vec![0, -1, 0, -1, 5, -1, 0, -1, 0], 1),
            kernel(3, vec![-1, -1, -1, -1, 8, -1, -1, -1, -1], 1),
            kernel(5, (0..25).map(|i| (i % 5) - 2).collect(), 1),
            // Divisor 1, sums past an i16 (255 * 9 * 20).
            kernel(3, vec![20; 9], 1),
            kernel(3, vec![-20, 0, 0, 0, 21, 0, 0, 0, 0], -1),
        ];
        let rows_data: Vec<Vec<u8>> = (0..5)
            .map(|j| (0..500).map(|i| ((i * 29 + j * 71) % 256) as u8).collect())
            .collect();
        for k in &kernels {
            let rows: Vec<&[u8]> = rows_data[..k.size].iter().map(Vec::as_slice).collect();
            for (c, width) in [1, 3, 4]
                .into_iter()
                .flat_map(|c| [1, 2, 3, 4, 5, 17, 25, 36, 40, 77, 101, 120].map(|w| (c, w)))
            {
                let len = width * c;
                let mut want = vec![0u8; len];
                body(k, &rows, c, &mut Scratch::default(), &mut want);
                // Written over the complement of the answer, so a byte a
                // path fails to write shows.
                let unlike: Vec<u8> = want.iter().map(|b| !b).collect();
                for cpu in Cpu::available() {
                    let mut got = unlike.clone();
                    convolve_row_with(cpu, k, &rows, c, &mut Scratch::default(), &mut got);
                    assert_eq!(got, want, "{} {k:?} {width}x{c}", cpu.name());
                    // Into uninitialised memory, as the pipeline calls it.
                    let mut out = vec![MaybeUninit::uninit(); len];
                    convolve_row_uninit(cpu, k, &rows, c, &mut Scratch::default(), &mut out);
                    // SAFETY: the row was written whole.
                    let out = unsafe { crate::simd::store::assume_init(&mut out) };
                    assert_eq!(*out, *want, "uninit {} {k:?} {width}x{c}", cpu.name());
                }
            }
        }
    }
}
