//! `trawl-scanner scan` end to end on small hand-written data: findings in
//! both output formats, layer attribution of findings, and the database
//! errors (missing, corrupt, not a database) with their exit code.

mod common;

use common::*;
use serde_json::json;
use std::process::{Command, Output};
use trawl_testkit::{push, ImageBuilder, LayerBuilder};

const DB_ERROR: i32 = 8;

fn scanner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trawl-scanner")).args(args).env_remove("TRAWL_DB").output().unwrap()
}

#[tokio::test]
async fn scan_reports_findings_with_layers_in_json_and_table() {
    let registry = registry();
    let base = debian_base(&[("libssl3", "3.0.11-1~deb12u1", Some("openssl")), ("bash", "5.2.15-2", None)]);
    let app = LayerBuilder::new().file(
        "usr/lib/python3/dist-packages/requests-2.25.1.dist-info/METADATA",
        python_metadata("requests", "2.25.1"),
        0o644,
    );
    let image = ImageBuilder::new().layer(base).layer(app).build().unwrap();
    push(&registry, "app/scan", "v1", &image, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    let reference = format!("{}/app/scan:v1", registry.host());

    let out = scanner(&["scan", "--plain-http", "--format", "json", "--db", db.to_str().unwrap(), &reference]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["schema"], "trawl.scan");
    assert_eq!(report["osCoverage"]["status"], "covered");
    assert_eq!(report["summary"]["total"], 2);
    let findings = report["findings"].as_array().unwrap();
    // Most severe first: the scored PyPI finding, then the unrated Debian one.
    assert_eq!(findings[0]["id"], "CVE-2099-0002");
    assert_eq!(findings[0]["severity"], "HIGH");
    assert_eq!(findings[0]["fixedVersion"], "2.31.0");
    assert_eq!(findings[0]["layer"].as_str(), Some(image.layers[1].digest.as_str()));
    assert_eq!(findings[1]["id"], "CVE-2099-0001");
    assert_eq!(findings[1]["package"], "libssl3");
    assert_eq!(findings[1]["advisories"], json!(["DSA-9999-1"]));
    assert_eq!(findings[1]["layer"].as_str(), Some(image.layers[0].digest.as_str()));
    assert!(report["db"]["version"].as_u64().unwrap() > 0);
    assert_eq!(report["packages"].as_array().unwrap().len(), 3);

    // The table (not a terminal, so no colour codes) groups by package and sums up.
    let out = Command::new(env!("CARGO_BIN_EXE_trawl-scanner"))
        .args(["scan", "--plain-http", &reference])
        .env("TRAWL_DB", &db)
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(!table.contains('\x1b'), "{table}");
    assert!(
        table.contains("requests 2.25.1 (PyPI)") && table.contains("libssl3 3.0.11-1~deb12u1 (Debian:12)"),
        "{table}"
    );
    assert!(
        table.contains(
            "Total: 2 vulnerabilities (0 critical, 1 high, 0 medium, 0 low, 0 negligible, 1 unknown) in 3 packages"
        ),
        "{table}"
    );
}

#[test]
fn database_problems_exit_8_with_a_way_out() {
    let out = scanner(&["scan", "dir:/nonexistent"]);
    assert_eq!(out.status.code(), Some(DB_ERROR));
    assert!(String::from_utf8_lossy(&out.stderr).contains("trawl-updater build"));

    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    let bytes = std::fs::read(&db).unwrap();
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() - 7]).unwrap();
    let out = scanner(&["scan", "--db", truncated.to_str().unwrap(), "dir:/nonexistent"]);
    assert_eq!(out.status.code(), Some(DB_ERROR));
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"), "{}", String::from_utf8_lossy(&out.stderr));

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, this is not a database").unwrap();
    let out = scanner(&["scan", "--db", text.to_str().unwrap(), "dir:/nonexistent"]);
    assert_eq!(out.status.code(), Some(DB_ERROR));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Trawl vulnerability database"));

    let out = scanner(&["scan", "--db", dir.path().join("missing.db").to_str().unwrap(), "dir:/nonexistent"]);
    assert_eq!(out.status.code(), Some(DB_ERROR));
}
