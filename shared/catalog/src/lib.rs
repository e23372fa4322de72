//! Package catalogers and the streaming layer walker.
//!
//! This crate turns filesystem content into a package [`Inventory`]. It knows
//! nothing about registries or image formats: it is handed uncompressed tar
//! streams (one per layer) or a directory tree.
//!
//! * [`cataloger`] — the one interface each package format implements: which
//!   files it wants, how it parses one.
//! * [`os`], [`language`], [`binary`] — one small module per format.
//! * [`walker`] — reads one layer in a single pass, keeping only what the
//!   catalogers found (never the files themselves), so memory does not grow
//!   with image size.
//! * [`merge`] — stacks layers with OCI whiteout semantics into an inventory
//!   where every package records the layer that introduced it.
//! * [`package`], [`distro`] — the package model and OSV/purl naming.

pub mod binary;
pub mod cataloger;
pub mod distro;
pub mod language;
pub mod merge;
pub mod os;
pub mod package;
pub mod walker;

pub use cataloger::{CatalogContext, CatalogError, Cataloger, FileMeta, Found};
pub use distro::Distro;
pub use merge::{FileIssue, Inventory, LayerStack};
pub use package::{Package, PackageType};
pub use walker::{CatalogerSet, DirWalker, FileOutcome, FileRecord, LayerInventory, LayerWalker, WalkError};

/// Version of what this crate makes of a layer: the first part of every
/// layer-cache key (`TRAWL_LAYERS`, `<version>.<layer digest hex>`), so
/// scanners only ever reuse inventories produced by the same code.
///
/// Bump it whenever the [`LayerInventory`] of the same layer bytes could
/// change: a cataloger's output (bump that cataloger's
/// [`Cataloger::version`] too), the set or order of [`default_catalogers`],
/// the walker (which files are wanted, symlink and whiteout handling, limits),
/// or the shape of [`LayerInventory`], [`FileRecord`] or [`Package`]. A stale
/// value is harmless only in one direction: bumping it needlessly costs one
/// re-walk of every layer; forgetting to bump it serves old inventories for
/// up to the cache's 7-day age.
pub const CATALOGER_VERSION: &str = "1";

/// Every cataloger Trawl ships, in the order they are offered each file.
pub fn default_catalogers() -> CatalogerSet {
    let mut all = os::catalogers();
    all.extend(language::catalogers());
    all.extend(binary::catalogers());
    CatalogerSet::new(all)
}
