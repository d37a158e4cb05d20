//! Colour management: pixels decoded with an embedded ICC profile (Adobe RGB
//! from cameras, Display P3 from phones, ProPhoto from raw converters, gray
//! profiles) are converted to sRGB, the space every output is in, with
//! `moxcms` (a maintained pure-Rust CMS with SIMD paths; perceptual intent,
//! as browsers and libvips use for photographs).
//!
//! A profile that already is sRGB (most photographs that carry one tag
//! sRGB IEC61966-2.1) is recognised on a palette of test colours and left
//! alone: no work, no rounding.

use moxcms::{ColorProfile, Layout, RenderingIntent, TransformOptions};
use rayon::prelude::*;

use crate::error::{CoreError, Result};
use crate::pixel::{ImageBuf, PixelFormat};

/// Rows per parallel task of a conversion.
const ROWS_PER_TASK: usize = 64;

fn layout(format: PixelFormat) -> Layout {
    match format {
        PixelFormat::Gray8 => Layout::Gray,
        PixelFormat::Rgb8 => Layout::Rgb,
        PixelFormat::Rgba8 => Layout::Rgba,
    }
}

/// The destination of a conversion from `source`: sRGB, or for a gray
/// profile a gray with sRGB's tone curve (the image stays gray).
fn destination(format: PixelFormat) -> ColorProfile {
    match format {
        PixelFormat::Gray8 => {
            let mut gray = ColorProfile::new_gray_with_gamma(2.2);
            gray.gray_trc = ColorProfile::new_srgb().red_trc;
            gray
        }
        _ => ColorProfile::new_srgb(),
    }
}

/// Whether a transform leaves every colour of a coarse palette within one
/// level: the profile is sRGB (or as good as).
fn is_identity(t: &dyn moxcms::TransformExecutor<u8>, format: PixelFormat) -> bool {
    let c = format.channels();
    let levels: Vec<u8> = (0..=255).step_by(17).collect();
    let mut src = Vec::new();
    match format {
        PixelFormat::Gray8 => src.extend(&levels),
        _ => {
            for &r in &levels {
                for &g in &levels {
                    for &b in &levels {
                        src.extend([r, g, b]);
                        if c == 4 {
                            src.push(255);
                        }
                    }
                }
            }
        }
    }
    let mut dst = vec![0u8; src.len()];
    t.transform(&src, &mut dst).is_ok() && src.iter().zip(&dst).all(|(a, b)| a.abs_diff(*b) <= 1)
}

/// Converts `img`, whose pixels are in the space of the ICC profile `icc`,
/// to sRGB in place. A profile that cannot be read or does not fit the
/// pixels (a CMYK profile on RGB pixels) is an error naming it.
pub fn to_srgb(img: &mut ImageBuf, icc: &[u8]) -> Result<()> {
    let format = img.info().format();
    let t = match recent::get(icc, format) {
        Some(t) => t,
        None => {
            let source = ColorProfile::new_from_slice(icc).map_err(|e| {
                CoreError::Decode(format!("the embedded ICC profile cannot be read: {e}"))
            })?;
            let t = transform(&source, format)?;
            recent::put(icc, format, t.clone());
            t
        }
    };
    apply(img, t)
}

/// Converts `img`, whose pixels are in the space of `source`, to sRGB in
/// place (nothing to do when `source` is sRGB).
pub(crate) fn profile_to_srgb(img: &mut ImageBuf, source: &ColorProfile) -> Result<()> {
    let t = transform(source, img.info().format())?;
    apply(img, t)
}

/// A transform from `source` to sRGB for `format` pixels, or `None` when it
/// changes nothing (the profile is sRGB).
fn transform(source: &ColorProfile, format: PixelFormat) -> Result<Option<Transform>> {
    let l = layout(format);
    let options = TransformOptions {
        rendering_intent: RenderingIntent::Perceptual,
        ..TransformOptions::default()
    };
    let t = source
        .create_transform_8bit(l, &destination(format), l, options)
        .map_err(|e| {
            CoreError::Decode(format!(
                "the embedded ICC profile does not apply to {format} pixels: {e}"
            ))
        })?;
    Ok((!is_identity(t.as_ref(), format)).then_some(t))
}

type Transform = std::sync::Arc<moxcms::Transform8BitExecutor>;

/// Transforms built from the ICC profiles seen last. Building one (parsing
/// the profile, its curves, the identity test) costs about what converting
/// a thumbnail-sized decode does: 0.7 ms for a camera's 9 KB sRGB profile
/// on a 750x500 decode (measured), paid again on every request for a photo
/// of that camera. Profiles are compared whole; large ones (LUT profiles of
/// megabytes) are not kept.
mod recent {
    use std::sync::Mutex;

    use super::{PixelFormat, Transform};

    pub(super) const ENTRIES: usize = 16;
    const LARGEST: usize = 64 << 10;

    type Entry = (Vec<u8>, PixelFormat, Option<Transform>);
    static RECENT: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

    pub(super) fn get(icc: &[u8], format: PixelFormat) -> Option<Option<Transform>> {
        let mut recent = RECENT.lock().unwrap_or_else(|p| p.into_inner());
        let at = recent
            .iter()
            .position(|(p, f, _)| *f == format && p == icc)?;
        // Most recent last.
        let entry = recent.remove(at);
        let t = entry.2.clone();
        recent.push(entry);
        Some(t)
    }

    pub(super) fn put(icc: &[u8], format: PixelFormat, t: Option<Transform>) {
        if icc.len() > LARGEST {
            return;
        }
        let mut recent = RECENT.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == ENTRIES {
            recent.remove(0);
        }
        recent.push((icc.to_vec(), format, t));
    }
}

/// Applies `t` to `img` in place, in parallel row bands.
fn apply(img: &mut ImageBuf, t: Option<Transform>) -> Result<()> {
    let Some(t) = t else {
        return Ok(());
    };
    let rb = img.info().row_bytes();
    let data = img.data_mut();
    data.par_chunks_mut(rb * ROWS_PER_TASK)
        .try_for_each(|rows| -> Result<()> {
            let src = rows.to_vec();
            t.transform(&src, rows)
                .map_err(|e| CoreError::Decode(format!("colour conversion failed: {e}")))
        })
}

/// RGB pixels in sRGB re-expressed in the space of the RGB profile `icc`
/// (perceptual): the inverse of [`to_srgb`], for making test images.
pub fn from_srgb(rgb: &[u8], icc: &[u8]) -> Result<Vec<u8>> {
    let target = ColorProfile::new_from_slice(icc)
        .map_err(|e| CoreError::InvalidInput(format!("an ICC profile cannot be read: {e}")))?;
    let options = TransformOptions {
        rendering_intent: RenderingIntent::Perceptual,
        ..TransformOptions::default()
    };
    let t = ColorProfile::new_srgb()
        .create_transform_8bit(Layout::Rgb, &target, Layout::Rgb, options)
        .map_err(|e| CoreError::InvalidInput(format!("no transform to the profile: {e}")))?;
    let mut out = vec![0u8; rgb.len()];
    t.transform(rgb, &mut out)
        .map_err(|e| CoreError::InvalidInput(format!("colour conversion failed: {e}")))?;
    Ok(out)
}

/// CMYK pixels (four bytes each, as a JPEG stores them: inverted when
/// `adobe`, as Photoshop writes them) as an sRGB image: through the embedded
/// CMYK profile `icc` where there is one moxcms can apply, else by the plain
/// formula `(1 - C)(1 - K)` per channel, as Pillow does.
pub fn cmyk_to_srgb(
    mut cmyk: Vec<u8>,
    width: u32,
    height: u32,
    adobe: bool,
    icc: Option<&[u8]>,
) -> Result<ImageBuf> {
    let info = crate::pixel::ImageInfo::new(width, height, PixelFormat::Rgb8)?;
    if adobe {
        cmyk.par_iter_mut().for_each(|v| *v = !*v);
    }
    // Now 0 is no ink, as a CMYK profile reads it.
    let mut rgb = vec![0u8; info.byte_len()];
    let rows = width as usize * ROWS_PER_TASK;
    if let Some(t) = icc.and_then(cmyk_transform) {
        let ok = cmyk
            .par_chunks(rows * 4)
            .zip(rgb.par_chunks_mut(rows * 3))
            .all(|(src, dst)| t.transform(src, dst).is_ok());
        if ok {
            return ImageBuf::new(info, rgb);
        }
    }
    cmyk.par_chunks(rows * 4)
        .zip(rgb.par_chunks_mut(rows * 3))
        .for_each(|(src, dst)| {
            for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
                let k = 255 - u32::from(s[3]);
                for c in 0..3 {
                    let v = (255 - u32::from(s[c])) * k;
                    d[c] = ((v + 127) / 255) as u8;
                }
            }
        });
    ImageBuf::new(info, rgb)
}

/// A transform from the CMYK profile `icc` to sRGB, if it is one.
fn cmyk_transform(icc: &[u8]) -> Option<std::sync::Arc<moxcms::Transform8BitExecutor>> {
    let source = ColorProfile::new_from_slice(icc).ok()?;
    if source.color_space != moxcms::DataColorSpace::Cmyk {
        return None;
    }
    let options = TransformOptions {
        rendering_intent: RenderingIntent::Perceptual,
        ..TransformOptions::default()
    };
    source
        .create_transform_8bit(
            Layout::Rgba,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            options,
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::ImageInfo;

    fn picture() -> ImageBuf {
        let info = ImageInfo::new(64, 48, PixelFormat::Rgb8).unwrap();
        let data = (0..info.byte_len()).map(|i| (i * 37 % 256) as u8).collect();
        ImageBuf::new(info, data).unwrap()
    }

    /// `img` (sRGB) re-expressed in `profile`'s space.
    fn into(img: &ImageBuf, profile: &ColorProfile) -> ImageBuf {
        let t = ColorProfile::new_srgb()
            .create_transform_8bit(
                Layout::Rgb,
                profile,
                Layout::Rgb,
                TransformOptions::default(),
            )
            .unwrap();
        let mut out = img.clone();
        let src = img.data().to_vec();
        t.transform(&src, out.data_mut()).unwrap();
        out
    }

    #[test]
    fn wide_gamut_pixels_come_back_to_srgb() {
        let srgb = picture();
        for profile in [
            ColorProfile::new_adobe_rgb(),
            ColorProfile::new_display_p3(),
            ColorProfile::new_pro_photo_rgb(),
        ] {
            let mut tagged = into(&srgb, &profile);
            assert!(tagged != srgb, "a different space has different numbers");
            to_srgb(&mut tagged, &profile.encode().unwrap()).unwrap();
            let worst = tagged
                .data()
                .iter()
                .zip(srgb.data())
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            // ProPhoto's 8-bit quantisation costs a few levels.
            assert!(worst <= 6, "worst |diff| {worst}");
        }
    }

    #[test]
    fn a_profile_seen_before_converts_as_it_did_the_first_time() {
        let srgb = picture();
        let profiles = [
            ColorProfile::new_adobe_rgb(),
            ColorProfile::new_display_p3(),
        ];
        let mut first = Vec::new();
        // Twice through more profiles than are kept, interleaved: every
        // answer, kept or rebuilt, is the first one's, and no two
        // profiles share one.
        for round in 0..2 {
            for (i, p) in profiles.iter().enumerate() {
                let icc = p.encode().unwrap();
                let mut tagged = into(&srgb, p);
                to_srgb(&mut tagged, &icc).unwrap();
                if round == 0 {
                    first.push(tagged);
                } else {
                    assert!(tagged == first[i], "profile {i} converted differently");
                }
                for other in 0..super::recent::ENTRIES {
                    // Fillers (sRGB with other gammas) push entries out.
                    if round == 1 && i == 0 {
                        let gamma = ColorProfile::new_gray_with_gamma(1.8 + other as f32 / 10.0);
                        let mut gray = ImageBuf::new(
                            crate::pixel::ImageInfo::new(2, 1, PixelFormat::Gray8).unwrap(),
                            vec![10, 200],
                        )
                        .unwrap();
                        to_srgb(&mut gray, &gamma.encode().unwrap()).unwrap();
                    }
                }
            }
        }
        assert!(first[0] != first[1], "two spaces, two results");
    }

    #[test]
    fn an_srgb_profile_changes_nothing_and_a_bad_one_is_named() {
        let mut img = picture();
        to_srgb(&mut img, &ColorProfile::new_srgb().encode().unwrap()).unwrap();
        assert!(img == picture());
        let e = to_srgb(&mut img, b"not a profile").unwrap_err();
        assert!(e.to_string().contains("ICC profile"), "{e}");
    }
}
