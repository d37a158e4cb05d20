//! HEIF and AVIF through libheif (LGPL-3.0, built from the `libheif-sys`
//! crate's bundled sources: Debian 12 ships 1.15, the crate needs 1.17),
//! with libde265 (LGPL-3.0) for HEVC, dav1d (BSD-2-Clause) and libaom
//! (BSD-2-Clause) for AV1, from the distribution.
//!
//! Decoding gives the primary image, upright (libheif applies the file's
//! rotation and mirroring boxes; HEIF files carry no EXIF orientation to
//! apply), 8 bits per channel, in sRGB (an ICC profile or an NCLX colour
//! description is converted). Encoding writes AVIF with libaom at the
//! quality and effort asked.

use std::sync::OnceLock;

use libheif_rs::{
    Channel, ColorSpace, CompressionFormat, DecodingOptions, EncoderParameterValue, EncoderQuality,
    HeifContext, LibHeif, RgbChroma, SecurityLimits,
};

use super::colour;
use crate::error::{CoreError, Result};
use crate::limits::Limits;
use crate::pixel::{ImageBuf, ImageInfo, PixelFormat};

/// AVIF quality when none is asked for (sharp's default).
pub const AVIF_QUALITY: u8 = 50;

/// AVIF effort when none is asked for, 0 (fastest) to 9 (slowest, the best
/// quality per byte): libaom's `cpu-used` 6. Measured on the corpus
/// (`bench/README.md`, "Codecs"), 3 is the knee: 4 (sharp's default, speed
/// 5) takes 2.6-3.4x the time for 1-6% fewer bytes at the same PSNR.
pub const AVIF_EFFORT: u8 = 3;

/// Whether `file` starts as a HEIF or AVIF image does.
pub(crate) fn is_heif(file: &[u8]) -> bool {
    file.len() >= 12 && &file[4..8] == b"ftyp" && super::head::heif_brand(&file[8..12]).is_some()
}

/// The library, initialised once for the process.
fn lib() -> &'static LibHeif {
    static LIB: OnceLock<LibHeif> = OnceLock::new();
    LIB.get_or_init(LibHeif::new)
}

fn heif(e: libheif_rs::HeifError) -> CoreError {
    CoreError::Decode(format!("HEIF: {e}"))
}

/// Decodes the primary image of the HEIF or AVIF `file`, refusing one whose
/// declared size is over `limits` before a pixel is decoded.
pub(crate) fn decode(file: &[u8], limits: &Limits, colour: super::Colour) -> Result<ImageBuf> {
    let lib = lib();
    let mut ctx = HeifContext::new().map_err(heif)?;
    // libheif's own guard on the pixels of what it decodes, near ours: the
    // declared size is checked against `limits` below, while a codec's
    // planes are padded to whole blocks (a 1900x1200 HEVC image is coded
    // 1904x1200), hence the slack.
    let mut guard = SecurityLimits::new();
    guard.set_max_image_size_pixels(limits.max_pixels.saturating_mul(5) / 4 + (1 << 16));
    ctx.set_security_limits(&guard).map_err(heif)?;
    ctx.read_bytes(file).map_err(heif)?;
    let handle = ctx.primary_image_handle().map_err(heif)?;
    let alpha = handle.has_alpha_channel();
    let format = if alpha {
        PixelFormat::Rgba8
    } else {
        PixelFormat::Rgb8
    };
    // The declared size, after rotation (a quarter turn swaps the sides).
    limits.check(&ImageInfo::new(handle.width(), handle.height(), format)?)?;
    let chroma = if alpha {
        RgbChroma::Rgba
    } else {
        RgbChroma::Rgb
    };
    let mut options = DecodingOptions::new()
        .ok_or_else(|| CoreError::Decode("HEIF: out of memory for decoding options".into()))?;
    options.set_convert_hdr_to_8bit(true);
    let image = lib
        .decode(&handle, ColorSpace::Rgb(chroma), Some(options))
        .map_err(heif)?;
    let planes = image.planes();
    let plane = planes
        .interleaved
        .ok_or_else(|| CoreError::Decode("HEIF: the decoder gave no interleaved pixels".into()))?;
    let info = ImageInfo::new(plane.width, plane.height, format)?;
    limits.check(&info)?;
    let rb = info.row_bytes();
    let mut data = Vec::with_capacity(info.byte_len());
    for row in plane.data.chunks(plane.stride).take(plane.height as usize) {
        data.extend_from_slice(row.get(..rb).ok_or_else(|| {
            CoreError::Decode("HEIF: the decoder gave rows shorter than the image".into())
        })?);
    }
    let mut img = ImageBuf::new(info, data)?;
    if let Some(icc) = handle.color_profile_raw().filter(|r| !r.data.is_empty()) {
        // As for other formats: an unusable profile leaves the pixels.
        if colour == super::Colour::Srgb {
            let _ = colour::to_srgb(&mut img, &icc.data);
        }
    } else if let Some(nclx) = handle.color_profile_nclx()
        && let Some(profile) = nclx_profile(
            nclx.color_primaries() as u8,
            nclx.transfer_characteristics() as u8,
        )
    {
        let _ = colour::profile_to_srgb(&mut img, &profile);
    }
    Ok(img)
}

/// The ICC profile, EXIF and XMP of the HEIF or AVIF `file`'s primary
/// image (none where it cannot be read).
pub(crate) fn metadata(file: &[u8]) -> super::meta::Metadata {
    let mut meta = super::meta::Metadata::default();
    let Ok(ctx) = HeifContext::read_from_bytes(file) else {
        return meta;
    };
    let Ok(handle) = ctx.primary_image_handle() else {
        return meta;
    };
    meta.icc = handle
        .color_profile_raw()
        .map(|r| r.data)
        .filter(|d| !d.is_empty());
    for m in handle.all_metadata() {
        if &m.item_type.0 == b"Exif" && meta.exif.is_none() {
            // A 4-byte offset from its end to the TIFF header comes first.
            let skip = m
                .raw_data
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize + 4);
            meta.exif = skip.and_then(|s| m.raw_data.get(s..)).map(<[u8]>::to_vec);
        } else if &m.item_type.0 == b"mime" && m.content_type == "application/rdf+xml" {
            meta.xmp = Some(m.raw_data);
        }
    }
    meta
}

/// The colour space an NCLX (CICP) description names, when it is not
/// sRGB's: wide-gamut primaries (Display P3, BT.2020) with their transfer
/// curve (the sRGB curve for the SDR codes phones write).
fn nclx_profile(primaries: u8, transfer: u8) -> Option<moxcms::ColorProfile> {
    // BT.709 (sRGB's primaries), unspecified.
    if matches!(primaries, 1 | 2) {
        return None;
    }
    let transfer = match transfer {
        // BT.709, unspecified, BT.601, sRGB: as sRGB.
        1 | 2 | 6 | 13 => 13,
        t => t,
    };
    let cicp = moxcms::CicpProfile {
        color_primaries: moxcms::CicpColorPrimaries::try_from(primaries).ok()?,
        transfer_characteristics: moxcms::TransferCharacteristics::try_from(transfer).ok()?,
        matrix_coefficients: moxcms::MatrixCoefficients::try_from(0u8).ok()?,
        full_range: true,
    };
    Some(moxcms::ColorProfile::new_from_cicp(cicp))
}

/// Encodes `img` as AVIF with libaom: `quality` 1-100, `effort` 0 (fastest)
/// to 9 (slowest). Gray is written as RGB. Lossless is refused:
/// through libheif's API the pixels would still pass a lossy RGB to YCbCr
/// conversion, and "lossless" that is not would mislead.
pub(crate) fn encode_avif(
    img: &ImageBuf,
    quality: u8,
    effort: u8,
    lossless: bool,
    meta: &super::meta::Metadata,
) -> Result<Vec<u8>> {
    if lossless {
        return Err(CoreError::InvalidInput(
            "lossless AVIF is not offered: use PNG or lossless WebP".into(),
        ));
    }
    let enc = |e: libheif_rs::HeifError| CoreError::Encode(format!("AVIF: {e}"));
    let info = img.info();
    let (chroma, channels) = match info.format() {
        PixelFormat::Rgba8 => (RgbChroma::Rgba, 4),
        _ => (RgbChroma::Rgb, 3),
    };
    let (w, h) = (info.width(), info.height());
    let mut image = libheif_rs::Image::new(w, h, ColorSpace::Rgb(chroma)).map_err(enc)?;
    image
        .create_plane(Channel::Interleaved, w, h, 8)
        .map_err(enc)?;
    {
        let mut planes = image.planes_mut();
        let plane = planes
            .interleaved
            .as_mut()
            .ok_or_else(|| CoreError::Encode("AVIF: no interleaved plane".into()))?;
        let stride = plane.stride;
        let rb = w as usize * channels;
        let rows = img.data().chunks_exact(info.row_bytes());
        for (dst, src) in plane.data.chunks_mut(stride).zip(rows) {
            match info.format() {
                PixelFormat::Gray8 => {
                    for (d, &v) in dst[..rb].chunks_exact_mut(3).zip(src) {
                        d.fill(v);
                    }
                }
                _ => dst[..rb].copy_from_slice(src),
            }
        }
    }
    let lib = lib();
    let mut encoder = lib
        .encoder_for_format(CompressionFormat::Av1)
        .map_err(enc)?;
    encoder
        .set_quality(EncoderQuality::Lossy(quality))
        .map_err(enc)?;
    encoder
        .set_parameter_value(
            "speed",
            EncoderParameterValue::Int(9 - i32::from(effort.min(9))),
        )
        .map_err(enc)?;
    if let Some(icc) = &meta.icc {
        let raw =
            libheif_rs::ColorProfileRaw::new(libheif_rs::color_profile_types::PROF, icc.clone());
        image.set_color_profile_raw(&raw).map_err(enc)?;
    }
    let mut ctx = HeifContext::new().map_err(enc)?;
    let handle = ctx.encode_image(&image, &mut encoder, None).map_err(enc)?;
    if let Some(exif) = &meta.exif {
        ctx.add_exif_metadata(&handle, exif).map_err(enc)?;
    }
    if let Some(xmp) = &meta.xmp {
        ctx.add_xmp_metadata(&handle, xmp).map_err(enc)?;
    }
    ctx.write_to_bytes().map_err(enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: u32, h: u32, format: PixelFormat) -> ImageBuf {
        let info = ImageInfo::new(w, h, format).unwrap();
        let c = format.channels();
        let mut data = Vec::with_capacity(info.byte_len());
        for y in 0..h {
            for x in 0..w {
                let px = [
                    (x * 255 / w) as u8,
                    (y * 255 / h) as u8,
                    ((x + 2 * y) % 256) as u8 / 2 + 60,
                    200,
                ];
                data.extend_from_slice(&px[..c]);
            }
        }
        ImageBuf::new(info, data).unwrap()
    }

    fn mean_diff(a: &ImageBuf, b: &ImageBuf) -> f64 {
        let sum: u64 = a
            .data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f64 / a.data().len() as f64
    }

    #[test]
    fn avif_roundtrips_close_at_odd_sizes_with_alpha_and_quality_tells() {
        for format in [PixelFormat::Rgb8, PixelFormat::Rgba8] {
            let img = picture(97, 43, format);
            let file = encode_avif(&img, 80, 8, false, &Default::default()).unwrap();
            assert_eq!(&file[4..8], b"ftyp");
            let back = decode(&file, &Limits::DEFAULT, super::super::Colour::Srgb).unwrap();
            assert_eq!(back.info(), img.info());
            assert!(mean_diff(&back, &img) < 4.0, "{}", mean_diff(&back, &img));
            let small = encode_avif(&img, 10, 8, false, &Default::default()).unwrap();
            assert!(
                small.len() < file.len(),
                "{} vs {}",
                small.len(),
                file.len()
            );
        }
        // Lossless is refused, not faked.
        let img = picture(33, 17, PixelFormat::Gray8);
        let e = encode_avif(&img, 100, 8, true, &Default::default()).unwrap_err();
        assert!(matches!(e, CoreError::InvalidInput(_)), "{e}");
        // Gray is written as RGB.
        let back = decode(
            &encode_avif(&img, 90, 8, false, &Default::default()).unwrap(),
            &Limits::DEFAULT,
            super::super::Colour::Srgb,
        )
        .unwrap();
        assert_eq!(back.info().format(), PixelFormat::Rgb8);
    }

    #[test]
    fn limits_are_checked_before_decoding_and_garbage_is_named() {
        let img = picture(300, 200, PixelFormat::Rgb8);
        let file = encode_avif(&img, 50, 9, false, &Default::default()).unwrap();
        let tight = Limits {
            max_pixels: 10_000,
            max_dimension: 1000,
        };
        let e = decode(&file, &tight, super::super::Colour::Srgb).unwrap_err();
        assert!(matches!(e, CoreError::LimitExceeded(_)), "{e}");
        let e = decode(
            &file[..file.len() / 2],
            &Limits::DEFAULT,
            super::super::Colour::Srgb,
        )
        .unwrap_err();
        assert!(e.to_string().contains("HEIF"), "{e}");
    }

    #[test]
    fn a_display_p3_description_is_converted_and_srgb_is_left_alone() {
        assert!(nclx_profile(1, 13).is_none());
        assert!(nclx_profile(2, 2).is_none());
        // SMPTE EG 432-1 (Display P3) with the sRGB curve: P3's pure red is
        // outside sRGB, so it maps to sRGB's red, and mid-gray stays gray.
        let p3 = nclx_profile(12, 13).unwrap();
        let info = ImageInfo::new(2, 1, PixelFormat::Rgb8).unwrap();
        let mut img = ImageBuf::new(info, vec![255, 0, 0, 128, 128, 128]).unwrap();
        colour::profile_to_srgb(&mut img, &p3).unwrap();
        let d = img.data();
        assert!(d[0] >= 250 && d[1] < 40 && d[2] < 40, "{d:?}");
        assert!(
            d[3].abs_diff(128) <= 2 && d[3] == d[4] && d[4] == d[5],
            "{d:?}"
        );
    }
}
