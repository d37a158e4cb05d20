//! What stands between the HTTP/2 transport and the generated gRPC services:
//! the response-compression policy and the classic contract's admission,
//! which reserves a whole message's memory before its body is read.

pub mod classic_admission;
pub mod compression;

use std::time::Duration;

/// The bound on waiting for a request's first bytes when it has no deadline.
const PREFIX_WAIT: Duration = Duration::from_secs(60);
