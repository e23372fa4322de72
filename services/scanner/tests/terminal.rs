//! What a person sees: on a terminal (a real pseudo-terminal from
//! `script(1)`) the scan draws progress — resolving, per-layer byte bars,
//! matching — and colours severities; piped, stdout carries the report and
//! nothing else, and stderr stays empty.

mod common;

use common::*;
use std::process::Command;

#[tokio::test]
async fn a_terminal_gets_progress_and_colour_and_a_pipe_gets_only_the_report() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping: script(1) from util-linux is not installed");
        return;
    }
    let registry = registry();
    let (_, reference) = push_fixture(&registry, "app/tty", "v1").await;
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    let typescript = dir.path().join("typescript");
    let command =
        format!("{} scan --plain-http --db {} {reference}", env!("CARGO_BIN_EXE_trawl-scanner"), db.display());
    // script gives the scanner a pseudo-terminal for stdin, stdout and stderr, and records everything drawn.
    let status = Command::new("script")
        .args(["--quiet", "--return", "--command", &command])
        .arg(&typescript)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("TRAWL_DB")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let seen = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    for stage in ["Resolving", "layer 1/2", "layer 2/2", "Inventoried 4 packages", "Matched 4 packages"] {
        assert!(seen.contains(stage), "{stage:?} not drawn:\n{seen}");
    }
    // CRITICAL is bold red, HIGH red.
    assert!(seen.contains("\x1b[1;31mCRITICAL"), "no colour:\n{seen}");
    assert!(seen.contains("\x1b[31mHIGH"), "no colour:\n{seen}");
    assert!(seen.contains("Total: 3 vulnerabilities"));

    // Piped: just the table, no escape codes, nothing on stderr.
    let out = scanner_command().args(["scan", "--plain-http", "--db"]).arg(&db).arg(&reference).output().unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(!table.contains('\x1b'), "{table}");
    assert!(table.contains("Total: 3 vulnerabilities"));
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));

    // --quiet on a terminal: the report, but no progress.
    let quiet = dir.path().join("quiet");
    let status = Command::new("script")
        .args(["--quiet", "--return", "--command", &format!("{command} --quiet")])
        .arg(&quiet)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let seen = String::from_utf8_lossy(&std::fs::read(&quiet).unwrap()).into_owned();
    assert!(seen.contains("Total: 3 vulnerabilities") && !seen.contains("Resolving"), "{seen}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("srv/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("package-lock.json"), "{ this is not json").unwrap();
    let out = run_scanner(&["--log-format", "json", "sbom", &format!("dir:{}", dir.path().display())]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let records: Vec<serde_json::Value> = stderr_of(&out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}")))
        .collect();
    assert!(
        records.iter().any(|r| r["level"] == "WARN" && r["fields"]["path"] == "srv/app/package-lock.json"),
        "the broken lockfile is logged as a JSON warning: {records:?}"
    );
}
