//! Every way reading an image can fail, each with what to do about it.
//!
//! Registry answers that call for a later retry have variants of their own,
//! so that callers which retry (the queue worker) need not read status codes
//! out of messages: [`ImageError::RateLimited`] (HTTP 429 or the OCI code
//! `TOOMANYREQUESTS`, with the registry's `Retry-After` when it could be
//! seen) and [`ImageError::RegistryUnavailable`] (HTTP 5xx).

use std::io;
use std::time::Duration;

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference string cannot be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// What the user typed.
        reference: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The registry refused our credentials (or demanded some).
    #[error("registry {registry} refused access to {reference}: check the username and password (or token) for this registry")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Image reference.
        reference: String,
    },
    /// The repository, tag or digest does not exist.
    #[error("image {reference} not found: check the repository name and tag (or digest)")]
    NotFound {
        /// Image reference.
        reference: String,
    },
    /// Could not connect to the registry (or Docker Engine API) at all.
    #[error("cannot reach {}: {reason}", endpoint_label(.registry))]
    Unreachable {
        /// Registry host, or a Docker Engine API endpoint URL (`unix://…`, `tcp://…`).
        registry: String,
        /// Underlying cause.
        reason: String,
    },
    /// The registry (or Docker Engine API) answered with an error we cannot act on.
    #[error("{} returned an error for {reference}: {reason}", endpoint_label(.registry))]
    Registry {
        /// Registry host, or a Docker Engine API endpoint URL (`unix://…`, `tcp://…`).
        registry: String,
        /// Image reference.
        reference: String,
        /// The registry's message.
        reason: String,
    },
    /// The registry asked us to slow down (HTTP 429, or the OCI error code `TOOMANYREQUESTS`).
    #[error("registry {registry} rate-limited the pull of {reference}{}: {reason}", retry_after_text(.retry_after))]
    RateLimited {
        /// Registry host.
        registry: String,
        /// Image reference.
        reference: String,
        /// How long the registry asked to wait (`Retry-After`), when it said and we could see it.
        retry_after: Option<Duration>,
        /// The registry's message.
        reason: String,
    },
    /// The registry answered with a server error (HTTP 5xx): it is down or failing, not refusing.
    #[error("registry {registry} is unavailable (HTTP {status}) for {reference}: {reason}")]
    RegistryUnavailable {
        /// Registry host.
        registry: String,
        /// Image reference.
        reference: String,
        /// The HTTP status (500–599).
        status: u16,
        /// The registry's message (the start of the response body).
        reason: String,
    },
    /// The artifact is not a container image (e.g. a Helm chart).
    #[error("{reference} is not a container image: {what} (media type {media_type})")]
    NotAnImage {
        /// Image reference.
        reference: String,
        /// What it is, for humans.
        what: String,
        /// The config or manifest media type.
        media_type: String,
    },
    /// An index lists no image for the requested platform.
    #[error("{reference} has no image for platform {wanted}; available: {available}. Choose one with --platform")]
    NoMatchingPlatform {
        /// Image reference.
        reference: String,
        /// Requested platform.
        wanted: String,
        /// Platforms the index offers.
        available: String,
    },
    /// Content does not match the digest that names it.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}; the registry or file is corrupt or was tampered with")]
    DigestMismatch {
        /// Which blob.
        what: String,
        /// Digest from the descriptor.
        expected: String,
        /// Digest of the bytes received.
        actual: String,
    },
    /// A blob ended before (or ran past) the size its descriptor gives.
    #[error("size mismatch for {what}: descriptor says {expected} bytes, got {actual}{suffix}", suffix = if *.actual < *.expected { " (truncated)" } else { "" })]
    SizeMismatch {
        /// Which blob.
        what: String,
        /// Size from the descriptor.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// A manifest, index or config is not valid.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A document or layer exceeds a configured safety limit.
    #[error("{what} exceeds the limit: {reason} (raise it with {flag} if this image is trusted)")]
    LimitExceeded {
        /// Which blob or document.
        what: String,
        /// Which limit.
        reason: String,
        /// The option that raises it.
        flag: &'static str,
    },
    /// A layer's compressed data is corrupt.
    #[error("layer {layer} is corrupt: {reason}")]
    CorruptLayer {
        /// Layer digest.
        layer: String,
        /// Decoder or archive error.
        reason: String,
    },
    /// A local file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The source does not support this operation.
    #[error("{0}")]
    Unsupported(String),
}

impl ImageError {
    /// Helper for [`ImageError::Malformed`].
    pub fn malformed(what: impl Into<String>, reason: impl ToString) -> Self {
        ImageError::Malformed { what: what.into(), reason: reason.to_string() }
    }

    /// Helper for [`ImageError::Io`].
    pub fn io(path: impl Into<String>, source: io::Error) -> Self {
        ImageError::Io { path: path.into(), source }
    }
}

/// The `Retry-After` part of a rate-limit message.
fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (it asked to retry after {} s)", d.as_secs_f64().ceil() as u64),
        None => String::new(),
    }
}

/// Registry hosts never carry a URL scheme; Docker Engine API endpoints always do.
fn is_engine_endpoint(registry: &str) -> bool {
    registry.contains("://")
}

/// How the `registry` field of an error reads in a sentence.
fn endpoint_label(registry: &str) -> String {
    if is_engine_endpoint(registry) {
        format!("the Docker Engine API at {registry}")
    } else {
        format!("registry {registry}")
    }
}
