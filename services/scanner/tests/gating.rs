//! CI gating through the real binary: `--exit-code` with `--severity`,
//! `--ignore-unfixed` and ignore files (ids, expiry, reasons), and the
//! invocation errors that must fail before anything is pulled.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use trawl_testkit::write_oci_layout;

/// The fixture image as an OCI layout, and the small database, in `dir`.
fn fixture(dir: &Path) -> (String, PathBuf) {
    let layout = dir.join("layout");
    write_oci_layout(&layout, &[("v1", &fixture_image())]).unwrap();
    (format!("oci:{}:v1", layout.display()), small_db(dir))
}

fn scan(db: &Path, args: &[&str]) -> std::process::Output {
    scanner_command().arg("scan").arg("--db").arg(db).args(args).output().unwrap()
}

fn ids(report: &serde_json::Value, field: &str) -> Vec<String> {
    let mut v: Vec<String> = report[field]
        .as_array()
        .map(|a| a.iter().map(|f| f["id"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn exit_code_fires_only_when_findings_survive_the_filters() {
    let dir = tempfile::tempdir().unwrap();
    let (image, db) = fixture(dir.path());

    // Without --exit-code findings never fail the run.
    let out = scan(&db, &["--format", "json", &image]);
    assert_eq!(ids(&json_of(&out), "findings"), ["CVE-2099-0001", "CVE-2099-0002", "CVE-2099-0003"]);

    let out = scan(&db, &["--exit-code", "1", "--format", "json", &image]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["total"], 3, "the report is still printed when the gate fails");

    // Only CRITICAL: the unfixed zlib finding is left, so the gate fires with the chosen code.
    let out = scan(&db, &["--exit-code", "42", "--severity", "CRITICAL", "--format", "json", &image]);
    assert_eq!(out.status.code(), Some(42));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids(&report, "findings"), ["CVE-2099-0003"]);
    assert_eq!(report["summary"]["total"], 1);
    assert_eq!(report["summary"]["critical"], 1);

    // ...and --ignore-unfixed removes it: nothing left, the gate passes.
    let out =
        scan(&db, &["--exit-code", "1", "--severity", "critical", "--ignore-unfixed", "--format", "json", &image]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(ids(&json_of(&out), "findings"), Vec::<String>::new());

    // HIGH,CRITICAL with fixes only: requests.
    let out =
        scan(&db, &["--exit-code", "1", "--severity", "HIGH,CRITICAL", "--ignore-unfixed", "--format", "json", &image]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(ids(&serde_json::from_slice(&out.stdout).unwrap(), "findings"), ["CVE-2099-0002"]);
}

#[test]
fn ignore_files_suppress_with_reasons_and_expired_rules_warn() {
    let dir = tempfile::tempdir().unwrap();
    let (image, db) = fixture(dir.path());
    let ignore = dir.path().join("accepted.txt");
    // The DSA is named by its CVE alias; the GHSA rule expired yesterday-ish (2020).
    std::fs::write(
        &ignore,
        "# reviewed 2026-11\nCVE-2099-0001 exp:2999-12-31 # openssl is not reachable from the app\nGHSA-aaaa-bbbb-cccc exp:2020-01-01 # temporary waiver\nCVE-2099-0003 pkg:zlib1g\n",
    )
    .unwrap();
    let out = scan(&db, &["--exit-code", "1", "--ignore-file", ignore.to_str().unwrap(), "--format", "json", &image]);
    assert_eq!(out.status.code(), Some(1), "the expired waiver no longer hides requests");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids(&report, "findings"), ["CVE-2099-0002"]);
    assert_eq!(ids(&report, "suppressed"), ["CVE-2099-0001", "CVE-2099-0003"]);
    let reasons: Vec<&str> =
        report["suppressed"].as_array().unwrap().iter().map(|s| s["reason"].as_str().unwrap()).collect();
    assert!(reasons.contains(&"openssl is not reachable from the app"), "{reasons:?}");
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("GHSA-aaaa-bbbb-cccc") && stderr.contains("expired on 2020-01-01"),
        "expired rules warn: {stderr}"
    );

    // The table says how many were suppressed.
    let out = scan(&db, &["--ignore-file", ignore.to_str().unwrap(), &image]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("2 suppressed"), "{table}");

    // .trawlignore in the working directory is read without being named.
    std::fs::write(dir.path().join(".trawlignore"), "CVE-2099-0002\nCVE-2099-0003\nCVE-2099-0001\n").unwrap();
    let out = scanner_command()
        .current_dir(dir.path())
        .args(["scan", "--exit-code", "1", "--format", "json", "--db"])
        .arg(&db)
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(ids(&serde_json::from_slice(&out.stdout).unwrap(), "suppressed").len(), 3);
}

#[test]
fn bad_gating_options_are_usage_errors_before_any_pull() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    // A registry nobody listens on: a usage error must come first, not an unreachable registry.
    let image = format!("127.0.0.1:{}/never/pulled:1", trawl_testkit::free_port().unwrap());
    let bad = dir.path().join("bad-ignore");
    std::fs::write(&bad, "CVE-1 exp:tomorrow\n").unwrap();
    for (args, needle) in [
        (vec!["--severity", "HIGH,SEVERE"], "unknown severity \"SEVERE\""),
        (vec!["--exit-code", "3"], "would be mistaken for one of Trawl's error codes"),
        (vec!["--ignore-file", bad.to_str().unwrap()], "bad-ignore:1: expiry \"tomorrow\""),
        (vec!["--ignore-file", "/nonexistent/ignore"], "cannot read the ignore file /nonexistent/ignore"),
    ] {
        let out = scan(&db, &[args.as_slice(), &["--plain-http", &image]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        let stderr = stderr_of(&out);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}
