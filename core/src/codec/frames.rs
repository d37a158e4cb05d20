//! Every frame's size, before any is decoded: a scanner fed a file chunk by
//! chunk (any chunking) that walks the structure of the formats whose
//! frames declare their own size -- GIF (each image descriptor) and WebP
//! (the canvas and each animation frame) -- skipping pixel data by length
//! without holding it, and refuses a frame over the limits at once. A GIF
//! whose logical screen is 1x1 and whose first frame is 8000x8000 is
//! refused here, not by the allocator.
//!
//! Its memory is a few bytes of the structure being read, however large the
//! file. Formats without frames pass through; their size is the header's
//! ([`super::probe`]).

use super::gather::Gather;
use crate::error::{CoreError, Result};
use crate::limits::Limits;
use crate::pixel::{ImageInfo, PixelFormat};

/// What the scanner is reading now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The first bytes, to tell the format.
    Start,
    /// GIF: the logical screen descriptor (bytes 6..13).
    GifScreen,
    /// GIF: the introducer of the next block.
    GifBlock,
    /// GIF: an extension's label.
    GifExtLabel,
    /// GIF: an image descriptor (9 bytes after its introducer).
    GifImage,
    /// GIF: the LZW minimum code size before an image's data.
    GifLzw,
    /// GIF: the size of the next data sub-block (0 ends the block).
    GifSubBlock,
    /// GIF: the trailer was read; anything after it is ignored.
    GifEnd,
    /// WebP: the next chunk header (fourcc and size).
    WebpChunk,
    /// WebP: the start of a chunk whose payload holds a size (the chunk's
    /// padded length).
    WebpPayload([u8; 4], u64),
    /// A format without frames of their own: nothing more to read.
    Done,
}

/// The scanner; see the module doc.
#[derive(Debug)]
pub struct FrameScan {
    limits: Limits,
    step: Step,
    /// Skips and gathers (a structure is at most a few dozen bytes).
    g: Gather,
    /// The largest frame seen: pixels, and the frame.
    largest: Option<(u64, u32, u32)>,
    frames: u64,
}

impl FrameScan {
    /// A scanner refusing frames over `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            step: Step::Start,
            g: Gather {
                need: 12,
                ..Gather::default()
            },
            largest: None,
            frames: 0,
        }
    }

    /// Whether nothing more needs to be read (a format without frames, or
    /// a GIF's trailer).
    pub fn finished(&self) -> bool {
        matches!(self.step, Step::Done | Step::GifEnd)
    }

    /// Frames (or, for WebP, the canvas and frames) seen so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The largest frame seen, in pixels (0 for formats without frames).
    pub fn largest_pixels(&self) -> u64 {
        self.largest.map_or(0, |l| l.0)
    }

    /// Reads the next bytes of the file; fails at the first frame over the
    /// limits (or a structure that cannot be a frame's).
    pub fn push(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.step == Step::Done || self.step == Step::GifEnd {
                return Ok(());
            }
            if let Some(got) = self.g.take(&mut data) {
                self.advance(&got)?;
            }
        }
        Ok(())
    }

    fn want(&mut self, step: Step, need: usize) {
        self.step = step;
        self.g.need = need;
    }

    fn frame(&mut self, what: &str, w: u32, h: u32) -> Result<()> {
        self.frames += 1;
        if w == 0 || h == 0 {
            return Ok(());
        }
        let info = ImageInfo::new(w, h, PixelFormat::Gray8)?;
        self.limits.check(&info).map_err(|e| match e {
            CoreError::LimitExceeded(m) => {
                CoreError::LimitExceeded(format!("{what} {} is {w}x{h}: {m}", self.frames))
            }
            e => e,
        })?;
        let px = u64::from(w) * u64::from(h);
        if self.largest.is_none_or(|l| px > l.0) {
            self.largest = Some((px, w, h));
        }
        Ok(())
    }

    /// Handles a complete structure `b` of the current step.
    fn advance(&mut self, b: &[u8]) -> Result<()> {
        let u16le = |i: usize| u32::from(u16::from_le_bytes([b[i], b[i + 1]]));
        let u32le = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u24le = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], 0]);
        match self.step {
            Step::Start => {
                if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
                    // 12 read: the screen descriptor's last byte is next.
                    self.g.buf = b[6..].to_vec();
                    self.want(Step::GifScreen, 7);
                    if self.g.buf.len() == 7 {
                        let got = std::mem::take(&mut self.g.buf);
                        return self.advance(&got);
                    }
                } else if b.starts_with(b"RIFF") && &b[8..12] == b"WEBP" {
                    self.want(Step::WebpChunk, 8);
                } else {
                    self.step = Step::Done;
                }
            }
            Step::GifScreen => {
                self.frame("the GIF's logical screen", u16le(0), u16le(2))?;
                // The screen is the canvas, not a frame.
                self.frames = 0;
                if b[4] & 0x80 != 0 {
                    self.g.skip = 3 << ((b[4] & 7) + 1);
                }
                self.want(Step::GifBlock, 1);
            }
            Step::GifBlock => match b[0] {
                0x21 => self.want(Step::GifExtLabel, 1),
                0x2C => self.want(Step::GifImage, 9),
                0x3B => self.step = Step::GifEnd,
                other => {
                    return Err(CoreError::Decode(format!(
                        "the GIF has a block 0x{other:02x} at byte {}: not a GIF block",
                        self.g.offset - 1
                    )));
                }
            },
            Step::GifExtLabel => self.want(Step::GifSubBlock, 1),
            Step::GifImage => {
                self.frame("GIF frame", u16le(4), u16le(6))?;
                if b[8] & 0x80 != 0 {
                    self.g.skip = 3 << ((b[8] & 7) + 1);
                }
                self.want(Step::GifLzw, 1);
            }
            Step::GifLzw => self.want(Step::GifSubBlock, 1),
            Step::GifSubBlock => {
                if b[0] == 0 {
                    self.want(Step::GifBlock, 1);
                } else {
                    self.g.skip = u64::from(b[0]);
                    self.want(Step::GifSubBlock, 1);
                }
            }
            Step::WebpChunk => {
                let fourcc = [b[0], b[1], b[2], b[3]];
                // Chunks are padded to an even size.
                let size = u32le(4);
                // Chunks are padded to an even size (in 64 bits: a size of
                // 2^32 - 1 pads past u32).
                let padded = u64::from(size) + u64::from(size & 1);
                match &fourcc {
                    // An animation frame: its 16-byte header, then its
                    // image's chunks, read as chunks.
                    b"ANMF" => self.want(Step::WebpPayload(fourcc, padded), 16.min(size as usize)),
                    b"VP8X" | b"VP8L" | b"VP8 " => {
                        self.want(Step::WebpPayload(fourcc, padded), 30.min(size as usize))
                    }
                    _ => {
                        self.g.skip = padded;
                        self.want(Step::WebpChunk, 8);
                    }
                }
                if self.g.need == 0 {
                    self.want(Step::WebpChunk, 8);
                }
            }
            Step::WebpPayload(fourcc, padded) => {
                let size = match &fourcc {
                    // Canvas: 24-bit width-1 and height-1 after 4 bytes.
                    b"VP8X" if b.len() >= 10 => Some((u24le(4) + 1, u24le(7) + 1)),
                    // A frame: x, y (3 bytes each), width-1, height-1.
                    b"ANMF" if b.len() >= 12 => Some((u24le(6) + 1, u24le(9) + 1)),
                    // Lossless: a signature byte, 14-bit width-1, height-1.
                    b"VP8L" if b.len() >= 5 && b[0] == 0x2f => {
                        let bits = u32le(1);
                        Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
                    }
                    // Lossy: a frame tag (3 bytes), start code, 14-bit sizes.
                    b"VP8 " if b.len() >= 10 => Some((u16le(6) & 0x3fff, u16le(8) & 0x3fff)),
                    _ => None,
                };
                if let Some((w, h)) = size {
                    let what = if &fourcc == b"VP8X" {
                        "the WebP canvas"
                    } else {
                        "WebP frame"
                    };
                    self.frame(what, w, h)?;
                    if &fourcc == b"VP8X" {
                        self.frames = 0;
                    }
                }
                // An animation frame's image data follows inside it: read
                // its sub-chunks; anything else is skipped whole.
                let read = b.len() as u64;
                if &fourcc == b"ANMF" && read == 16 {
                    self.want(Step::WebpChunk, 8);
                } else {
                    self.g.skip = padded.saturating_sub(read);
                    self.want(Step::WebpChunk, 8);
                }
            }
            Step::GifEnd | Step::Done => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GIF with a `sw`x`sh` logical screen and one `fw`x`fh` frame of a
    /// few data bytes (not a decodable image: the scanner reads structure).
    fn gif(sw: u16, sh: u16, frames: &[(u16, u16)]) -> Vec<u8> {
        let mut v = b"GIF89a".to_vec();
        v.extend(sw.to_le_bytes());
        v.extend(sh.to_le_bytes());
        v.extend([0x80, 0, 0]); // a 2-entry global colour table
        v.extend([0, 0, 0, 255, 255, 255]);
        v.extend([0x21, 0xF9, 4, 0, 0, 0, 0, 0]); // a graphic control extension
        for &(w, h) in frames {
            v.push(0x2C);
            v.extend([0, 0, 0, 0]);
            v.extend(w.to_le_bytes());
            v.extend(h.to_le_bytes());
            v.push(0);
            v.push(2); // LZW minimum code size
            v.extend([3, 1, 2, 3, 0]); // one sub-block of 3 bytes, then the end
        }
        v.push(0x3B);
        v
    }

    fn scan(file: &[u8], chunk: usize, limits: Limits) -> Result<FrameScan> {
        let mut s = FrameScan::new(limits);
        for c in file.chunks(chunk) {
            s.push(c)?;
        }
        Ok(s)
    }

    const SMALL: Limits = Limits {
        max_pixels: 4_000_000,
        max_dimension: 30_000,
    };

    #[test]
    fn a_gif_frame_larger_than_the_limits_is_refused_in_any_chunking() {
        let bomb = gif(1, 1, &[(2800, 2800)]);
        for chunk in [1, 2, 7, 13, 1000] {
            let e = scan(&bomb, chunk, SMALL).unwrap_err();
            assert!(matches!(e, CoreError::LimitExceeded(_)), "{e}");
            assert!(e.to_string().contains("GIF frame 1 is 2800x2800"), "{e}");
        }
        let ok = scan(&gif(300, 200, &[(300, 200), (10, 10)]), 3, SMALL).unwrap();
        assert_eq!((ok.frames(), ok.largest_pixels()), (2, 60_000));
        // The second frame is the bomb.
        let e = scan(&gif(10, 10, &[(10, 10), (3000, 3000)]), 5, SMALL).unwrap_err();
        assert!(e.to_string().contains("GIF frame 2"), "{e}");
    }

    #[test]
    fn webp_canvases_and_frames_are_checked() {
        // VP8X canvas 5000x5000 (over 4 Mpx).
        let mut v = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
        v.extend(10u32.to_le_bytes());
        v.extend([0x02, 0, 0, 0]);
        v.extend((4999u32).to_le_bytes()[..3].to_vec());
        v.extend((4999u32).to_le_bytes()[..3].to_vec());
        let e = scan(&v, 4, SMALL).unwrap_err();
        assert!(e.to_string().contains("WebP canvas"), "{e}");
        // A small canvas, then an ANMF frame of 3000x3000.
        let mut v = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
        v.extend(10u32.to_le_bytes());
        v.extend([0x02, 0, 0, 0, 9, 0, 0, 9, 0, 0]);
        v.extend(b"ANMF");
        v.extend(24u32.to_le_bytes());
        v.extend([0; 6]);
        v.extend((2999u32).to_le_bytes()[..3].to_vec());
        v.extend((2999u32).to_le_bytes()[..3].to_vec());
        v.extend([0; 12]);
        let e = scan(&v, 1, SMALL).unwrap_err();
        assert!(e.to_string().contains("WebP frame 1 is 3000x3000"), "{e}");
    }

    #[test]
    fn a_chunk_size_near_the_top_of_u32_does_not_overflow() {
        // Found by the decode_image fuzz target (fuzz/seeds/decode_image).
        let mut v = b"RIFF:\0\0\0WEBPVP8 ".to_vec();
        v.extend(u32::MAX.to_le_bytes());
        v.extend([0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 5, 0, 64, 0]);
        v.extend([0xff; 40]);
        assert!(scan(&v, 3, SMALL).is_ok());
    }

    #[test]
    fn other_formats_pass_through() {
        let s = scan(b"\x89PNG\r\n\x1a\nanything at all", 3, SMALL).unwrap();
        assert_eq!(s.largest_pixels(), 0);
    }
}
