//! Where an encoded image's header is, wherever it ends: a scanner fed the
//! file chunk by chunk (any chunking, one byte at a time included) that knows
//! each format's layout well enough to say "more bytes needed" instead of
//! "corrupt", and skips what comes before the header by length without
//! holding it -- a JPEG's frame header after megabytes of EXIF, XMP or ICC
//! segments, a TIFF's first directory at the end of the file -- so its
//! memory is a few dozen bytes whatever the file.
//!
//! Formats: JPEG (markers walked to the first SOFn), PNG (IHDR), GIF (the
//! logical screen), BMP, TIFF (classic and BigTIFF, to the first
//! directory's width and height), WebP (VP8, VP8L, VP8X), and HEIF/AVIF
//! (the `ftyp` brand and the primary item's `ispe` in the `meta` box).
//!
//! Hand-written rather than asking a decoder for the size of a prefix: a
//! decoder reports "not enough bytes" as a corrupt file and wants the prefix
//! held in memory (see the issue of real photographs, bench/README.md).

use super::gather::Gather;
use crate::error::{CoreError, Result};

/// What the header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The format, as an extension ("jpeg", "png", "gif", "bmp", "tiff",
    /// "webp", "heic", "avif").
    pub format: &'static str,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Whether the header says the image has an alpha channel (PNG with
    /// alpha, WebP with alpha; a palette's transparency is not seen here).
    pub alpha: bool,
}

/// The state of the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// The first [`MAGIC`] bytes: the format, and for most the header.
    Magic,
    /// JPEG: a byte that should start a marker (0xFF).
    JpegMarker,
    /// JPEG: a marker's code (after one or more 0xFF).
    JpegCode,
    /// JPEG: a segment's length.
    JpegLength(u8),
    /// JPEG: a frame header's precision, height and width.
    JpegFrame,
    /// TIFF: a directory's entry count.
    TiffCount { big: bool },
    /// TIFF: `left` entries still to read of the directory.
    TiffEntry { big: bool, left: u64 },
    /// ISO BMFF: a box's size and type.
    BoxHeader,
    /// ISO BMFF: the 64-bit size of a box of this type.
    BoxLarge([u8; 4]),
    /// ISO BMFF: the version and flags of `meta`.
    MetaFlags,
    /// ISO BMFF: the start of `pitm`.
    Pitm,
    /// ISO BMFF: an `ispe` property.
    Ispe,
    /// ISO BMFF: the `ipma` box, whole (bounded).
    Ipma,
}

/// Bytes read before deciding the format.
const MAGIC: usize = 32;

/// Longest `ipma` box read whole.
const MAX_IPMA: u64 = 64 << 10;

/// The scanner; see the module doc.
#[derive(Debug)]
pub struct HeadScan {
    at: At,
    /// Skips and gathers.
    g: Gather,
    format: &'static str,
    alpha: bool,
    big_endian: bool,
    tiff_size: (Option<u32>, Option<u32>),
    /// ISO BMFF: open containers (type, end offset); the primary item; the
    /// properties of `ipco` in order (`Some` for `ispe`); the associations.
    boxes: Vec<([u8; 4], u64)>,
    /// ISO BMFF: the box being read (type, end offset).
    current: ([u8; 4], u64),
    primary: Option<u32>,
    props: Vec<Option<(u32, u32)>>,
    ipma: Option<Vec<(u32, Vec<u16>)>>,
    found: Option<Head>,
}

impl Default for HeadScan {
    fn default() -> Self {
        Self::new()
    }
}

fn bad(m: impl Into<String>) -> CoreError {
    CoreError::Decode(m.into())
}

impl HeadScan {
    /// A scanner at the start of a file.
    pub fn new() -> Self {
        Self {
            at: At::Magic,
            g: Gather {
                need: MAGIC,
                ..Gather::default()
            },
            format: "",
            alpha: false,
            big_endian: false,
            tiff_size: (None, None),
            boxes: Vec::new(),
            current: ([0; 4], 0),
            primary: None,
            props: Vec::new(),
            ipma: None,
            found: None,
        }
    }

    /// The header, once found.
    pub fn head(&self) -> Option<Head> {
        self.found
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.g.offset
    }

    /// Reads the next bytes: `Ok(Some(head))` once the header is complete
    /// (later calls return it again and read nothing), `Ok(None)` while more
    /// bytes are needed, an error for bytes that no image of a known format
    /// starts or continues with.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Option<Head>> {
        while self.found.is_none() && !data.is_empty() {
            if let Some(got) = self.g.take(&mut data) {
                self.advance(&got)?;
            }
        }
        Ok(self.found)
    }

    /// At the end of the file: the header, or why there is none.
    pub fn finish(&mut self) -> Result<Head> {
        if self.found.is_none() && self.at == At::Magic && !self.g.buf.is_empty() {
            // A file shorter than the magic: decide on what there is.
            let got = std::mem::take(&mut self.g.buf);
            let mut padded = got.clone();
            padded.resize(MAGIC, 0);
            self.g.need = MAGIC;
            self.magic(&padded, got.len())?;
        }
        self.found.ok_or_else(|| {
            if self.format.is_empty() {
                bad("not an image in a known format (can read png, jpeg, gif, bmp, tiff, webp)")
            } else {
                CoreError::InvalidInput(format!(
                    "the file ends after {} bytes, inside its {} header: it is cut off",
                    self.g.offset, self.format
                ))
            }
        })
    }

    fn want(&mut self, at: At, need: usize) {
        self.at = at;
        self.g.need = need;
    }

    fn done(&mut self, width: u32, height: u32) -> Result<()> {
        if width == 0 || height == 0 {
            return Err(CoreError::InvalidInput(format!(
                "the {} header declares a {width}x{height} image",
                self.format
            )));
        }
        self.found = Some(Head {
            format: self.format,
            width,
            height,
            alpha: self.alpha,
        });
        Ok(())
    }

    fn u16(&self, b: &[u8]) -> u64 {
        u64::from(if self.big_endian {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    }

    fn u32(&self, b: &[u8]) -> u64 {
        u64::from(if self.big_endian {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
    }

    fn u64(&self, b: &[u8]) -> u64 {
        let a: [u8; 8] = b[..8].try_into().expect("8 bytes");
        if self.big_endian {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    }

    /// Continues at absolute offset `to`, reading `need` bytes at `at`;
    /// `rest` is what was read past `from` (absolute), to be read again.
    fn resume(&mut self, from: u64, rest: &[u8], to: u64, at: At, need: usize) -> Result<()> {
        if to < from {
            return Err(bad(format!(
                "a {} offset points back into what was read",
                self.format
            )));
        }
        self.g.offset = from;
        self.g.skip = to - from;
        self.want(at, need);
        self.push(rest).map(|_| ())
    }

    fn advance(&mut self, b: &[u8]) -> Result<()> {
        match self.at {
            At::Magic => self.magic(b, b.len()),
            At::JpegMarker => {
                if b[0] != 0xFF {
                    return Err(bad(format!(
                        "the JPEG has no marker at byte {}: the file is damaged",
                        self.g.offset - 1
                    )));
                }
                self.want(At::JpegCode, 1);
                Ok(())
            }
            At::JpegCode => {
                match b[0] {
                    // Fill bytes before the code.
                    0xFF => self.want(At::JpegCode, 1),
                    // Markers without a length.
                    0x01 | 0xD0..=0xD8 => self.want(At::JpegMarker, 1),
                    0xD9 | 0xDA => {
                        return Err(bad("the JPEG has no frame header before its image data"));
                    }
                    0x00 => return Err(bad("the JPEG has a stuffed byte outside its data")),
                    c => self.want(At::JpegLength(c), 2),
                }
                Ok(())
            }
            At::JpegLength(code) => {
                let len = u64::from(u16::from_be_bytes([b[0], b[1]]));
                if len < 2 {
                    return Err(bad(format!("a JPEG segment of length {len}")));
                }
                // SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC).
                if matches!(code, 0xC0..=0xCF) && !matches!(code, 0xC4 | 0xC8 | 0xCC) {
                    if len < 8 {
                        return Err(bad("a JPEG frame header too short"));
                    }
                    self.want(At::JpegFrame, 5);
                } else {
                    // APPn, COM, tables: skipped by length, never held.
                    self.g.skip = len - 2;
                    self.want(At::JpegMarker, 1);
                }
                Ok(())
            }
            At::JpegFrame => {
                let h = u32::from(u16::from_be_bytes([b[1], b[2]]));
                let w = u32::from(u16::from_be_bytes([b[3], b[4]]));
                if h == 0 {
                    return Err(bad(
                        "the JPEG defines its height after the image data (DNL)",
                    ));
                }
                self.done(w, h)
            }
            At::TiffCount { big } => {
                let left = if big { self.u64(b) } else { self.u16(b) };
                if left == 0 {
                    return Err(bad("the TIFF's first directory is empty"));
                }
                self.want(At::TiffEntry { big, left }, if big { 20 } else { 12 });
                Ok(())
            }
            At::TiffEntry { big, left } => {
                let tag = self.u16(&b[0..2]);
                let kind = self.u16(&b[2..4]);
                let v = if big { &b[12..] } else { &b[8..] };
                let value = match kind {
                    3 => self.u16(v),
                    4 => self.u32(v),
                    16 if big => self.u64(v),
                    _ => 0,
                };
                let value = u32::try_from(value).unwrap_or(u32::MAX);
                match tag {
                    256 => self.tiff_size.0 = Some(value),
                    257 => self.tiff_size.1 = Some(value),
                    _ => {}
                }
                if let (Some(w), Some(h)) = self.tiff_size {
                    return self.done(w, h);
                }
                if left == 1 {
                    return Err(bad("the TIFF's first directory has no width or height"));
                }
                self.at = At::TiffEntry {
                    big,
                    left: left - 1,
                };
                Ok(())
            }
            At::BoxHeader => {
                let size = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                let kind: [u8; 4] = b[4..8].try_into().expect("4 bytes");
                match size {
                    1 => {
                        self.want(At::BoxLarge(kind), 8);
                        Ok(())
                    }
                    // To the end of the file (or container).
                    0 => self.enter(kind, u64::MAX, 8),
                    s => self.enter(kind, s, 8),
                }
            }
            At::BoxLarge(kind) => {
                let size = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                self.enter(kind, size, 16)
            }
            At::MetaFlags => {
                self.want(At::BoxHeader, 8);
                Ok(())
            }
            At::Pitm => {
                // Version 0: a 16-bit item id; 1: 32 bits, if the box has them.
                self.primary = Some(match (b[0], b.get(4..8)) {
                    (0, _) => u32::from(u16::from_be_bytes([b[4], b[5]])),
                    (_, Some(id)) => u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
                    (_, None) => return Err(bad("a HEIF pitm box too short for its version")),
                });
                self.after_box()
            }
            At::Ispe => {
                let w = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                let h = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
                if let Some(last) = self.props.last_mut() {
                    *last = Some((w, h));
                }
                self.after_box()
            }
            At::Ipma => {
                self.ipma = Some(parse_ipma(b));
                self.after_box()
            }
        }
    }

    /// The format and, for most, the header, from the first bytes (`real`
    /// of them are the file's; the rest of `b` is padding at its end).
    fn magic(&mut self, b: &[u8], real: usize) -> Result<()> {
        let le16 = |i: usize| u32::from(u16::from_le_bytes([b[i], b[i + 1]]));
        let le32 = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let le24 = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], 0]);
        let be32 = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        // What a format needs of the first bytes, else "cut off".
        let needs = |n: usize, format: &'static str| {
            if real < n {
                Err(CoreError::InvalidInput(format!(
                    "the file ends after {real} bytes, inside its {format} header: it is cut off"
                )))
            } else {
                Ok(())
            }
        };
        if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
            self.format = "jpeg";
            return self.resume(2, &b[2..real], 2, At::JpegMarker, 1);
        }
        if b.starts_with(b"\x89PNG\r\n\x1a\n") {
            self.format = "png";
            needs(24, "png")?;
            if &b[12..16] != b"IHDR" {
                return Err(bad("the PNG does not begin with its IHDR chunk"));
            }
            // Colour types 4 (gray and alpha) and 6 (RGBA).
            self.alpha = matches!(b[25], 4 | 6);
            return self.done(be32(16), be32(20));
        }
        if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
            self.format = "gif";
            needs(10, "gif")?;
            return self.done(le16(6), le16(8));
        }
        if b.starts_with(b"BM")
            && real >= 18
            && matches!(le32(14), 12 | 40 | 52 | 56 | 64 | 108 | 124)
        {
            self.format = "bmp";
            if le32(14) == 12 {
                needs(22, "bmp")?;
                return self.done(le16(18), le16(20));
            }
            needs(26, "bmp")?;
            // A negative height: rows top to bottom.
            let h = (le32(22) as i32).unsigned_abs();
            return self.done(le32(18), h);
        }
        if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
            self.format = "tiff";
            needs(8, "tiff")?;
            self.big_endian = b[0] == b'M';
            let ifd = self.u32(&b[4..8]);
            if ifd < 8 {
                return Err(bad("the TIFF's first directory lies inside its header"));
            }
            return self.resume(8, &b[8..real], ifd, At::TiffCount { big: false }, 2);
        }
        if b.starts_with(b"II+\0") || b.starts_with(b"MM\0+") {
            self.format = "tiff";
            needs(16, "tiff")?;
            self.big_endian = b[0] == b'M';
            let ifd = self.u64(&b[8..16]);
            return self.resume(16, &b[16..real], ifd, At::TiffCount { big: true }, 8);
        }
        if b.starts_with(b"RIFF") && &b[8..12] == b"WEBP" {
            self.format = "webp";
            needs(30, "webp")?;
            return match &b[12..16] {
                // A lossy frame: tag (3), start code (3), 14-bit sizes.
                b"VP8 " => self.done(le16(26) & 0x3fff, le16(28) & 0x3fff),
                // Lossless: signature 0x2f, then 14-bit width-1 and height-1.
                b"VP8L" if b[20] == 0x2f => {
                    let bits = le32(21);
                    self.alpha = bits & (1 << 28) != 0;
                    self.done((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1)
                }
                // Extended: the canvas, 24-bit width-1 and height-1.
                b"VP8X" => {
                    self.alpha = b[20] & 0x10 != 0;
                    self.done(le24(24) + 1, le24(27) + 1)
                }
                _ => Err(bad("the WebP holds no image chunk where one begins")),
            };
        }
        if &b[4..8] == b"ftyp" {
            self.format = heif_brand(&b[8..12])
                .ok_or_else(|| bad("an ISO media file that is not a HEIF or AVIF image"))?;
            let size = u64::from(be32(0));
            if size < 16 {
                return Err(bad("a HEIF file whose ftyp box is too short"));
            }
            return self.resume(0, &b[..real], size, At::BoxHeader, 8);
        }
        // A short start of a signature is a cut-off file; anything else is
        // not an image.
        let starts = |sig: &[u8]| real < sig.len() && sig.starts_with(&b[..real]);
        if real < MAGIC
            && [
                &b"\x89PNG\r\n\x1a\n"[..],
                b"GIF89a",
                b"GIF87a",
                b"II*\0",
                b"MM\0*",
                b"RIFF",
                &[0xFF, 0xD8],
            ]
            .iter()
            .any(|sig| starts(sig))
        {
            return Err(CoreError::InvalidInput(format!(
                "the file ends after {real} bytes, at the start of an image: it is cut off"
            )));
        }
        Err(bad(
            "not an image in a known format (can read png, jpeg, gif, bmp, tiff, webp)",
        ))
    }

    /// A box of `kind` and `size` bytes whose `header` bytes were read.
    fn enter(&mut self, kind: [u8; 4], size: u64, header: u64) -> Result<()> {
        if size < header {
            return Err(bad("a HEIF box smaller than its header"));
        }
        let start = self.g.offset - header;
        let end = start.saturating_add(size);
        // Containers that ended before this box.
        while self.boxes.last().is_some_and(|(_, e)| *e <= start) {
            self.boxes.pop();
        }
        let parent = self.boxes.last().map(|(k, _)| *k);
        self.current = (kind, end);
        let body = end.saturating_sub(self.g.offset);
        match (&kind, parent.as_ref()) {
            (b"meta", None) => {
                self.boxes.push((kind, end));
                self.want(At::MetaFlags, 4);
            }
            (b"iprp", Some(b"meta")) | (b"ipco", Some(b"iprp")) => {
                self.boxes.push((kind, end));
                self.want(At::BoxHeader, 8);
            }
            (b"pitm", Some(b"meta")) if body >= 6 => self.want(At::Pitm, body.min(8) as usize),
            (b"ipma", Some(b"iprp")) if body <= MAX_IPMA => self.want(At::Ipma, body as usize),
            (_, Some(b"ipco")) => {
                self.props.push(None);
                if &kind == b"ispe" && body >= 12 {
                    self.want(At::Ispe, 12);
                } else {
                    self.skip_box()?;
                }
            }
            _ => self.skip_box()?,
        }
        if self.g.need == 0 {
            self.want(At::BoxHeader, 8);
        }
        Ok(())
    }

    fn skip_box(&mut self) -> Result<()> {
        let (kind, end) = self.current;
        if end == u64::MAX {
            // A box to the end of the file (media data) before the image's
            // properties: they cannot be read without holding the file.
            return Err(bad(format!(
                "the {} file's {} box runs to its end before its image properties",
                self.format,
                String::from_utf8_lossy(&kind)
            )));
        }
        self.g.skip = end.saturating_sub(self.g.offset);
        self.want(At::BoxHeader, 8);
        Ok(())
    }

    /// After the part of the current box that was read: resolves the size
    /// if all is known, else skips the rest of the box.
    fn after_box(&mut self) -> Result<()> {
        if let (Some(p), Some(assoc)) = (self.primary, &self.ipma)
            && let Some((_, props)) = assoc.iter().find(|(item, _)| *item == p)
        {
            let size = props
                .iter()
                .filter_map(|&i| {
                    self.props
                        .get(usize::from(i).checked_sub(1)?)
                        .copied()
                        .flatten()
                })
                .next();
            if let Some((w, h)) = size {
                return self.done(w, h);
            }
            if self.boxes.is_empty() {
                return Err(bad("the HEIF's primary image has no size (ispe)"));
            }
        }
        self.skip_box()
    }
}

/// Item -> property indices (1-based) of an `ipma` box's body.
fn parse_ipma(b: &[u8]) -> Vec<(u32, Vec<u16>)> {
    let mut out = Vec::new();
    if b.len() < 8 {
        return out;
    }
    let (version, wide) = (b[0], b[3] & 1 == 1);
    let count = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let mut i = 8;
    for _ in 0..count {
        let item = if version < 1 {
            let Some(v) = b.get(i..i + 2) else { break };
            i += 2;
            u32::from(u16::from_be_bytes([v[0], v[1]]))
        } else {
            let Some(v) = b.get(i..i + 4) else { break };
            i += 4;
            u32::from_be_bytes([v[0], v[1], v[2], v[3]])
        };
        let Some(&n) = b.get(i) else { break };
        i += 1;
        let mut props = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let index = if wide {
                let Some(v) = b.get(i..i + 2) else { break };
                i += 2;
                u16::from_be_bytes([v[0], v[1]]) & 0x7fff
            } else {
                let Some(&v) = b.get(i) else { break };
                i += 1;
                u16::from(v & 0x7f)
            };
            props.push(index);
        }
        out.push((item, props));
    }
    out
}

/// The format an ISO media file's major brand (the four bytes after
/// `ftyp`) says it is: "avif" or "heic" (any HEIF), or none.
pub(crate) fn heif_brand(brand: &[u8]) -> Option<&'static str> {
    match brand {
        b"avif" | b"avis" => Some("avif"),
        b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => {
            Some("heic")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::{ImageBuf, ImageInfo, PixelFormat};

    fn scan(file: &[u8], chunk: usize) -> Result<Head> {
        let mut s = HeadScan::new();
        for c in file.chunks(chunk) {
            if let Some(h) = s.push(c)? {
                return Ok(h);
            }
        }
        s.finish()
    }

    fn encoded(format: crate::OutputFormat, w: u32, h: u32) -> Vec<u8> {
        let info = ImageInfo::new(w, h, PixelFormat::Rgb8).unwrap();
        let data = (0..info.byte_len()).map(|i| (i * 7 % 251) as u8).collect();
        let img = ImageBuf::new(info, data).unwrap();
        let mut out = std::io::Cursor::new(Vec::new());
        crate::encode(&img, format, &mut out).unwrap();
        out.into_inner()
    }

    #[test]
    fn every_format_in_any_chunking() {
        use crate::OutputFormat as F;
        for (format, name) in [
            (F::Png, "png"),
            (F::Jpeg, "jpeg"),
            (F::Gif, "gif"),
            (F::Bmp, "bmp"),
            (F::Tiff, "tiff"),
            (F::WebP, "webp"),
        ] {
            let file = encoded(format, 37, 23);
            for chunk in [1, 2, 7, 31, 64 << 10] {
                let h = scan(&file, chunk).unwrap();
                assert_eq!(
                    (h.format, h.width, h.height),
                    (name, 37, 23),
                    "{name} by {chunk}"
                );
            }
        }
    }

    #[test]
    fn a_jpeg_header_after_megabytes_of_metadata_is_found_with_little_memory() {
        let jpeg = encoded(crate::OutputFormat::Jpeg, 640, 480);
        // Eight 64 KiB APP segments (EXIF, ICC and XMP are such) after SOI.
        let mut file = jpeg[..2].to_vec();
        for i in 0..80 {
            file.extend([0xFF, 0xE1 + (i % 14) as u8, 0xFF, 0xFF]);
            file.extend(std::iter::repeat_n(0xFFu8, 0xFFFF - 2));
        }
        file.extend(&jpeg[2..]);
        let mut s = HeadScan::new();
        for c in file.chunks(4096) {
            s.push(c).unwrap();
            assert!(
                s.g.buf.capacity() <= 64,
                "the segments are skipped, not held"
            );
        }
        assert_eq!(s.head().map(|h| (h.width, h.height)), Some((640, 480)));
        assert!(s.offset() > 5 << 20);
    }

    #[test]
    fn cut_off_and_foreign_bytes_say_which() {
        let png = encoded(crate::OutputFormat::Png, 9, 9);
        let e = scan(&png[..20], 3).unwrap_err();
        assert!(
            matches!(e, CoreError::InvalidInput(_)) && e.to_string().contains("cut off"),
            "{e}"
        );
        let jpeg = encoded(crate::OutputFormat::Jpeg, 9, 9);
        let e = scan(&jpeg[..20], 7).unwrap_err();
        assert!(e.to_string().contains("jpeg header"), "{e}");
        let e = scan(b"this is certainly not an image file, just text", 5).unwrap_err();
        assert!(
            matches!(e, CoreError::Decode(_)) && e.to_string().contains("not an image"),
            "{e}"
        );
        assert!(scan(b"", 1).is_err());
        // A JPEG whose markers run into garbage.
        let mut broken = jpeg[..2].to_vec();
        broken.extend(b"garbage after the start of image");
        assert!(matches!(scan(&broken, 4), Err(CoreError::Decode(_))));
    }

    #[test]
    fn a_tiff_directory_at_the_end_is_reached_by_skipping() {
        // Header, 1 MB of data, then the directory (big-endian).
        let mut f = b"MM\0*".to_vec();
        f.extend((8u32 + 1_000_000).to_be_bytes());
        f.extend(vec![0u8; 1_000_000]);
        f.extend(3u16.to_be_bytes());
        for (tag, kind, value) in [(254u16, 4u16, 0u32), (256, 3, 4000), (257, 4, 3000)] {
            f.extend(tag.to_be_bytes());
            f.extend(kind.to_be_bytes());
            f.extend(1u32.to_be_bytes());
            if kind == 3 {
                f.extend((value as u16).to_be_bytes());
                f.extend([0, 0]);
            } else {
                f.extend(value.to_be_bytes());
            }
        }
        let h = scan(&f, 7919).unwrap();
        assert_eq!((h.format, h.width, h.height), ("tiff", 4000, 3000));
    }

    /// A box of `kind` holding `body`.
    fn bmff(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend(kind);
        v.extend(body);
        v
    }

    #[test]
    fn heif_and_avif_sizes_come_from_the_primary_items_ispe() {
        let ispe = |w: u32, h: u32| {
            let mut b = vec![0, 0, 0, 0];
            b.extend(w.to_be_bytes());
            b.extend(h.to_be_bytes());
            bmff(b"ispe", &b)
        };
        let mut ipco = bmff(b"hvcC", &[0; 20]);
        ipco.extend(ispe(512, 512)); // a thumbnail's (property 2)
        ipco.extend(ispe(4032, 3024)); // the primary's (property 3)
        let mut ipma = vec![0, 0, 0, 0, 0, 0, 0, 2];
        ipma.extend([0, 1, 2, 0x81, 0x03]); // item 1: props 1 and 3
        ipma.extend([0, 2, 1, 0x02]); // item 2: prop 2
        let mut iprp = bmff(b"ipco", &ipco);
        iprp.extend(bmff(b"ipma", &ipma));
        let mut meta = vec![0, 0, 0, 0];
        meta.extend(bmff(b"hdlr", &[0; 24]));
        meta.extend(bmff(b"pitm", &[0, 0, 0, 0, 0, 1]));
        meta.extend(bmff(b"iprp", &iprp));
        for (brand, format) in [(b"heic", "heic"), (b"avif", "avif")] {
            let mut f = bmff(
                b"ftyp",
                &[brand.as_slice(), &[0, 0, 0, 0], b"mif1", brand.as_slice()].concat(),
            );
            f.extend(bmff(b"meta", &meta));
            f.extend(bmff(b"mdat", &[0; 1000]));
            for chunk in [1, 3, 17, 4096] {
                let h = scan(&f, chunk).unwrap();
                assert_eq!(
                    (h.format, h.width, h.height),
                    (format, 4032, 3024),
                    "{format} by {chunk}"
                );
            }
        }
        // Media data to the end of the file before the properties.
        let mut f = bmff(b"ftyp", b"heic\0\0\0\0mif1");
        f.extend([0, 0, 0, 0]);
        f.extend(b"mdat");
        f.extend([0; 100]);
        assert!(scan(&f, 10).is_err());
        // A version-1 pitm (32-bit id) cut to six bytes: an error, not a
        // read past the box (found by the fuzzer).
        let mut meta = vec![0, 0, 0, 0];
        meta.extend(bmff(b"pitm", &[1, 0, 0, 0, 0, 1]));
        let mut f = bmff(b"ftyp", b"heic\0\0\0\0mif1");
        f.extend(bmff(b"meta", &meta));
        for chunk in [1, 7, 4096] {
            let e = scan(&f, chunk).unwrap_err();
            assert!(e.to_string().contains("pitm"), "{e}");
        }
    }
}
