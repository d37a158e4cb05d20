//! Metadata that travels from a source file to a derived one: the ICC
//! profile, EXIF and XMP. By default a derived image carries none of them
//! (a thumbnail must not tell where a photo was taken); `meta=copyright`
//! keeps the EXIF artist and copyright alone, `meta=keep` the whole EXIF
//! (its orientation set to upright: the pixels were turned) and XMP;
//! `icc=keep` the source's profile, the pixels left in its space.
//!
//! Read from the source's bytes; written by splicing into the encoded
//! output (JPEG APP1/APP2 segments, PNG `iCCP`/`eXIf`/`iTXt` chunks, WebP
//! `VP8X` with `ICCP`/`EXIF`/`XMP ` chunks); AVIF gets them from its encoder.

use std::io::Cursor;

use image::{ImageDecoder, ImageReader};

use crate::error::{CoreError, Result};

/// How much of the source's EXIF and XMP a derived image keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MetaKeep {
    /// None (the default): no EXIF, XMP or GPS leaves with a derived image.
    #[default]
    Strip,
    /// The EXIF artist and copyright only.
    Copyright,
    /// All EXIF (orientation reset to upright) and XMP.
    Keep,
}

impl MetaKeep {
    /// The names requests use: strip (or none), copyright, keep (or all).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "strip" | "none" => Self::Strip,
            "copyright" => Self::Copyright,
            "keep" | "all" => Self::Keep,
            _ => return None,
        })
    }
}

/// What a file carries besides its pixels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The ICC profile.
    pub icc: Option<Vec<u8>>,
    /// EXIF as a TIFF structure (starting "II*\0" or "MM\0*").
    pub exif: Option<Vec<u8>>,
    /// XMP, an XML packet.
    pub xmp: Option<Vec<u8>>,
}

impl Metadata {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.icc.is_none() && self.exif.is_none() && self.xmp.is_none()
    }
}

/// Reads the metadata of the encoded `file` (JPEG, PNG, WebP, TIFF, HEIF,
/// AVIF). What cannot be read is absent: metadata never fails a request.
pub fn read(file: &[u8]) -> Metadata {
    if file.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let m = super::jpeg::markers(file);
        return Metadata {
            icc: m.icc,
            exif: m.exif.map(normal_exif),
            xmp: m.xmp,
        };
    }
    if super::heif::is_heif(file) {
        return super::heif::metadata(file);
    }
    let Ok(reader) = ImageReader::new(Cursor::new(file)).with_guessed_format() else {
        return Metadata::default();
    };
    let Ok(mut d) = reader.into_decoder() else {
        return Metadata::default();
    };
    Metadata {
        icc: d.icc_profile().ok().flatten(),
        exif: d.exif_metadata().ok().flatten().map(normal_exif),
        xmp: d.xmp_metadata().ok().flatten(),
    }
}

/// EXIF without the "Exif\0\0" some writers put before the TIFF header.
pub(crate) fn normal_exif(mut exif: Vec<u8>) -> Vec<u8> {
    if exif.starts_with(b"Exif\0\0") {
        exif.drain(..6);
    }
    exif
}

/// What a derived image of `source` carries: per `keep`, and the profile
/// when `icc` (its pixels are then in the profile's space).
pub fn select(source: Metadata, keep: MetaKeep, icc: bool) -> Metadata {
    let icc = if icc { source.icc } else { None };
    match keep {
        MetaKeep::Strip => Metadata {
            icc,
            ..Metadata::default()
        },
        MetaKeep::Copyright => Metadata {
            icc,
            exif: source.exif.as_deref().and_then(exif::copyright_only),
            xmp: None,
        },
        MetaKeep::Keep => Metadata {
            icc,
            exif: source.exif.map(|mut e| {
                exif::set_orientation_upright(&mut e);
                e
            }),
            xmp: source.xmp,
        },
    }
}

/// `file`, encoded as `format`, with `meta` written into it. Formats that
/// cannot carry it here (BMP, GIF, TIFF) are returned as they are.
pub fn embed(format: super::OutputFormat, file: Vec<u8>, meta: &Metadata) -> Result<Vec<u8>> {
    use super::OutputFormat as F;
    if meta.is_empty() {
        return Ok(file);
    }
    match format {
        F::Jpeg => Ok(splice::jpeg(&file, meta)),
        F::Png => splice::png(&file, meta),
        F::WebP => splice::webp(&file, meta),
        F::Avif | F::Bmp | F::Gif | F::Tiff => Ok(file),
    }
}

mod exif;
mod splice;

fn bad(what: &str) -> CoreError {
    CoreError::Encode(format!("cannot write metadata: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{EncodeOptions, OutputFormat};
    use crate::pixel::{ImageBuf, ImageInfo, PixelFormat};
    use crate::{Limits, decode};

    fn picture(format: PixelFormat) -> ImageBuf {
        let info = ImageInfo::new(37, 23, format).unwrap();
        let data = (0..info.byte_len()).map(|i| (i * 7 % 251) as u8).collect();
        ImageBuf::new(info, data).unwrap()
    }

    fn sample() -> Metadata {
        Metadata {
            icc: Some(moxcms::ColorProfile::new_display_p3().encode().unwrap()),
            exif: Some(exif::tests::exif(&[
                (0x0112, 3, &6u16.to_le_bytes()),
                (0x8298, 2, b"(c) someone\0"),
            ])),
            xmp: Some(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>".to_vec()),
        }
    }

    #[test]
    fn every_carrying_format_writes_what_it_reads_back_and_still_decodes() {
        let meta = sample();
        for (format, pf, options) in [
            (
                OutputFormat::Jpeg,
                PixelFormat::Rgb8,
                EncodeOptions::default(),
            ),
            (
                OutputFormat::Png,
                PixelFormat::Rgba8,
                EncodeOptions::default(),
            ),
            (
                OutputFormat::WebP,
                PixelFormat::Rgb8,
                EncodeOptions::default(),
            ),
            (
                OutputFormat::WebP,
                PixelFormat::Rgba8,
                EncodeOptions::default(),
            ),
            (
                OutputFormat::WebP,
                PixelFormat::Rgba8,
                EncodeOptions {
                    lossless: true,
                    ..EncodeOptions::default()
                },
            ),
            (
                OutputFormat::Avif,
                PixelFormat::Rgb8,
                EncodeOptions::default(),
            ),
        ] {
            let img = picture(pf);
            let file = crate::codec::encode_with_meta(&img, format, options, &meta).unwrap();
            let back = read(&file);
            assert_eq!(back.icc, meta.icc, "{format:?} {pf:?}");
            assert_eq!(back.exif, meta.exif, "{format:?} {pf:?}");
            assert_eq!(back.xmp, meta.xmp, "{format:?} {pf:?}");
            // The pixels are untouched by the splice: the file decodes (in
            // its own space) to what the bare file gives.
            let bare = crate::codec::encode_with_meta(&img, format, options, &Metadata::default())
                .unwrap();
            assert!(read(&bare).is_empty(), "{format:?}: encoders write nothing");
            let src = crate::codec::Colour::Source;
            let a = crate::codec::decode_in(Cursor::new(&file), &Limits::DEFAULT, src).unwrap();
            let b = crate::codec::decode_in(Cursor::new(&bare), &Limits::DEFAULT, src).unwrap();
            assert_eq!(a, b, "{format:?} {pf:?}");
            // And other decoders read it too.
            if format != OutputFormat::Avif {
                image::load_from_memory(&file).unwrap();
            }
            // In sRGB, the P3 profile now changes the pixels.
            let c = decode(Cursor::new(&file), &Limits::DEFAULT).unwrap();
            assert!(c != a, "{format:?}: the profile is applied");
        }
    }

    #[test]
    fn a_derived_image_keeps_what_it_is_asked_to() {
        let m = sample();
        assert!(select(m.clone(), MetaKeep::Strip, false).is_empty());
        let icc = select(m.clone(), MetaKeep::Strip, true);
        assert_eq!((icc.icc.is_some(), icc.exif, icc.xmp), (true, None, None));
        let c = select(m.clone(), MetaKeep::Copyright, false);
        let exif = c.exif.unwrap();
        assert_eq!(exif::tests::ascii(&exif, 0x8298).unwrap(), b"(c) someone\0");
        assert!(exif::tests::ascii(&exif, 0x0112).is_none());
        assert_eq!((c.icc, c.xmp), (None, None));
        let k = select(m.clone(), MetaKeep::Keep, false);
        let exif = k.exif.unwrap();
        assert_eq!(exif::tests::ascii(&exif, 0x0112).unwrap()[..2], [1, 0]);
        assert_eq!(k.xmp, m.xmp);
        assert_eq!(MetaKeep::from_name("copyright"), Some(MetaKeep::Copyright));
        assert_eq!(MetaKeep::from_name("gps"), None);
    }
}
