//! Per-request logging and metrics: one event per finished request with its
//! id, method, size, operations, bytes, duration and status. Successful
//! requests log at DEBUG (shown with `--debug`); failed ones at WARN, shown
//! always. Every finished request is also counted in the metrics.

use std::time::Instant;

use tonic::Code;

use crate::error::Error;

/// Collects what a request did and logs it once, when it ends.
#[derive(Debug)]
pub struct RequestLog {
    id: String,
    method: &'static str,
    detail: String,
    started: Instant,
    bytes_in: u64,
    bytes_out: u64,
}

impl RequestLog {
    /// Starts timing a request of `method` with id `id`.
    pub fn start(method: &'static str, id: String) -> Self {
        Self {
            id,
            method,
            detail: String::new(),
            started: Instant::now(),
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Records what the request asked for (size, operations), once known.
    pub fn describe(&mut self, detail: impl Into<String>) {
        self.detail = detail.into();
    }

    /// Counts pixel bytes received.
    pub fn add_in(&mut self, n: usize) {
        self.bytes_in += n as u64;
    }

    /// Counts pixel bytes sent.
    pub fn add_out(&mut self, n: usize) {
        self.bytes_out += n as u64;
    }

    /// Logs the outcome and records it in the metrics.
    pub fn finish(self, outcome: Result<(), &Error>) {
        let secs = self.started.elapsed().as_secs_f64();
        let code = outcome.map_or_else(|s| s.code(), |()| Code::Ok);
        crate::metrics::request(self.method, code, secs, self.bytes_in, self.bytes_out);
        let ms = format!("{:.1}", secs * 1e3);
        let (id, method, detail) = (self.id.as_str(), self.method, self.detail.as_str());
        let (bytes_in, bytes_out) = (self.bytes_in, self.bytes_out);
        match outcome {
            Ok(()) => tracing::debug!(
                request_id = id,
                method,
                detail,
                bytes_in,
                bytes_out,
                ms,
                status = "OK",
                "request"
            ),
            Err(Error::Cancelled(_)) => {
                tracing::debug!(
                    request_id = id,
                    method,
                    detail,
                    ms,
                    status = "CANCELLED",
                    "request"
                )
            }
            Err(s) => tracing::warn!(
                request_id = id,
                method,
                detail,
                bytes_in,
                bytes_out,
                ms,
                status = ?s.code(),
                message = %s,
                "request failed"
            ),
        }
    }
}
