//! Resizing with Pillow's semantics (`Image.resize`), streamed.
//!
//! **Sizes** (`resize=WxH[:fit|inside|fill|exact][:FILTER]`): `fit` is the
//! largest size within the box that keeps the aspect ratio, `inside` the
//! same but never larger than the image (an image already inside the box is
//! left as it is, as Pillow's `thumbnail`, sharp's `withoutEnlargement` and
//! imgproxy do), `fill` covers the box and then crops its centre (offsets
//! rounded down), `exact` stretches; `W` or `H` may be left out to keep the
//! aspect ratio. A side computed from the aspect ratio is rounded half up
//! and at least 1. `thumbnail=N` is `resize=NxN:inside`. A resize to the
//! image's own size changes nothing (as in Pillow).
//!
//! **Filters** (`lanczos3` default, `cubic`, `linear`, `box`, `nearest`):
//! Pillow's convolution resampling (`Resample.c`). Per axis, scale = in / out
//! and the filter's support is multiplied by max(scale, 1), so downscaling
//! averages over every input pixel (antialiasing); output pixel x is centred
//! on input coordinate (x + 0.5) scale; weights are normalised to sum 1, then
//! quantised to 22 fractional bits (rounded half away from zero). The
//! horizontal pass runs first and rounds to 8 bits (`(sum + 2^21) >> 22`,
//! clamped), then the vertical pass over its rows; an axis whose size does not
//! change is not resampled. RGBA is resampled premultiplied (Pillow converts
//! to `RGBa` and back), so transparent pixels do not bleed their colour.
//! `nearest` takes input pixel floor((x + 0.5) scale) per axis, with Pillow's
//! accumulation of the position in f64.
//!
//! Streaming: the horizontal pass runs on each input row as it arrives (only
//! rows some output row needs); an output row is produced once the last input
//! row of its vertical window has arrived, so the stage holds one window of
//! horizontally resampled rows (about 6 scale + 1 rows for Lanczos3).
// Kernels index several slices at the same offsets; index loops say so
// more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

pub(crate) mod alpha;
pub(crate) mod columns;
pub(crate) mod digits;
pub(crate) mod kernels;
pub(crate) mod rows;
pub(crate) mod stream;
pub(crate) mod strips;

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::CropBox;
use crate::error::{CoreError, Result};

/// The resampling filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Filter {
    /// Lanczos with a = 3 (Pillow's LANCZOS).
    #[default]
    Lanczos3,
    /// Bicubic, a = -0.5 (Pillow's BICUBIC).
    Cubic,
    /// Triangle (Pillow's BILINEAR).
    Linear,
    /// Box (Pillow's BOX): the mean over the pixels each output pixel covers.
    Box,
    /// Nearest neighbour (Pillow's NEAREST).
    Nearest,
}

impl Filter {
    /// The spec name.
    pub const fn name(self) -> &'static str {
        match self {
            Filter::Lanczos3 => "lanczos3",
            Filter::Cubic => "cubic",
            Filter::Linear => "linear",
            Filter::Box => "box",
            Filter::Nearest => "nearest",
        }
    }

    /// The filter named `name` (as [`Filter::name`] gives it).
    pub fn from_name(name: &str) -> Option<Filter> {
        [
            Filter::Lanczos3,
            Filter::Cubic,
            Filter::Linear,
            Filter::Box,
            Filter::Nearest,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }

    fn support(self) -> f64 {
        match self {
            Filter::Lanczos3 => 3.0,
            Filter::Cubic => 2.0,
            Filter::Linear => 1.0,
            Filter::Box | Filter::Nearest => 0.5,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Box | Filter::Nearest => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Linear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Filter::Cubic => {
                let a = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
            Filter::Lanczos3 => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// How the target box is met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Fit {
    /// The largest size within the box, aspect kept.
    #[default]
    Fit,
    /// Cover the box, aspect kept, then crop its centre.
    Fill,
    /// Exactly the box.
    Exact,
    /// As `Fit`, but never enlarging: an image inside the box stays as it is.
    Inside,
}

impl Fit {
    /// The spec name.
    pub const fn name(self) -> &'static str {
        match self {
            Fit::Fit => "fit",
            Fit::Fill => "fill",
            Fit::Exact => "exact",
            Fit::Inside => "inside",
        }
    }
}

/// A resize: the target box (a side may be left to the aspect ratio), how
/// to meet it, and the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resize {
    /// Target width, or `None` to keep the aspect ratio.
    pub width: Option<u32>,
    /// Target height, or `None` to keep the aspect ratio.
    pub height: Option<u32>,
    /// How the box is met (moot when a side is left out).
    pub fit: Fit,
    /// The resampling filter.
    pub filter: Filter,
}

impl fmt::Display for Resize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
        write!(
            f,
            "resize={}x{}:{}:{}",
            side(self.width),
            side(self.height),
            self.fit.name(),
            self.filter.name()
        )
    }
}

/// The largest side accepted (a resize is bounded by the server's pixel limit
/// as well).
pub const MAX_SIDE: u32 = 1 << 20;

/// `a * b / c` rounded half up, at least 1.
fn scale_round(a: u32, b: u32, c: u32) -> u32 {
    let v = (2 * u64::from(a) * u64::from(b) + u64::from(c)) / (2 * u64::from(c));
    v.clamp(1, u64::from(MAX_SIDE)) as u32
}

impl Resize {
    /// Checks the sides.
    pub fn validate(&self) -> Result<()> {
        let ok = |v: Option<u32>| v.is_none_or(|v| (1..=MAX_SIDE).contains(&v));
        if (self.width.is_none() && self.height.is_none()) || !ok(self.width) || !ok(self.height) {
            return Err(CoreError::InvalidInput(format!(
                "{self}: give a width, a height or both, each 1..{MAX_SIDE}"
            )));
        }
        Ok(())
    }

    /// For an input `w` x `h`: the size to resample to, and for `fill` the
    /// centre box to crop from it afterwards.
    pub fn plan(&self, w: u32, h: u32) -> (u32, u32, Option<CropBox>) {
        if self.fit == Fit::Inside
            && self.width.is_none_or(|tw| w <= tw)
            && self.height.is_none_or(|th| h <= th)
        {
            return (w, h, None);
        }
        match (self.width, self.height, self.fit) {
            (Some(tw), None, _) => (tw, scale_round(h, tw, w), None),
            (None, Some(th), _) => (scale_round(w, th, h), th, None),
            (Some(tw), Some(th), Fit::Exact) => (tw, th, None),
            (Some(tw), Some(th), fit) => {
                // Compare tw / w with th / h exactly.
                let width_binds = u64::from(tw) * u64::from(h) <= u64::from(th) * u64::from(w);
                let by_width = (tw, scale_round(h, tw, w));
                let by_height = (scale_round(w, th, h), th);
                if matches!(fit, Fit::Fit | Fit::Inside) {
                    let (a, b) = if width_binds { by_width } else { by_height };
                    (a, b, None)
                } else {
                    let (a, b) = if width_binds { by_height } else { by_width };
                    let (a, b) = (a.max(tw), b.max(th));
                    let crop = CropBox {
                        x: (a - tw) / 2,
                        y: (b - th) / 2,
                        width: tw,
                        height: th,
                    };
                    (a, b, Some(crop).filter(|_| (a, b) != (tw, th)))
                }
            }
            (None, None, _) => (w, h, None),
        }
    }
}

/// Fractional bits of the quantised weights (Pillow's PRECISION_BITS).
const BITS: u32 = 22;

/// The weights of one axis: for each output position, the first input
/// position and the weights of the positions from there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coeffs {
    /// (first input index, count) per output index.
    pub bounds: Vec<(usize, usize)>,
    /// Weights per output index, `ksize` apart, 22 fractional bits.
    pub weights: Vec<i32>,
    /// Stride of `weights`.
    pub ksize: usize,
}

impl Coeffs {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for resizing
    /// `in_size` to `out_size` (not for `nearest`). The output positions
    /// are computed in parallel: Lanczos takes two `sin` per tap, and a
    /// 3001 -> 750 axis alone is about 19,000 taps.
    pub fn new(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = Self::ksize(in_size, out_size, filter);
        let mut bounds = vec![(0, 0); out_size];
        let mut weights = vec![0i32; out_size * ksize];
        // About 4096 taps per task.
        let per_task = (4096 / ksize).max(1);
        weights
            .par_chunks_mut(per_task * ksize)
            .zip(bounds.par_chunks_mut(per_task))
            .enumerate()
            .for_each(|(t, (weights, bounds))| {
                let mut k = vec![0f64; ksize];
                for (i, (row, b)) in weights.chunks_exact_mut(ksize).zip(bounds).enumerate() {
                    let xx = t * per_task + i;
                    let center = (xx as f64 + 0.5) * scale;
                    let ss = 1.0 / filterscale;
                    // Truncation toward zero, as C's (int) cast.
                    let xmin = ((center - support + 0.5) as i64).max(0) as usize;
                    let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
                    let count = xmax.saturating_sub(xmin).min(ksize);
                    let mut ww = 0.0;
                    for x in 0..count {
                        let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
                        k[x] = w;
                        ww += w;
                    }
                    for x in 0..count {
                        let w = if ww != 0.0 { k[x] / ww } else { k[x] };
                        let f = w * f64::from(1u32 << BITS);
                        row[x] = if w < 0.0 {
                            (f - 0.5) as i32
                        } else {
                            (f + 0.5) as i32
                        };
                    }
                    *b = (xmin, count);
                }
            });
        Coeffs {
            bounds,
            weights,
            ksize,
        }
    }

    /// [`Coeffs::new`], shared with the resizes of the same geometry: the
    /// weights of the last few (small enough) geometries are kept, since
    /// batches resize many images of one size to one size, and computing
    /// them costs about as much as resampling a small image.
    pub fn shared(in_size: usize, out_size: usize, filter: Filter) -> Arc<Coeffs> {
        type Recent = VecDeque<((usize, usize, Filter), Arc<Coeffs>)>;
        static RECENT: Mutex<Recent> = Mutex::new(VecDeque::new());
        /// Geometries kept, and the largest weight table kept (i32s).
        const KEEP: usize = 16;
        const MAX_WEIGHTS: usize = 1 << 20;
        let key = (in_size, out_size, filter);
        let recent = |f: &mut dyn FnMut(&mut Recent)| {
            // A panic elsewhere cannot leave the list inconsistent.
            let mut guard = RECENT.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        };
        let mut found = None;
        recent(&mut |r| {
            if let Some(i) = r.iter().position(|(k, _)| *k == key) {
                let hit = r.remove(i).expect("found");
                found = Some(hit.1.clone());
                r.push_front(hit);
            }
        });
        if let Some(c) = found {
            return c;
        }
        let c = Arc::new(Coeffs::new(in_size, out_size, filter));
        if c.weights.len() <= MAX_WEIGHTS {
            recent(&mut |r| {
                r.retain(|(k, _)| *k != key);
                r.push_front((key, c.clone()));
                r.truncate(KEEP);
            });
        }
        c
    }

    /// The most input positions one output reads (the stride of the
    /// weights), without computing them.
    pub fn ksize(in_size: usize, out_size: usize, filter: Filter) -> usize {
        let filterscale = (in_size as f64 / out_size as f64).max(1.0);
        (filter.support() * filterscale).ceil() as usize * 2 + 1
    }

    /// The input positions output `i` reads.
    pub fn window(&self, i: usize) -> std::ops::Range<usize> {
        let (start, count) = self.bounds[i];
        start..start + count
    }
}

/// Pillow's `clip8`: the fixed-point sum to a byte.
#[inline(always)]
pub fn clip8(sum: i32) -> u8 {
    (sum >> BITS).clamp(0, 255) as u8
}

/// The first rounding term of every sum.
pub const HALF: i32 = 1 << (BITS - 1);

/// Resamples one row horizontally: `src` holds `in_width` pixels of
/// `channels` bytes, `out` gets `coeffs.bounds.len()` pixels.
pub fn horizontal_row(src: &[u8], channels: usize, c: &Coeffs, out: &mut [u8]) {
    for (xx, o) in out.chunks_exact_mut(channels).enumerate() {
        let (xmin, count) = c.bounds[xx];
        let k = &c.weights[xx * c.ksize..xx * c.ksize + count];
        for ch in 0..channels {
            let mut s = HALF;
            for (x, &w) in k.iter().enumerate() {
                s += i32::from(src[(xmin + x) * channels + ch]) * w;
            }
            o[ch] = clip8(s);
        }
    }
}

/// Resamples one output row vertically from the rows of its window
/// (`rows[i]` is input row `start + i` of the window, with weights `k`).
pub fn vertical_row(rows: &[&[u8]], k: &[i32], out: &mut [u8]) {
    for x in 0..out.len() {
        let mut s = HALF;
        for (row, &w) in rows.iter().zip(k) {
            s += i32::from(row[x]) * w;
        }
        out[x] = clip8(s);
    }
}

/// Pillow's nearest-neighbour source index per output index: the position
/// starts at scale / 2 and grows by `scale` (f64, accumulated as Pillow
/// does), truncated.
pub fn nearest_indices(in_size: usize, out_size: usize) -> Vec<usize> {
    let a = in_size as f64 / out_size as f64;
    let mut xo = a * 0.5;
    let mut v = Vec::with_capacity(out_size);
    for _ in 0..out_size {
        v.push((xo as usize).min(in_size - 1));
        xo += a;
    }
    v
}

/// Premultiplies RGBA pixels in place (Pillow's RGBA -> RGBa:
/// `c * a / 255` rounded, as `((t >> 8) + t) >> 8` with `t = c a + 128`).
pub fn premultiply(px: &mut [u8]) {
    for p in px.chunks_exact_mut(4) {
        let a = u32::from(p[3]);
        for c in &mut p[..3] {
            let t = u32::from(*c) * a + 128;
            *c = (((t >> 8) + t) >> 8) as u8;
        }
    }
}

/// Undoes [`premultiply`] in place (Pillow's RGBa -> RGBA: `c * 255 / a`
/// truncated and clamped; alpha 0 and 255 leave the colour as it is).
///
/// The division is a multiply by [`UNPREMULTIPLY`]'s reciprocal and a
/// shift, exact for every `c` and `a` (tested against the division): three
/// divisions a pixel were a tenth of a 4000x3000 RGBA resize to a quarter.
pub fn unpremultiply(px: &mut [u8]) {
    for p in px.chunks_exact_mut(4) {
        let a = usize::from(p[3]);
        if a != 0 && a != 255 {
            let m = u64::from(UNPREMULTIPLY[a]);
            for c in &mut p[..3] {
                *c = ((u64::from(*c) * m) >> 24).min(255) as u8;
            }
        }
    }
}

/// `255 * ceil(2^24 / a)` for each alpha `a` (0 for 0): `(c * m) >> 24`
/// is `c * 255 / a` truncated for every byte `c` and every `a` below 255.
/// With `n = 255 c < 2^16`, `n ceil(2^24 / a) / 2^24` exceeds `n / a` by
/// less than `n / 2^24 < 1/256 < 1/a`, less than the distance from `n / a`
/// to the next integer.
const UNPREMULTIPLY: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut a = 1;
    while a < 256 {
        t[a] = 255 * (1u32 << 24).div_ceil(a as u32);
        a += 1;
    }
    t
};

/// The whole-image resample to `out_w` x `out_h` (a different size) the
/// plain way: every row
/// horizontally into a temporary image, then every output row vertically
/// (premultiplied for RGBA): the reference the streaming stage is tested
/// against (and, in `bench/`, Pillow).
pub fn resample_image(
    src: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
) -> Vec<u8> {
    if filter == Filter::Nearest {
        let xs = nearest_indices(width, out_w);
        let ys = nearest_indices(height, out_h);
        let mut out = Vec::with_capacity(out_w * out_h * channels);
        for &y in &ys {
            for &x in &xs {
                out.extend_from_slice(&src[(y * width + x) * channels..][..channels]);
            }
        }
        return out;
    }
    let alpha = channels == 4;
    let mut img = src.to_vec();
    if alpha {
        premultiply(&mut img);
    }
    let mut cur_w = width;
    if out_w != width {
        let c = Coeffs::new(width, out_w, filter);
        let mut tmp = vec![0u8; out_w * height * channels];
        for y in 0..height {
            horizontal_row(
                &img[y * width * channels..(y + 1) * width * channels],
                channels,
                &c,
                &mut tmp[y * out_w * channels..(y + 1) * out_w * channels],
            );
        }
        img = tmp;
        cur_w = out_w;
    }
    if out_h != height {
        let c = Coeffs::new(height, out_h, filter);
        let rb = cur_w * channels;
        let mut tmp = vec![0u8; out_h * rb];
        for yy in 0..out_h {
            let rows: Vec<&[u8]> = c.window(yy).map(|y| &img[y * rb..(y + 1) * rb]).collect();
            let k = &c.weights[yy * c.ksize..yy * c.ksize + rows.len()];
            vertical_row(&rows, k, &mut tmp[yy * rb..(yy + 1) * rb]);
        }
        img = tmp;
    }
    if alpha {
        unpremultiply(&mut img);
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(w: Option<u32>, h: Option<u32>, fit: Fit) -> Resize {
        Resize {
            width: w,
            height: h,
            fit,
            filter: Filter::Lanczos3,
        }
    }

    #[test]
    fn sizes_fit_fill_and_keep_the_aspect() {
        // 4000x3000 into 800x800: fit 800x600; fill covers 1067x800, crops.
        assert_eq!(
            r(Some(800), Some(800), Fit::Fit).plan(4000, 3000),
            (800, 600, None)
        );
        let (w, h, crop) = r(Some(800), Some(800), Fit::Fill).plan(4000, 3000);
        assert_eq!((w, h), (1067, 800));
        assert_eq!(
            crop,
            Some(CropBox {
                x: 133,
                y: 0,
                width: 800,
                height: 800
            })
        );
        assert_eq!(
            r(Some(10), Some(10), Fit::Exact).plan(4000, 3000),
            (10, 10, None)
        );
        // One side: the other from the aspect, rounded half up, at least 1.
        assert_eq!(
            r(Some(800), None, Fit::Fit).plan(3001, 2003),
            (800, 534, None)
        );
        assert_eq!(r(None, Some(1), Fit::Fit).plan(3000, 5000), (1, 1, None));
        assert_eq!(r(Some(3), None, Fit::Fit).plan(2, 1), (3, 2, None)); // 1.5 -> 2
        // Inside never enlarges: a 16x12 icon's 128-pixel thumbnail is 16x12.
        assert_eq!(
            r(Some(128), Some(128), Fit::Inside).plan(16, 12),
            (16, 12, None)
        );
        assert_eq!(r(Some(128), None, Fit::Inside).plan(16, 12), (16, 12, None));
        assert_eq!(
            r(Some(800), Some(800), Fit::Inside).plan(4000, 3000),
            (800, 600, None)
        );
        assert_eq!(
            r(Some(800), Some(800), Fit::Inside).plan(700, 3000),
            (187, 800, None)
        );
    }

    #[test]
    fn shared_weights_are_the_computed_ones_and_are_reused() {
        for (i, o, f) in [
            (3001, 750, Filter::Lanczos3),
            (7, 40, Filter::Cubic),
            (1, 5, Filter::Linear),
        ] {
            let a = Coeffs::shared(i, o, f);
            assert_eq!(*a, Coeffs::new(i, o, f), "{i} -> {o}");
            let b = Coeffs::shared(i, o, f);
            assert!(Arc::ptr_eq(&a, &b), "{i} -> {o} reused");
        }
        // Another filter is another table.
        assert_ne!(
            *Coeffs::shared(3001, 750, Filter::Box),
            *Coeffs::shared(3001, 750, Filter::Lanczos3)
        );
    }

    #[test]
    fn weights_sum_to_one_and_downscaling_widens_the_window() {
        for filter in [Filter::Lanczos3, Filter::Cubic, Filter::Linear, Filter::Box] {
            for (i, o) in [(100, 25), (25, 100), (7, 3), (3, 7), (1, 5), (5, 1)] {
                let c = Coeffs::new(i, o, filter);
                for x in 0..o {
                    let (_, n) = c.bounds[x];
                    let sum: i64 = c.weights[x * c.ksize..x * c.ksize + n]
                        .iter()
                        .map(|&w| i64::from(w))
                        .sum();
                    assert!(
                        (sum - (1 << BITS)).abs() <= n as i64,
                        "{filter:?} {i}->{o} at {x}: {sum}"
                    );
                }
            }
        }
        let down = Coeffs::new(400, 100, Filter::Lanczos3);
        assert!(
            down.bounds[50].1 >= 24,
            "a quarter keeps 6 * 4 taps: {:?}",
            down.bounds[50]
        );
    }

    #[test]
    fn unpremultiply_divides_exactly_for_every_colour_and_alpha() {
        for a in 0..=255u8 {
            for c in 0..=255u8 {
                let mut px = [c, c, c, a];
                unpremultiply(&mut px);
                let want = if a == 0 || a == 255 {
                    c
                } else {
                    (u32::from(c) * 255 / u32::from(a)).min(255) as u8
                };
                assert_eq!(px, [want, want, want, a], "c {c}, a {a}");
            }
        }
    }

    #[test]
    fn premultiplication_round_trips_opaque_and_transparent_pixels() {
        let mut px = [10, 20, 30, 255, 10, 20, 30, 0, 200, 100, 50, 128];
        premultiply(&mut px);
        assert_eq!(&px[..8], &[10, 20, 30, 255, 0, 0, 0, 0]);
        assert_eq!(&px[8..], &[100, 50, 25, 128]);
        unpremultiply(&mut px);
        assert_eq!(&px[8..], &[199, 99, 49, 128]);
    }

    #[test]
    fn nearest_picks_centres() {
        assert_eq!(nearest_indices(4, 2), [1, 3]);
        assert_eq!(nearest_indices(2, 4), [0, 0, 1, 1]);
        assert_eq!(nearest_indices(5, 1), [2]);
    }
}
