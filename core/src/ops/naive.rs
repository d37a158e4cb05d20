//! Every operation applied the obviously-correct way, one pixel at a time,
//! straight from its definition: the yardstick the fast paths and the
//! planner's fusions and reorders are tested against.

use super::border::reflect101;
use super::orient::Orientation;
use super::{Operation, blur, convolve, crop, point, resize};
use crate::error::Result;
use crate::pixel::{ImageBuf, ImageInfo, PixelFormat};
use crate::{mean3x3_naive, rotate_naive};

/// Applies `ops` in order.
pub fn apply_all(img: &ImageBuf, ops: &[Operation]) -> Result<ImageBuf> {
    ops.iter().try_fold(img.clone(), |acc, op| apply(&acc, op))
}

/// Applies one operation.
pub fn apply(img: &ImageBuf, op: &Operation) -> Result<ImageBuf> {
    op.validate()?;
    let info = img.info();
    let (w, h, c) = (
        info.width() as usize,
        info.height() as usize,
        info.channels(),
    );
    let src = img.data();
    let per_value = |f: &dyn Fn(usize, usize, usize) -> u8| {
        let mut out = Vec::with_capacity(src.len());
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    out.push(f(x, y, ch));
                }
            }
        }
        ImageBuf::new(info, out)
    };
    match op {
        Operation::Rotate(r) => Ok(rotate_naive(img, *r)),
        Operation::Flip(f) => orient(img, Orientation::flip(*f)),
        Operation::Crop(b) => {
            let out = crop::output_info(*b, info)?;
            let mut data = Vec::with_capacity(out.byte_len());
            for y in b.y..b.y + b.height {
                for x in b.x..b.x + b.width {
                    let i = (y as usize * w + x as usize) * c;
                    data.extend_from_slice(&src[i..i + c]);
                }
            }
            ImageBuf::new(out, data)
        }
        Operation::Mean3x3 => Ok(mean3x3_naive(img)),
        Operation::Overlay(o) => {
            // Pixel by pixel from the definition in `overlay`.
            let ov = o.image.info();
            let (ow, oh, oc) = (ov.width() as i64, ov.height() as i64, ov.channels());
            let mut out = src.to_vec();
            for y in 0..h as i64 {
                for x in 0..w as i64 {
                    let (ox, oy) = (x - i64::from(o.x), y - i64::from(o.y));
                    if ox < 0 || oy < 0 || ox >= ow || oy >= oh {
                        continue;
                    }
                    let p = &o.image.data()[(oy * ow + ox) as usize * oc..][..oc];
                    let (rgb, a) = match oc {
                        1 => ([p[0]; 3], 255u8),
                        3 => ([p[0], p[1], p[2]], 255),
                        _ => ([p[0], p[1], p[2]], p[3]),
                    };
                    let a = u32::from((f32::from(a) * o.opacity).round() as u8);
                    let bg = &mut out[(y as usize * w + x as usize) * c..][..c];
                    let blend = |f: u8, b: u8| {
                        let v = f64::from(u32::from(f) * a + u32::from(b) * (255 - a)) / 255.0;
                        v.round() as u8
                    };
                    if c == 1 {
                        let f = if oc == 1 {
                            p[0]
                        } else {
                            point::luma(rgb[0], rgb[1], rgb[2])
                        };
                        bg[0] = blend(f, bg[0]);
                    } else {
                        for ch in 0..3 {
                            bg[ch] = blend(rgb[ch], bg[ch]);
                        }
                        if c == 4 {
                            let cover = f64::from(u32::from(bg[3]) * (255 - a)) / 255.0;
                            bg[3] = (a + cover.round() as u32) as u8;
                        }
                    }
                }
            }
            ImageBuf::new(info, out)
        }
        Operation::Resize(r) => {
            let (rw, rh, crop_box) = r.plan(info.width(), info.height());
            // Pillow: a resize to the same size is a copy.
            let resized = if (rw as usize, rh as usize) == (w, h) {
                img.clone()
            } else {
                let data = resize::resample_image(src, w, h, c, rw as usize, rh as usize, r.filter);
                ImageBuf::new(ImageInfo::new(rw, rh, info.format())?, data)?
            };
            match crop_box {
                Some(b) => apply(&resized, &Operation::Crop(b)),
                None => Ok(resized),
            }
        }
        Operation::Blur { sigma } => {
            let t = blur::taps(*sigma);
            per_value(&|x, y, ch| blur::blur_value_naive(&t, img, x, y, ch))
        }
        Operation::Sharpen { sigma, amount } => {
            let t = blur::taps(*sigma);
            per_value(&|x, y, ch| {
                let b = blur::blur_value_naive(&t, img, x, y, ch);
                blur::sharpen_value(src[(y * w + x) * c + ch], b, *amount)
            })
        }
        Operation::Convolve(k) => {
            let r = (k.size / 2) as isize;
            per_value(&|x, y, ch| {
                let mut s = 0i64;
                for i in 0..k.size {
                    let yy = reflect101(y as isize + i as isize - r, h);
                    for j in 0..k.size {
                        let xx = reflect101(x as isize + j as isize - r, w);
                        s += i64::from(k.weights[i * k.size + j])
                            * i64::from(src[(yy * w + xx) * c + ch]);
                    }
                }
                convolve::divide(s, k.divisor)
            })
        }
        Operation::Gray => match info.format() {
            PixelFormat::Gray8 => Ok(img.clone()),
            PixelFormat::Rgb8 => {
                let data = src
                    .chunks_exact(3)
                    .map(|p| point::luma(p[0], p[1], p[2]))
                    .collect();
                ImageBuf::new(
                    ImageInfo::new(info.width(), info.height(), PixelFormat::Gray8)?,
                    data,
                )
            }
            PixelFormat::Rgba8 => per_value(&|x, y, ch| {
                let p = &src[(y * w + x) * 4..][..4];
                if ch == 3 {
                    p[3]
                } else {
                    point::luma(p[0], p[1], p[2])
                }
            }),
        },
        Operation::Brightness(_) | Operation::Contrast(_) | Operation::Gamma(_) => {
            let t = point::table(op).expect("a tone operation");
            let alpha = info.format() == PixelFormat::Rgba8;
            per_value(&|x, y, ch| {
                let v = src[(y * w + x) * c + ch];
                if alpha && ch == 3 { v } else { t[v as usize] }
            })
        }
    }
}

/// Applies an orientation pixel by pixel.
pub fn orient(img: &ImageBuf, o: Orientation) -> Result<ImageBuf> {
    let info = img.info();
    let out = o.output_info(info);
    let c = info.channels();
    let mut data = Vec::with_capacity(info.byte_len());
    for y in 0..out.height() {
        for x in 0..out.width() {
            let (sx, sy) = o.source_of(x, y, info.width(), info.height());
            let i = (sy as usize * info.width() as usize + sx as usize) * c;
            data.extend_from_slice(&img.data()[i..i + c]);
        }
    }
    ImageBuf::new(out, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Flip;

    #[test]
    fn flips_mirror_as_numpy_does() {
        let img = ImageBuf::from_raw(3, 2, PixelFormat::Gray8, vec![1, 2, 3, 4, 5, 6]).unwrap();
        let h = apply(&img, &Operation::Flip(Flip::Horizontal)).unwrap();
        assert_eq!(h.data(), [3, 2, 1, 6, 5, 4]);
        let v = apply(&img, &Operation::Flip(Flip::Vertical)).unwrap();
        assert_eq!(v.data(), [4, 5, 6, 1, 2, 3]);
    }

    #[test]
    fn crop_keeps_the_box_and_refuses_one_outside() {
        let img = ImageBuf::from_raw(3, 2, PixelFormat::Gray8, vec![1, 2, 3, 4, 5, 6]).unwrap();
        let b = super::super::CropBox {
            x: 1,
            y: 1,
            width: 2,
            height: 1,
        };
        assert_eq!(apply(&img, &Operation::Crop(b)).unwrap().data(), [5, 6]);
        let out = super::super::CropBox { x: 2, ..b };
        assert!(apply(&img, &Operation::Crop(out)).is_err());
    }
}
