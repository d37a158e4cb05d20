//! Gaussian blur, bit-exact with OpenCV's 8-bit `GaussianBlur(src, (0, 0),
//! sigma)`, and the unsharp mask built on it.
//!
//! **Blur.** The kernel has `n = round(6 sigma + 1) | 1` taps (OpenCV's size
//! for 8-bit images); tap `i` is `exp(-(i - c)^2 / (2 sigma^2))` normalised to
//! sum 1, then quantised to 8 fractional bits the way OpenCV's
//! `getGaussianKernelFixedPoint_ED` does: the outer taps from the edge inwards
//! with the rounding error carried to the next tap (error diffusion), mirrored,
//! and the centre tap 256 minus the rest. The same taps run both ways; the
//! exact sum `sum_ij t_i t_j p(y+i, x+j)` (16 fractional bits, at most
//! 255 * 2^16) is rounded once, half up: `(s + 2^15) >> 16`. Borders are
//! reflect-101 (OpenCV's default), bouncing for kernels wider than the image.
//! Because the sum is exact, the order of the passes is free: the fast path
//! sums columns first (u16, exact) and rows second (u32, exact), the naive one
//! pixel by pixel, and both equal OpenCV's horizontal-then-vertical result.
//!
//! **Sharpen** (unsharp mask): `out = src + amount * (src - blur(src, sigma))`
//! in f32 from the exact blur, rounded half away from zero, clamped to 0..255;
//! computed in the same pass as the blur's rows.
// Kernels index several slices at the same offsets; index loops say so
// more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

pub(crate) mod kernels;
pub(crate) mod stream;

use super::border::reflect101;
use crate::pixel::ImageBuf;

/// Taps of the 8-bit gaussian kernel for `sigma`, in 8 fractional bits
/// (they sum to 256).
pub fn taps(sigma: f32) -> Vec<u16> {
    let sigma = f64::from(sigma);
    let n = (((sigma * 6.0 + 1.0).round() as usize) | 1).max(1);
    let c = (n - 1) / 2;
    // As OpenCV: exp(x^2 * (-0.125 / sigma^2)) with x = 2(i - c).
    let scale = -0.125 / (sigma * sigma);
    let values: Vec<f64> = (0..c)
        .map(|i| {
            let x = 2.0 * (i as f64 - c as f64);
            (x * x * scale).exp()
        })
        .collect();
    let sum = values.iter().sum::<f64>() * 2.0 + 1.0;
    let mul = 1.0 / sum;
    let mut t = vec![0u16; n];
    let mut err = 0.0f64;
    let mut outer = 0u32;
    for i in 0..c {
        let adj = values[i] * mul * 256.0 + err;
        // cvRound: to nearest, ties to even.
        let v = adj.round_ties_even();
        err = adj - v;
        t[i] = v as u16;
        t[n - 1 - i] = v as u16;
        outer += 2 * v as u32;
    }
    t[c] = (256 - outer) as u16;
    t
}

/// Rows above and below a pixel that the blur of `sigma` reads.
pub fn radius(sigma: f32) -> usize {
    taps(sigma).len() / 2
}

/// The unsharp mask of one value.
#[inline(always)]
pub fn sharpen_value(src: u8, blurred: u8, amount: f32) -> u8 {
    let s = f32::from(src);
    (s + amount * (s - f32::from(blurred)))
        .round()
        .clamp(0.0, 255.0) as u8
}

/// One output row of the blur: `rows` are the `2r + 1` input rows around it
/// (borders already resolved), `channels`-byte pixels. `scratch` is reused.
///
/// Columns first: `v = sum_i t_i row_i` per value, exact in u16 (the taps sum
/// to 256, so v <= 255 * 256); mirrored taps are folded (t (a + b): a tap
/// other than the centre is at most 85, so this stays in u16). Then rows:
/// the same taps over `v` padded by reflect-101, in f32, which is exact here:
/// every operand and partial sum is an integer below 2^24 (the total is at
/// most 255 * 2^16, a folded pair at most 85 * 2 * 65280), and f32 holds
/// every integer up to 2^24. f32 because the vector units multiply and add
/// it at full width; u32 products would need the slow 32-bit multiply.
#[inline(always)]
pub fn blur_row(
    taps: &[u16],
    rows: &[&[u8]],
    channels: usize,
    scratch: &mut Scratch,
    out: &mut [u8],
) {
    let n = taps.len();
    let r = n / 2;
    let len = out.len();
    let pad = r * channels;
    // The column sums, straight into f32 with room for the padding.
    let v = scratch.padded_mut(len + 2 * pad);
    let tc = taps[r];
    const V: usize = 32;
    let full = len / V * V;
    for x in (0..full).step_by(V) {
        let mut acc = [0u16; V];
        let c: &[u8; V] = rows[r][x..x + V].try_into().expect("V bytes");
        for l in 0..V {
            acc[l] = tc * u16::from(c[l]);
        }
        for k in 0..r {
            let t = taps[k];
            debug_assert!(
                t <= 85,
                "an outer tap above 85 would overflow the folded sum"
            );
            let a: &[u8; V] = rows[k][x..x + V].try_into().expect("V bytes");
            let b: &[u8; V] = rows[n - 1 - k][x..x + V].try_into().expect("V bytes");
            for l in 0..V {
                acc[l] += t * (u16::from(a[l]) + u16::from(b[l]));
            }
        }
        for (o, &a) in v[pad + x..pad + x + V].iter_mut().zip(&acc) {
            *o = f32::from(a);
        }
    }
    column_sums_from(taps, rows, v, pad, full);
    pad_columns(v, r, channels, len);
    let ftaps = half_taps_f32(taps);
    // 16 outputs at a time, summed in registers over all taps.
    const L: usize = 16;
    let full = len / L * L;
    for x in (0..full).step_by(L) {
        let mut s = [0f32; L];
        let c = &v[x + pad..x + pad + L];
        for l in 0..L {
            s[l] = ftaps[r] * c[l];
        }
        for k in 0..r {
            let a = &v[x + k * channels..x + k * channels + L];
            let b = &v[x + (n - 1 - k) * channels..x + (n - 1 - k) * channels + L];
            for l in 0..L {
                s[l] += ftaps[k] * (a[l] + b[l]);
            }
        }
        for l in 0..L {
            out[x + l] = round_out(s[l]);
        }
    }
    row_values_from(&ftaps[..=r], v, channels, out, full);
}

/// Taps `0..=r` (the centre and one side) as f32, in a fixed array: every
/// row kernel needs them, and a vector per row is an allocation per row.
/// `sigma <= 100` gives `r <= 300`.
#[inline(always)]
pub(crate) fn half_taps_f32(taps: &[u16]) -> [f32; 512] {
    let r = taps.len() / 2;
    assert!(r < 512, "{} taps", taps.len());
    let mut ft = [0f32; 512];
    for (f, &t) in ft.iter_mut().zip(&taps[..=r]) {
        *f = f32::from(t);
    }
    ft
}

/// The column sums of values `from..` (up to `v.len() - 2 pad`) one at a
/// time, into `v` after its `pad` values of padding: the vector loops'
/// tails.
#[inline(always)]
pub(crate) fn column_sums_from(
    taps: &[u16],
    rows: &[&[u8]],
    v: &mut [f32],
    pad: usize,
    from: usize,
) {
    let (n, r) = (taps.len(), taps.len() / 2);
    for x in from..v.len() - 2 * pad {
        let mut acc = taps[r] * u16::from(rows[r][x]);
        for k in 0..r {
            acc += taps[k] * (u16::from(rows[k][x]) + u16::from(rows[n - 1 - k][x]));
        }
        v[pad + x] = f32::from(acc);
    }
}

/// Output values `from..out.len()` from the padded column sums `v`, one at
/// a time (`ft`: the taps up to the centre, in f32): the vector loops'
/// tails.
#[inline(always)]
pub(crate) fn row_values_from(ft: &[f32], v: &[f32], channels: usize, out: &mut [u8], from: usize) {
    let r = ft.len() - 1;
    let (n, pad) = (2 * r + 1, r * channels);
    for x in from..out.len() {
        let mut s = ft[r] * v[x + pad];
        for k in 0..r {
            s += ft[k] * (v[x + k * channels] + v[x + (n - 1 - k) * channels]);
        }
        out[x] = round_out(s);
    }
}

/// Fills the `r` pixels of padding on each side of the column sums in `v`
/// (`len` values from `r * channels` on) with their reflect-101 copies.
pub(crate) fn pad_columns(v: &mut [f32], r: usize, channels: usize, len: usize) {
    let (pad, width) = (r * channels, len / channels);
    for j in 0..r {
        let left = reflect101(j as isize - r as isize, width);
        let right = reflect101((width + j) as isize, width);
        for ch in 0..channels {
            v[j * channels + ch] = v[pad + left * channels + ch];
            v[pad + len + j * channels + ch] = v[pad + right * channels + ch];
        }
    }
}

/// `(s + 2^15) >> 16` for an exact sum `s` in f32: adding 2^15 and scaling
/// by 2^-16 are exact and `floor` is the shift; the integer is read from the
/// bits after adding 2^23 (which puts it in the low mantissa bits), because
/// Rust's saturating `as` casts from float do not vectorise.
#[inline(always)]
fn round_out(s: f32) -> u8 {
    let y = ((s + 32768.0) * (1.0 / 65536.0)).floor();
    ((y + 8_388_608.0).to_bits() - 0x4B00_0000) as u8
}

impl Scratch {
    /// The padded column-sum buffer, `len` values long (its old contents:
    /// every value is written before it is read).
    pub(crate) fn padded_mut(&mut self, len: usize) -> &mut [f32] {
        if self.padded.len() < len {
            self.padded.resize(len, 0.0);
        }
        &mut self.padded[..len]
    }
}

/// Buffers reused from row to row.
#[derive(Debug, Default)]
pub struct Scratch {
    padded: Vec<f32>,
}

/// The blur of one pixel value straight from the definition: the exact
/// double sum over the kernel with reflect-101 coordinates, rounded once.
pub fn blur_value_naive(taps: &[u16], img: &ImageBuf, x: usize, y: usize, ch: usize) -> u8 {
    let info = img.info();
    let (width, height, channels) = (
        info.width() as usize,
        info.height() as usize,
        info.channels(),
    );
    let src = img.data();
    let r = (taps.len() / 2) as isize;
    let mut s = 0u64;
    for (i, &ti) in taps.iter().enumerate() {
        let yy = reflect101(y as isize + i as isize - r, height);
        for (j, &tj) in taps.iter().enumerate() {
            let xx = reflect101(x as isize + j as isize - r, width);
            s += u64::from(ti) * u64::from(tj) * u64::from(src[(yy * width + xx) * channels + ch]);
        }
    }
    ((s + (1 << 15)) >> 16) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::PixelFormat;

    #[test]
    fn taps_match_opencv_kernels() {
        // The fixed-point taps OpenCV 5.0's 8-bit GaussianBlur uses: a numpy
        // re-implementation with these taps matched cv2.GaussianBlur pixel for
        // pixel (bench/check_exact.py).
        assert_eq!(taps(1.0), [1, 14, 62, 102, 62, 14, 1]);
        assert_eq!(taps(2.0), [1, 2, 7, 16, 31, 45, 52, 45, 31, 16, 7, 2, 1]);
        assert_eq!(taps(0.5), [0, 27, 202, 27, 0]);
        assert_eq!(taps(0.1), [0, 256, 0]);
        assert_eq!(radius(5.0), 15);
    }

    #[test]
    fn fast_row_equals_the_definition() {
        for (w, h, c, sigma) in [
            (1, 1, 1, 1.0),
            (7, 3, 3, 2.0),
            (2, 9, 4, 1.5),
            (33, 5, 1, 0.7),
        ] {
            let src: Vec<u8> = (0..w * h * c).map(|i| (i * 97 % 256) as u8).collect();
            let format = [
                PixelFormat::Gray8,
                PixelFormat::Gray8,
                PixelFormat::Gray8,
                PixelFormat::Rgb8,
                PixelFormat::Rgba8,
            ][c];
            let img = ImageBuf::from_raw(w as u32, h as u32, format, src.clone()).unwrap();
            let t = taps(sigma);
            let r = (t.len() / 2) as isize;
            let mut scratch = Scratch::default();
            for y in 0..h {
                let rows: Vec<&[u8]> = (-r..=r)
                    .map(|d| {
                        let yy = reflect101(y as isize + d, h);
                        &src[yy * w * c..(yy + 1) * w * c]
                    })
                    .collect();
                let mut out = vec![0u8; w * c];
                blur_row(&t, &rows, c, &mut scratch, &mut out);
                for x in 0..w {
                    for ch in 0..c {
                        let want = blur_value_naive(&t, &img, x, y, ch);
                        assert_eq!(
                            out[x * c + ch],
                            want,
                            "{w}x{h}x{c} sigma {sigma} at {x},{y}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sharpen_rounds_half_away_and_clamps() {
        assert_eq!(sharpen_value(100, 90, 1.0), 110);
        assert_eq!(sharpen_value(100, 99, 0.5), 101); // 100.5 -> 101
        assert_eq!(sharpen_value(250, 200, 1.0), 255);
        assert_eq!(sharpen_value(10, 60, 1.0), 0);
        assert_eq!(sharpen_value(10, 60, 0.0), 10);
    }
}
