//! Row-streaming codecs: read an image file a row at a time and write one a
//! row at a time, so that a huge image never has to be in memory whole.
//!
//! PNG streams both ways (the `png` crate): decoding holds one row, encoding
//! the compressor's window. Interlaced PNGs and every other format cannot be
//! read in row order, so they are decoded whole by [`crate::codec::decode`]
//! and handed out from memory; non-PNG outputs are collected and encoded at
//! the end. Either way the pixels are exactly what the whole-image codecs
//! give (tested), with the same conversions into GRAY8 / RGB8 / RGBA8.

use std::io::{BufRead, Read, Seek, Write};

use crate::codec::{self, OutputFormat, PngCompression};
use crate::error::{CoreError, Result};
use crate::limits::Limits;
use crate::pixel::{ImageBuf, ImageInfo, PixelFormat};

/// A source of pixel rows, top to bottom.
pub trait RowReader: Send {
    /// The image's geometry.
    fn info(&self) -> ImageInfo;
    /// Whether rows come straight from the file (`false`: decoded whole).
    fn is_streaming(&self) -> bool;
    /// Fills `buf` (a whole number of rows) with the next rows.
    fn read_rows(&mut self, buf: &mut [u8]) -> Result<()>;
    /// All the pixels, when they are already decoded in memory and none has
    /// been read yet (so a caller can inspect them without a second decode).
    fn decoded(&self) -> Option<&[u8]> {
        None
    }
}

/// A sink for pixel bytes, row-major, in pieces of any size.
pub trait RowWriter: Send {
    /// Whether bytes go out as they come (`false`: encoded at the end).
    fn is_streaming(&self) -> bool;
    /// Takes the next bytes.
    fn write(&mut self, data: &[u8]) -> Result<()>;
    /// All bytes are in: finish the file.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Opens `input` for reading rows: PNG streams, other formats are decoded
/// whole. Sizes are checked against `limits` before pixels are decoded.
pub fn open_reader<R: BufRead + Seek + Send + 'static>(
    mut input: R,
    limits: &Limits,
) -> Result<Box<dyn RowReader>> {
    // Signature, then IHDR: its interlace method is byte 28 of the file.
    let mut head = [0u8; 29];
    let n = read_up_to(&mut input, &mut head)?;
    input.seek(std::io::SeekFrom::Start(0))?;
    let interlaced = head[28] != 0;
    if n == 29
        && head[..8] == *b"\x89PNG\r\n\x1a\n"
        && &head[12..16] == b"IHDR"
        && !interlaced
        && !png_has_profile(&mut input)?
    {
        crate::png_guard::check(&mut input)?;
        let mut decoder = png::Decoder::new(input);
        decoder.set_transformations(png::Transformations::EXPAND);
        let reader = decoder.read_info().map_err(png_error)?;
        let pinfo = reader.info();
        let (color, depth) = reader.output_color_type();
        let format = match color {
            png::ColorType::Grayscale => PixelFormat::Gray8,
            png::ColorType::Rgb => PixelFormat::Rgb8,
            _ => PixelFormat::Rgba8,
        };
        let info = ImageInfo::new(pinfo.width, pinfo.height, format)?;
        limits.check(&info)?;
        return Ok(Box::new(PngRows {
            reader,
            info,
            color,
            sixteen: depth == png::BitDepth::Sixteen,
        }));
    }
    // Interlaced PNGs (rows arrive in Adam7 passes), PNGs with an ICC
    // profile (converted to sRGB on the whole image, as every decode does)
    // and other formats.
    whole(input, limits)
}

/// Whether the PNG `input` has an `iCCP` chunk before its pixels: its
/// chunk headers walked, `input` left at the start.
fn png_has_profile<R: Read + Seek>(input: &mut R) -> Result<bool> {
    let mut at = 8u64;
    let mut found = false;
    loop {
        input.seek(std::io::SeekFrom::Start(at))?;
        let mut header = [0u8; 8];
        if read_up_to(input, &mut header)? < 8 {
            break;
        }
        match &header[4..] {
            b"iCCP" => {
                found = true;
                break;
            }
            b"IDAT" | b"IEND" => break,
            _ => {}
        }
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        at += 12 + u64::from(len);
    }
    input.seek(std::io::SeekFrom::Start(0))?;
    Ok(found)
}

fn read_up_to<R: std::io::Read>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn whole<R: BufRead + Seek>(input: R, limits: &Limits) -> Result<Box<dyn RowReader>> {
    let img = codec::decode(input, limits)?;
    Ok(Box::new(MemoryRows { img, pos: 0 }))
}

fn png_error(e: png::DecodingError) -> CoreError {
    match e {
        png::DecodingError::IoError(io) => CoreError::Decode(io.to_string()),
        png::DecodingError::LimitsExceeded => {
            CoreError::TooLarge("image is over the decoder's limits".into())
        }
        other => CoreError::Decode(other.to_string()),
    }
}

struct MemoryRows {
    img: ImageBuf,
    pos: usize,
}

impl RowReader for MemoryRows {
    fn info(&self) -> ImageInfo {
        self.img.info()
    }
    fn decoded(&self) -> Option<&[u8]> {
        (self.pos == 0).then(|| self.img.data())
    }
    fn is_streaming(&self) -> bool {
        false
    }
    fn read_rows(&mut self, buf: &mut [u8]) -> Result<()> {
        let end = self.pos + buf.len();
        let src = self
            .img
            .data()
            .get(self.pos..end)
            .ok_or_else(|| CoreError::InvalidInput("read past the last row".into()))?;
        buf.copy_from_slice(src);
        self.pos = end;
        Ok(())
    }
}

struct PngRows<R: BufRead + Seek> {
    reader: png::Reader<R>,
    info: ImageInfo,
    color: png::ColorType,
    sixteen: bool,
}

/// 16-bit to 8-bit exactly as `image` converts: `(v + 128) / 257`.
fn to8(hi: u8, lo: u8) -> u8 {
    ((u16::from_be_bytes([hi, lo]) as u32 + 128) / 257) as u8
}

impl<R: BufRead + Seek + Send> RowReader for PngRows<R> {
    fn info(&self) -> ImageInfo {
        self.info
    }
    fn is_streaming(&self) -> bool {
        true
    }
    fn read_rows(&mut self, buf: &mut [u8]) -> Result<()> {
        let rb = self.info.row_bytes();
        for out in buf.chunks_exact_mut(rb) {
            let row = self
                .reader
                .next_row()
                .map_err(png_error)?
                .ok_or_else(|| CoreError::Decode("the PNG ended before its last row".into()))?;
            let data = row.data();
            // Samples per pixel in the file after EXPAND: gray+alpha has 2.
            let spp = match self.color {
                png::ColorType::GrayscaleAlpha => 2,
                _ => self.info.channels(),
            };
            let sample = |i: usize| {
                if self.sixteen {
                    to8(data[2 * i], data[2 * i + 1])
                } else {
                    data[i]
                }
            };
            if self.color == png::ColorType::GrayscaleAlpha {
                // Gray+alpha becomes RGBA, as in the whole-image decoder.
                for (p, o) in out.chunks_exact_mut(4).enumerate() {
                    let (g, a) = (sample(p * spp), sample(p * spp + 1));
                    o.copy_from_slice(&[g, g, g, a]);
                }
            } else if self.sixteen {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = sample(i);
                }
            } else {
                out.copy_from_slice(&data[..rb]);
            }
        }
        Ok(())
    }
}

/// Opens a writer of `format` for an image of geometry `info` into `out`.
pub fn open_writer<W: Write + Seek + Send + 'static>(
    out: W,
    info: ImageInfo,
    format: OutputFormat,
    png: PngCompression,
) -> Result<Box<dyn RowWriter>> {
    if format == OutputFormat::Png {
        let mut enc = png::Encoder::new(out, info.width(), info.height());
        enc.set_color(match info.format() {
            PixelFormat::Gray8 => png::ColorType::Grayscale,
            PixelFormat::Rgb8 => png::ColorType::Rgb,
            PixelFormat::Rgba8 => png::ColorType::Rgba,
        });
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png.to_png());
        enc.set_filter(png::Filter::Adaptive);
        let writer = enc.write_header().map_err(png_encode_error)?;
        // The stream writer buffers a whole IDAT chunk: no BufWriter needed.
        let stream = writer
            .into_stream_writer_with_size(1 << 20)
            .map_err(png_encode_error)?;
        return Ok(Box::new(PngSink { stream }));
    }
    let mut data = Vec::new();
    data.try_reserve_exact(info.byte_len())
        .map_err(|_| CoreError::OutOfMemory(info.byte_len()))?;
    Ok(Box::new(BufferedSink {
        out,
        info,
        format,
        png,
        data,
    }))
}

fn png_encode_error(e: png::EncodingError) -> CoreError {
    match e {
        png::EncodingError::IoError(io) => CoreError::Io(io),
        other => CoreError::Encode(other.to_string()),
    }
}

struct PngSink<W: Write + 'static> {
    stream: png::StreamWriter<'static, W>,
}

impl<W: Write + Send + 'static> RowWriter for PngSink<W> {
    fn is_streaming(&self) -> bool {
        true
    }
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.stream.write_all(data)?;
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<()> {
        self.stream.finish().map_err(png_encode_error)
    }
}

struct BufferedSink<W> {
    out: W,
    info: ImageInfo,
    format: OutputFormat,
    png: PngCompression,
    data: Vec<u8>,
}

impl<W: Write + Seek + Send> RowWriter for BufferedSink<W> {
    fn is_streaming(&self) -> bool {
        false
    }
    fn write(&mut self, data: &[u8]) -> Result<()> {
        if data.len() > self.info.byte_len() - self.data.len() {
            return Err(CoreError::InvalidInput(format!(
                "more bytes than a {} image holds",
                self.info
            )));
        }
        self.data.extend_from_slice(data);
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<()> {
        let img = ImageBuf::new(self.info, self.data)?;
        let mut out = std::io::BufWriter::new(self.out);
        codec::encode_with(&img, self.format, self.png, &mut out)?;
        out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Cursor<Vec<u8>>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Seek for Shared {
        fn seek(&mut self, p: std::io::SeekFrom) -> std::io::Result<u64> {
            self.0.lock().unwrap().seek(p)
        }
    }

    fn encode_image(img: &image::DynamicImage, f: image::ImageFormat) -> Vec<u8> {
        let mut c = Cursor::new(Vec::new());
        img.write_to(&mut c, f).unwrap();
        c.into_inner()
    }

    #[test]
    fn a_png_with_a_profile_is_read_whole_and_converted() {
        let info = ImageInfo::new(29, 7, PixelFormat::Rgb8).unwrap();
        let data: Vec<u8> = (0..info.byte_len()).map(|i| (i * 13 % 256) as u8).collect();
        let img = ImageBuf::new(info, data).unwrap();
        let meta = crate::codec::meta::Metadata {
            icc: Some(moxcms::ColorProfile::new_adobe_rgb().encode().unwrap()),
            ..Default::default()
        };
        let plain = crate::codec::encode_with_meta(
            &img,
            crate::OutputFormat::Png,
            crate::EncodeOptions::default(),
            &crate::codec::meta::Metadata::default(),
        )
        .unwrap();
        let tagged = crate::codec::encode_with_meta(
            &img,
            crate::OutputFormat::Png,
            crate::EncodeOptions::default(),
            &meta,
        )
        .unwrap();
        let (streamed, a) = read_all(plain);
        assert!(streamed && a == img);
        let (streamed, b) = read_all(tagged.clone());
        assert!(!streamed, "a profile is applied on the whole image");
        assert!(b != img);
        assert_eq!(
            b,
            codec::decode(Cursor::new(tagged), &Limits::DEFAULT).unwrap()
        );
    }

    fn read_all(bytes: Vec<u8>) -> (bool, ImageBuf) {
        let mut r = open_reader(Cursor::new(bytes), &Limits::DEFAULT).unwrap();
        let mut buf = vec![0; r.info().byte_len()];
        let rb = r.info().row_bytes();
        for rows in buf.chunks_mut(rb * 3) {
            r.read_rows(rows).unwrap();
        }
        (r.is_streaming(), ImageBuf::new(r.info(), buf).unwrap())
    }

    #[test]
    fn streamed_png_equals_whole_decode_for_every_color_type() {
        let (w, h) = (23u32, 11u32);
        let px = |x: u32, y: u32, k: u32| ((x * 37 + y * 11 + k * 71) % 256) as u8;
        let px16 = |x: u32, y: u32, k: u32| ((x * 3001 + y * 977 + k * 7919) % 65536) as u16;
        let images: Vec<image::DynamicImage> = vec![
            image::GrayImage::from_fn(w, h, |x, y| image::Luma([px(x, y, 0)])).into(),
            image::GrayAlphaImage::from_fn(w, h, |x, y| image::LumaA([px(x, y, 0), px(x, y, 1)]))
                .into(),
            image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([px(x, y, 0), px(x, y, 1), px(x, y, 2)])
            })
            .into(),
            image::RgbaImage::from_fn(w, h, |x, y| {
                image::Rgba([px(x, y, 0), px(x, y, 1), px(x, y, 2), px(x, y, 3)])
            })
            .into(),
            image::ImageBuffer::<image::Luma<u16>, _>::from_fn(w, h, |x, y| {
                image::Luma([px16(x, y, 0)])
            })
            .into(),
            image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(w, h, |x, y| {
                image::Rgb([px16(x, y, 0), px16(x, y, 1), px16(x, y, 2)])
            })
            .into(),
            image::ImageBuffer::<image::Rgba<u16>, _>::from_fn(w, h, |x, y| {
                image::Rgba([px16(x, y, 0), px16(x, y, 1), px16(x, y, 2), px16(x, y, 3)])
            })
            .into(),
        ];
        for img in images {
            let bytes = encode_image(&img, image::ImageFormat::Png);
            let want = codec::decode(Cursor::new(bytes.clone()), &Limits::DEFAULT).unwrap();
            let (streaming, got) = read_all(bytes);
            assert!(streaming, "{:?} streams", img.color());
            assert!(
                got == want,
                "{:?}: streamed rows differ from the whole decode",
                img.color()
            );
        }
    }

    #[test]
    fn other_formats_fall_back_to_whole_decoding() {
        let img: image::DynamicImage =
            image::RgbImage::from_fn(9, 4, |x, y| image::Rgb([x as u8, y as u8, 7])).into();
        let (streaming, got) = read_all(encode_image(&img, image::ImageFormat::Bmp));
        assert!(!streaming);
        assert_eq!(got.data(), img.as_bytes());
    }

    #[test]
    fn png_limits_are_checked_before_decoding() {
        let img: image::DynamicImage = image::GrayImage::new(100, 100).into();
        let tight = Limits {
            max_pixels: 99,
            max_dimension: 1000,
        };
        let e = open_reader(
            Cursor::new(encode_image(&img, image::ImageFormat::Png)),
            &tight,
        )
        .err()
        .unwrap();
        assert!(matches!(e, CoreError::LimitExceeded(_)), "{e:?}");
    }

    #[test]
    fn streamed_writers_give_what_the_whole_encoder_reads_back() {
        let info = ImageInfo::new(17, 5, PixelFormat::Rgba8).unwrap();
        let data: Vec<u8> = (0..info.byte_len()).map(|i| (i * 13) as u8).collect();
        for format in [OutputFormat::Png, OutputFormat::Tiff, OutputFormat::Bmp] {
            let sink = Shared::default();
            let mut w = open_writer(sink.clone(), info, format, PngCompression::Fast).unwrap();
            assert_eq!(w.is_streaming(), format == OutputFormat::Png);
            for piece in data.chunks(7) {
                w.write(piece).unwrap();
            }
            w.finish().unwrap();
            let bytes = sink.0.lock().unwrap().get_ref().clone();
            let back = codec::decode(Cursor::new(bytes), &Limits::DEFAULT).unwrap();
            assert_eq!(back.data(), &data[..], "{format:?}");
        }
    }
}
