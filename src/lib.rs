//! Generated protobuf messages and gRPC stubs for nlimage's two contracts.
//!
//! - [`classic`]: the package-less takehome contract (`/NLImageService/...`),
//!   byte-compatible with existing clients.
//! - [`v1`]: the streaming `nlimage.v1` API.
//!
//! Both are generated at build time from `proto/` by `build.rs`.
//!
//! - [`convert`]: wire types to and from `nlimage-core`'s types.
#![allow(missing_docs)]

pub mod convert;

/// The classic, package-less `NLImageService` contract.
pub mod classic {
    tonic::include_proto!("_");
}

/// The streaming `nlimage.v1` API.
pub mod v1 {
    tonic::include_proto!("nlimage.v1");
}

/// The encoded `FileDescriptorSet` of both contracts, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/nlimage_descriptor.bin"));
