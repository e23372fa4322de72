//! Why a scan failed, in a form the controller can store, count and show:
//! a kind that says what to do about it, and the message of the error.

use serde::{Deserialize, Serialize};

/// What went wrong, by what an operator would do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The registry refused the scanner's credentials (fix the credentials).
    Auth,
    /// The repository, tag or manifest does not exist (any more).
    NotFound,
    /// The registry asked the scanner to slow down (429).
    RateLimited,
    /// The registry answered with a server error (5xx) or could not be reached.
    RegistryUnavailable,
    /// Content did not match its digest or size: corrupt storage or tampering.
    DigestMismatch,
    /// A layer or document is not what its media type says (broken archive, bad JSON).
    Corrupt,
    /// A size, ratio or count limit was exceeded (a decompression bomb, say).
    TooLarge,
    /// The artifact is not a container image (a Helm chart, a signature, an SBOM…).
    NotAnImage,
    /// The image uses something the scanner does not support (a platform, a media type).
    Unsupported,
    /// The task itself could not be read (not a Trawl task, wrong version).
    BadTask,
    /// Scanners kept failing to finish it (crashed or hung) until the redelivery limit.
    Abandoned,
    /// Anything else: a bug or a local problem of the scanner.
    Internal,
}

impl FailureKind {
    /// Whether trying again later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, FailureKind::RateLimited | FailureKind::RegistryUnavailable | FailureKind::Internal)
    }

    /// The kind's name as written on the wire (`rate-limited`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Auth => "auth",
            FailureKind::NotFound => "not-found",
            FailureKind::RateLimited => "rate-limited",
            FailureKind::RegistryUnavailable => "registry-unavailable",
            FailureKind::DigestMismatch => "digest-mismatch",
            FailureKind::Corrupt => "corrupt",
            FailureKind::TooLarge => "too-large",
            FailureKind::NotAnImage => "not-an-image",
            FailureKind::Unsupported => "unsupported",
            FailureKind::BadTask => "bad-task",
            FailureKind::Abandoned => "abandoned",
            FailureKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed scan: the kind, the error message, and how many attempts it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanFailure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The error, as the scanner reported it (never with credentials).
    pub message: String,
    /// Deliveries of the task, this one included.
    pub attempts: u64,
}
