//! Report documents built from an inventory: Trawl's own versioned JSON
//! schema (documented in `docs/sbom-schema.md`) and CycloneDX.
//!
//! This crate only shapes data that earlier stages produced; it never reads
//! images or files.

pub mod cyclonedx;
pub mod sbom;

pub use sbom::{ImageIdentity, LayerInfo, SbomReport, SBOM_SCHEMA, SBOM_SCHEMA_VERSION};
