//! Trawl's vulnerability database.
//!
//! * [`osv`] — the OSV record schema.
//! * [`ingest`] — reading OSV archives, directories and files, counting what is malformed.
//! * [`severity`] — CVSS v2/v3/v4 scores and qualitative ratings.
//! * [`db`] — the compiled, versioned, checksummed database file, indexed by
//!   (ecosystem, package name).
//! * [`matcher`] — inventory → findings, with per-ecosystem version semantics
//!   from `trawl-version`, alias merging and OS coverage status.

pub mod db;
pub mod ingest;
pub mod matcher;
pub mod osv;
pub mod severity;

pub use db::{Database, DbError, DbHeader};
pub use ingest::{IngestError, Ingested};
pub use matcher::{CachedMatcher, Finding, MatchResult, Matcher, OsCoverage};
pub use severity::{Rating, Severity};
