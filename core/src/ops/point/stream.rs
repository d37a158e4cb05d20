//! The pixel-wise operations' stage: each push's rows converted in parallel
//! tasks straight into the output (gray, tone tables, fused by the planner
//! into one [`PointOps`]). It holds nothing between pushes.

use super::PointOps;
use crate::error::Result;
use crate::ops::stage::{STREAM_BYTES, Stage, TASK_BYTES};
use crate::simd::Cpu;
use crate::simd::store::par_extend_uninit;

/// Fused pixel-wise operations over rows of `in_row` bytes.
#[derive(Debug)]
pub(crate) struct PointStage {
    pub(crate) ops: PointOps,
    pub(crate) in_row: usize,
    pub(crate) cpu: Cpu,
}

impl Stage for PointStage {
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let out_row = self.ops.output_len(self.in_row);
        let per_task = (TASK_BYTES / self.in_row).max(1);
        let (in_part, ops) = (per_task * self.in_row, &self.ops);
        let n = ops.output_len(rows.len());
        // As for the mirror: only a push whose output is far past the cache.
        let nt = n >= STREAM_BYTES;
        // SAFETY: `apply_into_uninit` writes every byte of its output (it
        // checks the lengths: one output row per input row here).
        #[allow(unsafe_code)]
        unsafe {
            par_extend_uninit(out, n, per_task * out_row, nt, |i, dst| {
                ops.apply_into_uninit(
                    &rows[i * in_part..][..dst.len() / out_row * self.in_row],
                    dst,
                    nt,
                    self.cpu,
                )
            })
        };
        Ok(())
    }
}
