//! The streaming form of the 3x3 mean filter: pixel bytes in, in chunks of any
//! size and alignment; filtered rows out as soon as the row below them has
//! arrived. It holds at most two finished rows plus the latest input chunk,
//! never the image.

use rayon::prelude::*;

use super::Window;
use crate::error::{CoreError, Result};
use crate::pixel::ImageInfo;
use crate::simd::Cpu;

/// Rows a parallel task filters at once when a chunk completes many rows.
const BAND_BYTES: usize = 128 * 1024;

/// A 3x3 mean filter fed row-major pixel bytes incrementally.
///
/// Output is exactly [`crate::mean3x3`] of the whole input, whatever the
/// chunking (property-tested).
#[derive(Debug)]
pub struct StreamingMean {
    info: ImageInfo,
    cpu: Cpu,
    /// Input bytes of rows `buf_row0..`, the last row possibly incomplete.
    buf: Vec<u8>,
    buf_row0: usize,
    rows_out: usize,
    received: usize,
}

impl StreamingMean {
    /// A filter for an image of geometry `info`, on this machine's widest
    /// code path.
    pub fn new(info: ImageInfo) -> Self {
        Self::with_cpu(info, Cpu::detect())
    }

    /// A filter for an image of geometry `info` on code path `cpu`.
    pub fn with_cpu(info: ImageInfo, cpu: Cpu) -> Self {
        Self {
            info,
            cpu,
            buf: Vec::new(),
            buf_row0: 0,
            rows_out: 0,
            received: 0,
        }
    }

    /// Bytes of input received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Feeds the next bytes; appends every output row that is now ready to
    /// `out`. Fails, changing nothing, if `data` goes past the image's end.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let total = self.info.byte_len();
        if data.len() > total - self.received {
            return Err(CoreError::InvalidInput(format!(
                "more pixel data than a {} image holds: {} bytes expected, got at least {}",
                self.info,
                total,
                self.received + data.len()
            )));
        }
        self.received += data.len();
        self.buf.extend_from_slice(data);
        self.emit(out);
        Ok(())
    }

    /// Checks that the whole image arrived (every output row has then been
    /// emitted by [`push`](Self::push)).
    pub fn finish(self) -> Result<()> {
        let total = self.info.byte_len();
        if self.received == total {
            Ok(())
        } else {
            Err(CoreError::InvalidInput(format!(
                "pixel data ended early: a {} image needs {} bytes, got {}",
                self.info, total, self.received
            )))
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>) {
        let rb = self.info.row_bytes();
        let height = self.info.height() as usize;
        let complete = self.buf_row0 + self.buf.len() / rb;
        // A row is ready once the row below it has arrived (or it is last).
        let ready = if complete == height {
            height
        } else {
            complete.saturating_sub(1)
        };
        if ready <= self.rows_out {
            return;
        }
        let first = self.rows_out;
        let start = out.len();
        out.resize(start + (ready - first) * rb, 0);
        let window = Window {
            rows: &self.buf[..(complete - self.buf_row0) * rb],
            first_row: self.buf_row0,
            height,
            row_bytes: rb,
        };
        let band_rows = (BAND_BYTES / rb).max(1);
        let channels = self.info.channels();
        let cpu = self.cpu;
        out[start..]
            .par_chunks_mut(band_rows * rb)
            .enumerate()
            .for_each_init(Vec::new, |scratch, (i, band)| {
                window.filter_into(cpu, first + i * band_rows, band, channels, scratch, false);
            });
        self.rows_out = ready;
        // Keep the last emitted row: it is the row above the next one.
        let keep_from = if ready == height { complete } else { ready - 1 };
        self.buf.drain(..(keep_from - self.buf_row0) * rb);
        self.buf_row0 = keep_from;
    }
}

/// The mean's stage in a pipeline.
#[derive(Debug)]
pub(crate) struct MeanStage(pub(crate) StreamingMean);

impl crate::ops::stage::Stage for MeanStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.0.push(rows, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::{ImageBuf, PixelFormat};

    #[test]
    fn byte_by_byte_equals_whole_image() {
        let info = ImageInfo::new(5, 4, PixelFormat::Rgb8).unwrap();
        let data: Vec<u8> = (0..info.byte_len()).map(|i| (i * 37 % 251) as u8).collect();
        let want = crate::mean3x3_naive(&ImageBuf::new(info, data.clone()).unwrap());
        let mut s = StreamingMean::new(info);
        let mut out = Vec::new();
        for b in &data {
            s.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        s.finish().unwrap();
        assert_eq!(out, want.data());
    }

    #[test]
    fn output_flows_before_the_input_ends() {
        let info = ImageInfo::new(4, 10, PixelFormat::Gray8).unwrap();
        let mut s = StreamingMean::new(info);
        let mut out = Vec::new();
        s.push(&[1; 12], &mut out).unwrap(); // three rows in
        assert_eq!(out.len(), 8, "rows 0 and 1 are ready once row 2 is in");
    }

    #[test]
    fn too_many_and_too_few_bytes_are_errors() {
        let info = ImageInfo::new(2, 2, PixelFormat::Gray8).unwrap();
        let mut s = StreamingMean::new(info);
        let mut out = Vec::new();
        s.push(&[0; 3], &mut out).unwrap();
        let err = s.push(&[0; 2], &mut out).unwrap_err();
        assert!(err.to_string().contains("more pixel data"), "{err}");
        let err = s.finish().unwrap_err();
        assert!(err.to_string().contains("got 3"), "{err}");
    }
}
