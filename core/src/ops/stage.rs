//! The running form of a planned step: whole input rows in, output rows out
//! as soon as they are ready. Each operation family implements its stage in
//! its own `stream` module (with the memory it holds); the pipeline
//! ([`crate::pipeline`]) chains them.
//!
//! Every stage knows its image's height, so it emits all of its output by the
//! time its last input row arrives, except a hold, which emits nothing until
//! the input has ended and then produces its image band by band
//! ([`Stage::drain`]).

use std::fmt::Debug;

use bytes::Bytes;

use crate::error::Result;

/// Input bytes a parallel task takes when a push brings many rows.
pub(crate) const TASK_BYTES: usize = 128 * 1024;

/// Pushes whose output is at least this large are written with
/// non-temporal stores where a kernel has them (the mirror of RGBA, a gray
/// conversion): an output that large leaves the cache before anything
/// reads it. The server's pushes are chunks, far smaller, read again at
/// once by the encoder.
pub(crate) const STREAM_BYTES: usize = 16 << 20;

/// One running stage.
pub(crate) trait Stage: Send + Debug {
    /// Takes whole input rows (in order, exactly the image's rows over all
    /// calls) and appends the output rows now ready to `out`.
    fn push(&mut self, rows: &[u8], out: &mut Vec<u8>) -> Result<()>;

    /// After the last push: the next band of output still to come (about
    /// `target_bytes`), or `None`. Only holds have any.
    fn drain(&mut self, _target_bytes: usize) -> Result<Option<Bytes>> {
        Ok(None)
    }
}
