//! Operations as data: what a pipeline can do to an image, in order.
//!
//! An [`Operation`] carries its parameters (sizes, floats); it has one
//! text form (the `--op` spec of the CLI, [`Operation::parse`] and
//! [`Display`](std::fmt::Display) agree) and one canonical, versioned byte
//! encoding ([`canonical_bytes`]) that caches key results on. The planner
//! ([`crate::pipeline::plan`]) decides per operation how it streams, fuses
//! and moves (its rules are exact and listed there).
//!
//! The families live in child modules, each with its semantics and naive
//! reference, its fast paths (`kernels`) and its streaming stage with the
//! memory that stage holds (`stream`): [`orient`] (rotations and flips as
//! one of eight orientations), [`point`] (gray and the tone tables),
//! [`crop`], [`mean`], [`blur`] (gaussian blur and the unsharp mask),
//! [`convolve`], [`resize`], [`overlay`]; the stencils share one streaming
//! frame (`stencil`), and every stage one trait (`stage`). [`naive`]
//! applies any operation the obviously-correct way, for tests.

pub mod blur;
pub mod border;
pub mod convolve;
pub mod crop;
pub mod mean;
pub mod naive;
pub mod orient;
pub mod overlay;
pub mod point;
pub mod resize;
pub mod rotate;
mod spec;
pub(crate) mod stage;
pub(crate) mod stencil;

use crate::rotate::Rotation;

pub use spec::canonical_bytes;

/// A mirror axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flip {
    /// Mirror left-right (numpy `fliplr`).
    Horizontal,
    /// Mirror top-bottom (numpy `flipud`).
    Vertical,
}

/// A box of pixels: left column, top row, width, height.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CropBox {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels, >= 1.
    pub width: u32,
    /// Height in pixels, >= 1.
    pub height: u32,
}

impl std::fmt::Display for CropBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{} at ({}, {})",
            self.width, self.height, self.x, self.y
        )
    }
}

/// An integer convolution kernel: 3x3 or 5x5 weights, row-major, and a
/// divisor (never 0).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// Side: 3 or 5.
    pub size: usize,
    /// `size * size` weights, row-major.
    pub weights: Vec<i32>,
    /// The divisor of the weighted sum.
    pub divisor: i32,
}

/// One step of a pipeline. Floats are validated finite and in range by
/// [`Operation::parse`] and by the wire conversion; the constructors used by
/// code are trusted to do the same ([`Operation::validate`] checks).
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    /// Rotate counter-clockwise.
    Rotate(Rotation),
    /// Mirror along an axis.
    Flip(Flip),
    /// Keep only a box; a box outside the image is an error.
    Crop(CropBox),
    /// The 3x3 mean filter.
    Mean3x3,
    /// Gaussian blur with this sigma, bit-exact with OpenCV's 8-bit
    /// `GaussianBlur(src, (0, 0), sigma)` (see [`blur`]).
    Blur {
        /// Standard deviation in pixels, in (0, [`MAX_SIGMA`]].
        sigma: f32,
    },
    /// Unsharp mask: `src + amount * (src - blur(src, sigma))` (see [`blur`]).
    Sharpen {
        /// The blur's sigma, in (0, [`MAX_SIGMA`]].
        sigma: f32,
        /// How much of the detail to add back, in [0, 100].
        amount: f32,
    },
    /// An integer 3x3 or 5x5 convolution (see [`convolve`]).
    Convolve(Kernel),
    /// To gray: RGB becomes one channel; RGBA keeps four with R = G = B.
    Gray,
    /// Add this much (-255..=255) to every colour channel, clamped.
    Brightness(i32),
    /// Scale colour channels around 128 by this factor, in [0, 100].
    Contrast(f32),
    /// Gamma correction `255 * (v / 255) ^ (1 / gamma)`, gamma in (0, 100].
    Gamma(f32),
    /// Resize (see [`resize`]).
    Resize(resize::Resize),
    /// Composite another image over this one (see [`overlay`]).
    Overlay(overlay::Overlay),
}

/// The largest blur sigma accepted (a kernel of 601 taps).
pub const MAX_SIGMA: f32 = 100.0;

impl Operation {
    /// Checks the parameters' ranges (what [`Operation::parse`] and the wire
    /// conversion enforce), naming the operation in the message.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |what: String| Err(crate::CoreError::InvalidInput(what));
        let sigma_ok = |s: f32| s.is_finite() && s > 0.0 && s <= MAX_SIGMA;
        match self {
            Operation::Crop(b) if b.width == 0 || b.height == 0 => bad(format!(
                "crop box {b} is empty: width and height must be >= 1"
            )),
            Operation::Blur { sigma } | Operation::Sharpen { sigma, .. } if !sigma_ok(*sigma) => {
                bad(format!("{self}: sigma must be > 0 and <= {MAX_SIGMA}"))
            }
            Operation::Sharpen { amount, .. } if !(0.0..=100.0).contains(amount) => {
                bad(format!("{self}: amount must be in 0..100"))
            }
            Operation::Convolve(k) => convolve::check(k),
            Operation::Resize(r) => r.validate(),
            Operation::Overlay(o) => o.validate(),
            Operation::Brightness(n) if !(-255..=255).contains(n) => {
                bad(format!("{self}: brightness must be in -255..255"))
            }
            Operation::Contrast(f) if !(0.0..=100.0).contains(f) => {
                bad(format!("{self}: contrast must be in 0..100"))
            }
            Operation::Gamma(g) if !(g.is_finite() && *g > 0.0 && *g <= 100.0) => {
                bad(format!("{self}: gamma must be > 0 and <= 100"))
            }
            _ => Ok(()),
        }
    }
}
