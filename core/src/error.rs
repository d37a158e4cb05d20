//! The one error type of `nlimage-core`, by category, so that callers (the
//! server's status mapping, the CLI's messages) can treat each kind alike.

/// Everything that can go wrong in a kernel, a pipeline or a codec.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The input is malformed: wrong length, zero dimension, bad stream order.
    #[error("{0}")]
    InvalidInput(String),
    /// The input is well formed but larger than a configured [`crate::Limits`].
    #[error("{0}")]
    LimitExceeded(String),
    /// The input is larger than anything this machine or a decoder can hold,
    /// whatever the configured limits (a size that overflows the address
    /// space, a decoder's own allocation limit).
    #[error("{0}")]
    TooLarge(String),
    /// A format or operation that this build does not handle.
    #[error("{0}")]
    Unsupported(String),
    /// A decoder rejected the input bytes.
    #[error("cannot decode image: {0}")]
    Decode(String),
    /// An encoder failed.
    #[error("cannot encode image: {0}")]
    Encode(String),
    /// A buffer could not be allocated.
    #[error("out of memory: cannot allocate {0} bytes")]
    OutOfMemory(usize),
    /// The caller stopped the work (see [`crate::Stop`]): its client went
    /// away, its deadline passed or its job was cancelled.
    #[error("stopped: cancelled")]
    Cancelled,
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Allocates a zeroed buffer of `len` bytes, reporting failure instead of
/// aborting the process.
pub fn try_alloc(len: usize) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| CoreError::OutOfMemory(len))?;
    v.resize(len, 0);
    Ok(v)
}
