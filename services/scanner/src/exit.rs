//! Process exit codes, documented in the README: scripts and CI pipelines
//! branch on them, so each failure class keeps its number.

use trawl_image::ImageError;

/// Success.
pub const OK: u8 = 0;
/// Findings failed the CI gate (`--exit-code`'s usual value; the user picks it).
pub const FINDINGS: u8 = 1;
/// Command-line usage error (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// The image or reference does not exist or is invalid.
pub const NOT_FOUND: u8 = 3;
/// The registry refused the credentials.
pub const UNAUTHORIZED: u8 = 4;
/// The registry could not be reached or failed.
pub const UNREACHABLE: u8 = 5;
/// Image content failed verification or safety checks (digest, corruption, limits, unsafe paths).
pub const BAD_CONTENT: u8 = 6;
/// The artifact is not a container image, or uses an unsupported format.
pub const UNSUPPORTED: u8 = 7;
/// The vulnerability database is missing, corrupt or unsupported.
pub const DB: u8 = 8;
/// Results could not be written to the results directory or delivered to the cluster.
pub const RESULTS: u8 = 9;
/// Local I/O or internal failure.
pub const INTERNAL: u8 = 10;

/// The exit code for an image access error.
pub fn for_image_error(e: &ImageError) -> u8 {
    match e {
        ImageError::InvalidReference { .. } | ImageError::NotFound { .. } | ImageError::NoMatchingPlatform { .. } => {
            NOT_FOUND
        }
        ImageError::Unauthorized { .. } => UNAUTHORIZED,
        ImageError::Unreachable { .. }
        | ImageError::Registry { .. }
        | ImageError::RateLimited { .. }
        | ImageError::RegistryUnavailable { .. } => UNREACHABLE,
        ImageError::DigestMismatch { .. }
        | ImageError::SizeMismatch { .. }
        | ImageError::Malformed { .. }
        | ImageError::LimitExceeded { .. }
        | ImageError::CorruptLayer { .. } => BAD_CONTENT,
        ImageError::NotAnImage { .. } | ImageError::Unsupported(_) => UNSUPPORTED,
        ImageError::Io { .. } => INTERNAL,
    }
}
