//! Bad and hostile input through the real `trawl-scanner` binary: each case
//! gets one clear error line and its documented exit code — or, for a bad
//! file inside an otherwise good image, an issue in the report while the rest
//! of the scan goes on. Never a panic, a hang or a partial result presented
//! as success.

mod common;

use common::*;
use std::process::{Command, Output};
use trawl_testkit::{helm_chart, push, Blob, Compression, ImageBuilder, LayerBuilder, Registry, OCI_LAYER_GZIP};

const NOT_FOUND: i32 = 3;
const UNAUTHORIZED: i32 = 4;
const UNREACHABLE: i32 = 5;
const BAD_CONTENT: i32 = 6;
const UNSUPPORTED: i32 = 7;

fn scanner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trawl-scanner"))
        .args(args)
        .env_remove("TRAWL_REGISTRY_USERNAME")
        .env_remove("TRAWL_REGISTRY_PASSWORD")
        .output()
        .expect("run trawl-scanner")
}

/// Asserts a failure with `code`, one error line containing `needle`, and no report.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "no report may be printed on failure");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line expected: {stderr}");
    assert!(errors[0].contains(needle), "{:?} should mention {needle:?}", errors[0]);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn sbom_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

async fn push_layers(registry: &Registry, repo: &str, layers: Vec<LayerBuilder>) -> trawl_testkit::BuiltImage {
    let mut b = ImageBuilder::new();
    for l in layers {
        b = b.layer(l);
    }
    let image = b.build().unwrap();
    push(registry, repo, "v1", &image, None).await.unwrap();
    image
}

#[tokio::test]
async fn registry_access_failures_have_distinct_codes() {
    // Nothing listens on a port we just released.
    let port = trawl_testkit::free_port().unwrap();
    let out = scanner(&["sbom", "--plain-http", &format!("127.0.0.1:{port}/x/y:1")]);
    assert_fails(&out, UNREACHABLE, "cannot reach registry");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("pass --plain-http"), "no hint to do what was done");
    // Without --plain-http the likely fix is named.
    let out = scanner(&["sbom", &format!("127.0.0.1:{port}/x/y:1")]);
    assert_fails(&out, UNREACHABLE, "pass --plain-http");

    let registry = Registry::start_with_basic_auth("alice", "s3cret-pass").unwrap();
    let image = ImageBuilder::new().layer(debian_base(&[("a", "1", None)])).build().unwrap();
    push(&registry, "private/app", "v1", &image, Some(("alice", "s3cret-pass"))).await.unwrap();
    let reference = format!("{}/private/app:v1", registry.host());

    let out = scanner(&["sbom", "--plain-http", &reference]);
    assert_fails(&out, UNAUTHORIZED, "refused access");
    let out = scanner(&["sbom", "--plain-http", "--username", "alice", "--password", "wrong-pass", &reference]);
    assert_fails(&out, UNAUTHORIZED, "check the username and password");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("wrong-pass"), "credentials must not be echoed");

    let out = Command::new(env!("CARGO_BIN_EXE_trawl-scanner"))
        .args(["sbom", "--plain-http", &reference])
        .env("TRAWL_REGISTRY_USERNAME", "alice")
        .env("TRAWL_REGISTRY_PASSWORD", "s3cret-pass")
        .output()
        .unwrap();
    let report = sbom_of(&out);
    assert_eq!(report["packages"][0]["name"], "a");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret-pass"));

    let out = scanner(&[
        "sbom",
        "--plain-http",
        "--username",
        "alice",
        "--password",
        "s3cret-pass",
        &format!("{}/private/app:missing", registry.host()),
    ]);
    assert_fails(&out, NOT_FOUND, "not found");
    let out = scanner(&[
        "sbom",
        "--plain-http",
        "--username",
        "alice",
        "--password",
        "s3cret-pass",
        &format!("{}/private/nope:v1", registry.host()),
    ]);
    assert_fails(&out, NOT_FOUND, "not found");
    let out = scanner(&["sbom", "not a reference"]);
    assert_fails(&out, NOT_FOUND, "invalid image reference");
}

#[tokio::test]
async fn corrupt_truncated_and_tampered_blobs_fail_the_scan() {
    let registry = registry();
    let host = registry.host();

    // A blob whose digest is right but whose gzip stream is garbage.
    let mut garbage = vec![0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0xff];
    garbage.extend(std::iter::repeat_n(0xAB_u8, 4096));
    let image = ImageBuilder::new().blob_layer(Blob::from_bytes(OCI_LAYER_GZIP, garbage), None).build().unwrap();
    push(&registry, "bad/gzip", "v1", &image, None).await.unwrap();
    let out = scanner(&["sbom", "--plain-http", &format!("{host}/bad/gzip:v1")]);
    assert_fails(&out, BAD_CONTENT, "corrupt");

    // Stored bytes changed after upload: the registry serves a digest mismatch.
    let image = push_layers(&registry, "bad/tampered", vec![debian_base(&[("a", "1", None)])]).await;
    let layer = &image.layers[0];
    let mut bytes = layer.bytes().unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    registry.corrupt_blob(&layer.digest, &bytes).unwrap();
    let out = scanner(&["sbom", "--plain-http", &format!("{host}/bad/tampered:v1")]);
    assert_fails(&out, BAD_CONTENT, "digest mismatch");

    // Truncated: the registry serves fewer bytes than the descriptor says.
    let image =
        push_layers(&registry, "bad/truncated", vec![debian_base(&[("b", "1", None)]).compression(Compression::Zstd)])
            .await;
    let layer = &image.layers[0];
    let bytes = layer.bytes().unwrap();
    registry.corrupt_blob(&layer.digest, &bytes[..bytes.len() / 2]).unwrap();
    let out = scanner(&["sbom", "--plain-http", &format!("{host}/bad/truncated:v1")]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(BAD_CONTENT), "{stderr}");
    assert!(stderr.contains("mismatch") || stderr.contains("truncated"), "{stderr}");
}

#[tokio::test]
async fn non_images_unsafe_paths_and_bombs_are_refused() {
    let registry = registry();
    let host = registry.host();

    let chart = helm_chart("mychart", "0.1.0", &[]).unwrap();
    push(&registry, "charts/mychart", "0.1.0", &chart, None).await.unwrap();
    let out = scanner(&["sbom", "--plain-http", &format!("{host}/charts/mychart:0.1.0")]);
    assert_fails(&out, UNSUPPORTED, "Helm chart");

    push_layers(&registry, "evil/dotdot", vec![LayerBuilder::new().file("../../etc/cron.d/x", "boom", 0o644)]).await;
    let out = scanner(&["sbom", "--plain-http", &format!("{host}/evil/dotdot:v1")]);
    assert_fails(&out, BAD_CONTENT, "unsafe path");

    push_layers(&registry, "evil/absolute", vec![LayerBuilder::new().file("/etc/passwd", "root:x:0:0", 0o644)]).await;
    let out = scanner(&["sbom", "--plain-http", &format!("{host}/evil/absolute:v1")]);
    assert_fails(&out, BAD_CONTENT, "unsafe path");

    // 96 MiB of zeros gzip to ~100 KiB: a ratio far above the limit.
    let zeros = std::io::Read::take(std::io::repeat(0), 96 << 20);
    push_layers(
        &registry,
        "evil/bomb",
        vec![LayerBuilder::new().file_from_reader("zeros", 96 << 20, 0o644, zeros).level(9)],
    )
    .await;
    let reference = format!("{host}/evil/bomb:v1");
    let out = scanner(&["sbom", "--plain-http", &reference]);
    assert_fails(&out, BAD_CONTENT, "decompression bomb");
    let out =
        scanner(&["sbom", "--plain-http", "--max-layer-size", "8", "--max-compression-ratio", "100000", &reference]);
    assert_fails(&out, BAD_CONTENT, "--max-layer-size");
    // The same image is accepted when the user raises the limit.
    let out = scanner(&["sbom", "--plain-http", "--max-compression-ratio", "100000", &reference]);
    assert_eq!(sbom_of(&out)["packages"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_files_inside_a_good_image_are_reported_and_the_scan_goes_on() {
    let registry = registry();
    let huge_os_release = format!("ID=debian\nVERSION_ID=12\n{}", "#".repeat(200 << 10));
    let layer = LayerBuilder::new()
        .file("etc/os-release", huge_os_release, 0o644)
        .file("app/package-lock.json", "{ this is not json", 0o644)
        .file("var/lib/dpkg/status", dpkg_status(&[("ok-package", "1.0", None)]), 0o644);
    push_layers(&registry, "mixed/bad-files", vec![layer]).await;
    let out = scanner(&["sbom", "--plain-http", &format!("{}/mixed/bad-files:v1", registry.host())]);
    let report = sbom_of(&out);
    let names: Vec<&str> = report["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["ok-package"]);
    let issues = report["issues"].as_array().unwrap();
    let issue_paths: Vec<&str> = issues.iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert!(issue_paths.contains(&"etc/os-release"), "{issues:?}");
    assert!(issue_paths.contains(&"app/package-lock.json"), "{issues:?}");
    assert!(issues.iter().any(|i| i["message"].as_str().unwrap().contains("limit")), "{issues:?}");
    // The problems are also logged, one warning per file.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("app/package-lock.json"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let out = scanner(&["sbom", "--platform", "amd64", "x/y:1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = scanner(&["sbom", "--username", "u", "x/y:1"]);
    assert_eq!(out.status.code(), Some(2));
    let help = String::from_utf8(scanner(&["sbom", "--help"]).stdout).unwrap();
    assert!(help.contains("oci-archive:FILE") && help.contains("docker-archive:FILE"), "{help}");
}
