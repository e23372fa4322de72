//! Report documents built from an inventory and its findings: Trawl's own
//! versioned JSON schemas (`docs/sbom-schema.md`, `docs/scan-schema.md`),
//! CycloneDX, and the terminal table.
//!
//! This crate only shapes data that earlier stages produced; it never reads
//! images or files.

pub mod cyclonedx;
pub mod sbom;
pub mod scan;
pub mod table;

pub use sbom::{ImageIdentity, LayerInfo, SbomReport, SBOM_SCHEMA, SBOM_SCHEMA_VERSION};
pub use scan::{DbInfo, ScanReport, SCAN_SCHEMA, SCAN_SCHEMA_VERSION};
