//! The compiled vulnerability database and its file format.
//!
//! A file is `MAGIC`, a little-endian `u32` header length, the header
//! (MessagePack), then the body (MessagePack, zstd-compressed). The header is
//! readable without touching the body (`trawl-updater info`) and carries the
//! body's SHA-256, so a corrupt or truncated file is rejected before it is
//! decompressed. Advisories are indexed by (ecosystem, package name) for
//! direct lookup.

use crate::osv::{OsvEvent, OsvRecord};
use crate::severity::{self, Severity};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// First bytes of every database file.
pub const MAGIC: &[u8; 8] = b"TRAWLDB\n";
/// Layout version of the file; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;
/// Largest header accepted (it holds source lists and counts only).
const MAX_HEADER: u32 = 1 << 20;
/// Largest decompressed body accepted.
const MAX_BODY: u64 = 8 << 30;

/// Why a database could not be built, written or loaded.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Not a Trawl database at all.
    #[error("{0} is not a Trawl vulnerability database (bad magic); build one with `trawl-updater build`")]
    NotADatabase(String),
    /// Written by an incompatible version.
    #[error("database format {found} is not supported by this build (expects {expected}); rebuild it with this version of trawl-updater")]
    Format {
        /// Format in the file.
        found: u32,
        /// Format this build reads.
        expected: u32,
    },
    /// Damaged: truncated, checksum mismatch, undecodable.
    #[error("database is corrupt: {0}")]
    Corrupt(String),
    /// Reading or writing the file failed.
    #[error("cannot access the database file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Where the advisories came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Path or URL as given.
    pub name: String,
    /// SHA-256 of the source file (for directories: of the sorted file digests).
    pub sha256: String,
    /// Records read from it.
    pub records: u64,
}

/// Record counts, for `info` and sanity checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbCounts {
    /// Advisories stored.
    pub advisories: u64,
    /// (ecosystem, package) entries.
    pub packages: u64,
    /// Affected-package entries.
    pub affected: u64,
    /// Withdrawn advisories left out.
    pub withdrawn: u64,
    /// Malformed records skipped.
    pub skipped: u64,
}

/// The database header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbHeader {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// Monotonic database version (milliseconds since the Unix epoch at build time).
    pub version: u64,
    /// Build time, RFC 3339.
    pub built_at: String,
    /// Sources compiled in.
    pub sources: Vec<SourceInfo>,
    /// Counts.
    pub counts: DbCounts,
    /// Ecosystems with at least one advisory; body entries refer to them by position.
    pub ecosystems: Vec<String>,
    /// SHA-256 of the compressed body.
    pub body_sha256: String,
    /// Length of the compressed body in bytes.
    pub body_len: u64,
}

/// One advisory's facts shared by all its affected packages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    /// Advisory id.
    pub id: String,
    /// Aliases and upstream ids (CVE…), deduplicated.
    pub aliases: Vec<String>,
    /// Summary (or the start of the details).
    pub summary: String,
    /// Severity for the whole advisory.
    pub severity: Option<Severity>,
    /// Primary link (advisory page).
    pub url: Option<String>,
}

/// A range event with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// First affected version; `0` means all earlier versions.
    Introduced(String),
    /// First fixed version.
    Fixed(String),
    /// Last affected version (inclusive).
    LastAffected(String),
    /// Exclusive upper limit.
    Limit(String),
}

/// How one advisory affects one package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    /// Index into the advisory table.
    pub advisory: u32,
    /// Version ranges (ECOSYSTEM and SEMVER; GIT ranges cannot be matched to package versions).
    pub ranges: Vec<Vec<Event>>,
    /// Explicitly affected versions.
    pub versions: Vec<String>,
    /// Package-specific severity, overriding the advisory's.
    pub severity: Option<Severity>,
}

/// All advisories for one (ecosystem, name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageEntry {
    /// Index into the header's ecosystem list.
    pub ecosystem: u32,
    /// Normalised package name.
    pub name: String,
    /// Advisories affecting it.
    pub affected: Vec<Affected>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Body {
    advisories: Vec<Advisory>,
    packages: Vec<PackageEntry>,
}

/// A loaded database, indexed for lookup.
#[derive(Debug)]
pub struct Database {
    header: DbHeader,
    body: Body,
    index: Index,
}

/// (ecosystem, name) → package entry, without copying the names: the key is
/// a 64-bit hash of the name, and the entry's own name confirms a hit. The
/// rare true hash collision goes to a small map with full keys.
#[derive(Debug, Default)]
struct Index {
    ecosystems: HashMap<String, u32>,
    by_hash: HashMap<(u32, u64), u32>,
    collisions: HashMap<(u32, String), u32>,
}

impl Index {
    fn build(ecosystems: &[String], packages: &[PackageEntry]) -> Index {
        let mut index = Index {
            ecosystems: ecosystems.iter().enumerate().map(|(i, e)| (e.clone(), i as u32)).collect(),
            ..Default::default()
        };
        // Only ecosystems that have entries count as covered.
        let mut used = vec![false; ecosystems.len()];
        for (i, p) in packages.iter().enumerate() {
            if let Some(u) = used.get_mut(p.ecosystem as usize) {
                *u = true;
            }
            match index.by_hash.entry((p.ecosystem, name_hash(&p.name))) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i as u32);
                }
                std::collections::hash_map::Entry::Occupied(_) => {
                    index.collisions.insert((p.ecosystem, p.name.clone()), i as u32);
                }
            }
        }
        index.ecosystems.retain(|_, id| used.get(*id as usize).copied().unwrap_or(false));
        index
    }

    fn find(&self, packages: &[PackageEntry], ecosystem: &str, name: &str) -> Option<u32> {
        let eco = *self.ecosystems.get(ecosystem)?;
        let i = *self.by_hash.get(&(eco, name_hash(name)))?;
        if packages.get(i as usize).is_some_and(|p| p.name == name) {
            return Some(i);
        }
        self.collisions.get(&(eco, name.to_string())).copied()
    }
}

/// A stable 64-bit hash (SipHash with fixed keys) of a package name.
fn name_hash(name: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(name)
}

/// The name an ecosystem files a package under: PyPI names are PEP 503
/// normalised and Packagist names are case-insensitive, so both sides of a
/// lookup go through this.
pub fn normalize_name(ecosystem: &str, name: &str) -> String {
    match ecosystem {
        "PyPI" => trawl_catalog::package::normalize_python_name(name),
        "Packagist" => name.to_ascii_lowercase(),
        _ => name.to_string(),
    }
}

impl Database {
    /// The header.
    pub fn header(&self) -> &DbHeader {
        &self.header
    }

    /// Overrides the version stamped at build time (tools and tests that need
    /// a specific ordering between databases built in the same millisecond).
    pub fn with_version(mut self, version: u64) -> Self {
        self.header.version = version;
        self
    }

    /// The advisory at `index`.
    pub fn advisory(&self, index: u32) -> Option<&Advisory> {
        self.body.advisories.get(index as usize)
    }

    /// True when some advisory covers this ecosystem.
    pub fn covers(&self, ecosystem: &str) -> bool {
        self.index.ecosystems.contains_key(ecosystem)
    }

    /// Advisories for a package; `name` must already be normalised.
    pub fn lookup(&self, ecosystem: &str, name: &str) -> &[Affected] {
        self.index
            .find(&self.body.packages, ecosystem, name)
            .and_then(|i| self.body.packages.get(i as usize))
            .map(|p| p.affected.as_slice())
            .unwrap_or(&[])
    }

    /// Up to `n` (ecosystem, name, version) triples spread evenly over the
    /// database, each with a version taken from its first range, for
    /// benchmarks and tests that need realistic lookups.
    pub fn sample_entries(&self, n: usize) -> Vec<(String, String, String)> {
        let step = (self.body.packages.len() / n.max(1)).max(1);
        self.body
            .packages
            .iter()
            .step_by(step)
            .filter_map(|p| {
                let eco = self.header.ecosystems.get(p.ecosystem as usize)?;
                let version = p.affected.iter().flat_map(|a| a.ranges.iter().flatten()).find_map(|e| match e {
                    Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) if v != "0" => Some(v.clone()),
                    _ => None,
                })?;
                Some((eco.clone(), p.name.clone(), version))
            })
            .take(n)
            .collect()
    }

    /// Compiles records into a database.
    pub fn build(records: impl IntoIterator<Item = OsvRecord>, sources: Vec<SourceInfo>, skipped: u64) -> Database {
        let mut body = Body::default();
        let mut ecosystems: Vec<String> = Vec::new();
        let mut eco_ids: HashMap<String, u32> = HashMap::new();
        let mut package_ids: HashMap<(u32, String), u32> = HashMap::new();
        let mut counts = DbCounts { skipped, ..Default::default() };
        for record in records {
            if record.withdrawn.is_some() {
                counts.withdrawn += 1;
                continue;
            }
            let advisory_index = body.advisories.len() as u32;
            let mut any = false;
            for affected in &record.affected {
                let Some(pkg) = &affected.package else { continue };
                if pkg.ecosystem.is_empty() || pkg.name.is_empty() {
                    continue;
                }
                let ranges: Vec<Vec<Event>> = affected
                    .ranges
                    .iter()
                    .filter(|r| r.kind == "ECOSYSTEM" || r.kind == "SEMVER")
                    .map(|r| r.events.iter().filter_map(convert_event).collect::<Vec<_>>())
                    .filter(|events| !events.is_empty())
                    .collect();
                if ranges.is_empty() && affected.versions.is_empty() {
                    continue;
                }
                let eco = match eco_ids.get(&pkg.ecosystem) {
                    Some(&id) => id,
                    None => {
                        let id = ecosystems.len() as u32;
                        ecosystems.push(pkg.ecosystem.clone());
                        eco_ids.insert(pkg.ecosystem.clone(), id);
                        id
                    }
                };
                let name = normalize_name(&pkg.ecosystem, &pkg.name);
                let pid = *package_ids.entry((eco, name.clone())).or_insert_with(|| {
                    body.packages.push(PackageEntry { ecosystem: eco, name, affected: Vec::new() });
                    (body.packages.len() - 1) as u32
                });
                let severity = severity::resolve(&affected.severity, affected.database_specific.as_ref());
                body.packages[pid as usize].affected.push(Affected {
                    advisory: advisory_index,
                    ranges,
                    versions: affected.versions.clone(),
                    severity,
                });
                counts.affected += 1;
                any = true;
            }
            if any {
                body.advisories.push(compile_advisory(record));
            }
        }
        counts.advisories = body.advisories.len() as u64;
        counts.packages = body.packages.len() as u64;
        let now = chrono::Utc::now();
        let header = DbHeader {
            format: FORMAT_VERSION,
            version: now.timestamp_millis().max(0) as u64,
            built_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            sources,
            counts,
            ecosystems,
            body_sha256: String::new(),
            body_len: 0,
        };
        let index = Index::build(&header.ecosystems, &body.packages);
        Database { header, body, index }
    }

    /// Serialises the database (header + compressed body).
    pub fn to_bytes(&self) -> Result<Vec<u8>, DbError> {
        let raw = rmp_serde::to_vec(&self.body).map_err(|e| DbError::Corrupt(format!("encoding body: {e}")))?;
        let compressed =
            zstd::bulk::compress(&raw, 9).map_err(|e| DbError::Corrupt(format!("compressing body: {e}")))?;
        let mut header = self.header.clone();
        header.body_sha256 = hex::encode(Sha256::digest(&compressed));
        header.body_len = compressed.len() as u64;
        let header_bytes =
            rmp_serde::to_vec_named(&header).map_err(|e| DbError::Corrupt(format!("encoding header: {e}")))?;
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + header_bytes.len() + compressed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header_bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&header_bytes);
        out.extend_from_slice(&compressed);
        Ok(out)
    }

    /// Writes the database to `path` atomically (temp file + rename), so a
    /// reader never sees a half-written file.
    pub fn write(&self, path: &Path) -> Result<(), DbError> {
        let io = |source| DbError::Io { path: path.display().to_string(), source };
        let bytes = self.to_bytes()?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        std::io::Write::write_all(&mut tmp, &bytes).map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Reads only the header of a database file.
    pub fn read_header(path: &Path) -> Result<DbHeader, DbError> {
        let io = |source| DbError::Io { path: path.display().to_string(), source };
        let mut f = std::fs::File::open(path).map_err(io)?;
        let mut prefix = [0u8; 12];
        f.read_exact(&mut prefix).map_err(|_| DbError::NotADatabase(path.display().to_string()))?;
        let len = check_prefix(&prefix, &path.display().to_string())?;
        let mut header = vec![0u8; len as usize];
        f.read_exact(&mut header).map_err(|_| DbError::Corrupt("truncated header".into()))?;
        decode_header(&header)
    }

    /// Loads and verifies a database file.
    pub fn load(path: &Path) -> Result<Database, DbError> {
        let bytes = std::fs::read(path).map_err(|source| DbError::Io { path: path.display().to_string(), source })?;
        Database::from_bytes(&bytes, &path.display().to_string())
    }

    /// Loads and verifies a database from memory (`what` names it in errors).
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Database, DbError> {
        let prefix = bytes.get(..12).ok_or_else(|| DbError::NotADatabase(what.to_string()))?;
        let len = check_prefix(prefix, what)? as usize;
        let header_bytes = bytes.get(12..12 + len).ok_or_else(|| DbError::Corrupt("truncated header".into()))?;
        let header = decode_header(header_bytes)?;
        let body = &bytes[12 + len..];
        if body.len() as u64 != header.body_len {
            return Err(DbError::Corrupt(format!(
                "body is {} bytes, header says {} (truncated?)",
                body.len(),
                header.body_len
            )));
        }
        let actual = hex::encode(Sha256::digest(body));
        if actual != header.body_sha256 {
            return Err(DbError::Corrupt("body checksum mismatch".into()));
        }
        // Decode straight from the decompressor: the decompressed body is
        // never held whole next to the structures built from it.
        let decoder = zstd::stream::read::Decoder::new(body).map_err(|e| DbError::Corrupt(e.to_string()))?;
        let mut limited = std::io::BufReader::with_capacity(256 << 10, decoder.take(MAX_BODY));
        let body: Body =
            rmp_serde::from_read(&mut limited).map_err(|e| DbError::Corrupt(format!("decoding body: {e}")))?;
        if limited.read(&mut [0u8; 1]).map_err(|e| DbError::Corrupt(format!("decompressing: {e}")))? != 0 {
            return Err(DbError::Corrupt("trailing data after the body".into()));
        }
        if body.packages.iter().any(|p| p.ecosystem as usize >= header.ecosystems.len())
            || body.packages.iter().flat_map(|p| &p.affected).any(|a| a.advisory as usize >= body.advisories.len())
        {
            return Err(DbError::Corrupt("dangling index in body".into()));
        }
        let index = Index::build(&header.ecosystems, &body.packages);
        Ok(Database { header, body, index })
    }
}

fn check_prefix(prefix: &[u8], what: &str) -> Result<u32, DbError> {
    if &prefix[..8] != MAGIC {
        return Err(DbError::NotADatabase(what.to_string()));
    }
    let len = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    if len > MAX_HEADER {
        return Err(DbError::Corrupt(format!("header length {len} is implausible")));
    }
    Ok(len)
}

fn decode_header(bytes: &[u8]) -> Result<DbHeader, DbError> {
    // Check the format before decoding the rest: a future header may differ.
    #[derive(Deserialize)]
    struct FormatOnly {
        format: u32,
    }
    let f: FormatOnly = rmp_serde::from_slice(bytes).map_err(|e| DbError::Corrupt(format!("decoding header: {e}")))?;
    if f.format != FORMAT_VERSION {
        return Err(DbError::Format { found: f.format, expected: FORMAT_VERSION });
    }
    rmp_serde::from_slice(bytes).map_err(|e| DbError::Corrupt(format!("decoding header: {e}")))
}

fn convert_event(e: &OsvEvent) -> Option<Event> {
    // A valid event sets exactly one field; take the first that is set.
    if let Some(v) = &e.introduced {
        return Some(Event::Introduced(v.clone()));
    }
    if let Some(v) = &e.fixed {
        return Some(Event::Fixed(v.clone()));
    }
    if let Some(v) = &e.last_affected {
        return Some(Event::LastAffected(v.clone()));
    }
    e.limit.as_ref().map(|v| Event::Limit(v.clone()))
}

/// Longest summary kept; details can be many kilobytes per advisory.
const MAX_SUMMARY: usize = 200;

fn compile_advisory(record: OsvRecord) -> Advisory {
    let mut aliases: Vec<String> =
        record.aliases.iter().chain(&record.upstream).filter(|a| **a != record.id).cloned().collect();
    aliases.sort();
    aliases.dedup();
    let summary = record
        .summary
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .or(record.details.as_deref())
        .map(|s| {
            let line = s.trim().lines().next().unwrap_or("").trim();
            match line.char_indices().nth(MAX_SUMMARY) {
                Some((cut, _)) => format!("{}…", &line[..cut]),
                None => line.to_string(),
            }
        })
        .unwrap_or_default();
    let url = record
        .references
        .iter()
        .find(|r| r.kind == "ADVISORY")
        .or_else(|| record.references.iter().find(|r| r.kind == "WEB"))
        .map(|r| r.url.clone());
    Advisory {
        severity: severity::resolve(&record.severity, record.database_specific.as_ref()),
        id: record.id,
        aliases,
        summary,
        url,
    }
}
