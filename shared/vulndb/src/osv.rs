//! The OSV schema (https://ossf.github.io/osv-schema/), as far as matching
//! needs it. Unknown fields are ignored so newer schema versions still load;
//! fields that matching depends on are typed so malformed records fail to
//! parse and are counted instead of half-understood.

use serde::Deserialize;

/// One OSV record.
#[derive(Debug, Clone, Deserialize)]
pub struct OsvRecord {
    /// Advisory id (`GHSA-…`, `DSA-…`, `CVE-…`).
    pub id: String,
    /// Last modification time (RFC 3339).
    #[serde(default)]
    pub modified: Option<String>,
    /// Publication time (RFC 3339).
    #[serde(default)]
    pub published: Option<String>,
    /// Set when the advisory was withdrawn.
    #[serde(default)]
    pub withdrawn: Option<String>,
    /// Other ids for the same vulnerability.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Ids of the upstream vulnerabilities this one derives from.
    #[serde(default)]
    pub upstream: Vec<String>,
    /// One-line summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// Longer description.
    #[serde(default)]
    pub details: Option<String>,
    /// Severity scores for the whole advisory.
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    /// Affected packages.
    #[serde(default)]
    pub affected: Vec<OsvAffected>,
    /// Links.
    #[serde(default)]
    pub references: Vec<OsvReference>,
    /// Database-specific extras (e.g. GitHub's `severity`).
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// A severity score: `type` (`CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`…) and its value.
#[derive(Debug, Clone, Deserialize)]
pub struct OsvSeverity {
    /// Score type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Vector string or qualitative value.
    pub score: String,
}

/// One affected package with its ranges and versions.
#[derive(Debug, Clone, Deserialize)]
pub struct OsvAffected {
    /// The package.
    pub package: Option<OsvPackage>,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Vec<OsvRange>,
    /// Explicitly affected versions.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Severity specific to this package.
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    /// Database-specific extras.
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// An OSV package identity.
#[derive(Debug, Clone, Deserialize)]
pub struct OsvPackage {
    /// Ecosystem (`Debian:12`, `PyPI`…).
    #[serde(default)]
    pub ecosystem: String,
    /// Name within the ecosystem.
    #[serde(default)]
    pub name: String,
    /// Package URL, when given.
    #[serde(default)]
    pub purl: Option<String>,
}

/// A version range.
#[derive(Debug, Clone, Deserialize)]
pub struct OsvRange {
    /// `ECOSYSTEM`, `SEMVER` or `GIT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Events, in any order.
    #[serde(default)]
    pub events: Vec<OsvEvent>,
}

/// One range event; exactly one field is set in a valid record.
#[derive(Debug, Clone, Deserialize)]
pub struct OsvEvent {
    /// First affected version (`0` = since forever).
    #[serde(default)]
    pub introduced: Option<String>,
    /// First fixed version.
    #[serde(default)]
    pub fixed: Option<String>,
    /// Last affected version (inclusive).
    #[serde(default)]
    pub last_affected: Option<String>,
    /// Exclusive upper limit of the range.
    #[serde(default)]
    pub limit: Option<String>,
}

/// A reference link.
#[derive(Debug, Clone, Deserialize)]
pub struct OsvReference {
    /// `ADVISORY`, `WEB`, `FIX`…
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The URL.
    #[serde(default)]
    pub url: String,
}
