//! Failures of a run: an error and the documented exit code it maps to,
//! printed as one `error:` line.

use std::process::ExitCode;
use trawl_scanner::analyze::AnalyzeError;
use trawl_scanner::exit;

/// An error with the exit code it maps to.
pub struct Failure {
    /// What failed, and what to do about it.
    pub error: anyhow::Error,
    /// The exit code (see [`trawl_scanner::exit`]).
    pub code: u8,
}

impl From<AnalyzeError> for Failure {
    fn from(e: AnalyzeError) -> Self {
        let code = match e.image_error() {
            Some(ie) => exit::for_image_error(ie),
            None => match e {
                AnalyzeError::Layer { .. } => exit::BAD_CONTENT,
                _ => exit::INTERNAL,
            },
        };
        Failure { error: e.into(), code }
    }
}

/// A local I/O or internal failure.
pub fn internal(e: anyhow::Error) -> Failure {
    Failure { error: e, code: exit::INTERNAL }
}

/// A usage error: bad options or environment.
pub fn usage(msg: String) -> Failure {
    Failure { error: anyhow::anyhow!(msg), code: exit::USAGE }
}

/// Prints the one error line and returns the exit code.
pub fn report_failure(failure: Failure) -> ExitCode {
    eprintln!("error: {:#}", failure.error);
    ExitCode::from(failure.code)
}
