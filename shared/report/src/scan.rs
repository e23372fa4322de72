//! Trawl's scan report (`trawl-scanner scan --format json`): the inventory
//! report extended with findings, the database that produced them and
//! whether the image's OS was covered. Versioned like the inventory schema
//! (`docs/scan-schema.md`).

use crate::sbom::{Generator, ImageIdentity, SbomReport};
use serde::{Deserialize, Serialize};
use trawl_catalog::{Distro, FileIssue, Package};
use trawl_vulndb::{DbHeader, Finding, MatchResult, OsCoverage, Rating};

/// Document type identifier of the scan report.
pub const SCAN_SCHEMA: &str = "trawl.scan";
/// Version of the scan report schema.
pub const SCAN_SCHEMA_VERSION: &str = "1.0.0";

/// Which database produced the findings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbInfo {
    /// Database version (build time in Unix milliseconds; higher is newer).
    pub version: u64,
    /// Build time.
    pub built_at: String,
    /// Advisory count.
    pub advisories: u64,
}

impl From<&DbHeader> for DbInfo {
    fn from(h: &DbHeader) -> Self {
        DbInfo { version: h.version, built_at: h.built_at.clone(), advisories: h.counts.advisories }
    }
}

/// Findings counted by severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    /// Critical.
    pub critical: usize,
    /// High.
    pub high: usize,
    /// Medium.
    pub medium: usize,
    /// Low.
    pub low: usize,
    /// Negligible.
    pub negligible: usize,
    /// Unknown.
    pub unknown: usize,
    /// All findings.
    pub total: usize,
}

impl SeverityCounts {
    /// Counts the findings.
    pub fn of(findings: &[Finding]) -> Self {
        let mut c = SeverityCounts { total: findings.len(), ..Default::default() };
        for f in findings {
            match f.severity {
                Rating::Critical => c.critical += 1,
                Rating::High => c.high += 1,
                Rating::Medium => c.medium += 1,
                Rating::Low => c.low += 1,
                Rating::Negligible => c.negligible += 1,
                Rating::Unknown => c.unknown += 1,
            }
        }
        c
    }
}

/// The scan report document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    /// Always [`SCAN_SCHEMA`].
    pub schema: String,
    /// Always [`SCAN_SCHEMA_VERSION`] for documents written by this build.
    pub schema_version: String,
    /// Tool name and version.
    pub generator: Generator,
    /// When the report was made.
    pub generated_at: String,
    /// What was scanned.
    pub image: ImageIdentity,
    /// Distribution, when detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<Distro>,
    /// OSV ecosystem of the distribution's packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_ecosystem: Option<String>,
    /// Whether the database covered the OS packages.
    pub os_coverage: OsCoverage,
    /// The database used.
    pub db: DbInfo,
    /// Findings by severity.
    pub summary: SeverityCounts,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// The inventory the findings come from.
    pub packages: Vec<Package>,
    /// Files that could not be cataloged.
    pub issues: Vec<FileIssue>,
    /// Problems that limited matching.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_warnings: Vec<String>,
}

impl ScanReport {
    /// Combines an inventory report with the matcher's result.
    pub fn new(inventory: SbomReport, matched: MatchResult, db: DbInfo) -> ScanReport {
        ScanReport {
            schema: SCAN_SCHEMA.into(),
            schema_version: SCAN_SCHEMA_VERSION.into(),
            generator: inventory.generator,
            generated_at: inventory.generated_at,
            image: inventory.image,
            distro: inventory.distro,
            os_ecosystem: inventory.os_ecosystem,
            os_coverage: matched.os,
            db,
            summary: SeverityCounts::of(&matched.findings),
            findings: matched.findings,
            packages: inventory.packages,
            issues: inventory.issues,
            match_warnings: matched.warnings,
        }
    }
}
