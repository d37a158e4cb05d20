//! JPEG through libjpeg-turbo (the `turbojpeg` crate; the library is
//! BSD-style/IJG licensed): decoding whole or DCT-scaled, gray, YCbCr, CMYK
//! and YCCK (Adobe-inverted or not), with the embedded ICC profile applied;
//! encoding with 4:2:0 chroma, optimized Huffman tables and, on request,
//! progressive scans.
//!
//! The segments before the first scan are walked here (APP2 ICC chunks, the
//! APP14 Adobe marker): libjpeg-turbo 3.0 does not hand them out.

mod scans;

use std::io::Write;

use super::colour;
use crate::error::{CoreError, Result};
use crate::limits::Limits;
use crate::pixel::{ImageBuf, ImageInfo, PixelFormat};

/// Scans a progressive JPEG may have before it is refused: real encoders
/// write about ten, while a crafted file of thousands of tiny scans makes
/// the decoder redo the whole image for each (libjpeg-turbo's advice is to
/// cap them; its own tools use 500).
const MAX_SCANS: u32 = 500;

/// What the segments before the first scan say about the pixels.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Markers {
    /// The ICC profile, its APP2 chunks joined in sequence order.
    pub icc: Option<Vec<u8>>,
    /// An APP14 "Adobe" segment is present: CMYK values are stored
    /// inverted, as Photoshop writes them.
    pub adobe: bool,
    /// The EXIF APP1 segment's TIFF structure.
    pub exif: Option<Vec<u8>>,
    /// The XMP APP1 segment's packet.
    pub xmp: Option<Vec<u8>>,
}

/// Walks the segments of `file` up to its first scan. A file cut short or
/// with a broken segment gives what was found so far: the decoder is the
/// one to judge the file.
pub(crate) fn markers(file: &[u8]) -> Markers {
    let mut chunks: Vec<(u8, &[u8])> = Vec::new();
    let mut adobe = false;
    let (mut exif, mut xmp) = (None, None);
    let mut i = 2;
    while i + 4 <= file.len() && file[i] == 0xFF {
        let marker = file[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break; // start of scan, end of image
        }
        let len = usize::from(u16::from_be_bytes([file[i + 2], file[i + 3]]));
        let Some(body) = file.get(i + 4..i + 2 + len).filter(|_| len >= 2) else {
            break;
        };
        match marker {
            0xE2 if body.len() > 14 && body.starts_with(b"ICC_PROFILE\0") => {
                chunks.push((body[12], &body[14..]));
            }
            0xEE if body.starts_with(b"Adobe") => adobe = true,
            0xE1 if exif.is_none() && body.starts_with(b"Exif\0\0") => {
                exif = Some(body[6..].to_vec());
            }
            0xE1 if xmp.is_none() && body.starts_with(b"http://ns.adobe.com/xap/1.0/\0") => {
                xmp = Some(body[29..].to_vec());
            }
            _ => {}
        }
        i += 2 + len;
    }
    // Chunks are numbered from 1; a stable sort keeps files that number
    // them all 0 (some writers do) in file order.
    chunks.sort_by_key(|c| c.0);
    let icc = (!chunks.is_empty()).then(|| chunks.iter().flat_map(|c| c.1).copied().collect());
    Markers {
        icc,
        adobe,
        exif,
        xmp,
    }
}

/// The segments of a JPEG from `reader` up to and including its first
/// scan's header, and nothing of the entropy-coded data after it: what a
/// header parser needs. `image`'s JPEG decoder copies whatever it is given
/// whole before reading its headers (17 MB for a camera's file, twice per
/// request: probe and orientation), so it is given this. A stream cut short
/// gives what was read (the parser then reports it cut).
pub(crate) fn header_segments<R: std::io::Read>(mut reader: R) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = vec![0u8; 2];
    if reader.read_exact(&mut out).is_err() || out != [0xFF, 0xD8] {
        return Ok(Vec::new());
    }
    let mut byte = [0u8; 1];
    loop {
        // A marker: 0xFF, fill 0xFF bytes, its code.
        if reader.read_exact(&mut byte).is_err() || byte[0] != 0xFF {
            return Ok(out);
        }
        let mut code = 0xFF;
        while code == 0xFF {
            if reader.read_exact(&mut byte).is_err() {
                return Ok(out);
            }
            code = byte[0];
        }
        out.extend_from_slice(&[0xFF, code]);
        if code == 0xD9 || code == 0x01 || (0xD0..=0xD7).contains(&code) {
            // End of image, or markers without a length.
            if code == 0xD9 {
                return Ok(out);
            }
            continue;
        }
        let mut len = [0u8; 2];
        if reader.read_exact(&mut len).is_err() {
            return Ok(out);
        }
        out.extend_from_slice(&len);
        let body = usize::from(u16::from_be_bytes(len)).saturating_sub(2);
        let at = out.len();
        let read = (&mut reader).take(body as u64).read_to_end(&mut out)?;
        if read < body || code == 0xDA {
            debug_assert!(out.len() - at == read);
            return Ok(out);
        }
    }
}

/// The smallest DCT scaling (1/8, 1/4, 1/2: the factors with a fast
/// inverse DCT) that keeps `width` x `height` at least `min`, or one.
fn scaling(width: usize, height: usize, min: Option<(u32, u32)>) -> turbojpeg::ScalingFactor {
    use turbojpeg::ScalingFactor as S;
    let Some((mw, mh)) = min else {
        return S::ONE;
    };
    [S::ONE_EIGHTH, S::ONE_QUARTER, S::ONE_HALF]
        .into_iter()
        .find(|s| s.scale(width) >= mw.max(1) as usize && s.scale(height) >= mh.max(1) as usize)
        .unwrap_or(S::ONE)
}

/// Whether the JPEG `file` decodes smaller than whole while keeping at
/// least `min` (a lossless JPEG, or a header that does not parse, does not).
pub(crate) fn reduces(file: &[u8], min: (u32, u32)) -> bool {
    turbojpeg::read_header(file).is_ok_and(|h| {
        !h.is_lossless && scaling(h.width, h.height, Some(min)) != turbojpeg::ScalingFactor::ONE
    })
}

fn tj(e: turbojpeg::Error) -> CoreError {
    CoreError::Decode(format!("JPEG: {e}"))
}

/// Decodes the JPEG `file`, at the smallest DCT-scaled size of at least
/// `min` when given (the whole size when none is smaller), checking its
/// declared size against `limits` before a pixel is decoded. Gray stays
/// gray; everything else becomes sRGB.
pub(crate) fn decode(
    file: &[u8],
    limits: &Limits,
    min: Option<(u32, u32)>,
    colour: super::Colour,
) -> Result<ImageBuf> {
    let mut d = turbojpeg::Decompressor::new().map_err(tj)?;
    let header = d.read_header(file).map_err(tj)?;
    let (w, h) = (header.width, header.height);
    let side = |v: usize| u32::try_from(v).map_err(|_| CoreError::Decode("JPEG: bad size".into()));
    limits.check(&ImageInfo::new(side(w)?, side(h)?, PixelFormat::Gray8)?)?;
    d.set_scan_limit(MAX_SCANS).map_err(tj)?;
    if !header.is_lossless {
        d.set_scaling_factor(scaling(w, h, min)).map_err(tj)?;
    }
    let scaled = header.scaled(d.scaling_factor());
    let (sw, sh) = (scaled.width, scaled.height);
    // A scaled decode of a progressive file reads its coarse scans alone
    // (see `scans`); the whole file if that fails.
    let coarse = (d.scaling_factor() != turbojpeg::ScalingFactor::ONE)
        .then(|| scans::without_ac_refinements(file, MAX_SCANS))
        .flatten();
    let markers = markers(file);
    use turbojpeg::Colorspace as C;
    let (format, channels) = match header.colorspace {
        C::Gray => (turbojpeg::PixelFormat::GRAY, 1),
        C::CMYK | C::YCCK => (turbojpeg::PixelFormat::CMYK, 4),
        _ => (turbojpeg::PixelFormat::RGB, 3),
    };
    let mut pixels = vec![0u8; sw * sh * channels];
    let mut image = |stream: &[u8], d: &mut turbojpeg::Decompressor| {
        d.decompress(
            stream,
            turbojpeg::Image {
                pixels: &mut pixels[..],
                width: sw,
                pitch: sw * channels,
                height: sh,
                format,
            },
        )
    };
    if coarse.as_deref().is_none_or(|c| image(c, &mut d).is_err()) {
        image(file, &mut d).map_err(tj)?;
    }
    let (sw, sh) = (side(sw)?, side(sh)?);
    if channels == 4 {
        return colour::cmyk_to_srgb(pixels, sw, sh, markers.adobe, markers.icc.as_deref());
    }
    let pf = if channels == 1 {
        PixelFormat::Gray8
    } else {
        PixelFormat::Rgb8
    };
    let mut img = ImageBuf::new(ImageInfo::new(sw, sh, pf)?, pixels)?;
    if let Some(icc) = markers.icc.filter(|_| colour == super::Colour::Srgb) {
        // An unreadable profile or one for other pixels leaves them as
        // decoded, as a browser shows them.
        let _ = colour::to_srgb(&mut img, &icc);
    }
    Ok(img)
}

/// Encodes `img` as a JPEG at `quality`: 4:2:0 chroma (gray as gray),
/// optimized Huffman tables (a few percent smaller, as sharp and libvips
/// write by default), progressive scans when asked. RGBA is written without
/// its alpha.
pub(crate) fn encode<W: Write>(
    img: &ImageBuf,
    quality: u8,
    progressive: bool,
    mut out: W,
) -> Result<()> {
    let info = img.info();
    if info.width() > 65535 || info.height() > 65535 {
        return Err(CoreError::Unsupported(format!(
            "a {info} image cannot be a JPEG: JPEG allows at most 65535 pixels per side"
        )));
    }
    let (format, subsamp) = match info.format() {
        PixelFormat::Gray8 => (turbojpeg::PixelFormat::GRAY, turbojpeg::Subsamp::Gray),
        PixelFormat::Rgb8 => (turbojpeg::PixelFormat::RGB, turbojpeg::Subsamp::Sub2x2),
        PixelFormat::Rgba8 => (turbojpeg::PixelFormat::RGBA, turbojpeg::Subsamp::Sub2x2),
    };
    let enc = |e: turbojpeg::Error| CoreError::Encode(format!("JPEG: {e}"));
    let mut c = turbojpeg::Compressor::new().map_err(enc)?;
    c.set_quality(i32::from(quality)).map_err(enc)?;
    c.set_subsamp(subsamp).map_err(enc)?;
    c.set_optimize(true).map_err(enc)?;
    c.set_progressive(progressive).map_err(enc)?;
    let image = turbojpeg::Image {
        pixels: img.data(),
        width: info.width() as usize,
        pitch: info.row_bytes(),
        height: info.height() as usize,
        format,
    };
    let jpeg = c.compress_to_owned(image).map_err(enc)?;
    out.write_all(&jpeg)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
        s.extend_from_slice(body);
        s
    }

    fn icc_chunk(seq: u8, count: u8, data: &[u8]) -> Vec<u8> {
        let mut body = b"ICC_PROFILE\0".to_vec();
        body.extend([seq, count]);
        body.extend_from_slice(data);
        segment(0xE2, &body)
    }

    #[test]
    fn icc_chunks_are_joined_in_sequence_order_and_adobe_is_seen() {
        let mut file = vec![0xFF, 0xD8];
        file.extend(segment(0xE0, b"JFIF\0\x01\x02"));
        file.extend(icc_chunk(2, 2, b"world"));
        file.extend(segment(0xEE, b"Adobe\0\x64\0\0\0\0\x02"));
        file.extend(icc_chunk(1, 2, b"hello "));
        file.extend([0xFF, 0xDA, 0, 2]);
        // Anything after the scan starts is not looked at.
        file.extend(icc_chunk(3, 3, b"!"));
        let m = markers(&file);
        assert_eq!(m.icc.as_deref(), Some(&b"hello world"[..]));
        assert!(m.adobe);
        // Cut inside a segment: what came before it.
        let cut = markers(&file[..30]);
        assert_eq!(cut, Markers::default());
        // EXIF and XMP APP1 segments.
        let mut file = vec![0xFF, 0xD8];
        file.extend(segment(0xE1, b"Exif\0\0II*\0"));
        file.extend(segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x/>"));
        file.extend([0xFF, 0xDA, 0, 2]);
        let m = markers(&file);
        assert_eq!(m.exif.as_deref(), Some(&b"II*\0"[..]));
        assert_eq!(m.xmp.as_deref(), Some(&b"<x/>"[..]));
    }

    #[test]
    fn scaling_picks_the_smallest_fast_factor_that_fits() {
        use turbojpeg::ScalingFactor as S;
        assert_eq!(scaling(4000, 3000, Some((400, 300))), S::ONE_EIGHTH);
        assert_eq!(scaling(4000, 3000, Some((501, 300))), S::ONE_QUARTER);
        assert_eq!(scaling(4000, 3000, Some((1001, 300))), S::ONE_HALF);
        assert_eq!(scaling(4000, 3000, Some((2001, 300))), S::ONE);
        assert_eq!(scaling(4000, 3000, None), S::ONE);
        // Rounded up: 1/8 of 4001 is 501.
        assert_eq!(scaling(4001, 3000, Some((501, 1))), S::ONE_EIGHTH);
    }

    /// A smooth colour picture with detail, sRGB.
    fn picture(w: u32, h: u32) -> ImageBuf {
        let info = ImageInfo::new(w, h, PixelFormat::Rgb8).unwrap();
        let mut data = Vec::with_capacity(info.byte_len());
        for y in 0..h {
            for x in 0..w {
                data.extend([
                    (x * 255 / w) as u8,
                    (y * 255 / h) as u8,
                    (((x + y) / 3) % 200 + 30) as u8,
                ]);
            }
        }
        ImageBuf::new(info, data).unwrap()
    }

    fn mean_diff(a: &ImageBuf, b: &ImageBuf) -> f64 {
        assert_eq!(a.info(), b.info());
        let sum: u64 = a
            .data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f64 / a.data().len() as f64
    }

    /// `rgb` as CMYK ink (0: none), by the formula `cmyk_to_srgb` inverts.
    fn inks(rgb: &ImageBuf) -> Vec<u8> {
        rgb.data()
            .chunks_exact(3)
            .flat_map(|p| {
                let max = u32::from(*p.iter().max().unwrap());
                let k = 255 - max;
                let ink = |v: u8| {
                    (u32::from(v) * 255 + max / 2)
                        .checked_div(max)
                        .map_or(0, |c| (255 - c) as u8)
                };
                [ink(p[0]), ink(p[1]), ink(p[2]), k as u8]
            })
            .collect()
    }

    fn cmyk_jpeg(pixels: &[u8], w: u32, h: u32, colorspace: turbojpeg::Colorspace) -> Vec<u8> {
        let mut c = turbojpeg::Compressor::new().unwrap();
        c.set_quality(95).unwrap();
        c.set_subsamp(turbojpeg::Subsamp::None).unwrap();
        c.set_colorspace(colorspace).unwrap();
        let image = turbojpeg::Image {
            pixels,
            width: w as usize,
            pitch: w as usize * 4,
            height: h as usize,
            format: turbojpeg::PixelFormat::CMYK,
        };
        c.compress_to_vec(image).unwrap()
    }

    /// The file without its APP14 segment.
    fn without_adobe(file: &[u8]) -> Vec<u8> {
        let mut i = 2;
        while file[i + 1] != 0xEE {
            i += 2 + usize::from(u16::from_be_bytes([file[i + 2], file[i + 3]]));
        }
        let len = 2 + usize::from(u16::from_be_bytes([file[i + 2], file[i + 3]]));
        [&file[..i], &file[i + len..]].concat()
    }

    #[test]
    fn cmyk_and_ycck_jpegs_come_out_right_inverted_or_not() {
        let (w, h) = (97, 61);
        let rgb = picture(w, h);
        let ink = inks(&rgb);
        // Photoshop's way: YCCK, Adobe marker, values stored inverted.
        let inverted: Vec<u8> = ink.iter().map(|v| !v).collect();
        let ycck = cmyk_jpeg(&inverted, w, h, turbojpeg::Colorspace::YCCK);
        assert!(markers(&ycck).adobe);
        let out = decode(&ycck, &Limits::DEFAULT, None, super::super::Colour::Srgb).unwrap();
        assert!(mean_diff(&out, &rgb) < 2.0, "{}", mean_diff(&out, &rgb));
        // Plain CMYK, no Adobe marker: values are ink as they stand.
        let plain = without_adobe(&cmyk_jpeg(&ink, w, h, turbojpeg::Colorspace::CMYK));
        assert!(!markers(&plain).adobe);
        let out = decode(&plain, &Limits::DEFAULT, None, super::super::Colour::Srgb).unwrap();
        assert!(mean_diff(&out, &rgb) < 2.0, "{}", mean_diff(&out, &rgb));
        // Read the wrong way round, the picture would be far off: the test
        // can tell.
        let wrong = decode(
            &without_adobe(&ycck),
            &Limits::DEFAULT,
            None,
            super::super::Colour::Srgb,
        )
        .unwrap();
        assert!(
            mean_diff(&wrong, &rgb) > 40.0,
            "{}",
            mean_diff(&wrong, &rgb)
        );
        // Scaled decoding works on CMYK too.
        let small = decode(
            &ycck,
            &Limits::DEFAULT,
            Some((20, 10)),
            super::super::Colour::Srgb,
        )
        .unwrap();
        assert_eq!((small.info().width(), small.info().height()), (25, 16));
    }

    #[test]
    fn progressive_output_is_progressive_and_decodes_alike() {
        let img = picture(203, 101);
        let mut base = Vec::new();
        encode(&img, 90, false, &mut base).unwrap();
        let mut prog = Vec::new();
        encode(&img, 90, true, &mut prog).unwrap();
        assert!(!turbojpeg::read_header(&base).unwrap().is_progressive);
        let header = turbojpeg::read_header(&prog).unwrap();
        assert!(header.is_progressive);
        assert_eq!(header.subsamp, turbojpeg::Subsamp::Sub2x2);
        let a = decode(&base, &Limits::DEFAULT, None, super::super::Colour::Srgb).unwrap();
        let b = decode(&prog, &Limits::DEFAULT, None, super::super::Colour::Srgb).unwrap();
        // The same coefficients, scanned in another order.
        assert_eq!(a, b);
        assert!(mean_diff(&a, &img) < 3.0);
    }

    #[test]
    fn header_segments_end_after_the_first_scan_header_and_read_the_same() {
        let mut file = Vec::new();
        encode(&picture(203, 101), 90, false, &mut file).unwrap();
        // An EXIF segment saying "rotate 90" (orientation 6), after SOI.
        let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
        exif.extend([0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
        file.splice(2..2, segment(0xE1, &exif));
        let head = header_segments(&file[..]).unwrap();
        // A prefix, ending where the entropy-coded data starts.
        assert!(file.starts_with(&head) && head.len() < file.len());
        let sos = head.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        let len = usize::from(u16::from_be_bytes([head[sos + 2], head[sos + 3]]));
        assert_eq!(head.len(), sos + 2 + len);
        // What is read from it is what is read from the whole file.
        let limits = Limits::DEFAULT;
        let (a, b) = (
            super::super::probe(&file, &limits).unwrap(),
            super::super::probe(&head, &limits).unwrap(),
        );
        assert_eq!((a.width, a.height), (203, 101));
        assert_eq!((a.width, a.height), (b.width, b.height));
        let o = super::super::orientation(std::io::Cursor::new(&file)).unwrap();
        assert_eq!(o.rotation, crate::ops::rotate::Rotation::Ccw270);
        // Cut anywhere: a prefix of what was given, never a panic.
        for cut in 0..head.len() + 8 {
            let part = header_segments(&file[..cut]).unwrap();
            assert!(file[..cut].starts_with(&part), "cut at {cut}");
        }
    }

    #[test]
    fn a_progressive_file_of_too_many_scans_is_refused() {
        // A progressive JPEG of thousands of scans: the decoder stops at
        // MAX_SCANS instead of redoing the image for each.
        let img = picture(64, 64);
        let mut prog = Vec::new();
        encode(&img, 90, true, &mut prog).unwrap();
        // Repeat the file's last scan (a no-op refinement) past the limit.
        let sos = prog.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        let eoi = prog.len() - 2;
        let scan = prog[sos..eoi].to_vec();
        let mut bomb = prog[..eoi].to_vec();
        for _ in 0..=MAX_SCANS {
            bomb.extend_from_slice(&scan);
        }
        bomb.extend([0xFF, 0xD9]);
        let e = decode(&bomb, &Limits::DEFAULT, None, super::super::Colour::Srgb).unwrap_err();
        assert!(e.to_string().contains("scans"), "{e}");
    }
}
