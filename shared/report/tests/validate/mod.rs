//! Runs `tests/validate_report.py` (the formats' reference validators) on a
//! rendered document. Other test crates can reuse it with
//! `#[path = ".../shared/report/tests/validate/mod.rs"] mod validate;`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The validator script.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/validate_report.py");

/// What the validator said about one document.
#[derive(Debug)]
pub struct Validation {
    /// Exit status: 0 valid, 1 invalid, 2 usage error or validator missing.
    pub code: Option<i32>,
    /// Its standard output and error.
    pub output: String,
}

/// Writes `doc` to a file and validates it as `format` (`sarif`, `cyclonedx`, `spdx-json`).
pub fn validate_report(format: &str, doc: &serde_json::Value) -> Validation {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("trawl-report-{}-{n}-{format}.json", std::process::id()));
    let text = serde_json::to_string_pretty(doc).expect("documents serialise");
    std::fs::write(&path, text).expect("writing the document to validate");
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg(format)
        .arg(&path)
        .output()
        .expect("python3 must be installed to validate report formats");
    let _ = std::fs::remove_file(&path);
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    Validation { code: out.status.code(), output }
}

/// Panics with the validator's messages unless `doc` is a valid `format` document.
pub fn assert_valid(format: &str, doc: &serde_json::Value) {
    let v = validate_report(format, doc);
    assert_eq!(v.code, Some(0), "{format} document rejected by the reference validator:\n{}", v.output);
}

/// Panics unless the validator ran and rejected `doc` (exit 1, not a missing validator).
pub fn assert_invalid(format: &str, doc: &serde_json::Value) -> String {
    let v = validate_report(format, doc);
    assert_eq!(v.code, Some(1), "expected the {format} validator to reject the document:\n{}", v.output);
    v.output
}
