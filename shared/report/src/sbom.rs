//! Trawl's inventory report (`trawl-scanner sbom --format json`).
//!
//! The schema is versioned: `schema` names the document type and
//! `schemaVersion` follows semver — additive changes bump the minor version,
//! anything that could break a reader bumps the major.

use serde::{Deserialize, Serialize};
use trawl_catalog::{Distro, FileIssue, Inventory, Package};

/// Document type identifier of the inventory report.
pub const SBOM_SCHEMA: &str = "trawl.inventory";
/// Version of the inventory report schema.
pub const SBOM_SCHEMA_VERSION: &str = "1.1.0";

/// Where an inventory came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIdentity {
    /// The reference as given (`registry/repo:tag`, `oci:dir`, `dir:/`…).
    pub reference: String,
    /// Kind of source: `registry`, `docker-daemon`, `oci-layout`, `oci-archive`, `docker-archive`, `dir`, `host`.
    pub source: String,
    /// Digest of the platform manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// Digest of the index the manifest was chosen from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    /// Digest of the image config (the image ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// Manifest media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// `os/architecture` from the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Creation time from the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Layers, bottom first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerInfo>,
    /// Image labels from the config (`LABEL`); environment variables are never reported.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// One layer of the image.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerInfo {
    /// Blob digest.
    pub digest: String,
    /// Uncompressed digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// Compressed size.
    pub size: u64,
    /// Build instruction from the image history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// The inventory report document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SbomReport {
    /// Always [`SBOM_SCHEMA`].
    pub schema: String,
    /// Always [`SBOM_SCHEMA_VERSION`] for documents written by this build.
    pub schema_version: String,
    /// Tool name and version.
    pub generator: Generator,
    /// RFC 3339 time the report was made.
    pub generated_at: String,
    /// What was scanned.
    pub image: ImageIdentity,
    /// Distribution, when detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<Distro>,
    /// OSV ecosystem of the distribution's packages (e.g. `Debian:12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_ecosystem: Option<String>,
    /// Installed packages.
    pub packages: Vec<Package>,
    /// Files that could not be cataloged, and warnings.
    pub issues: Vec<FileIssue>,
}

/// The tool that wrote a report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generator {
    /// `trawl`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

/// The parts every inventory-bearing document shares, borrowed from an
/// [`SbomReport`] or a [`ScanReport`](crate::ScanReport), so that SBOM
/// formats (CycloneDX, SPDX) render either without copying the inventory.
#[derive(Debug, Clone, Copy)]
pub struct InventoryView<'a> {
    /// Tool name and version.
    pub generator: &'a Generator,
    /// RFC 3339 time the report was made.
    pub generated_at: &'a str,
    /// What was scanned.
    pub image: &'a ImageIdentity,
    /// Distribution, when detected.
    pub distro: Option<&'a Distro>,
    /// Installed packages.
    pub packages: &'a [Package],
}

/// Anything that holds an inventory — SBOM and scan reports, and views of
/// them — so SBOM formats can take any of them by reference.
pub trait AsInventory {
    /// The inventory as a borrowed view.
    fn as_inventory(&self) -> InventoryView<'_>;
}

impl AsInventory for InventoryView<'_> {
    fn as_inventory(&self) -> InventoryView<'_> {
        *self
    }
}

impl AsInventory for SbomReport {
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

impl SbomReport {
    /// Builds the report for an image and its inventory.
    pub fn new(image: ImageIdentity, inventory: Inventory) -> SbomReport {
        SbomReport {
            schema: SBOM_SCHEMA.into(),
            schema_version: SBOM_SCHEMA_VERSION.into(),
            generator: Generator { name: "trawl".into(), version: env!("CARGO_PKG_VERSION").into() },
            generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            os_ecosystem: inventory.distro.as_ref().and_then(|d| d.osv_ecosystem()),
            distro: inventory.distro,
            image,
            packages: inventory.packages,
            issues: inventory.issues,
        }
    }
}
