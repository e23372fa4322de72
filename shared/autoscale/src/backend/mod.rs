//! Backends that read and change the number of scanners.

use async_trait::async_trait;

/// The scanner count as a backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ScaleState {
    /// Scanners asked for (a Deployment's `spec.replicas`, processes started).
    pub desired: u32,
    /// Scanners running now (a Deployment's `status.replicas`, live processes).
    pub current: u32,
    /// Scanners ready to take tasks (a Deployment's `status.readyReplicas`).
    pub ready: u32,
}

/// Why a backend could not read or change the scanner count.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The backend's target does not exist or cannot be reached.
    #[error("{what}: {reason}")]
    Unavailable {
        /// What was being done.
        what: String,
        /// The error.
        reason: String,
    },
    /// The backend refused the change (forbidden, invalid).
    #[error("{what} was refused: {reason}")]
    Refused {
        /// What was being done.
        what: String,
        /// The error.
        reason: String,
    },
}

/// Reads and sets the number of scanners.
#[async_trait]
pub trait ScaleBackend: Send + Sync {
    /// A short name for logs and the settings API (`kubernetes`, `process`, `none`).
    fn name(&self) -> &'static str;

    /// The scanner count now.
    async fn state(&self) -> Result<ScaleState, ScaleError>;

    /// Asks for `replicas` scanners. Removing scanners must let each removed
    /// one finish or give back its in-flight task (SIGTERM, not SIGKILL).
    async fn set_desired(&self, replicas: u32) -> Result<(), ScaleError>;
}
