//! The reading engine both streaming scanners share ([`super::head`],
//! [`super::frames`]): what the current step wants is either skipped (a
//! length of bytes nobody needs) or gathered (a small structure, read whole),
//! across chunks of any size, so a scanner's memory is its largest structure.

/// Bytes to skip, then bytes to gather, and how far the file has been read.
#[derive(Debug, Default)]
pub(crate) struct Gather {
    /// The structure being gathered.
    pub(crate) buf: Vec<u8>,
    /// Bytes of it wanted.
    pub(crate) need: usize,
    /// Bytes to skip before it.
    pub(crate) skip: u64,
    /// Bytes consumed so far.
    pub(crate) offset: u64,
}

impl Gather {
    /// Takes from the front of `data` what the current step wants; the
    /// structure once it is complete.
    pub(crate) fn take(&mut self, data: &mut &[u8]) -> Option<Vec<u8>> {
        if self.skip > 0 {
            let n = self.skip.min(data.len() as u64) as usize;
            self.skip -= n as u64;
            self.offset += n as u64;
            *data = &data[n..];
            return None;
        }
        let n = (self.need - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.offset += n as u64;
        *data = &data[n..];
        (self.buf.len() == self.need).then(|| std::mem::take(&mut self.buf))
    }
}
