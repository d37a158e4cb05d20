//! Metadata written into an encoded file without re-encoding it: segments
//! after a JPEG's SOI (and JFIF), chunks after a PNG's IHDR, a WebP turned
//! into the extended layout (`VP8X`) with its `ICCP`, `EXIF` and `XMP `
//! chunks. The encoders' own files are the input, so the layouts are the
//! ones they write.

use super::{Metadata, bad};
use crate::error::Result;

/// Bytes of ICC profile per APP2 segment (65535 less the length, the
/// "ICC_PROFILE\0" tag and the sequence bytes).
const ICC_CHUNK: usize = 65519;

fn segment(out: &mut Vec<u8>, marker: u8, parts: &[&[u8]]) {
    let len: usize = 2 + parts.iter().map(|p| p.len()).sum::<usize>();
    out.extend([0xFF, marker]);
    out.extend((len as u16).to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// A JPEG with `meta` in APP1 (EXIF, XMP) and APP2 (ICC) segments after
/// its SOI and JFIF segment. Values too long for a segment are left out.
pub(super) fn jpeg(file: &[u8], meta: &Metadata) -> Vec<u8> {
    // After SOI, and after APP0 when the encoder wrote one.
    let mut at = 2;
    if file.get(2..4) == Some(&[0xFF, 0xE0]) {
        at += 2 + usize::from(u16::from_be_bytes([file[4], file[5]]));
    }
    let mut out = Vec::with_capacity(file.len() + 4096);
    out.extend_from_slice(&file[..at]);
    if let Some(exif) = meta.exif.as_deref().filter(|e| e.len() <= 65527) {
        segment(&mut out, 0xE1, &[b"Exif\0\0", exif]);
    }
    if let Some(xmp) = meta.xmp.as_deref().filter(|x| x.len() <= 65502) {
        segment(&mut out, 0xE1, &[b"http://ns.adobe.com/xap/1.0/\0", xmp]);
    }
    if let Some(icc) = meta.icc.as_deref() {
        let chunks: Vec<&[u8]> = icc.chunks(ICC_CHUNK).collect();
        if chunks.len() <= 255 {
            for (i, c) in chunks.iter().enumerate() {
                let seq = [i as u8 + 1, chunks.len() as u8];
                segment(&mut out, 0xE2, &[b"ICC_PROFILE\0", &seq, c]);
            }
        }
    }
    out.extend_from_slice(&file[at..]);
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend(crc.finalize().to_be_bytes());
}

/// A PNG with `meta` in `iCCP`, `eXIf` and `iTXt` (XMP) chunks after IHDR.
pub(super) fn png(file: &[u8], meta: &Metadata) -> Result<Vec<u8>> {
    // Signature (8) and IHDR (4 + 4 + 13 + 4).
    let at = 33;
    if file.len() < at || &file[12..16] != b"IHDR" {
        return Err(bad("not a PNG as the encoder writes it"));
    }
    let mut out = Vec::with_capacity(file.len() + 4096);
    out.extend_from_slice(&file[..at]);
    if let Some(icc) = &meta.icc {
        let mut data = b"ICC profile\0\0".to_vec();
        data.extend(miniz_oxide::deflate::compress_to_vec_zlib(icc, 6));
        png_chunk(&mut out, b"iCCP", &data);
    }
    if let Some(exif) = &meta.exif {
        png_chunk(&mut out, b"eXIf", exif);
    }
    if let Some(xmp) = &meta.xmp {
        // Keyword, no compression, no language or translated keyword.
        let mut data = b"XML:com.adobe.xmp\0\0\0\0\0".to_vec();
        data.extend_from_slice(xmp);
        png_chunk(&mut out, b"iTXt", &data);
    }
    out.extend_from_slice(&file[at..]);
    Ok(out)
}

fn riff_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(kind);
    out.extend((data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

/// The canvas size and alpha of a simple (`VP8 ` or `VP8L`) WebP's
/// bitstream chunk.
fn simple_canvas(kind: &[u8], data: &[u8]) -> Option<(u32, u32, bool)> {
    match kind {
        b"VP8 " => {
            let b = data.get(6..10)?;
            let w = u32::from(u16::from_le_bytes([b[0], b[1]]) & 0x3FFF);
            let h = u32::from(u16::from_le_bytes([b[2], b[3]]) & 0x3FFF);
            Some((w, h, false))
        }
        b"VP8L" => {
            let b: [u8; 4] = data.get(1..5)?.try_into().ok()?;
            let v = u32::from_le_bytes(b);
            Some((
                (v & 0x3FFF) + 1,
                ((v >> 14) & 0x3FFF) + 1,
                (v >> 28) & 1 == 1,
            ))
        }
        _ => None,
    }
}

/// A WebP in the extended layout with `meta`: `VP8X` (flags for what is
/// there), `ICCP`, the image's own chunks, `EXIF`, `XMP `.
pub(super) fn webp(file: &[u8], meta: &Metadata) -> Result<Vec<u8>> {
    if file.len() < 20 || &file[..4] != b"RIFF" || &file[8..12] != b"WEBP" {
        return Err(bad("not a WebP as the encoder writes it"));
    }
    // The chunks after the header.
    let mut chunks: Vec<(&[u8], &[u8])> = Vec::new();
    let mut at = 12;
    while at + 8 <= file.len() {
        let kind = &file[at..at + 4];
        let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap_or_default()) as usize;
        let data = file
            .get(at + 8..at + 8 + len)
            .ok_or_else(|| bad("a WebP chunk runs past the file"))?;
        chunks.push((kind, data));
        at += 8 + len + len % 2;
    }
    let (mut flags, canvas) = match chunks.first().copied() {
        Some((b"VP8X", data)) if data.len() >= 10 => {
            chunks.remove(0);
            (data[0], data[4..10].to_vec())
        }
        Some((kind, data)) => {
            let (w, h, alpha) =
                simple_canvas(kind, data).ok_or_else(|| bad("a WebP of an unknown layout"))?;
            let mut c = (w - 1).to_le_bytes()[..3].to_vec();
            c.extend(&(h - 1).to_le_bytes()[..3]);
            (if alpha { 0x10 } else { 0 }, c)
        }
        None => return Err(bad("a WebP without chunks")),
    };
    flags &= !(0x20 | 0x08 | 0x04);
    if meta.icc.is_some() {
        flags |= 0x20;
    }
    if meta.exif.is_some() {
        flags |= 0x08;
    }
    if meta.xmp.is_some() {
        flags |= 0x04;
    }
    let mut body = b"WEBP".to_vec();
    let mut vp8x = vec![flags, 0, 0, 0];
    vp8x.extend(canvas);
    riff_chunk(&mut body, b"VP8X", &vp8x);
    if let Some(icc) = &meta.icc {
        riff_chunk(&mut body, b"ICCP", icc);
    }
    for (kind, data) in chunks {
        // The source's own metadata chunks are replaced by ours.
        if !matches!(kind, b"ICCP" | b"EXIF" | b"XMP ") {
            let kind: [u8; 4] = kind.try_into().unwrap_or(*b"JUNK");
            riff_chunk(&mut body, &kind, data);
        }
    }
    if let Some(exif) = &meta.exif {
        riff_chunk(&mut body, b"EXIF", exif);
    }
    if let Some(xmp) = &meta.xmp {
        riff_chunk(&mut body, b"XMP ", xmp);
    }
    let mut out = b"RIFF".to_vec();
    out.extend((body.len() as u32).to_le_bytes());
    out.extend(body);
    Ok(out)
}
