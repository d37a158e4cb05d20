//! Integer 3x3 and 5x5 convolution (sharpen, edge and emboss kernels, box
//! filters with custom weights).
//!
//! `out = clamp(round(sum_ij w_ij p(y+i-r, x+j-r) / divisor))`: the sum is
//! exact (weights are bounded by [`MAX_WEIGHT`]), the division rounds
//! half away from zero, the result is clamped to 0..255; borders are
//! reflect-101. As in OpenCV's `filter2D`, the kernel is applied as given
//! (correlation: it is not flipped). Every channel, alpha included, is
//! filtered.
// Kernels index several slices at the same offsets; index loops say so
// more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

pub(crate) mod kernels;
pub(crate) mod stream;

use super::Kernel;
use super::border::reflect101;
use crate::error::{CoreError, Result};

/// The largest weight (and divisor) magnitude (sums are exact in i64; the
/// limit keeps kernels meaningful for 8-bit images).
pub const MAX_WEIGHT: i32 = 1 << 16;

/// Checks a kernel's shape and ranges.
pub fn check(k: &Kernel) -> Result<()> {
    let ok = matches!(k.size, 3 | 5)
        && k.weights.len() == k.size * k.size
        && k.divisor != 0
        && k.divisor.abs() <= MAX_WEIGHT
        && k.weights.iter().all(|w| w.abs() <= MAX_WEIGHT);
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidInput(format!(
            "convolution kernel of size {} with {} weights and divisor {}: use 9 or 25 weights \
             and a divisor, each of magnitude at most {MAX_WEIGHT}, the divisor not 0",
            k.size,
            k.weights.len(),
            k.divisor
        )))
    }
}

/// `n / d` rounded half away from zero, clamped to a byte.
#[inline(always)]
pub fn divide(n: i64, d: i32) -> u8 {
    let (n, d) = if d < 0 {
        (-n, -i64::from(d))
    } else {
        (n, i64::from(d))
    };
    let q = if n >= 0 {
        (2 * n + d) / (2 * d)
    } else {
        -((-2 * n + d) / (2 * d))
    };
    q.clamp(0, 255) as u8
}

/// Whether every partial sum of `k` over 8-bit pixels is an integer that f32
/// holds exactly (|sum| < 2^24), so the fast row can sum in f32.
pub fn sums_fit_f32(k: &Kernel) -> bool {
    let abs: i64 = k.weights.iter().map(|&w| i64::from(w).abs()).sum();
    255 * abs < 1 << 24
}

/// Scratch buffers of [`convolve_row`], reused from row to row.
#[derive(Debug, Default)]
pub struct Scratch {
    padded: Vec<u8>,
    sums: Vec<f32>,
    wide: Vec<i64>,
}

impl Scratch {
    /// The f32 sums of the last [`accumulate`] that returned true.
    pub fn f32_sums(&self) -> &[f32] {
        &self.sums
    }

    /// The f32 sums buffer, `len` values (contents unspecified).
    pub(crate) fn sums_mut(&mut self, len: usize) -> &mut [f32] {
        if self.sums.len() != len {
            self.sums.resize(len, 0.0);
        }
        &mut self.sums
    }
}

/// One output row: `rows` are the `size` input rows around it (borders
/// resolved), `channels`-byte pixels.
///
/// Each input row is padded by reflect-101 columns so that every tap is a
/// shifted slice; the sums are exact either way: in f32 when
/// [`sums_fit_f32`] (the vector units' widest multiply-add), else in i64.
/// Rounding: a sum of 0 or less is 0 after clamping; a divisor of 1 needs
/// none; otherwise the quotient is computed in f64, where a tie (an exact
/// half) is represented exactly and no other quotient can round onto one
/// (they are at least 1/(2 |divisor|) away), then rounded half away from zero.
#[inline(always)]
pub fn convolve_row(k: &Kernel, rows: &[&[u8]], channels: usize, s: &mut Scratch, out: &mut [u8]) {
    accumulate(k, rows, channels, s, out.len());
    finish(k, s, out);
}

/// The exact sums of a row (see [`convolve_row`]) into `s`; returns whether
/// they are in f32 ([`Scratch::f32_sums`]) or i64.
#[inline(always)]
pub fn accumulate(
    k: &Kernel,
    rows: &[&[u8]],
    channels: usize,
    s: &mut Scratch,
    len: usize,
) -> bool {
    let r = k.size / 2;
    let width = len / channels;
    let pad = r * channels;
    let exact_f32 = sums_fit_f32(k);
    if exact_f32 {
        s.sums.clear();
        s.sums.resize(len, 0.0);
    } else {
        s.wide.clear();
        s.wide.resize(len, 0);
    }
    for (i, row) in rows.iter().enumerate() {
        s.padded.clear();
        s.padded.resize(len + 2 * pad, 0);
        s.padded[pad..pad + len].copy_from_slice(&row[..len]);
        for j in 0..r {
            let left = reflect101(j as isize - r as isize, width);
            let right = reflect101((width + j) as isize, width);
            for ch in 0..channels {
                s.padded[j * channels + ch] = row[left * channels + ch];
                s.padded[pad + len + j * channels + ch] = row[right * channels + ch];
            }
        }
        for j in 0..k.size {
            let w = k.weights[i * k.size + j];
            if w == 0 {
                continue;
            }
            let src = &s.padded[j * channels..j * channels + len];
            if exact_f32 {
                let wf = w as f32;
                let sums = &mut s.sums[..len];
                for x in 0..len {
                    sums[x] += wf * f32::from(src[x]);
                }
            } else {
                for (acc, &p) in s.wide.iter_mut().zip(src) {
                    *acc += i64::from(w) * i64::from(p);
                }
            }
        }
    }
    exact_f32
}

/// Turns the sums of [`accumulate`] into output bytes.
#[inline(always)]
pub fn finish(k: &Kernel, s: &Scratch, out: &mut [u8]) {
    let d = k.divisor;
    let exact_f32 = sums_fit_f32(k);
    if exact_f32 && d == 1 {
        for (o, &v) in out.iter_mut().zip(s.sums.iter()) {
            // An integer-valued f32: clamp, then read the integer from the
            // bits (Rust's saturating float casts do not vectorise).
            let c = v.clamp(0.0, 255.0);
            *o = ((c + 8_388_608.0).to_bits() - 0x4B00_0000) as u8;
        }
    } else if exact_f32 {
        let df = f64::from(d);
        for (o, &v) in out.iter_mut().zip(s.sums.iter()) {
            // Quotients at or below 0 clamp to 0; above, half away from zero
            // is floor(q + 1/2), exact here (q + 1/2 < 2^25 in f64).
            let q = ((f64::from(v) / df).max(0.0) + 0.5).floor().min(255.0);
            *o = ((q + 4_503_599_627_370_496.0).to_bits() - 0x4330_0000_0000_0000) as u8;
        }
    } else {
        for (o, &v) in out.iter_mut().zip(s.wide.iter()) {
            *o = divide(v, d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_rounds_half_away_from_zero_and_clamps() {
        assert_eq!(divide(9, 2), 5); // 4.5
        assert_eq!(divide(7, 2), 4); // 3.5
        assert_eq!(divide(-3, 2), 0); // -1.5 -> -2 -> 0
        assert_eq!(divide(-9, -2), 5);
        assert_eq!(divide(2600, 10), 255);
        assert_eq!(divide(14, 9), 2); // 1.56
    }

    #[test]
    fn f32_and_wide_sums_and_every_rounding_branch_agree() {
        let rows_data: Vec<Vec<u8>> = (0..5)
            .map(|k| (0..21).map(|i| ((i * 53 + k * 97) % 256) as u8).collect())
            .collect();
        let rows: Vec<&[u8]> = rows_data.iter().map(Vec::as_slice).collect();
        for (weights, divisor) in [
            (vec![1, 2, 1, 2, 4, 2, 1, 2, 1], 16),
            (vec![0, -1, 0, -1, 5, -1, 0, -1, 0], 1),
            (vec![-1, -1, -1, -1, 8, -1, -1, -1, -1], -3),
            (vec![3; 25], 7),
            (vec![MAX_WEIGHT; 9], MAX_WEIGHT), // too large for f32: the wide path
        ] {
            let size = if weights.len() == 9 { 3 } else { 5 };
            let k = Kernel {
                size,
                weights,
                divisor,
            };
            let r = size / 2;
            for c in [1, 3] {
                let mut got = vec![0u8; 21 / c * c];
                let window = &rows[2 - r..=2 + r];
                convolve_row(&k, window, c, &mut Scratch::default(), &mut got);
                let width = got.len() / c;
                for x in 0..width {
                    for ch in 0..c {
                        let mut s = 0i64;
                        for i in 0..size {
                            for j in 0..size {
                                let xx = reflect101(x as isize + j as isize - r as isize, width);
                                s += i64::from(k.weights[i * size + j])
                                    * i64::from(window[i][xx * c + ch]);
                            }
                        }
                        assert_eq!(got[x * c + ch], divide(s, divisor), "{k:?} at {x}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_kernels_are_refused() {
        let k = |size, n, divisor| Kernel {
            size,
            weights: vec![1; n],
            divisor,
        };
        assert!(check(&k(3, 9, 9)).is_ok());
        assert!(check(&k(5, 25, 1)).is_ok());
        assert!(check(&k(3, 8, 9)).is_err());
        assert!(check(&k(4, 16, 9)).is_err());
        assert!(check(&k(3, 9, 0)).is_err());
    }
}
