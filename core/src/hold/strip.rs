//! The spilled hold: the image in positional storage (a file), laid out in
//! strips the rotation reads back one at a time.

use bytes::Bytes;

use super::{Hold, Positional, Produce, orient_band};
use crate::error::Result;
use crate::ops::orient::Orientation;
use crate::pixel::ImageInfo;
use crate::rotate::Rotation;
use crate::simd::Cpu;

/// The image in positional storage, laid out as strips the rotation reads
/// back one at a time: for quarter turns, vertical strips of whole columns
/// (each stored as its own small image); for half turns, the rows in order,
/// read back a band of rows at a time from the bottom. Memory: one input
/// row, one strip (about `strip_bytes`), one output band.
#[derive(Debug)]
pub struct StripHold<S: Positional> {
    store: S,
    input: ImageInfo,
    orientation: Orientation,
    /// Columns per strip (quarter turns) or rows per band (half turns).
    strip: usize,
    row: Vec<u8>,
    rows_done: usize,
    cpu: Cpu,
}

impl<S: Positional> StripHold<S> {
    /// A hold writing into `store`, reading back about `strip_bytes` at a
    /// time, oriented on code path `cpu`.
    pub fn new(
        store: S,
        input: ImageInfo,
        orientation: Orientation,
        strip_bytes: usize,
        cpu: Cpu,
    ) -> Self {
        let (w, h, c) = (
            input.width() as usize,
            input.height() as usize,
            input.channels(),
        );
        let strip = match orientation.rotation {
            Rotation::Ccw90 | Rotation::Ccw270 => (strip_bytes / (h * c)).clamp(1, w),
            _ => (strip_bytes / input.row_bytes()).clamp(1, h),
        };
        Self {
            store,
            input,
            orientation,
            strip,
            row: Vec::with_capacity(input.row_bytes()),
            cpu,
            rows_done: 0,
        }
    }

    fn quarter(&self) -> bool {
        matches!(
            self.orientation.rotation,
            Rotation::Ccw90 | Rotation::Ccw270
        )
    }

    /// Strip `k` of a quarter turn: first column, width, byte offset.
    fn strip_at(&self, k: usize) -> (usize, usize, u64) {
        let (w, h, c) = (
            self.input.width() as usize,
            self.input.height() as usize,
            self.input.channels(),
        );
        let x0 = k * self.strip;
        (x0, self.strip.min(w - x0), (x0 * h * c) as u64)
    }

    fn store_row(&mut self, row: &[u8]) -> Result<()> {
        let y = self.rows_done;
        if self.quarter() {
            let (w, c) = (self.input.width() as usize, self.input.channels());
            for k in 0..w.div_ceil(self.strip) {
                let (x0, sw, off) = self.strip_at(k);
                let at = off + (y * sw * c) as u64;
                self.store.write_at(at, &row[x0 * c..(x0 + sw) * c])?;
            }
        } else {
            self.store
                .write_at((y * self.input.row_bytes()) as u64, row)?;
        }
        self.rows_done += 1;
        Ok(())
    }
}

impl<S: Positional + 'static> Hold for StripHold<S> {
    fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let rb = self.input.row_bytes();
        while !data.is_empty() {
            if self.row.is_empty() && data.len() >= rb {
                // Whole rows straight from the input, without a copy.
                let (row, rest) = data.split_at(rb);
                self.store_row(row)?;
                data = rest;
                continue;
            }
            let take = (rb - self.row.len()).min(data.len());
            self.row.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.row.len() == rb {
                let row = std::mem::take(&mut self.row);
                self.store_row(&row)?;
                self.row = row;
                self.row.clear();
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Box<dyn Produce>> {
        let pieces = if self.quarter() {
            (self.input.width() as usize).div_ceil(self.strip)
        } else {
            (self.input.height() as usize).div_ceil(self.strip)
        };
        Ok(Box::new(StripProduce {
            hold: *self,
            pieces,
            next_piece: 0,
            loaded: None,
        }))
    }
}

#[derive(Debug)]
struct StripProduce<S: Positional> {
    hold: StripHold<S>,
    pieces: usize,
    next_piece: usize,
    /// The strip being emitted: its pixels, geometry, next output row.
    loaded: Option<(Vec<u8>, ImageInfo, usize)>,
}

impl<S: Positional> StripProduce<S> {
    /// Reads the next strip in output order.
    fn load(&mut self) -> Result<Option<(Vec<u8>, ImageInfo, usize)>> {
        if self.next_piece == self.pieces {
            return Ok(None);
        }
        let h = &mut self.hold;
        let (w, rows, c) = (
            h.input.width() as usize,
            h.input.height() as usize,
            h.input.channels(),
        );
        let i = self.next_piece;
        self.next_piece += 1;
        let (info, off, len) = match h.orientation.rotation {
            // A quarter turn's output rows run over input columns right to
            // left (90) or left to right (270).
            Rotation::Ccw90 | Rotation::Ccw270 => {
                let k = if h.orientation.rotation == Rotation::Ccw90 {
                    self.pieces - 1 - i
                } else {
                    i
                };
                let (_, sw, off) = h.strip_at(k);
                (
                    ImageInfo::new(sw as u32, rows as u32, h.input.format())?,
                    off,
                    sw * rows * c,
                )
            }
            // A half turn's output starts with the bottom rows.
            _ => {
                let y1 = rows - i * h.strip;
                let y0 = y1.saturating_sub(h.strip);
                let info = ImageInfo::new(w as u32, (y1 - y0) as u32, h.input.format())?;
                (
                    info,
                    (y0 * h.input.row_bytes()) as u64,
                    (y1 - y0) * h.input.row_bytes(),
                )
            }
        };
        let mut buf = crate::error::try_alloc(len)?;
        h.store.read_at(off, &mut buf)?;
        Ok(Some((buf, info, 0)))
    }
}

impl<S: Positional> Produce for StripProduce<S> {
    fn next_band(&mut self, target_bytes: usize) -> Result<Option<Bytes>> {
        loop {
            if self.loaded.is_none() {
                self.loaded = self.load()?;
                if self.loaded.is_none() {
                    return Ok(None);
                }
            }
            let orientation = self.hold.orientation;
            let (src, info, next) = self.loaded.as_mut().expect("loaded above");
            let out = orientation.output_info(*info);
            let (rb, height) = (out.row_bytes(), out.height() as usize);
            if *next >= height {
                self.loaded = None;
                continue;
            }
            let rows = (target_bytes / rb).clamp(1, height - *next);
            let mut band = vec![0u8; rows * rb];
            orient_band(src, *info, orientation, *next, &mut band, self.hold.cpu)?;
            *next += rows;
            return Ok(Some(band.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hold::held_orientations;
    use crate::pixel::{ImageBuf, PixelFormat};

    /// Positional storage in memory, for testing the strip layout.
    #[derive(Debug, Default)]
    struct MemStore(Vec<u8>);

    impl Positional for MemStore {
        fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            let end = offset as usize + data.len();
            if self.0.len() < end {
                self.0.resize(end, 0);
            }
            self.0[offset as usize..end].copy_from_slice(data);
            Ok(())
        }
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
            buf.copy_from_slice(&self.0[offset as usize..offset as usize + buf.len()]);
            Ok(())
        }
    }

    #[test]
    fn strips_of_any_size_rotate_like_the_reference() {
        for (w, h, f) in [
            (1, 1, PixelFormat::Gray8),
            (13, 7, PixelFormat::Rgb8),
            (5, 19, PixelFormat::Rgba8),
        ] {
            let info = ImageInfo::new(w, h, f).unwrap();
            let data: Vec<u8> = (0..info.byte_len()).map(|i| (i * 31 % 253) as u8).collect();
            let img = ImageBuf::new(info, data.clone()).unwrap();
            for rot in held_orientations() {
                let want = crate::ops::naive::orient(&img, rot).unwrap();
                for strip_bytes in [1, 10, 50, 1000] {
                    let mut hold: Box<dyn Hold> = Box::new(StripHold::new(
                        MemStore::default(),
                        info,
                        rot,
                        strip_bytes,
                        Cpu::detect(),
                    ));
                    for chunk in data.chunks(6) {
                        hold.write(chunk).unwrap();
                    }
                    let mut p = hold.finish().unwrap();
                    let mut out = Vec::new();
                    while let Some(b) = p.next_band(17).unwrap() {
                        out.extend_from_slice(&b);
                    }
                    assert_eq!(
                        out,
                        want.data(),
                        "{rot:?} {w}x{h} {f} strips of {strip_bytes} bytes"
                    );
                }
            }
        }
    }
}
