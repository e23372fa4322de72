//! Shared fixtures for the scanner's integration tests: small, hand-written
//! package databases and helpers to analyse images with the real pipeline.

#![allow(dead_code)]

use trawl_catalog::{Inventory, Package, PackageType};
use trawl_scanner::analyze::{AnalyzeError, Analyzer, AnalyzerOptions, ImageAnalysis};
use trawl_testkit::{LayerBuilder, Registry};

/// Debian 12 os-release, stored where Debian puts it (etc/os-release is a symlink).
pub const DEBIAN_OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

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
