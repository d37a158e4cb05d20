//! The gRPC services, one file per RPC family: each handler decodes and
//! validates its messages, calls the executor ([`crate::exec`]) or the store,
//! and encodes the answer; errors become statuses here, at the edge.

pub mod classic;
pub mod jobs;
pub mod process;
pub mod store;
