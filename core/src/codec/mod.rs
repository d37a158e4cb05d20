//! Decoding files into the three pixel formats and encoding them back, on the
//! `image` crate, with decoder limits so that a decompression bomb is an error.
//!
//! Decoding maps every colour type `image` reads onto GRAY8, RGB8 or RGBA8:
//! gray stays gray, gray+alpha becomes RGBA8 (alpha is kept), palette images
//! are expanded by their decoder to RGB8 or RGBA8, 16-bit and float channels
//! are scaled to 8 bits with rounding (`image`'s conversion). GIF and animated
//! WebP give their first frame. EXIF orientation is not applied to pixels:
//! [`orientation`] reads it, as operations to apply ([`Orientation`]).
//!
//! Encoding picks the format from the output's extension. GRAY8 is written
//! as gray where the format has gray (PNG, JPEG, TIFF); BMP (a gray palette),
//! WebP and GIF have no gray mode and read back as RGB with R = G = B;
//! RGBA8 keeps its alpha except in JPEG, which has none, where it is dropped.

pub mod colour;
pub mod frames;
mod gather;
pub mod head;
mod heif;
mod jpeg;
pub mod meta;
mod tiff;

pub use heif::{AVIF_EFFORT, AVIF_QUALITY};

use std::io::{BufRead, Seek, Write};
use std::path::Path;

use image::{DynamicImage, ExtendedColorType, ImageEncoder, ImageError, ImageReader};

use crate::ops::orient::Orientation;
use crate::rotate::Rotation;

use crate::error::{CoreError, Result};
use crate::limits::Limits;
use crate::pixel::{ImageBuf, ImageInfo, PixelFormat};

/// JPEG quality used when writing JPEG files.
pub const JPEG_QUALITY: u8 = 90;

/// The colour space decoded pixels are given in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Colour {
    /// sRGB: an embedded profile is applied (the default).
    #[default]
    Srgb,
    /// As stored, in the space of the embedded profile (`icc=keep`: the
    /// output then carries the profile).
    Source,
}

/// A file format the encoder writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// PNG (lossless).
    Png,
    /// JPEG, quality [`JPEG_QUALITY`].
    Jpeg,
    /// Windows bitmap.
    Bmp,
    /// TIFF, uncompressed.
    Tiff,
    /// WebP (libwebp): lossy at the quality asked (80 by default), or lossless.
    WebP,
    /// GIF (palette quantised, first and only frame).
    Gif,
    /// AVIF (libheif with libaom): lossy at the quality asked (50 by
    /// default) and effort (3).
    Avif,
}

impl OutputFormat {
    /// Extensions the encoder knows, for help texts and messages.
    pub const EXTENSIONS: &'static str = "png, jpg, jpeg, bmp, tif, tiff, webp, gif, avif";

    /// The format an extension (without dot, any case) names.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "png" => Self::Png,
            "jpg" | "jpeg" => Self::Jpeg,
            "bmp" => Self::Bmp,
            "tif" | "tiff" => Self::Tiff,
            "webp" => Self::WebP,
            "gif" => Self::Gif,
            "avif" => Self::Avif,
            _ => return None,
        })
    }

    /// The usual extension of files in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Bmp => "bmp",
            Self::Tiff => "tiff",
            Self::WebP => "webp",
            Self::Gif => "gif",
            Self::Avif => "avif",
        }
    }

    /// The media type of files in this format (`image/png`, ...).
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Bmp => "image/bmp",
            Self::Tiff => "image/tiff",
            Self::WebP => "image/webp",
            Self::Gif => "image/gif",
            Self::Avif => "image/avif",
        }
    }

    /// The format a path's extension names, or an error saying what is known.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        Self::from_extension(ext).ok_or_else(|| {
            CoreError::Unsupported(format!(
                "cannot tell the output format of '{}' from its extension: use one of {}",
                path.display(),
                Self::EXTENSIONS
            ))
        })
    }
}

/// How hard PNG output is compressed (the `png` crate's levels; all use
/// adaptive filtering).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PngCompression {
    /// Stored, not compressed: the fastest and the largest.
    None,
    /// `png`'s fast mode (a DEFLATE specialised for PNG): fast, decent size.
    #[default]
    Fast,
    /// zlib-like balanced compression.
    Balanced,
    /// The smallest files, slowly.
    Best,
}

impl PngCompression {
    /// Names for flags: none, fast, balanced, best.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::None,
            "fast" => Self::Fast,
            "balanced" | "default" => Self::Balanced,
            "best" => Self::Best,
            _ => return None,
        })
    }

    pub(crate) fn to_png(self) -> png::Compression {
        match self {
            Self::None => png::Compression::NoCompression,
            Self::Fast => png::Compression::Fast,
            Self::Balanced => png::Compression::Balanced,
            Self::Best => png::Compression::High,
        }
    }

    fn to_image(self) -> image::codecs::png::CompressionType {
        use image::codecs::png::CompressionType as C;
        match self {
            Self::None => C::Uncompressed,
            Self::Fast => C::Fast,
            Self::Balanced => C::Default,
            Self::Best => C::Best,
        }
    }
}

/// How results are encoded: the quality of lossy formats, PNG compression,
/// WebP lossless, JPEG progressive. The default: each format's default
/// quality, PNG `fast`, lossy WebP, baseline JPEG.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EncodeOptions {
    /// Quality of the lossy encodings (JPEG, WebP), 1-100; `None`: each
    /// format's default ([`JPEG_QUALITY`], [`WEBP_QUALITY`]).
    pub quality: Option<u8>,
    /// PNG compression level.
    pub png: PngCompression,
    /// WebP: lossless instead of lossy.
    pub lossless: bool,
    /// JPEG: progressive scans (an image that sharpens as it loads).
    pub progressive: bool,
    /// AVIF: encoder effort 0 (fastest) to 9 (slowest, the best quality per
    /// byte); `None`: [`AVIF_EFFORT`].
    pub effort: Option<u8>,
    /// How much of the source's EXIF and XMP the output keeps.
    pub meta: meta::MetaKeep,
    /// Keep the source's ICC profile (pixels stay in its space) instead of
    /// converting to sRGB.
    pub keep_icc: bool,
}

/// WebP quality when none is asked for (libwebp's and sharp's default).
pub const WEBP_QUALITY: u8 = 80;

impl EncodeOptions {
    /// Checks the quality (1-100) and returns the options.
    pub fn new(quality: Option<u8>, png: PngCompression, lossless: bool) -> Result<Self> {
        if let Some(q) = quality
            && !(1..=100).contains(&q)
        {
            return Err(CoreError::InvalidInput(format!(
                "quality {q} is out of range: use 1 to 100"
            )));
        }
        Ok(Self {
            quality,
            png,
            lossless,
            progressive: false,
            effort: None,
            meta: meta::MetaKeep::Strip,
            keep_icc: false,
        })
    }

    /// The colour space decoding for these options gives.
    pub fn colour(self) -> Colour {
        if self.keep_icc {
            Colour::Source
        } else {
            Colour::Srgb
        }
    }

    /// The JPEG quality these options give.
    pub fn jpeg_quality(self) -> u8 {
        self.quality.unwrap_or(JPEG_QUALITY)
    }

    /// The WebP quality these options give.
    pub fn webp_quality(self) -> u8 {
        self.quality.unwrap_or(WEBP_QUALITY)
    }

    /// The AVIF quality these options give.
    pub fn avif_quality(self) -> u8 {
        self.quality.unwrap_or(AVIF_QUALITY)
    }

    /// Sets the AVIF effort, checking it (0-9).
    pub fn with_effort(self, effort: Option<u8>) -> Result<Self> {
        if let Some(e) = effort
            && e > 9
        {
            return Err(CoreError::InvalidInput(format!(
                "effort {e} is out of range: use 0 (fastest) to 9 (slowest)"
            )));
        }
        Ok(Self { effort, ..self })
    }

    /// A stable byte form, for cache keys: the quality (0: the default),
    /// the PNG level, lossless, progressive, the effort (255: the default),
    /// the metadata kept, the profile kept.
    pub fn canonical_bytes(self) -> [u8; 7] {
        let png = match self.png {
            PngCompression::None => 0,
            PngCompression::Fast => 1,
            PngCompression::Balanced => 2,
            PngCompression::Best => 3,
        };
        [
            self.quality.unwrap_or(0),
            png,
            u8::from(self.lossless),
            u8::from(self.progressive),
            self.effort.unwrap_or(255),
            match self.meta {
                meta::MetaKeep::Strip => 0,
                meta::MetaKeep::Copyright => 1,
                meta::MetaKeep::Keep => 2,
            },
            u8::from(self.keep_icc),
        ]
    }
}

/// What the header of an encoded file says, read without decoding pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The file's format, as an extension ("png", "jpeg", "gif", "bmp",
    /// "tiff", "webp").
    pub format: &'static str,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Reads the format and size of an encoded image from its first bytes
/// (`head` may be a prefix of the file), and checks the size against
/// `limits`: a decompression bomb is refused before a pixel is decoded.
/// Bytes in no known format are [`CoreError::Decode`]; a header that does not
/// fit in `head` is [`CoreError::InvalidInput`].
pub fn probe(head: &[u8], limits: &Limits) -> Result<Probe> {
    let given = head.len();
    let segments;
    let head = if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        segments = jpeg::header_segments(head)?;
        &segments[..]
    } else {
        head
    };
    let reader = ImageReader::new(std::io::Cursor::new(head)).with_guessed_format()?;
    let format = match reader.format() {
        Some(image::ImageFormat::Png) => "png",
        Some(image::ImageFormat::Jpeg) => "jpeg",
        Some(image::ImageFormat::Gif) => "gif",
        Some(image::ImageFormat::Bmp) => "bmp",
        Some(image::ImageFormat::Tiff) => "tiff",
        Some(image::ImageFormat::WebP) => "webp",
        _ => {
            return Err(CoreError::Decode(
                "not an image in a known format (can read png, jpeg, gif, bmp, tiff, webp)".into(),
            ));
        }
    };
    let (width, height) = reader.into_dimensions().map_err(|e| match e {
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            CoreError::InvalidInput(format!(
                "the {format} header does not end within the first {given} bytes"
            ))
        }
        other => map_image_error(other),
    })?;
    if width == 0 || height == 0 {
        return Err(CoreError::InvalidInput(format!(
            "the {format} header declares a {width}x{height} image"
        )));
    }
    // The channel count does not matter for the pixel and side limits.
    limits.check(&ImageInfo::new(width, height, PixelFormat::Gray8)?)?;
    Ok(Probe {
        format,
        width,
        height,
    })
}

/// The EXIF orientation of an encoded image (JPEG, PNG, TIFF, WebP) as the
/// [`Orientation`] that shows it upright, as browsers do (identity when the
/// file has none, and for HEIF and AVIF, which [`decode`] turns upright).
/// Reads the headers only.
pub fn orientation<R: BufRead + Seek>(mut reader: R) -> Result<Orientation> {
    use image::metadata::Orientation as Exif;
    let start = reader.fill_buf()?;
    if heif::is_heif(start) {
        // Decoding applies a HEIF's rotation and mirror boxes.
        return Ok(Orientation::default());
    }
    let exif = if start.starts_with(&[0xFF, 0xD8, 0xFF]) {
        exif_orientation(std::io::Cursor::new(jpeg::header_segments(reader)?))?
    } else if tiff::is_tiff(start) {
        // libtiff reads every TIFF `image` may refuse.
        let mut file = Vec::new();
        reader.read_to_end(&mut file)?;
        Exif::from_exif(tiff::orientation_tag(&file) as u8).unwrap_or(Exif::NoTransforms)
    } else {
        exif_orientation(reader)?
    };
    // Ours rotates counter-clockwise, then mirrors left-right.
    let (rotation, mirror) = match exif {
        Exif::NoTransforms => (Rotation::None, false),
        Exif::FlipHorizontal => (Rotation::None, true),
        Exif::Rotate180 => (Rotation::Ccw180, false),
        Exif::FlipVertical => (Rotation::Ccw180, true),
        Exif::Rotate90FlipH => (Rotation::Ccw270, true),
        Exif::Rotate90 => (Rotation::Ccw270, false),
        Exif::Rotate270FlipH => (Rotation::Ccw90, true),
        Exif::Rotate270 => (Rotation::Ccw90, false),
    };
    Ok(Orientation { rotation, mirror })
}

/// The EXIF orientation `image`'s decoder for the file reads.
fn exif_orientation<R: BufRead + Seek>(reader: R) -> Result<image::metadata::Orientation> {
    use image::ImageDecoder;
    let mut decoder = ImageReader::new(reader)
        .with_guessed_format()?
        .into_decoder()
        .map_err(|e| CoreError::Decode(e.to_string()))?;
    decoder
        .orientation()
        .map_err(|e| CoreError::Decode(e.to_string()))
}

/// Decodes an image, guessing the format from its first bytes, refusing it
/// if its header declares more than `limits` allow (before decoding pixels).
pub fn decode<R: BufRead + Seek>(reader: R, limits: &Limits) -> Result<ImageBuf> {
    decode_in(reader, limits, Colour::Srgb)
}

/// [`decode`], with the pixels in the colour space `colour` says.
pub fn decode_in<R: BufRead + Seek>(
    mut reader: R,
    limits: &Limits,
    colour: Colour,
) -> Result<ImageBuf> {
    let start = reader.fill_buf()?;
    let is_jpeg = start.starts_with(&[0xFF, 0xD8, 0xFF]);
    let is_tiff = tiff::is_tiff(start);
    if is_jpeg || is_tiff || heif::is_heif(start) {
        let mut file = Vec::new();
        reader.read_to_end(&mut file)?;
        return if is_jpeg {
            jpeg::decode(&file, limits, None, colour)
        } else if is_tiff {
            // The `tiff` crate reads the common layouts exactly (16-bit,
            // straight alpha); libtiff the ones it refuses.
            match decode_generic(std::io::Cursor::new(&file), limits, colour) {
                Err(CoreError::Unsupported(_) | CoreError::Decode(_)) => {
                    tiff::decode(&file, limits, colour)
                }
                other => other,
            }
        } else {
            heif::decode(&file, limits, colour)
        };
    }
    decode_generic(reader, limits, colour)
}

/// PNG, GIF, BMP, WebP and TIFF through the `image` crate.
fn decode_generic<R: BufRead + Seek>(
    mut reader: R,
    limits: &Limits,
    colour: Colour,
) -> Result<ImageBuf> {
    crate::png_guard::check(&mut reader)?;
    check_frames(&mut reader, limits)?;
    let mut reader = ImageReader::new(reader).with_guessed_format()?;
    if reader.format().is_none() {
        return Err(CoreError::Decode(format!(
            "not an image in a known format (can read {})",
            "png, jpeg, gif, bmp, tiff, webp"
        )));
    }
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_dimension);
    l.max_image_height = Some(limits.max_dimension);
    // Decoders may hold the image at 16 bits x 4 channels before conversion.
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(map_image_error)?;
    use image::ImageDecoder;
    // An unreadable profile is not worth refusing the image for: the
    // pixels are shown as they are, as browsers do.
    let icc = decoder.icc_profile().ok().flatten();
    let dynamic = DynamicImage::from_decoder(decoder).map_err(map_image_error)?;
    let info = ImageInfo::new(dynamic.width(), dynamic.height(), format_for(&dynamic))?;
    limits.check(&info)?;
    let data = match info.format() {
        PixelFormat::Gray8 => dynamic.into_luma8().into_raw(),
        PixelFormat::Rgb8 => dynamic.into_rgb8().into_raw(),
        PixelFormat::Rgba8 => dynamic.into_rgba8().into_raw(),
    };
    let mut img = ImageBuf::new(info, data)?;
    if let Some(icc) = icc.filter(|_| colour == Colour::Srgb) {
        // Into sRGB, the space of every output. A profile that cannot be
        // applied (unreadable, or for other pixels than these, say CMYK on
        // pixels the decoder converted to RGB) leaves them as decoded, as a
        // browser shows them.
        let _ = colour::to_srgb(&mut img, &icc);
    }
    Ok(img)
}

/// Walks the file's frames ([`frames::FrameScan`]) and refuses one over
/// `limits` before a pixel is decoded; leaves `reader` where it was.
fn check_frames<R: BufRead + Seek>(reader: &mut R, limits: &Limits) -> Result<()> {
    let start = reader.stream_position()?;
    let mut scan = frames::FrameScan::new(*limits);
    while !scan.finished() {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        scan.push(buf)?;
        reader.consume(n);
    }
    reader.seek(std::io::SeekFrom::Start(start))?;
    Ok(())
}

/// A JPEG decoded at a reduced size by DCT scaling (each side 1/2, 1/4 or
/// 1/8, rounded up), the smallest that is at least `min_width` x
/// `min_height`: the inverse DCT of each 8x8 block computes only the
/// coefficients the smaller size needs, so decoding costs a fraction of the
/// full size's. `None` when `file` is not a JPEG or no reduction fits
/// (decode it whole then). The result is close to a resize of the full
/// decode (a box-like prefilter), not identical: callers decide when that
/// is acceptable.
pub fn decode_jpeg_reduced(
    file: &[u8],
    min_width: u32,
    min_height: u32,
    limits: &Limits,
    colour: Colour,
) -> Result<Option<ImageBuf>> {
    if !file.starts_with(&[0xFF, 0xD8, 0xFF]) || !jpeg::reduces(file, (min_width, min_height)) {
        // Decided from the header alone: a file that does not shrink is
        // decoded once, by the caller, not here and again there.
        return Ok(None);
    }
    jpeg::decode(file, limits, Some((min_width, min_height)), colour).map(Some)
}

fn format_for(img: &DynamicImage) -> PixelFormat {
    let c = img.color();
    match (c.has_color(), c.has_alpha()) {
        (false, false) => PixelFormat::Gray8,
        (true, false) => PixelFormat::Rgb8,
        (_, true) => PixelFormat::Rgba8,
    }
}

/// Encodes `img` as `format` into `out` (PNG with [`PngCompression::Fast`]).
pub fn encode<W: Write + Seek>(img: &ImageBuf, format: OutputFormat, out: W) -> Result<()> {
    encode_with(img, format, PngCompression::default(), out)
}

/// Encodes `img` as `format` into `out`, PNG at the given compression.
pub fn encode_with<W: Write + Seek>(
    img: &ImageBuf,
    format: OutputFormat,
    png: PngCompression,
    out: W,
) -> Result<()> {
    let options = EncodeOptions {
        png,
        ..EncodeOptions::default()
    };
    encode_options(img, format, options, out)
}

/// Encodes `img` as `format` into `out` with `options`.
pub fn encode_options<W: Write + Seek>(
    img: &ImageBuf,
    format: OutputFormat,
    options: EncodeOptions,
    out: W,
) -> Result<()> {
    let png = options.png;
    let info = img.info();
    let (w, h) = (info.width(), info.height());
    let color = match info.format() {
        PixelFormat::Gray8 => ExtendedColorType::L8,
        PixelFormat::Rgb8 => ExtendedColorType::Rgb8,
        PixelFormat::Rgba8 => ExtendedColorType::Rgba8,
    };
    let data = img.data();
    let result = match format {
        OutputFormat::Png => {
            let filter = image::codecs::png::FilterType::Adaptive;
            image::codecs::png::PngEncoder::new_with_quality(out, png.to_image(), filter)
                .write_image(data, w, h, color)
        }
        OutputFormat::Jpeg => {
            return jpeg::encode(img, options.jpeg_quality(), options.progressive, out);
        }
        OutputFormat::Bmp => {
            let mut out = out;
            image::codecs::bmp::BmpEncoder::new(&mut out).write_image(data, w, h, color)
        }
        OutputFormat::Tiff => {
            image::codecs::tiff::TiffEncoder::new(out).write_image(data, w, h, color)
        }
        OutputFormat::WebP => return encode_webp(img, options, out),
        OutputFormat::Avif => {
            let file = encode_avif(img, options, &meta::Metadata::default())?;
            let mut out = out;
            out.write_all(&file)?;
            return Ok(());
        }
        OutputFormat::Gif => {
            let mut enc = image::codecs::gif::GifEncoder::new(out);
            if info.format() == PixelFormat::Gray8 {
                let rgb: Vec<u8> = data.iter().flat_map(|&v| [v, v, v]).collect();
                enc.encode(&rgb, w, h, ExtendedColorType::Rgb8)
            } else {
                enc.encode(data, w, h, color)
            }
        }
    };
    result.map_err(|e| match e {
        ImageError::IoError(io) => CoreError::Io(io),
        other => CoreError::Encode(other.to_string()),
    })
}

fn encode_avif(img: &ImageBuf, options: EncodeOptions, meta: &meta::Metadata) -> Result<Vec<u8>> {
    let effort = options.effort.unwrap_or(AVIF_EFFORT);
    heif::encode_avif(img, options.avif_quality(), effort, options.lossless, meta)
}

/// Encodes `img` as `format` with `options`, carrying `meta` (see
/// [`meta::select`] for what a derived image keeps) where the format can.
pub fn encode_with_meta(
    img: &ImageBuf,
    format: OutputFormat,
    options: EncodeOptions,
    meta: &meta::Metadata,
) -> Result<Vec<u8>> {
    if format == OutputFormat::Avif {
        return encode_avif(img, options, meta);
    }
    let mut out = std::io::Cursor::new(Vec::new());
    encode_options(img, format, options, &mut out)?;
    meta::embed(format, out.into_inner(), meta)
}

/// WebP through libwebp: lossy at `options.webp_quality()` (libwebp's
/// default method 4), or lossless; gray is written as RGB (WebP has no gray
/// mode), RGBA keeps its alpha.
fn encode_webp<W: Write>(img: &ImageBuf, options: EncodeOptions, mut out: W) -> Result<()> {
    let info = img.info();
    let rgb;
    let (data, layout) = match info.format() {
        PixelFormat::Gray8 => {
            rgb = img
                .data()
                .iter()
                .flat_map(|&v| [v, v, v])
                .collect::<Vec<u8>>();
            (&rgb[..], webp::PixelLayout::Rgb)
        }
        PixelFormat::Rgb8 => (img.data(), webp::PixelLayout::Rgb),
        PixelFormat::Rgba8 => (img.data(), webp::PixelLayout::Rgba),
    };
    if info.width() > 16383 || info.height() > 16383 {
        return Err(CoreError::Unsupported(format!(
            "a {info} image is larger than WebP allows (16383 pixels a side)"
        )));
    }
    let enc = webp::Encoder::new(data, layout, info.width(), info.height());
    let encoded = if options.lossless {
        enc.encode_lossless()
    } else {
        enc.encode(f32::from(options.webp_quality()))
    };
    out.write_all(&encoded)?;
    Ok(())
}

fn map_image_error(e: ImageError) -> CoreError {
    match e {
        ImageError::Limits(l) => {
            CoreError::TooLarge(format!("image is over the decoder's limits: {l}"))
        }
        ImageError::Unsupported(u) => CoreError::Unsupported(u.to_string()),
        ImageError::IoError(io) => CoreError::Decode(io.to_string()),
        other => CoreError::Decode(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn sample(format: PixelFormat) -> ImageBuf {
        let info = ImageInfo::new(13, 7, format).unwrap();
        ImageBuf::new(info, (0..info.byte_len()).map(|i| (i * 5) as u8).collect()).unwrap()
    }

    fn roundtrip(img: &ImageBuf, f: OutputFormat) -> ImageBuf {
        // The lossless form of each format (WebP is lossy by default).
        let lossless = EncodeOptions {
            lossless: true,
            ..EncodeOptions::default()
        };
        let mut buf = Cursor::new(Vec::new());
        encode_options(img, f, lossless, &mut buf).unwrap();
        buf.set_position(0);
        decode(buf, &Limits::DEFAULT).unwrap()
    }

    /// A smooth, photo-like image with some texture.
    fn photo_like(w: u32, h: u32) -> ImageBuf {
        let info = ImageInfo::new(w, h, PixelFormat::Rgb8).unwrap();
        let mut data = Vec::with_capacity(info.byte_len());
        let mut seed = 0x9e37_79b9u32;
        let mut noise = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed % 17
        };
        for y in 0..h {
            for x in 0..w {
                // Gradients with sensor-like noise, as photographs have.
                data.extend([
                    (x * 230 / w + noise()) as u8,
                    (y * 230 / h + noise()) as u8,
                    ((x + y) * 230 / (w + h) + noise()) as u8,
                ]);
            }
        }
        ImageBuf::new(info, data).unwrap()
    }

    #[test]
    fn webp_is_lossy_at_the_quality_asked_and_lossless_on_request() {
        let img = photo_like(320, 240);
        let size = |o: EncodeOptions| {
            let mut buf = Cursor::new(Vec::new());
            encode_options(&img, OutputFormat::WebP, o, &mut buf).unwrap();
            buf.into_inner()
        };
        let q = |q| EncodeOptions::new(Some(q), PngCompression::Fast, false).unwrap();
        let (low, high) = (size(q(30)), size(q(95)));
        let default = size(EncodeOptions::default());
        let lossless = size(EncodeOptions::new(None, PngCompression::Fast, true).unwrap());
        assert!(low.len() < default.len() && default.len() < high.len());
        assert!(
            high.len() < lossless.len(),
            "{} vs {}",
            high.len(),
            lossless.len()
        );
        // The default is quality 80 (as sharp's and cwebp's).
        assert_eq!(default, size(q(WEBP_QUALITY)));
        let back = decode(Cursor::new(&default), &Limits::DEFAULT).unwrap();
        let diff = back
            .data()
            .iter()
            .zip(img.data())
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum::<u64>() as f64
            / img.data().len() as f64;
        assert!(diff < 8.0, "mean |diff| {diff}");
        assert!(back != img, "lossy");
    }

    #[test]
    fn lossless_formats_roundtrip_bit_exactly() {
        for pf in [PixelFormat::Gray8, PixelFormat::Rgb8, PixelFormat::Rgba8] {
            for f in [
                OutputFormat::Png,
                OutputFormat::Bmp,
                OutputFormat::Tiff,
                OutputFormat::WebP,
            ] {
                let img = sample(pf);
                let back = roundtrip(&img, f);
                if pf == PixelFormat::Gray8 && matches!(f, OutputFormat::Bmp | OutputFormat::WebP) {
                    // BMP and WebP have no gray mode: gray comes back as R=G=B.
                    let gray: Vec<u8> = back.data().chunks_exact(3).map(|p| p[0]).collect();
                    assert!(
                        back.data()
                            .chunks_exact(3)
                            .all(|p| p[0] == p[1] && p[1] == p[2])
                    );
                    assert_eq!(gray, img.data());
                } else {
                    assert!(back == img, "{pf} via {f:?}");
                }
            }
        }
    }

    #[test]
    fn jpeg_keeps_gray_gray_and_drops_alpha() {
        assert_eq!(
            roundtrip(&sample(PixelFormat::Gray8), OutputFormat::Jpeg)
                .info()
                .format(),
            PixelFormat::Gray8
        );
        let back = roundtrip(&sample(PixelFormat::Rgba8), OutputFormat::Jpeg);
        assert_eq!(back.info().format(), PixelFormat::Rgb8);
        assert_eq!((back.info().width(), back.info().height()), (13, 7));
    }

    /// Regression: with `jpeg-encoder`'s optimised Huffman tables, `image`'s
    /// JPEG decoder read our files as garbage (libjpeg read them fine).
    #[test]
    fn jpeg_stays_close_to_its_source() {
        // A smooth gradient: quality 90 must keep it within a few levels.
        let info = ImageInfo::new(64, 48, PixelFormat::Rgb8).unwrap();
        let data: Vec<u8> = (0..info.byte_len())
            .map(|i| {
                let (p, c) = (i / 3, i % 3);
                ((p % 64) * 2 + p / 64 + c * 30) as u8
            })
            .collect();
        let img = ImageBuf::new(info, data).unwrap();
        let back = roundtrip(&img, OutputFormat::Jpeg);
        let err: u64 = img
            .data()
            .iter()
            .zip(back.data())
            .map(|(&a, &b)| a.abs_diff(b) as u64)
            .sum();
        let mean = err as f64 / img.data().len() as f64;
        assert!(mean < 2.0, "mean absolute error {mean:.2}");
    }

    #[test]
    fn gif_writes_a_readable_first_frame() {
        let back = roundtrip(&sample(PixelFormat::Gray8), OutputFormat::Gif);
        assert_eq!((back.info().width(), back.info().height()), (13, 7));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let e = decode(
            Cursor::new(b"definitely not an image".to_vec()),
            &Limits::DEFAULT,
        )
        .unwrap_err();
        assert!(matches!(e, CoreError::Decode(_)), "{e:?}");
    }

    #[test]
    fn oversized_header_is_refused_by_limits() {
        let img = sample(PixelFormat::Rgb8);
        let mut buf = Cursor::new(Vec::new());
        encode(&img, OutputFormat::Png, &mut buf).unwrap();
        buf.set_position(0);
        let tight = Limits {
            max_pixels: 50,
            max_dimension: 1000,
        };
        let e = decode(buf, &tight).unwrap_err();
        assert!(matches!(e, CoreError::LimitExceeded(_)), "{e:?}");
    }

    #[test]
    fn probe_reads_the_header_only_and_checks_limits() {
        let img = sample(PixelFormat::Rgb8);
        for (f, name) in [
            (OutputFormat::Png, "png"),
            (OutputFormat::Jpeg, "jpeg"),
            (OutputFormat::Bmp, "bmp"),
            (OutputFormat::Tiff, "tiff"),
            (OutputFormat::WebP, "webp"),
            (OutputFormat::Gif, "gif"),
        ] {
            let mut buf = Cursor::new(Vec::new());
            encode(&img, f, &mut buf).unwrap();
            let p = probe(buf.get_ref(), &Limits::DEFAULT).unwrap();
            assert_eq!((p.format, p.width, p.height), (name, 13, 7), "{f:?}");
        }
        let mut buf = Cursor::new(Vec::new());
        encode(&img, OutputFormat::Png, &mut buf).unwrap();
        let tight = Limits {
            max_pixels: 50,
            max_dimension: 1000,
        };
        let e = probe(buf.get_ref(), &tight).unwrap_err();
        assert!(matches!(e, CoreError::LimitExceeded(_)), "{e:?}");
        let e = probe(&buf.get_ref()[..10], &Limits::DEFAULT).unwrap_err();
        assert!(matches!(e, CoreError::InvalidInput(_)), "{e:?}");
        let e = probe(b"GIF? no, text", &Limits::DEFAULT).unwrap_err();
        assert!(matches!(e, CoreError::Decode(_)), "{e:?}");
        let e = probe(b"", &Limits::DEFAULT).unwrap_err();
        assert!(matches!(e, CoreError::Decode(_)), "{e:?}");
    }

    #[test]
    fn jpeg_quality_changes_the_file_and_is_checked() {
        let img = sample(PixelFormat::Rgb8);
        let sized = |q| {
            let mut buf = Cursor::new(Vec::new());
            let o = EncodeOptions::new(Some(q), PngCompression::Fast, false).unwrap();
            encode_options(&img, OutputFormat::Jpeg, o, &mut buf).unwrap();
            buf.into_inner().len()
        };
        assert!(sized(20) < sized(100));
        assert!(EncodeOptions::new(Some(0), PngCompression::Fast, false).is_err());
        assert!(EncodeOptions::new(Some(101), PngCompression::Fast, false).is_err());
    }

    #[test]
    fn jpeg_reduced_decodes_the_smallest_scale_that_fits() {
        let info = ImageInfo::new(203, 150, PixelFormat::Rgb8).unwrap();
        let data: Vec<u8> = (0..info.byte_len())
            .map(|i| {
                let (p, c) = (i / 3, i % 3);
                ((p % 203) + (p / 203) + c * 40) as u8
            })
            .collect();
        let img = ImageBuf::new(info, data).unwrap();
        let mut jpg = Cursor::new(Vec::new());
        encode(&img, OutputFormat::Jpeg, &mut jpg).unwrap();
        let jpg = jpg.into_inner();
        // 1/4 of 203x150 is 51x38 (rounded up); at least 40x30 asked for.
        let r = decode_jpeg_reduced(&jpg, 40, 30, &Limits::DEFAULT, Colour::Srgb)
            .unwrap()
            .unwrap();
        assert_eq!((r.info().width(), r.info().height()), (51, 38));
        assert_eq!(r.info().format(), PixelFormat::Rgb8);
        // Close to the full decode, box-averaged: a smooth gradient stays.
        let full = decode(Cursor::new(&jpg), &Limits::DEFAULT).unwrap();
        let (fx, fy) = (100usize, 80usize);
        let want = full.data()[(fy * 203 + fx) * 3] as i32;
        let got = r.data()[((fy / 4) * 51 + fx / 4) * 3] as i32;
        assert!((want - got).abs() <= 8, "{want} vs {got}");
        // No reduction fits, not a JPEG, or over the limits.
        assert!(
            decode_jpeg_reduced(&jpg, 150, 100, &Limits::DEFAULT, Colour::Srgb)
                .unwrap()
                .is_none()
        );
        let mut png = Cursor::new(Vec::new());
        encode(&img, OutputFormat::Png, &mut png).unwrap();
        assert!(
            decode_jpeg_reduced(png.get_ref(), 10, 10, &Limits::DEFAULT, Colour::Srgb)
                .unwrap()
                .is_none()
        );
        let tight = Limits {
            max_pixels: 100,
            max_dimension: 1000,
        };
        assert!(decode_jpeg_reduced(&jpg, 10, 10, &tight, Colour::Srgb).is_err());
    }

    #[test]
    fn extensions_map_to_formats() {
        assert_eq!(
            OutputFormat::from_path(Path::new("a/b.JPG")).unwrap(),
            OutputFormat::Jpeg
        );
        assert_eq!(
            OutputFormat::from_path(Path::new("x.tif")).unwrap(),
            OutputFormat::Tiff
        );
        let e = OutputFormat::from_path(Path::new("out.xyz"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'out.xyz'") && e.contains("png"), "{e}");
    }
}
