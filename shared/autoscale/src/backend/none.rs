//! `--scale-backend none`: no way to change the scanner count.
//!
//! Scanners are started by hand or by something else; the autoscaler still
//! runs its strategy (the settings API shows its decisions) but every change
//! is refused with a message that says how to enable one.

use super::{ScaleBackend, ScaleError, ScaleState};
use async_trait::async_trait;

const NO_BACKEND: &str =
    "the autoscaler has no backend: start the controller with --scale-backend kubernetes or process";

/// Reports a fixed count (or that the count is unknown) and refuses every change.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoScaler {
    known: Option<u32>,
}

impl NoScaler {
    /// A backend that knows nothing of the scanners: [`ScaleBackend::state`]
    /// fails with [`ScaleError::Unavailable`] rather than claim a count.
    pub fn new() -> NoScaler {
        NoScaler { known: None }
    }

    /// A backend that reports `scanners` as desired, current and ready
    /// (a count the operator maintains outside Trawl).
    pub fn fixed(scanners: u32) -> NoScaler {
        NoScaler { known: Some(scanners) }
    }
}

#[async_trait]
impl ScaleBackend for NoScaler {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn state(&self) -> Result<ScaleState, ScaleError> {
        match self.known {
            Some(n) => Ok(ScaleState { desired: n, current: n, ready: n }),
            None => {
                Err(ScaleError::Unavailable { what: "reading the scanner count".into(), reason: NO_BACKEND.into() })
            }
        }
    }

    async fn set_desired(&self, replicas: u32) -> Result<(), ScaleError> {
        Err(ScaleError::Refused { what: format!("setting the scanner count to {replicas}"), reason: NO_BACKEND.into() })
    }
}
