//! Shared fixtures for the scanner's integration tests: small, hand-written
//! package databases and helpers to analyse images with the real pipeline.

#![allow(dead_code)]

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use trawl_catalog::{Inventory, Package, PackageType};
use trawl_scanner::analyze::{AnalyzeError, Analyzer, AnalyzerOptions, ImageAnalysis};
use trawl_testkit::{BuiltImage, ImageBuilder, LayerBuilder, Registry};
use trawl_vulndb::osv::OsvRecord;
use trawl_vulndb::Database;

/// Debian 12 os-release, stored where Debian puts it (etc/os-release is a symlink).
pub const DEBIAN_OS_RELEASE: &str = trawl_testkit::DEBIAN_12_OS_RELEASE;

/// A dpkg status stanza.
pub fn dpkg_stanza(name: &str, version: &str, source: Option<&str>) -> String {
    let mut s = format!(
        "Package: {name}\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: {version}\n"
    );
    if let Some(src) = source {
        s.push_str(&format!("Source: {src}\n"));
    }
    s.push_str("Description: test package\n more text\n\n");
    s
}

/// A dpkg status file with the given (name, version, source) stanzas.
pub fn dpkg_status(packages: &[(&str, &str, Option<&str>)]) -> String {
    packages.iter().map(|(n, v, s)| dpkg_stanza(n, v, *s)).collect()
}

/// Python wheel METADATA.
pub fn python_metadata(name: &str, version: &str) -> String {
    format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: MIT\n\nLong description.\n")
}

/// An installed npm package.json.
pub fn npm_package_json(name: &str, version: &str) -> String {
    format!("{{\"name\": \"{name}\", \"version\": \"{version}\", \"license\": \"MIT\"}}")
}

/// A Debian base layer: os-release (with the etc symlink) and a dpkg status.
pub fn debian_base(packages: &[(&str, &str, Option<&str>)]) -> LayerBuilder {
    LayerBuilder::new()
        .dir("etc")
        .dir("usr")
        .dir("usr/lib")
        .file("usr/lib/os-release", DEBIAN_OS_RELEASE, 0o644)
        .symlink("etc/os-release", "../usr/lib/os-release")
        .dir("var/lib/dpkg")
        .file("var/lib/dpkg/status", dpkg_status(packages), 0o644)
}

/// Options for analysing images in the test kit's plain-HTTP registry.
pub fn plain_http_options() -> AnalyzerOptions {
    let mut o = AnalyzerOptions::default();
    o.source.plain_http = true;
    o
}

/// Analyses `reference` with the default catalogers.
pub async fn analyze(reference: &str, options: AnalyzerOptions) -> Result<ImageAnalysis, AnalyzeError> {
    Analyzer::new(trawl_catalog::default_catalogers(), options).analyze_reference(reference).await
}

/// Starts a registry, panicking with the reason if it cannot.
pub fn registry() -> Registry {
    Registry::start().expect("start docker-registry (run scripts/setup)")
}

/// `(type, name, version)` triples, sorted.
pub fn triples(inv: &Inventory) -> Vec<(PackageType, String, String)> {
    let mut v: Vec<_> = inv.packages.iter().map(|p| (p.kind, p.name.clone(), p.version.clone())).collect();
    v.sort();
    v
}

/// The package with this name, or a panic listing what exists.
pub fn package<'a>(inv: &'a Inventory, name: &str) -> &'a Package {
    inv.packages.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no package {name} in {:?}", triples(inv)))
}

/// Every environment variable the scanner reads, so a test starts from a clean slate.
pub const SCANNER_ENV: &[&str] = &[
    "TRAWL_DB",
    "TRAWL_RESULTS_DIR",
    "TRAWL_IGNORE_FILE",
    "TRAWL_LOG",
    "TRAWL_REGISTRY_USERNAME",
    "TRAWL_REGISTRY_PASSWORD",
    "TRAWL_REGISTRY_TOKEN",
    "SCANNER_REGISTRY",
    "SCANNER_REPOSITORY",
    "SCANNER_TAG",
    "SCANNER_REGISTRY_USERNAME",
    "SCANNER_REGISTRY_PASSWORD",
    "SCANNER_SCAN_LAYERS",
    "SCANNER_ON_DEMAND",
    "SCANNER_DOCKER_URL",
    "CLUSTER_JOIN_ADDR",
    "CLUSTER_JOIN_PORT",
    "CLUSTER_ADVERTISED_ADDR",
    "DOCKER_HOST",
    "NATS_URL",
    "NATS_CREDS",
    "TRAWL_WORKER_CONCURRENCY",
    "TRAWL_WORKER_DB",
    "TRAWL_WORKER_ID",
    "TRAWL_WORKER_LAYER_CACHE",
    "TRAWL_WORKER_RETRY_DELAY",
    "TRAWL_WORKER_SCAN_TIMEOUT",
    "TRAWL_WORKER_DRAIN_TIMEOUT",
    "TRAWL_WORKER_PLATFORM",
];

/// The real `trawl-scanner` binary with none of its environment variables set.
pub fn scanner_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trawl-scanner"));
    for var in SCANNER_ENV {
        c.env_remove(var);
    }
    c
}

/// Runs the scanner with `args` and a clean environment.
pub fn run_scanner(args: &[&str]) -> Output {
    scanner_command().args(args).output().expect("run trawl-scanner")
}

/// stderr as text.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses stdout as JSON after checking the run succeeded.
pub fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "exit {:?}, stderr: {}", out.status.code(), stderr_of(out));
    serde_json::from_slice(&out.stdout).expect("a JSON report on stdout")
}

/// A database with three advisories for [`fixture_image`]: DSA-9999-1
/// (openssl, unrated, fixed), GHSA-aaaa-bbbb-cccc (requests, HIGH, fixed) and
/// CVE-2099-0003 (zlib, CRITICAL, no fix yet).
pub fn small_db(dir: &Path) -> PathBuf {
    let records: Vec<OsvRecord> = [
        json!({"id": "DSA-9999-1", "aliases": ["CVE-2099-0001"], "summary": "openssl: example flaw",
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]}]}]}),
        json!({"id": "GHSA-aaaa-bbbb-cccc", "aliases": ["CVE-2099-0002"], "summary": "requests leaks credentials",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
            "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.31.0"}]}]}]}),
        json!({"id": "CVE-2099-0003", "summary": "zlib: inflate overflow, not fixed yet",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "zlib"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let path = dir.join("small.db");
    Database::build(records, vec![], 0).write(&path).unwrap();
    path
}

/// A secret in the fixture's `Env`: no report may repeat it.
pub const FIXTURE_SECRET: &str = "hunter2-not-for-reports";

/// Build command of the fixture's second layer.
pub const PIP_INSTALL: &str = "RUN /bin/sh -c pip install requests==2.25.1";

/// A two-layer Debian 12 image with one finding of each kind in [`small_db`]:
/// libssl3 and zlib1g in the base layer, requests 2.25.1 in the second.
pub fn fixture_image() -> BuiltImage {
    let base = debian_base(&[
        ("libssl3", "3.0.11-1~deb12u1", Some("openssl")),
        ("bash", "5.2.15-2", None),
        ("zlib1g", "1:1.2.13.dfsg-1", Some("zlib")),
    ]);
    let app = LayerBuilder::new().file(
        "usr/lib/python3/dist-packages/requests-2.25.1.dist-info/METADATA",
        python_metadata("requests", "2.25.1"),
        0o644,
    );
    ImageBuilder::new()
        .label("org.opencontainers.image.source", "https://example.com/team/app")
        .env(&format!("API_TOKEN={FIXTURE_SECRET}"))
        .layer_with_history(base, "ADD rootfs.tar.xz /")
        .layer_with_history(app, PIP_INSTALL)
        .build()
        .unwrap()
}

/// Pushes [`fixture_image`] to `registry` as `repo:tag` and returns it with its reference.
pub async fn push_fixture(registry: &Registry, repo: &str, tag: &str) -> (BuiltImage, String) {
    let image = fixture_image();
    trawl_testkit::push(registry, repo, tag, &image, registry.credentials()).await.unwrap();
    (image, format!("{}/{repo}:{tag}", registry.host()))
}

/// The validator script for SARIF, CycloneDX and SPDX documents.
pub fn validator_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/report/tests/validate_report.py")
}

/// Runs the external validator for `format` on `file`, panicking with its output on failure.
pub fn assert_valid(format: &str, file: &Path) {
    let out = Command::new("python3").arg(validator_script()).arg(format).arg(file).output().expect("run python3");
    assert!(
        out.status.success(),
        "{format} validation of {} failed:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `trawl-scanner worker`, killed when the test ends.
pub type Worker = trawl_testkit::ServiceProcess;

/// Longest wait for anything a worker should do (scans here take well under a second).
pub const WORKER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts `trawl-scanner worker --nats NATS --id ID EXTRA…` with `env`,
/// logging to `ID.log` in `dir`.
pub fn spawn_worker(nats: &str, dir: &Path, id: &str, extra: &[&str], env: &[(&str, &str)]) -> Worker {
    let mut cmd = scanner_command();
    cmd.args(["worker", "--nats", nats, "--id", id]).args(extra).envs(env.iter().copied()).env("TRAWL_LOG", "info");
    trawl_testkit::ServiceProcess::spawn("trawl-scanner worker", cmd, &dir.join(format!("{id}.log")))
        .expect("start trawl-scanner worker")
}

/// Polls `probe` until it yields a value, failing with the worker's log after [`WORKER_DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, worker: &Worker, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + WORKER_DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}; worker log:\n{}", worker.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
