//! Per-request logging: one event per finished request with its method,
//! size, operations, duration and status. Successful requests log at DEBUG
//! (shown with `--debug`); failed ones at WARN, shown always.

use std::time::Instant;

use tonic::{Code, Status};

/// Collects what a request did and logs it once, when it ends.
#[derive(Debug)]
pub struct RequestLog {
    method: &'static str,
    detail: String,
    started: Instant,
}

impl RequestLog {
    /// Starts timing a request of `method`.
    pub fn start(method: &'static str) -> Self {
        Self {
            method,
            detail: String::new(),
            started: Instant::now(),
        }
    }

    /// Records what the request asked for (size, operations), once known.
    pub fn describe(&mut self, detail: impl Into<String>) {
        self.detail = detail.into();
    }

    /// Logs the outcome.
    pub fn finish(self, outcome: Result<(), &Status>) {
        let ms = self.started.elapsed().as_secs_f64() * 1e3;
        let (method, detail) = (self.method, self.detail.as_str());
        match outcome {
            Ok(()) => tracing::debug!(
                method,
                detail,
                ms = format!("{ms:.1}"),
                status = "OK",
                "request"
            ),
            Err(s) if s.code() == Code::Cancelled => {
                tracing::debug!(
                    method,
                    detail,
                    ms = format!("{ms:.1}"),
                    status = "CANCELLED",
                    "request"
                )
            }
            Err(s) => tracing::warn!(
                method,
                detail,
                ms = format!("{ms:.1}"),
                status = ?s.code(),
                message = s.message(),
                "request failed"
            ),
        }
    }
}
