//! Integer 3x3 and 5x5 convolution (sharpen, edge and emboss kernels, box
//! filters with custom weights).
//!
//! `out = clamp(round(sum_ij w_ij p(y+i-r, x+j-r) / divisor))`: the sum is
//! exact in i32 (weights are bounded by [`MAX_WEIGHT`]), the division rounds
//! half away from zero, the result is clamped to 0..255; borders are
//! reflect-101. As in OpenCV's `filter2D`, the kernel is applied as given
//! (correlation: it is not flipped). Every channel, alpha included, is
//! filtered.

use super::Kernel;
use super::border::reflect101;
use crate::error::{CoreError, Result};

/// The largest weight (and divisor) magnitude: 25 * 255 * 2^16 fits an i32.
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
pub fn divide(n: i32, d: i32) -> u8 {
    let (n, d) = if d < 0 {
        (-i64::from(n), -i64::from(d))
    } else {
        (i64::from(n), i64::from(d))
    };
    let q = if n >= 0 {
        (2 * n + d) / (2 * d)
    } else {
        -((-2 * n + d) / (2 * d))
    };
    q.clamp(0, 255) as u8
}

/// One output row: `rows` are the `size` input rows around it (borders
/// resolved), `channels`-byte pixels; `padded` is scratch.
pub fn convolve_row(
    k: &Kernel,
    rows: &[&[u8]],
    channels: usize,
    padded: &mut Vec<u8>,
    sums: &mut Vec<i32>,
    out: &mut [u8],
) {
    let r = k.size / 2;
    let len = out.len();
    let width = len / channels;
    sums.clear();
    sums.resize(len, 0);
    for (i, row) in rows.iter().enumerate() {
        // The row padded by reflect-101 columns, so each tap is a shifted slice.
        padded.clear();
        for j in 0..width + 2 * r {
            let x = reflect101(j as isize - r as isize, width);
            padded.extend_from_slice(&row[x * channels..(x + 1) * channels]);
        }
        for j in 0..k.size {
            let w = k.weights[i * k.size + j];
            if w == 0 {
                continue;
            }
            let src = &padded[j * channels..j * channels + len];
            for (s, &p) in sums.iter_mut().zip(src) {
                *s += w * i32::from(p);
            }
        }
    }
    for (o, &s) in out.iter_mut().zip(sums.iter()) {
        *o = divide(s, k.divisor);
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
