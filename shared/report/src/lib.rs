//! Report documents built from an inventory and its findings: Trawl's own
//! versioned JSON schemas (`docs/sbom-schema.md`, `docs/scan-schema.md`),
//! the interchange formats other tools read (CycloneDX, SPDX, SARIF, the
//! NeuVector scanner's layout — `docs/report-formats.md`), and the terminal
//! table.
//!
//! This crate only shapes data that earlier stages produced; it never reads
//! images or files. Every format is a pure function of a report, so the same
//! report always renders to the same document.

#![warn(missing_docs)]

mod common;
pub mod cyclonedx;
pub mod imageref;
pub mod neuvector;
pub mod sarif;
pub mod sbom;
pub mod scan;
pub mod spdx;
mod spdx_license;
pub mod table;

pub use imageref::ImageName;
pub use sbom::{AsInventory, ImageIdentity, InventoryView, LayerInfo, SbomReport, SBOM_SCHEMA, SBOM_SCHEMA_VERSION};
pub use scan::{
    DbInfo, LayerFindings, Rematch, RematchInput, ScanReport, SeverityCounts, SuppressedFinding, SCAN_SCHEMA,
    SCAN_SCHEMA_VERSION,
};
