//! The orientation's stages: a left-right mirror streams row by row; any
//! other orientation keeps the image in a [`Hold`] until the input ends and
//! then produces it oriented, band by band. The hold's image is the stage's
//! memory (in memory or spilled: the caller's choice, through `make_hold`).

use bytes::Bytes;

use super::mirror_rows_into_uninit;
use crate::error::Result;
use crate::hold::{Hold, Produce};
use crate::ops::stage::{STREAM_BYTES, Stage};
use crate::simd::Cpu;
use crate::simd::store::par_extend_uninit;

/// Bytes per parallel task of a mirror: whole rows, made last to first (see
/// [`mirror_rows_into_uninit`]), so a longer task is a longer descending
/// read.
const MIRROR_TASK_BYTES: usize = 1 << 20;

/// A left-right mirror of rows of `row_bytes`.
#[derive(Debug)]
pub(crate) struct MirrorStage {
    pub(crate) row_bytes: usize,
    pub(crate) channels: usize,
    pub(crate) cpu: Cpu,
}

impl Stage for MirrorStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let (rb, c, cpu) = (self.row_bytes, self.channels, self.cpu);
        let nt = rows.len() >= STREAM_BYTES;
        // Whole rows per part; the mirror takes each part's rows last to
        // first (see `mirror_rows_into_uninit`), one call per part rather
        // than per row (the per-row setup was a sixth of a 3001x2003 gray
        // mirror).
        let part = (MIRROR_TASK_BYTES / rb).max(1) * rb;
        // SAFETY: the parts are whole rows and the mirror writes every byte
        // of its part.
        #[allow(unsafe_code)]
        unsafe {
            par_extend_uninit(out, rows.len(), part, nt, |i, dst| {
                mirror_rows_into_uninit(cpu, &rows[i * part..][..dst.len()], dst, rb, c, nt)
            })
        };
        Ok(())
    }
}

/// Keeps the image in a [`Hold`] and produces it oriented.
#[derive(Debug)]
pub(crate) struct HoldStage {
    pub(crate) hold: Option<Box<dyn Hold>>,
    pub(crate) produce: Option<Box<dyn Produce>>,
}

impl Stage for HoldStage {
    fn push(&mut self, rows: &[u8], _out: &mut Vec<u8>) -> Result<()> {
        self.hold
            .as_mut()
            .expect("pushed before drained")
            .write(rows)
    }

    fn drain(&mut self, target_bytes: usize) -> Result<Option<Bytes>> {
        if let Some(hold) = self.hold.take() {
            self.produce = Some(hold.finish()?);
        }
        match self.produce.as_mut() {
            Some(p) => p.next_band(target_bytes),
            None => Ok(None),
        }
    }
}
