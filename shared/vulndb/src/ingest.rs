//! Reading OSV advisories from local sources: `all.zip` archives as the OSV
//! bucket serves them, directories of JSON files (searched recursively), and
//! single files. (URLs are downloaded to a file first by the caller.)
//!
//! A malformed record is skipped and counted with its reason; it never stops
//! the build. Archives are hostile input: entry sizes and counts are capped.

use crate::db::SourceInfo;
use crate::osv::OsvRecord;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest single advisory accepted (the biggest real ones are a few MiB).
const MAX_RECORD: u64 = 32 << 20;
/// Most entries read from one archive.
const MAX_ENTRIES: usize = 5_000_000;

/// A record that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Source and entry (`all.zip:GHSA-….json`).
    pub location: String,
    /// Why.
    pub reason: String,
}

/// The outcome of reading sources.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Parsed records.
    pub records: Vec<OsvRecord>,
    /// What was read from each source.
    pub sources: Vec<SourceInfo>,
    /// Records that were skipped.
    pub skipped: Vec<Skipped>,
}

/// Why a source could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The path does not exist or cannot be read.
    #[error("cannot read advisory source {path}: {source}")]
    Io {
        /// The source.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A `.zip` that is not a readable archive.
    #[error("advisory source {path} is not a valid zip archive: {reason}")]
    BadArchive {
        /// The source.
        path: String,
        /// Why.
        reason: String,
    },
}

impl Ingested {
    /// Reads several sources, one thread per source (parsing JSON is the
    /// bulk of a build), merged in the order given.
    pub fn from_paths(paths: &[std::path::PathBuf]) -> Result<Ingested, IngestError> {
        let parts: Vec<Result<Ingested, IngestError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = paths
                .iter()
                .map(|path| {
                    scope.spawn(move || {
                        let mut part = Ingested::default();
                        part.add_path(path).map(|()| part)
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(paths)
                .map(|(h, path)| {
                    h.join().unwrap_or_else(|_| {
                        Err(IngestError::Io {
                            path: path.display().to_string(),
                            source: std::io::Error::other("ingest thread panicked"),
                        })
                    })
                })
                .collect()
        });
        let mut all = Ingested::default();
        for part in parts {
            let mut part = part?;
            all.records.append(&mut part.records);
            all.sources.append(&mut part.sources);
            all.skipped.append(&mut part.skipped);
        }
        Ok(all)
    }

    /// Reads one source: a `.zip` archive, a directory, or a JSON file.
    pub fn add_path(&mut self, path: &Path) -> Result<(), IngestError> {
        let io = |source| IngestError::Io { path: path.display().to_string(), source };
        let meta = std::fs::metadata(path).map_err(io)?;
        let before = self.records.len();
        let sha256 = if meta.is_dir() {
            self.add_dir(path)?
        } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
            self.add_zip(path)?
        } else {
            let bytes = read_capped(std::fs::File::open(path).map_err(io)?, MAX_RECORD).map_err(io)?;
            let digest = hex::encode(Sha256::digest(&bytes));
            self.add_json(&path.display().to_string(), &bytes);
            digest
        };
        self.sources.push(SourceInfo {
            name: path.display().to_string(),
            sha256,
            records: (self.records.len() - before) as u64,
        });
        Ok(())
    }

    fn add_zip(&mut self, path: &Path) -> Result<String, IngestError> {
        let io = |source| IngestError::Io { path: path.display().to_string(), source };
        let bad = |reason: String| IngestError::BadArchive { path: path.display().to_string(), reason };
        let file_digest = {
            let mut h = Sha256::new();
            std::io::copy(&mut std::fs::File::open(path).map_err(io)?, &mut h).map_err(io)?;
            hex::encode(h.finalize())
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
        if archive.len() > MAX_ENTRIES {
            return Err(bad(format!("{} entries is more than the {MAX_ENTRIES} allowed", archive.len())));
        }
        let source = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for i in 0..archive.len() {
            let mut entry = match archive.by_index(i) {
                Ok(e) => e,
                Err(e) => {
                    self.skip(format!("{source}#{i}"), format!("unreadable entry: {e}"));
                    continue;
                }
            };
            if entry.is_dir() || !entry.name().ends_with(".json") {
                continue;
            }
            let location = format!("{source}:{}", entry.name());
            if entry.size() > MAX_RECORD {
                self.skip(location, format!("{} bytes is larger than the {MAX_RECORD}-byte limit", entry.size()));
                continue;
            }
            match read_capped(&mut entry, MAX_RECORD) {
                Ok(bytes) => self.add_json(&location, &bytes),
                Err(e) => self.skip(location, format!("cannot decompress: {e}")),
            }
        }
        Ok(file_digest)
    }

    fn add_dir(&mut self, dir: &Path) -> Result<String, IngestError> {
        let mut files = Vec::new();
        collect_json_files(dir, &mut files)
            .map_err(|source| IngestError::Io { path: dir.display().to_string(), source })?;
        files.sort();
        let mut combined = Sha256::new();
        for f in files {
            match std::fs::File::open(&f).and_then(|file| read_capped(file, MAX_RECORD)) {
                Ok(bytes) => {
                    combined.update(Sha256::digest(&bytes));
                    self.add_json(&f.display().to_string(), &bytes);
                }
                Err(e) => self.skip(f.display().to_string(), format!("unreadable: {e}")),
            }
        }
        Ok(hex::encode(combined.finalize()))
    }

    fn add_json(&mut self, location: &str, bytes: &[u8]) {
        match serde_json::from_slice::<OsvRecord>(bytes) {
            Ok(record) => match validate(&record) {
                Ok(()) => self.records.push(record),
                Err(reason) => self.skip(location.to_string(), reason),
            },
            Err(e) => self.skip(location.to_string(), format!("not a valid OSV record: {e}")),
        }
    }

    fn skip(&mut self, location: String, reason: String) {
        tracing::debug!(%location, %reason, "skipping advisory");
        self.skipped.push(Skipped { location, reason });
    }
}

/// Structural checks serde cannot express.
fn validate(record: &OsvRecord) -> Result<(), String> {
    if record.id.trim().is_empty() {
        return Err("empty id".into());
    }
    for a in &record.affected {
        for r in &a.ranges {
            for e in &r.events {
                let set = [&e.introduced, &e.fixed, &e.last_affected, &e.limit].iter().filter(|f| f.is_some()).count();
                if set != 1 {
                    return Err(format!("range event with {set} fields set (exactly one required)"));
                }
            }
            if (r.kind == "ECOSYSTEM" || r.kind == "SEMVER") && !r.events.iter().any(|e| e.introduced.is_some()) {
                return Err(format!("{} range without an introduced event", r.kind));
            }
        }
    }
    Ok(())
}

fn collect_json_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        let path = entry.path();
        if ft.is_dir() {
            collect_json_files(&path, out)?;
        } else if ft.is_file() && path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

fn read_capped(r: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(buf)
}
