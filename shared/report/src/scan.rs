//! Trawl's scan report (`trawl-scanner scan --format json`): the inventory
//! report extended with findings, the database that produced them and
//! whether the image's OS was covered. Versioned like the inventory schema
//! (`docs/scan-schema.md`).
//!
//! Two views are added on top of the matcher's findings: findings an ignore
//! file suppressed (kept, with the reason, so a report says what it hides)
//! and findings grouped by the image layer that introduced their package
//! (so a reader can tell base-image problems from their own).

use crate::sbom::{AsInventory, Generator, ImageIdentity, InventoryView, SbomReport};
use serde::{Deserialize, Serialize};
use trawl_catalog::{Distro, FileIssue, Package};
use trawl_vulndb::{DbHeader, Finding, MatchResult, OsCoverage, Rating};

/// Document type identifier of the scan report.
pub const SCAN_SCHEMA: &str = "trawl.scan";
/// Version of the scan report schema.
pub const SCAN_SCHEMA_VERSION: &str = "1.1.0";

/// Which database produced the findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// A finding an ignore file suppressed: the finding itself plus why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuppressedFinding {
    /// The suppressed finding, with the same fields as in `findings`.
    #[serde(flatten)]
    pub finding: Finding,
    /// The reason the ignore file gives.
    pub reason: String,
    /// When the suppression stops applying (as the ignore file writes it), if it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// The findings whose package one image layer introduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerFindings {
    /// Layer blob digest (what `Finding::layer` and `Package::layer` record).
    pub digest: String,
    /// Uncompressed digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// Build instruction from the image history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Compressed size.
    pub size: u64,
    /// This layer's findings by severity.
    pub summary: SeverityCounts,
    /// This layer's findings, most severe first.
    pub findings: Vec<Finding>,
}

/// What re-matching a stored report against a newer database changes: the
/// findings and everything derived from them. The rest of the report (the
/// image, its packages) is the scan's and stays as stored, so a re-match is
/// stored beside the report rather than as a rewritten copy of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rematch {
    /// The database matched against.
    pub db: DbInfo,
    /// Whether that database covers the OS packages.
    pub os_coverage: OsCoverage,
    /// Findings by severity.
    pub summary: SeverityCounts,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Problems that limited matching.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_warnings: Vec<String>,
    /// Findings still suppressed by the scan's ignore file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<SuppressedFinding>,
}

/// The parts of a stored report that re-matching reads. Decoding a stored
/// report as this view skips the old findings without building them, which
/// halves the cost of reading a report back.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RematchInput {
    /// Distribution, when detected.
    #[serde(default)]
    pub distro: Option<Distro>,
    /// Installed packages.
    #[serde(default)]
    pub packages: Vec<Package>,
    /// What the scan's ignore file suppressed.
    #[serde(default)]
    pub suppressed: Vec<SuppressedFinding>,
}

impl RematchInput {
    /// The inventory to match (moves the packages out).
    pub fn take_inventory(&mut self) -> trawl_catalog::Inventory {
        trawl_catalog::Inventory {
            distro: self.distro.clone(),
            packages: std::mem::take(&mut self.packages),
            issues: Vec::new(),
        }
    }

    /// The re-match `matched` makes of this report against `db`.
    ///
    /// Suppressions carry over: a new finding with the id, package and
    /// version of one the ignore file suppressed at scan time stays
    /// suppressed with the same reason, until the suppression's expiry date
    /// (re-matching has no ignore file, only what it decided).
    pub fn rematch(self, matched: MatchResult, db: DbInfo) -> Rematch {
        let today = chrono::Utc::now().date_naive().to_string();
        let carried: std::collections::HashMap<(String, String, String), (String, Option<String>)> = self
            .suppressed
            .into_iter()
            // ISO dates compare as text; the rule lapses the day after `expires`.
            .filter(|s| s.expires.as_deref().is_none_or(|e| e >= today.as_str()))
            .map(|s| ((s.finding.id, s.finding.package, s.finding.installed_version), (s.reason, s.expires)))
            .collect();
        let (mut kept, mut suppressed) = (Vec::new(), Vec::new());
        if carried.is_empty() {
            // The common case: nothing was suppressed, nothing to look up.
            kept = matched.findings;
        } else {
            for finding in matched.findings {
                let key = (finding.id.clone(), finding.package.clone(), finding.installed_version.clone());
                match carried.get(&key) {
                    Some((reason, expires)) => {
                        suppressed.push(SuppressedFinding { finding, reason: reason.clone(), expires: expires.clone() })
                    }
                    None => kept.push(finding),
                }
            }
        }
        Rematch {
            db,
            os_coverage: matched.os,
            summary: SeverityCounts::of(&kept),
            findings: kept,
            match_warnings: matched.warnings,
            suppressed,
        }
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
    /// Findings an ignore file suppressed; not in `findings` nor counted in `summary`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<SuppressedFinding>,
    /// `findings` grouped by the layer that introduced their package, bottom
    /// layer first; set by [`ScanReport::group_by_layer`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerFindings>>,
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
            suppressed: Vec::new(),
            layers: None,
        }
    }

    /// Replaces the findings with a new match of the same packages (against
    /// a newer database, say): what re-matching a stored inventory does
    /// instead of pulling the image again. See [`RematchInput::rematch`].
    pub fn rematched(self, matched: MatchResult, db: DbInfo) -> ScanReport {
        let input =
            RematchInput { distro: self.distro.clone(), packages: Vec::new(), suppressed: self.suppressed.clone() };
        let mut report = self;
        report.apply_rematch(input.rematch(matched, db));
        report
    }

    /// Puts a re-match's findings in place of this report's; layer grouping is redone.
    pub fn apply_rematch(&mut self, rematch: Rematch) {
        self.db = rematch.db;
        self.os_coverage = rematch.os_coverage;
        self.summary = rematch.summary;
        self.findings = rematch.findings;
        self.match_warnings = rematch.match_warnings;
        self.suppressed = rematch.suppressed;
        if self.layers.is_some() {
            self.group_by_layer();
        }
    }

    /// Fills `layers`: one entry per image layer, bottom first, holding the
    /// findings whose `layer` is that layer's blob digest. Findings without a
    /// layer (directory scans) or naming no layer of the image stay only in
    /// `findings`.
    pub fn group_by_layer(&mut self) {
        self.layers = Some(self.layer_findings());
    }

    /// The grouping [`ScanReport::group_by_layer`] stores, computed without
    /// changing the report.
    pub fn layer_findings(&self) -> Vec<LayerFindings> {
        let mut layers: Vec<LayerFindings> = self
            .image
            .layers
            .iter()
            .map(|l| LayerFindings {
                digest: l.digest.clone(),
                diff_id: l.diff_id.clone(),
                created_by: l.created_by.clone(),
                size: l.size,
                summary: SeverityCounts::default(),
                findings: Vec::new(),
            })
            .collect();
        for f in &self.findings {
            // The same blob can occur twice in an image; its packages belong
            // to the lowest occurrence, as the layer stack attributes them.
            if let Some(entry) = f.layer.as_deref().and_then(|d| layers.iter_mut().find(|l| l.digest == d)) {
                entry.findings.push(f.clone());
            }
        }
        for l in &mut layers {
            l.summary = SeverityCounts::of(&l.findings);
        }
        layers
    }
}

impl AsInventory for ScanReport {
    fn as_inventory(&self) -> InventoryView<'_> {
        InventoryView {
            generator: &self.generator,
            generated_at: &self.generated_at,
            image: &self.image,
            distro: self.distro.as_ref(),
            packages: &self.packages,
        }
    }
}
