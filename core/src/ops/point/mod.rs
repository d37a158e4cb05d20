//! Pixel-wise operations: gray conversion and the tone tables (brightness,
//! contrast, gamma), fused into one pass per row.
//!
//! - `gray`: Y = (9798 R + 19235 G + 3735 B + 16384) >> 15, which equals
//!   OpenCV's `cvtColor(.., COLOR_RGB2GRAY)` on all 2^24 colours (its
//!   coefficients are 0.299, 0.587, 0.114 in 15-bit fixed point). RGB8 becomes
//!   GRAY8; RGBA8 stays RGBA8 with R = G = B = Y and alpha kept; GRAY8 is
//!   unchanged.
//! - `brightness=N`: v + N, clamped to 0..255.
//! - `contrast=F`: (v - 128) * F + 128, rounded half away from zero, clamped.
//! - `gamma=G`: 255 * (v / 255) ^ (1 / G), rounded (G > 1 brightens the
//!   mid-tones, as ImageMagick's `-gamma` and Pillow recipes do).
//!
//! Tables act on colour channels only: alpha is never changed. Consecutive
//! tables compose into one table.

pub(crate) mod kernels;
pub(crate) mod stream;

use std::mem::MaybeUninit;

use super::Operation;
use crate::pixel::{ImageInfo, PixelFormat};

/// One fused step.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// To gray (see the module doc).
    Gray,
    /// A table applied to every colour channel.
    Table(Box<[u8; 256]>),
}

/// A run of pixel-wise operations applied in one pass per row.
#[derive(Clone, Debug, PartialEq)]
pub struct PointOps {
    input: PixelFormat,
    steps: Vec<Step>,
}

/// The table of a tone operation (`None` for gray or a non-point operation).
pub fn table(op: &Operation) -> Option<[u8; 256]> {
    let f = |map: &dyn Fn(f64) -> f64| {
        let mut t = [0u8; 256];
        for (v, o) in t.iter_mut().enumerate() {
            *o = map(v as f64).round().clamp(0.0, 255.0) as u8;
        }
        t
    };
    match op {
        Operation::Brightness(n) => Some(f(&|v| v + f64::from(*n))),
        Operation::Contrast(c) => Some(f(&|v| (v - 128.0) * f64::from(*c) + 128.0)),
        Operation::Gamma(g) => Some(f(&|v| 255.0 * (v / 255.0).powf(1.0 / f64::from(*g)))),
        _ => None,
    }
}

/// Whether `op` is pixel-wise (and so fuses into a [`PointOps`]).
pub fn is_point(op: &Operation) -> bool {
    matches!(
        op,
        Operation::Gray | Operation::Brightness(_) | Operation::Contrast(_) | Operation::Gamma(_)
    )
}

impl PointOps {
    /// No steps yet, for images of format `input`.
    pub fn new(input: PixelFormat) -> Self {
        Self {
            input,
            steps: Vec::new(),
        }
    }

    /// Appends a pixel-wise operation (see [`is_point`]); tables merge with a
    /// table before them.
    pub fn push(&mut self, op: &Operation) {
        if matches!(op, Operation::Gray) {
            if !self.steps.contains(&Step::Gray) {
                self.steps.push(Step::Gray);
            }
            return;
        }
        let t = table(op).expect("a pixel-wise operation");
        if let Some(Step::Table(prev)) = self.steps.last_mut() {
            for v in prev.iter_mut() {
                *v = t[*v as usize];
            }
        } else {
            self.steps.push(Step::Table(Box::new(t)));
        }
    }

    /// The fused steps, for logs: `gray`, `table`.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Gray => "gray",
                Step::Table(_) => "table",
            })
            .collect();
        names.join("+")
    }

    /// The format of the output.
    pub fn output_format(&self) -> PixelFormat {
        match (self.input, self.steps.contains(&Step::Gray)) {
            (PixelFormat::Rgb8, true) => PixelFormat::Gray8,
            (f, _) => f,
        }
    }

    /// The geometry of the output for an input `info`.
    pub fn output_info(&self, info: ImageInfo) -> ImageInfo {
        ImageInfo::new(info.width(), info.height(), self.output_format())
            .expect("same size as a valid image")
    }

    /// Applies the steps to pixels `src` (in the input format), writing the
    /// output pixels to `dst` (in the output format: as many pixels).
    pub fn apply_into(&self, src: &[u8], dst: &mut [u8]) {
        // SAFETY: `apply_into_uninit` only stores bytes.
        #[allow(unsafe_code)]
        self.apply_into_uninit(
            src,
            unsafe { crate::simd::store::as_uninit(dst) },
            false,
            crate::simd::Cpu::detect(),
        );
    }

    /// [`PointOps::apply_into`] into memory that need not be initialised:
    /// every byte of `dst` is written (its length is checked), the first
    /// step straight from `src` and the rest in place. `nontemporal` lets a
    /// gray conversion that is the last step store non-temporally (the
    /// caller fences before another thread reads `dst`).
    pub(crate) fn apply_into_uninit(
        &self,
        src: &[u8],
        dst: &mut [MaybeUninit<u8>],
        nontemporal: bool,
        cpu: crate::simd::Cpu,
    ) {
        assert_eq!(
            dst.len(),
            self.output_len(src.len()),
            "one output pixel per input pixel"
        );
        let gray_at = self.steps.iter().position(|s| *s == Step::Gray);
        match (self.input, gray_at) {
            (PixelFormat::Rgb8, Some(g)) => {
                let before = &self.steps[..g];
                // Streamed only when nothing reads the gray bytes back here.
                let stream = nontemporal && g + 1 == self.steps.len();
                if before.is_empty() {
                    kernels::gray_rgb_with(cpu, src, dst, stream);
                } else {
                    let mut rgb = src.to_vec();
                    for step in before {
                        self.run(step, &mut rgb, PixelFormat::Rgb8, cpu);
                    }
                    kernels::gray_rgb_with(cpu, &rgb, dst, stream);
                }
                // SAFETY: the conversion wrote one byte per pixel of `src`,
                // which is all of `dst` (asserted above).
                #[allow(unsafe_code)]
                let dst = unsafe { crate::simd::store::assume_init(dst) };
                for step in &self.steps[g + 1..] {
                    self.run(step, dst, PixelFormat::Gray8, cpu);
                }
            }
            (format, _) => {
                let dst = crate::simd::store::copy_to_uninit(src, dst);
                for step in &self.steps {
                    self.run(step, dst, format, cpu);
                }
            }
        }
    }

    fn run(&self, step: &Step, px: &mut [u8], format: PixelFormat, cpu: crate::simd::Cpu) {
        match (step, format) {
            (Step::Table(t), _) => kernels::table_with(cpu, t, px, format == PixelFormat::Rgba8),
            (Step::Gray, PixelFormat::Rgba8) => gray_rgba(px),
            (Step::Gray, _) => {} // gray stays gray; RGB is handled by the caller
        }
    }

    /// Output bytes for `input_bytes` of input.
    pub fn output_len(&self, input_bytes: usize) -> usize {
        input_bytes / self.input.channels() * self.output_format().channels()
    }

    /// Applies the steps to `src`, appending the output to `out`.
    pub fn apply(&self, src: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.output_len(src.len()), 0);
        self.apply_into(src, &mut out[start..]);
    }
}

/// Y of one RGB pixel.
#[inline(always)]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((9798 * u32::from(r) + 19235 * u32::from(g) + 3735 * u32::from(b) + 16384) >> 15) as u8
}

/// RGB pixels to gray: `dst` holds one byte per pixel of `src` (the best
/// path of this machine: [`kernels`]).
pub fn gray_rgb(src: &[u8], dst: &mut [u8]) {
    // SAFETY: the kernels only store bytes.
    #[allow(unsafe_code)]
    let dst = unsafe { crate::simd::store::as_uninit(dst) };
    kernels::gray_rgb_with(crate::simd::Cpu::detect(), src, dst, false)
}

/// RGBA pixels to R = G = B = Y in place, alpha kept.
pub fn gray_rgba(px: &mut [u8]) {
    let (px, _) = px.as_chunks_mut::<4>();
    for p in px {
        let y = luma(p[0], p[1], p[2]);
        *p = [y, y, y, p[3]];
    }
}

/// Applies `t` to the colour channels of `px` (alpha untouched).
pub fn apply_table(t: &[u8; 256], px: &mut [u8], format: PixelFormat) {
    let keep_alpha = format == PixelFormat::Rgba8;
    kernels::table_with(crate::simd::Cpu::detect(), t, px, keep_alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_opencv_fixed_point_on_corners_and_mid_tones() {
        // Values from cv2.cvtColor(COLOR_RGB2GRAY) (OpenCV 5.0).
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(0, 0, 0), 0);
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
        assert_eq!(luma(10, 200, 30), 124);
    }

    #[test]
    fn tables_compose_and_spare_alpha() {
        let mut p = PointOps::new(PixelFormat::Rgba8);
        p.push(&Operation::Brightness(10));
        p.push(&Operation::Brightness(-20));
        assert_eq!(p.steps.len(), 1);
        let mut out = Vec::new();
        p.apply(&[5, 100, 250, 7], &mut out);
        // 5+10-20 clamps at 0; 250+10 clamps at 255 before the -20.
        assert_eq!(out, [0, 90, 235, 7]);
    }

    #[test]
    fn gray_changes_rgb_to_one_channel_and_keeps_rgba_alpha() {
        let mut p = PointOps::new(PixelFormat::Rgb8);
        p.push(&Operation::Gray);
        p.push(&Operation::Brightness(1));
        assert_eq!(p.output_format(), PixelFormat::Gray8);
        let mut out = vec![9];
        p.apply(&[255, 0, 0, 0, 255, 0], &mut out);
        assert_eq!(out, [9, 77, 151]);
        let mut p = PointOps::new(PixelFormat::Rgba8);
        p.push(&Operation::Gray);
        let mut out = Vec::new();
        p.apply(&[0, 0, 255, 3], &mut out);
        assert_eq!(out, [29, 29, 29, 3]);
    }

    #[test]
    fn contrast_and_gamma_tables_have_fixed_points() {
        let c = table(&Operation::Contrast(2.0)).unwrap();
        assert_eq!((c[128], c[0], c[255], c[130]), (128, 0, 255, 132));
        let g = table(&Operation::Gamma(2.2)).unwrap();
        assert_eq!((g[0], g[255]), (0, 255));
        assert!(g[64] > 64, "gamma > 1 brightens mid-tones");
        let id = table(&Operation::Gamma(1.0)).unwrap();
        assert!(id.iter().enumerate().all(|(i, &v)| v as usize == i));
    }
}
