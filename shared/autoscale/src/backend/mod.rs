//! Backends that read and change the number of scanners.
//!
//! The strategy decides a count; a backend makes it so and reports what is
//! really there, so a reconcile loop always starts from the truth:
//!
//! * [`kubernetes::KubernetesScaler`] — the scanner Deployment's `scale`
//!   subresource, for a cluster (RBAC: `get` and `patch` on
//!   `deployments/scale`, nothing else).
//! * [`process::ProcessScaler`] — local `trawl-scanner worker` processes, for
//!   the demo, load tests and end-to-end tests on one machine.
//! * [`none::NoScaler`] — `--scale-backend none`: reports, refuses changes.

use async_trait::async_trait;
use std::time::Duration;

pub mod kubernetes;
pub mod none;
pub mod process;

/// The scanner count as a backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ScaleState {
    /// Scanners asked for (a Deployment's `spec.replicas`, processes started).
    pub desired: u32,
    /// Scanners running now (a Deployment's `status.replicas`; processes
    /// alive and not stopping).
    pub current: u32,
    /// Scanners ready to take tasks, as far as the backend can tell: live,
    /// unstopped processes; for a Deployment `status.replicas` again, because
    /// the `scale` subresource carries no readiness (the controller counts
    /// ready scanners from their heartbeats instead).
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
    /// The count kept changing under the change: every attempt met a newer
    /// version (HTTP 409 Conflict) — another actor is writing it too.
    #[error(
        "{what}: the count changed under each of {attempts} attempts (409 Conflict); another actor is changing it"
    )]
    Conflict {
        /// What was being done.
        what: String,
        /// How many attempts were made.
        attempts: u32,
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

    /// Starts again, up to the desired count, scanners that exited by
    /// themselves (crashed, OOM-killed), and says how many it started. The
    /// default starts none, which is right where something else already does
    /// (a Deployment's ReplicaSet replaces its pods).
    async fn restore_exited(&self) -> Result<u32, ScaleError> {
        Ok(0)
    }

    /// Stops what this backend started, when the controller exits: scanners
    /// that would not outlive it get SIGTERM and up to `grace` to drain.
    /// The default does nothing, which is right for scanners the backend does
    /// not own (a Deployment keeps its pods when the controller stops).
    async fn shutdown(&self, grace: Duration) {
        let _ = grace;
    }
}
