//! nlimage-core: pure pixel kernels and codecs.
//!
//! Everything here is deterministic and bit-exact: each fast kernel computes
//! exactly what its naive reference computes (the semantics are in README.md,
//! "The contracts", and in each kernel's module doc; the tests check them). No networking, no async runtime, no filesystem:
//! callers hand in slices or `Read`/`Write` values.
//!
//! - [`pixel`]: formats, checked geometry, the owned [`ImageBuf`].
//! - [`rotate`](mod@rotate) and [`mean`]: the kernels, whole-image and by row band.
//! - [`ops`]: operations as data (one folder per family: its naive
//!   reference and fast paths), their text form and canonical bytes.
//! - [`stream`] and [`pipeline`]: the planner and the stages that run a list
//!   of operations over chunks; [`hold`]:
//!   where a rotation keeps the image (memory, or strips in a file).
//! - [`codec`]: decoding files into pixels and encoding them back;
//!   [`rows`]: the same a row at a time (PNG streams both ways).
//! - [`simd`]: CPU feature levels; every kernel has a portable path and
//!   vector paths picked at run time.
// `unsafe` is allowed only in `simd`, where each use names its safety argument.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod codec;
pub mod error;
pub mod gray;
pub mod hold;
pub mod limits;
pub mod ops;
pub use ops::{mean, rotate};
pub mod pipeline;
pub mod pixel;
mod png_guard;
pub mod rows;
pub mod simd;
pub mod stop;
pub mod stream;

pub use codec::{
    EncodeOptions, OutputFormat, PngCompression, decode, encode, encode_options, encode_with,
};
pub use error::{CoreError, Result};
pub use limits::Limits;
pub use mean::{mean3x3, mean3x3_into, mean3x3_into_with, mean3x3_naive, mean3x3_row};
pub use ops::{CropBox, Flip, Kernel, OpKind, Operation};
pub use pipeline::{Pipeline, Plan, Remainder, Run};
pub use pixel::{ImageBuf, ImageInfo, PixelFormat};
pub use rotate::{Rotation, rotate, rotate_into, rotate_into_with, rotate_naive, rotate_rows_into};
pub use simd::Cpu;
pub use stop::Stop;
pub use stream::StreamingMean;
