//! Rotations and flips as one of the eight orientations of a rectangle.
//!
//! Any sequence of quarter turns and flips equals one [`Orientation`]: a
//! counter-clockwise rotation followed, optionally, by a left-right mirror.
//! The planner composes them ([`Orientation::then`]) and applies the result
//! once: the rotation by the blocked kernels of [`crate::rotate`], the mirror
//! on each output row ([`mirror_row`]) while the row is still in cache.

pub(crate) mod stream;

use std::mem::MaybeUninit;

use super::{CropBox, Flip};
use crate::pixel::{ImageInfo, PixelFormat};
use crate::rotate::Rotation;
use crate::simd::Cpu;

/// Rotate by `rotation`, then mirror left-right if `mirror`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Orientation {
    /// The counter-clockwise rotation, applied first.
    pub rotation: Rotation,
    /// Whether the rotated image is then mirrored left-right.
    pub mirror: bool,
}

impl Orientation {
    /// Leaves the image as it is.
    pub const IDENTITY: Orientation = Orientation {
        rotation: Rotation::None,
        mirror: false,
    };

    /// The rotation alone.
    pub const fn rotate(rotation: Rotation) -> Self {
        Orientation {
            rotation,
            mirror: false,
        }
    }

    /// The operations that apply this orientation: the rotation (if any),
    /// then a left-right flip (if mirrored).
    pub fn operations(self) -> Vec<super::Operation> {
        let mut ops = Vec::with_capacity(2);
        if self.rotation != Rotation::None {
            ops.push(super::Operation::Rotate(self.rotation));
        }
        if self.mirror {
            ops.push(super::Operation::Flip(Flip::Horizontal));
        }
        ops
    }

    /// A flip: left-right is the mirror alone; top-bottom is a half turn then
    /// the mirror.
    pub const fn flip(flip: Flip) -> Self {
        match flip {
            Flip::Horizontal => Orientation {
                rotation: Rotation::None,
                mirror: true,
            },
            Flip::Vertical => Orientation {
                rotation: Rotation::Ccw180,
                mirror: true,
            },
        }
    }

    /// This orientation followed by `next`. With M the mirror and R a quarter
    /// turn, M R = R^-1 M, so M^m1 R^k2... reduces to one rotation and at
    /// most one mirror.
    pub const fn then(self, next: Orientation) -> Orientation {
        let k2 = if self.mirror {
            -next.rotation.quarter_turns()
        } else {
            next.rotation.quarter_turns()
        };
        Orientation {
            rotation: Rotation::from_quarter_turns(self.rotation.quarter_turns() + k2),
            mirror: self.mirror ^ next.mirror,
        }
    }

    /// The orientation that undoes this one.
    pub const fn inverse(self) -> Orientation {
        let k = self.rotation.quarter_turns();
        Orientation {
            rotation: Rotation::from_quarter_turns(if self.mirror { k } else { -k }),
            mirror: self.mirror,
        }
    }

    /// Whether the image needs to be held whole (anything but the identity
    /// and the plain mirror, which work row by row).
    pub const fn needs_whole_image(self) -> bool {
        !matches!(self.rotation, Rotation::None)
    }

    /// The geometry after this orientation.
    pub const fn output_info(self, info: ImageInfo) -> ImageInfo {
        self.rotation.output_info(info)
    }

    /// The input pixel (column, row) that output pixel (`x`, `y`) comes from,
    /// for an input `width` x `height`.
    pub fn source_of(self, x: u32, y: u32, width: u32, height: u32) -> (u32, u32) {
        let out_w = match self.rotation {
            Rotation::Ccw90 | Rotation::Ccw270 => height,
            _ => width,
        };
        let x = if self.mirror { out_w - 1 - x } else { x };
        match self.rotation {
            Rotation::None => (x, y),
            // out[r][c] = in[c][W-1-r]
            Rotation::Ccw90 => (width - 1 - y, x),
            Rotation::Ccw180 => (width - 1 - x, height - 1 - y),
            // out[r][c] = in[H-1-c][r]
            Rotation::Ccw270 => (y, height - 1 - x),
        }
    }

    /// The box of the input that becomes `b` of the output (for an input
    /// `width` x `height`; `b` must lie inside the output): cropping it and
    /// then orienting equals orienting and then cropping `b`.
    pub fn source_box(self, b: CropBox, width: u32, height: u32) -> CropBox {
        let (x0, y0) = self.source_of(b.x, b.y, width, height);
        let (x1, y1) = self.source_of(b.x + b.width - 1, b.y + b.height - 1, width, height);
        CropBox {
            x: x0.min(x1),
            y: y0.min(y1),
            width: x0.abs_diff(x1) + 1,
            height: y0.abs_diff(y1) + 1,
        }
    }
}

impl std::fmt::Display for Orientation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.rotation, self.mirror) {
            (Rotation::None, false) => f.write_str("identity"),
            (Rotation::None, true) => f.write_str("flip=h"),
            (Rotation::Ccw180, true) => f.write_str("flip=v"),
            (r, false) => write!(f, "rotate={}", r.degrees()),
            (r, true) => write!(f, "rotate={}+flip=h", r.degrees()),
        }
    }
}

/// Mirrors every row of `rows` (whole rows of `row_bytes`, `channels`-byte
/// pixels) left-right, in place. Pixels are moved whole; the compiler turns
/// the fixed-size swaps into vector shuffles for gray and RGBA.
pub fn mirror_rows(rows: &mut [u8], row_bytes: usize, channels: usize) {
    for row in rows.chunks_exact_mut(row_bytes) {
        match channels {
            1 => row.reverse(),
            3 => mirror_px::<3>(row),
            4 => mirror_px::<4>(row),
            _ => unreachable!("formats have 1, 3 or 4 channels"),
        }
    }
}

/// Writes the rows of `src` mirrored left-right into `dst` (same length).
/// Each row is a one-row half turn, so it runs on the half turns' vector
/// kernels (gray: 64-byte VBMI or 32-byte AVX2 reversals; RGB: 16-pixel
/// VBMI permutes or SSSE3 shuffles; RGBA: AVX-512 dword permutes; the
/// compiler's loop for 3-byte pixels was about half OpenCV's speed).
pub fn mirror_rows_into(src: &[u8], dst: &mut [u8], row_bytes: usize, channels: usize) {
    // SAFETY: the mirror only stores bytes.
    #[allow(unsafe_code)]
    let dst = unsafe { crate::simd::store::as_uninit(dst) };
    mirror_rows_into_uninit(Cpu::detect(), src, dst, row_bytes, channels, false)
}

/// [`mirror_rows_into`] into memory that need not be initialised: every
/// byte of `dst` (as long as `src`, whole rows) is written. `nontemporal`
/// lets the kernels store non-temporally (the caller fences before another
/// thread reads `dst`).
pub(crate) fn mirror_rows_into_uninit(
    cpu: Cpu,
    src: &[u8],
    dst: &mut [MaybeUninit<u8>],
    row_bytes: usize,
    channels: usize,
    nontemporal: bool,
) {
    assert_eq!(src.len(), dst.len(), "same length");
    assert!(src.len().is_multiple_of(row_bytes), "whole rows");
    let format = match channels {
        1 => PixelFormat::Gray8,
        3 => PixelFormat::Rgb8,
        _ => PixelFormat::Rgba8,
    };
    let row = u32::try_from(row_bytes / channels)
        .ok()
        .and_then(|w| ImageInfo::new(w, 1, format).ok());
    // RGBA has a vector half turn on AVX-512 alone; elsewhere its rows go
    // to the compiled loop below in one pass, not one dispatch per row.
    let vector_rgba = cfg!(target_arch = "x86_64") && cpu.clamp() >= Cpu::Avx512;
    if let Some(row) = row.filter(|r| r.row_bytes() == row_bytes && (channels != 4 || vector_rgba))
    {
        if crate::ops::rotate::kernels::mirror_rows_with(cpu, src, row, dst, nontemporal) {
            return;
        }
        // Last row first: each row is read from its end, so the reads form
        // one descending stream that the hardware prefetcher follows, where
        // rows taken in order restart a short backward stream every row (a
        // 4000x3000 RGB mirror: 4.7 -> 2.3 ms on one thread).
        for (s, d) in src
            .chunks_exact(row_bytes)
            .zip(dst.chunks_exact_mut(row_bytes))
            .rev()
        {
            crate::ops::rotate::kernels::half_turn_with(cpu, s, row, 0, d, nontemporal);
        }
        return;
    }
    // Last row first, as above.
    for (s, d) in src
        .chunks_exact(row_bytes)
        .zip(dst.chunks_exact_mut(row_bytes))
        .rev()
    {
        match channels {
            1 => mirror_into_px::<1>(s, d),
            3 => mirror_into_px::<3>(s, d),
            4 => mirror_into_px::<4>(s, d),
            _ => unreachable!("formats have 1, 3 or 4 channels"),
        }
    }
}

fn mirror_into_px<const C: usize>(src: &[u8], dst: &mut [MaybeUninit<u8>]) {
    let (s, _) = src.as_chunks::<C>();
    let (d, _) = dst.as_chunks_mut::<C>();
    for (o, i) in d.iter_mut().zip(s.iter().rev()) {
        *o = i.map(MaybeUninit::new);
    }
}

fn mirror_px<const C: usize>(row: &mut [u8]) {
    let (px, _) = row.as_chunks_mut::<C>();
    px.reverse();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::PixelFormat;

    fn all() -> Vec<Orientation> {
        let rs = [
            Rotation::None,
            Rotation::Ccw90,
            Rotation::Ccw180,
            Rotation::Ccw270,
        ];
        rs.iter()
            .flat_map(|&rotation| [false, true].map(|mirror| Orientation { rotation, mirror }))
            .collect()
    }

    /// Applies `o` pixel by pixel through `source_of`.
    fn apply(o: Orientation, img: &[u8], w: u32, h: u32) -> (Vec<u8>, u32, u32) {
        let out = o.output_info(ImageInfo::new(w, h, PixelFormat::Gray8).unwrap());
        let (ow, oh) = (out.width(), out.height());
        let mut v = Vec::new();
        for y in 0..oh {
            for x in 0..ow {
                let (sx, sy) = o.source_of(x, y, w, h);
                v.push(img[(sy * w + sx) as usize]);
            }
        }
        (v, ow, oh)
    }

    #[test]
    fn composition_inverse_and_source_of_agree() {
        let (w, h) = (5u32, 3u32);
        let img: Vec<u8> = (0..15).collect();
        for a in all() {
            let (ia, aw, ah) = apply(a, &img, w, h);
            let (back, bw, bh) = apply(a.inverse(), &ia, aw, ah);
            assert_eq!((back.as_slice(), bw, bh), (img.as_slice(), w, h), "{a}");
            for b in all() {
                let (iab, ..) = apply(b, &ia, aw, ah);
                let (direct, ..) = apply(a.then(b), &img, w, h);
                assert_eq!(iab, direct, "{a} then {b}");
            }
        }
        // The eight are distinct.
        let images: std::collections::HashSet<Vec<u8>> =
            all().into_iter().map(|o| apply(o, &img, w, h).0).collect();
        assert_eq!(images.len(), 8);
    }

    #[test]
    fn source_of_matches_the_rotation_contract() {
        // rot90: output row r, column c is input row c, column W-1-r.
        let o = Orientation::rotate(Rotation::Ccw90);
        assert_eq!(o.source_of(2, 1, 5, 3), (3, 2));
        let v = Orientation::flip(Flip::Vertical);
        assert_eq!(v.source_of(1, 0, 5, 3), (1, 2));
        let hflip = Orientation::flip(Flip::Horizontal);
        assert_eq!(hflip.source_of(0, 2, 5, 3), (4, 2));
    }

    #[test]
    fn source_box_commutes_with_cropping() {
        let (w, h) = (6u32, 4u32);
        let img: Vec<u8> = (0..24).collect();
        let crop = |img: &[u8], iw: u32, b: CropBox| -> Vec<u8> {
            (b.y..b.y + b.height)
                .flat_map(|y| (b.x..b.x + b.width).map(move |x| (y * iw + x) as usize))
                .map(|i| img[i])
                .collect()
        };
        for o in all() {
            let (oi, ow, _) = apply(o, &img, w, h);
            let b = CropBox {
                x: 1,
                y: 0,
                width: 2,
                height: 3,
            };
            let s = o.source_box(b, w, h);
            let (got, ..) = apply(o, &crop(&img, w, s), s.width, s.height);
            assert_eq!(got, crop(&oi, ow, b), "{o}");
        }
    }

    #[test]
    fn mirror_rows_reverses_pixels_whole() {
        let mut rgb = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        mirror_rows(&mut rgb, 6, 3);
        assert_eq!(rgb, [4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9]);
        let mut g = vec![1, 2, 3];
        mirror_rows(&mut g, 3, 1);
        assert_eq!(g, [3, 2, 1]);
        for c in [1, 3, 4] {
            let src: Vec<u8> = (0..c * 7 * 2).map(|i| i as u8).collect();
            let mut want = src.clone();
            mirror_rows(&mut want, c * 7, c);
            let mut got = vec![0; src.len()];
            mirror_rows_into(&src, &mut got, c * 7, c);
            assert_eq!(got, want, "{c} channels");
        }
    }

    /// Several rows of widths past the vector kernels' blocks, each
    /// mirrored into its own row (the gray kernel takes them all in one
    /// call), over the complement of the answer.
    #[test]
    fn mirror_rows_into_keeps_each_row_in_place() {
        for c in [1, 3, 4] {
            for w in [1, 31, 32, 33, 63, 64, 65, 127, 200, 3001] {
                let rb = w * c;
                let src: Vec<u8> = (0..rb * 5).map(|i| (i * 7 + i / rb) as u8).collect();
                let mut want = vec![0u8; src.len()];
                for (o, i) in want.chunks_exact_mut(rb).zip(src.chunks_exact(rb)) {
                    for (op, ip) in o.chunks_exact_mut(c).zip(i.chunks_exact(c).rev()) {
                        op.copy_from_slice(ip);
                    }
                }
                let mut got: Vec<u8> = want.iter().map(|b| !b).collect();
                mirror_rows_into(&src, &mut got, rb, c);
                assert!(got == want, "{c} channels, width {w}");
                // Every code path the host has, each row at every offset
                // from a vector boundary (the kernels align their stores).
                for cpu in Cpu::available() {
                    for (shift, nt) in [(0, false), (1, false), (7, false), (5, true)] {
                        let mut buf = vec![MaybeUninit::new(0u8); src.len() + shift];
                        mirror_rows_into_uninit(cpu, &src, &mut buf[shift..], rb, c, nt);
                        crate::simd::store::fence();
                        // SAFETY: the buffer was initialised above.
                        #[allow(unsafe_code)]
                        let got: Vec<u8> = buf[shift..]
                            .iter()
                            .map(|b| unsafe { b.assume_init() })
                            .collect();
                        assert!(
                            got == want,
                            "{cpu:?}, {c} channels, width {w}, shift {shift}"
                        );
                    }
                }
            }
        }
    }
}
