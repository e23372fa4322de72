//! Helpers shared by the testkit's own tests: running the independent tools that validate
//! what the kit produces.
#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::Value;

/// Runs `tool args…` and returns its output (panics if it cannot be started).
pub fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("cannot run {tool}: {e}"))
}

/// Runs `tool args…`, asserts success, returns stdout as text.
pub fn run_ok(tool: &str, args: &[&str]) -> String {
    let out = run(tool, args);
    assert!(
        out.status.success(),
        "{tool} {args:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `skopeo args…`, asserts success and parses stdout as JSON.
pub fn skopeo_json(args: &[&str]) -> Value {
    let text = run_ok("skopeo", args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("skopeo {args:?} printed non-JSON ({e}): {text}"))
}

/// The `Layers` array of `skopeo inspect` output as strings.
pub fn layers_of(inspect: &Value) -> Vec<String> {
    inspect["Layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no Layers in {inspect}"))
        .iter()
        .map(|v| v.as_str().expect("layer digest string").to_owned())
        .collect()
}
