//! A flag that stops work in progress: the caller (a server whose client went
//! away, whose deadline passed, whose job was cancelled) sets it, and a
//! [`crate::Pipeline`] looks at it between row bands and ends with
//! [`CoreError::Cancelled`] at the next one. Cheap to clone (clones share the
//! flag) and to look at (one relaxed load).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{CoreError, Result};

/// A shared stop flag; never set until [`Stop::stop`] is called on it or on
/// a clone.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// A flag not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag: work that looks at it stops at its next band.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the flag is set.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// [`CoreError::Cancelled`] once the flag is set.
    pub fn check(&self) -> Result<()> {
        if self.is_stopped() {
            Err(CoreError::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let a = Stop::new();
        let b = a.clone();
        assert!(a.check().is_ok());
        b.stop();
        assert!(a.is_stopped());
        assert!(matches!(a.check(), Err(CoreError::Cancelled)));
    }
}
