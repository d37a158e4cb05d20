//! Rotation by multiples of 90 degrees, counter-clockwise.
//!
//! For an input of width W and height H, a quarter turn ([`Rotation::Ccw90`])
//! gives width H and height W, and output row r, column c is input row c,
//! column W-1-r (numpy's `np.rot90(a, 1)`). Every form here computes exactly
//! what [`rotate_naive`] computes.
//!
//! The fast path computes any band of output rows on its own
//! ([`rotate_rows_into`]): whole-image rotation runs those bands in parallel
//! with rayon, and a streaming consumer can pull the rotated image band by
//! band without a second full-size buffer.

pub(crate) mod kernels;

use rayon::prelude::*;

use crate::error::{CoreError, Result};
use crate::pixel::{ImageBuf, ImageInfo};
use crate::simd::{self, Cpu};

/// A counter-clockwise rotation by a multiple of 90 degrees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rotation {
    /// Unchanged.
    #[default]
    None,
    /// 90 degrees counter-clockwise.
    Ccw90,
    /// 180 degrees.
    Ccw180,
    /// 270 degrees counter-clockwise (90 clockwise).
    Ccw270,
}

impl Rotation {
    /// The rotation by `quarter_turns` * 90 degrees counter-clockwise (any
    /// integer; taken modulo 4).
    pub const fn from_quarter_turns(quarter_turns: i64) -> Self {
        match quarter_turns.rem_euclid(4) {
            0 => Rotation::None,
            1 => Rotation::Ccw90,
            2 => Rotation::Ccw180,
            _ => Rotation::Ccw270,
        }
    }

    /// Number of counter-clockwise quarter turns, 0..=3.
    pub const fn quarter_turns(self) -> i64 {
        match self {
            Rotation::None => 0,
            Rotation::Ccw90 => 1,
            Rotation::Ccw180 => 2,
            Rotation::Ccw270 => 3,
        }
    }

    /// This rotation followed by `next`.
    pub const fn then(self, next: Rotation) -> Self {
        Self::from_quarter_turns(self.quarter_turns() + next.quarter_turns())
    }

    /// The geometry of an image of geometry `info` after this rotation.
    pub const fn output_info(self, info: ImageInfo) -> ImageInfo {
        match self {
            Rotation::None | Rotation::Ccw180 => info,
            Rotation::Ccw90 | Rotation::Ccw270 => info.transposed(),
        }
    }

    /// Degrees counter-clockwise, for messages.
    pub const fn degrees(self) -> u32 {
        self.quarter_turns() as u32 * 90
    }
}

/// The obviously-correct reference: one pixel at a time, straight from the
/// definition. Used by tests and benchmarks only as the yardstick.
pub fn rotate_naive(src: &ImageBuf, rotation: Rotation) -> ImageBuf {
    let info = src.info();
    let (w, h, c) = (
        info.width() as usize,
        info.height() as usize,
        info.channels(),
    );
    let out_info = rotation.output_info(info);
    let ow = out_info.width() as usize;
    let mut out = vec![0u8; info.byte_len()];
    for r in 0..out_info.height() as usize {
        for col in 0..ow {
            let (sr, sc) = match rotation {
                Rotation::None => (r, col),
                Rotation::Ccw90 => (col, w - 1 - r),
                Rotation::Ccw180 => (h - 1 - r, w - 1 - col),
                Rotation::Ccw270 => (h - 1 - col, r),
            };
            let s = (sr * w + sc) * c;
            let d = (r * ow + col) * c;
            out[d..d + c].copy_from_slice(&src.data()[s..s + c]);
        }
    }
    ImageBuf::new(out_info, out).expect("same byte length")
}

/// Rotates an image into a new buffer, in parallel.
pub fn rotate(src: &ImageBuf, rotation: Rotation) -> Result<ImageBuf> {
    let mut out = ImageBuf::zeroed(rotation.output_info(src.info()))?;
    rotate_into(src.data(), src.info(), rotation, out.data_mut())?;
    Ok(out)
}

/// Rotates `src` (of geometry `info`) into `dst`, which must hold exactly the
/// output's bytes. Output rows are computed in parallel bands, on the best
/// code path this CPU has.
pub fn rotate_into(src: &[u8], info: ImageInfo, rotation: Rotation, dst: &mut [u8]) -> Result<()> {
    rotate_into_with(Cpu::detect(), src, info, rotation, dst)
}

/// [`rotate_into`] on a chosen code path (clamped to what the CPU runs).
pub fn rotate_into_with(
    cpu: Cpu,
    src: &[u8],
    info: ImageInfo,
    rotation: Rotation,
    dst: &mut [u8],
) -> Result<()> {
    check_len("source", src.len(), info.byte_len())?;
    check_len("destination", dst.len(), info.byte_len())?;
    let streaming = dst.len() >= STREAM_STORES_ABOVE;
    rotate_bands(cpu, src, info, rotation, dst, streaming);
    Ok(())
}

/// Output size from which a whole-image rotation may write with
/// non-temporal stores: about the last-level cache of the machines we
/// measure on (as for the mean filter).
const STREAM_STORES_ABOVE: usize = 16 << 20;

/// [`rotate_into_with`] after its checks, in parallel bands.
fn rotate_bands(
    cpu: Cpu,
    src: &[u8],
    info: ImageInfo,
    rotation: Rotation,
    dst: &mut [u8],
    nontemporal: bool,
) {
    let out_row = rotation.output_info(info).row_bytes();
    let band_rows = kernels::band_rows(info, rotation);
    dst.par_chunks_mut(out_row * band_rows)
        .enumerate()
        .for_each_init(
            || simd::store::FenceOnDrop(nontemporal),
            |_, (i, band)| {
                kernels::rows_with(cpu, src, info, rotation, i * band_rows, band, nontemporal)
            },
        );
}

/// Computes output rows `first_row..first_row + dst.len() / out_row_bytes` of
/// the rotated image into `dst` (single-threaded). `dst.len()` must be a whole
/// number of output rows that lie inside the output image.
pub fn rotate_rows_into(
    src: &[u8],
    info: ImageInfo,
    rotation: Rotation,
    first_row: usize,
    dst: &mut [u8],
) -> Result<()> {
    rotate_rows_into_with(Cpu::detect(), src, info, rotation, first_row, dst)
}

/// [`rotate_rows_into`] on code path `cpu` (clamped to what this machine
/// runs).
pub fn rotate_rows_into_with(
    cpu: Cpu,
    src: &[u8],
    info: ImageInfo,
    rotation: Rotation,
    first_row: usize,
    dst: &mut [u8],
) -> Result<()> {
    check_len("source", src.len(), info.byte_len())?;
    let out = rotation.output_info(info);
    if !dst.len().is_multiple_of(out.row_bytes())
        || first_row + dst.len() / out.row_bytes() > out.height() as usize
    {
        return Err(CoreError::InvalidInput(format!(
            "output band of {} bytes from row {first_row} does not fit a {out} image",
            dst.len()
        )));
    }
    kernels::rows_with(cpu, src, info, rotation, first_row, dst, false);
    Ok(())
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(CoreError::InvalidInput(format!(
            "{what} holds {got} bytes, the image needs {want}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::PixelFormat;

    fn numbered(w: u32, h: u32, f: PixelFormat) -> ImageBuf {
        let info = ImageInfo::new(w, h, f).unwrap();
        let data = (0..info.byte_len())
            .map(|i| (i * 7 + i / 13) as u8)
            .collect();
        ImageBuf::new(info, data).unwrap()
    }

    /// Rotates `img` on every code path this machine runs, with each of the
    /// `nontemporal` settings, and compares with the naive reference.
    fn assert_every_path_matches_naive(img: &ImageBuf, rot: Rotation, nontemporal: &[bool]) {
        let want = rotate_naive(img, rot);
        // Every path writes over the complement of the answer, so a byte it
        // failed to write shows.
        let unlike: Vec<u8> = want.data().iter().map(|b| !b).collect();
        for cpu in Cpu::available() {
            for &nt in nontemporal {
                let mut out = unlike.clone();
                rotate_bands(cpu, img.data(), img.info(), rot, &mut out, nt);
                assert!(
                    out == want.data(),
                    "{rot:?} on {}, {} path, nt {nt}",
                    img.info(),
                    cpu.name()
                );
            }
        }
    }

    #[test]
    fn quarter_turn_of_a_2x3_matches_numpy_rot90() {
        // a = [[1,2],[3,4],[5,6]] (H=3, W=2); np.rot90(a) = [[2,4,6],[1,3,5]]
        let img = ImageBuf::from_raw(2, 3, PixelFormat::Gray8, vec![1, 2, 3, 4, 5, 6]).unwrap();
        let r = rotate(&img, Rotation::Ccw90).unwrap();
        assert_eq!((r.info().width(), r.info().height()), (3, 2));
        assert_eq!(r.data(), &[2, 4, 6, 1, 3, 5]);
        let r = rotate(&img, Rotation::Ccw270).unwrap();
        assert_eq!(r.data(), &[5, 3, 1, 6, 4, 2]);
        let r = rotate(&img, Rotation::Ccw180).unwrap();
        assert_eq!(r.data(), &[6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn fast_path_matches_naive_on_odd_shapes() {
        let sizes = [
            1u32, 2, 3, 7, 9, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 100, 130,
        ];
        for f in [PixelFormat::Gray8, PixelFormat::Rgb8, PixelFormat::Rgba8] {
            for &w in &sizes {
                for &h in &[1u32, 2, 3, 16, 17, 33, 65, 80, 129] {
                    let img = numbered(w, h, f);
                    for rot in [
                        Rotation::None,
                        Rotation::Ccw90,
                        Rotation::Ccw180,
                        Rotation::Ccw270,
                    ] {
                        assert_every_path_matches_naive(&img, rot, &[false, true]);
                    }
                }
            }
        }
    }

    #[test]
    fn quarter_turns_match_naive_across_bands_tiles_and_near_powers_of_two() {
        // Widths (output rows) past a 256-row band and its 32/64-row
        // sub-bands, with ragged ends, and around 4096; heights (output
        // columns) past a 128-row tile.
        for f in [PixelFormat::Gray8, PixelFormat::Rgb8, PixelFormat::Rgba8] {
            for (w, h) in [(257, 131), (300, 260), (4095, 19), (4096, 21), (4097, 131)] {
                let img = numbered(w, h, f);
                for rot in [Rotation::Ccw90, Rotation::Ccw270] {
                    assert_every_path_matches_naive(&img, rot, &[false]);
                }
            }
        }
    }

    #[test]
    fn bands_can_be_computed_separately() {
        let img = numbered(37, 23, PixelFormat::Rgb8);
        for rot in [Rotation::Ccw90, Rotation::Ccw180, Rotation::Ccw270] {
            let whole = rotate_naive(&img, rot);
            let out_row = whole.info().row_bytes();
            let mut band = vec![0; out_row * 5];
            rotate_rows_into(img.data(), img.info(), rot, 3, &mut band).unwrap();
            assert_eq!(band, whole.data()[3 * out_row..8 * out_row], "{rot:?}");
        }
    }

    #[test]
    fn band_past_the_end_is_rejected() {
        let img = numbered(4, 4, PixelFormat::Gray8);
        let mut band = vec![0; 8];
        assert!(rotate_rows_into(img.data(), img.info(), Rotation::Ccw90, 3, &mut band).is_err());
    }

    #[test]
    fn rotations_compose() {
        assert_eq!(Rotation::Ccw90.then(Rotation::Ccw270), Rotation::None);
        assert_eq!(Rotation::Ccw180.then(Rotation::Ccw270), Rotation::Ccw90);
        assert_eq!(Rotation::from_quarter_turns(-1), Rotation::Ccw270);
    }
}
