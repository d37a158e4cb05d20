//! nlimage-core: pure pixel kernels, the planner and pipeline, and codecs.
//!
//! Everything here is deterministic and bit-exact: each fast kernel computes
//! exactly what its naive reference computes (the semantics are in README.md,
//! "The contracts", and in each family's module doc; the tests check them).
//! No networking, no async runtime, no filesystem: callers hand in slices or
//! `Read`/`Write` values, the code path to run ([`Cpu`]) and a stop flag
//! ([`Stop`]), both carried by a [`Run`].
//!
//! - [`pixel`]: formats, checked geometry, the owned [`ImageBuf`].
//! - [`ops`]: operations as data, one folder per family (its semantics and
//!   naive reference, its vector paths in `kernels`, its streaming stage and
//!   memory estimate in `stream`); their text form and canonical bytes.
//!   [`rotate`](mod@rotate) and [`mean`] also have whole-image forms.
//! - [`pipeline`]: the planner and the pipeline that runs a list of
//!   operations over chunks, stage after stage; [`hold`]: where a rotation
//!   keeps the image (memory, or strips in a file).
//! - [`codec`]: decoding files into pixels and encoding them back;
//!   [`rows`]: the same a row at a time (PNG streams both ways).
//! - [`simd`]: the code paths; every kernel has a portable path and vector
//!   paths, chosen by the caller (by default the widest the machine runs).
// `unsafe` is denied here and allowed module by module where SIMD
// intrinsics, uninitialised output or huge-page advice need it (the kernels,
// the stages that write into spare capacity, the holds): each `unsafe fn`
// has a `# Safety` section and each block a `SAFETY:` comment.
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

pub use codec::{
    EncodeOptions, OutputFormat, PngCompression, decode, encode, encode_options, encode_with,
};
pub use error::{CoreError, Result};
pub use limits::Limits;
pub use mean::{mean3x3, mean3x3_into, mean3x3_into_with, mean3x3_naive, mean3x3_row};
pub use ops::mean::stream::StreamingMean;
pub use ops::{CropBox, Flip, Kernel, Operation};
pub use pipeline::{Pipeline, Plan, Remainder, Run};
pub use pixel::{ImageBuf, ImageInfo, PixelFormat};
pub use rotate::{Rotation, rotate, rotate_into, rotate_into_with, rotate_naive, rotate_rows_into};
pub use simd::Cpu;
pub use stop::Stop;
