//! The one interface every package format implements.
//!
//! A walker (over a layer tar stream or a directory) asks each cataloger, for
//! every regular file, whether it [`wants`](Cataloger::wants) it — a cheap test
//! on the path and metadata. The first cataloger that says yes receives the
//! file's content as a reader and returns what it found. Catalogers never walk
//! and never see files they did not ask for, which keeps the streaming walk to
//! one pass and bounded memory.

use crate::distro::Distro;
use crate::package::Package;
use std::io::{self, Read, Write};
use std::path::Path;

/// What a walker knows about a file before reading it.
#[derive(Debug, Clone, Copy)]
pub struct FileMeta<'a> {
    /// Normalised path inside the image: relative, `/`-separated, no `.`/`..` components.
    pub path: &'a str,
    /// Size in bytes.
    pub size: u64,
    /// Unix permission bits (`0o755`…).
    pub mode: u32,
}

impl FileMeta<'_> {
    /// The last path component.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }

    /// True if any execute bit is set.
    pub fn is_executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
}

/// What a cataloger found in one file.
#[derive(Debug, Default, Clone)]
pub struct Found {
    /// Packages recorded by the file (their `path` is filled in by the walker).
    pub packages: Vec<Package>,
    /// The distribution, for release files.
    pub distro: Option<Distro>,
    /// Non-fatal problems (e.g. one unparsable entry among many), for the report.
    pub warnings: Vec<String>,
}

impl Found {
    /// A result holding only packages.
    pub fn packages(packages: Vec<Package>) -> Self {
        Found { packages, ..Default::default() }
    }
}

/// Why a cataloger could not read a file it asked for. The walk goes on; the
/// error is recorded against the file in the inventory.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file is larger than this cataloger's cap.
    #[error("{size} bytes exceeds the {limit}-byte limit for this file type")]
    TooLarge {
        /// Actual size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// The content is not in the expected format.
    #[error("malformed: {0}")]
    Malformed(String),
    /// Reading the content failed (e.g. the layer stream broke).
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

impl CatalogError {
    /// Shorthand for [`CatalogError::Malformed`].
    pub fn malformed(msg: impl Into<String>) -> Self {
        CatalogError::Malformed(msg.into())
    }
}

/// Shared services a cataloger may use while parsing one file.
#[derive(Debug)]
pub struct CatalogContext {
    scratch_dir: tempfile::TempDir,
    scratch_limit: u64,
}

impl CatalogContext {
    /// A context whose scratch files live in a new private temporary
    /// directory and may hold at most `scratch_limit` bytes each.
    pub fn new(scratch_limit: u64) -> io::Result<Self> {
        let scratch_dir = tempfile::Builder::new().prefix("trawl-scratch-").tempdir()?;
        Ok(CatalogContext { scratch_dir, scratch_limit })
    }

    /// Copies `content` into a private temporary file, for formats that need
    /// random access (e.g. an rpm sqlite database). Fails when the content is
    /// above the scratch limit; the file is deleted when the handle drops.
    pub fn spill(&self, content: &mut dyn Read) -> Result<tempfile::NamedTempFile, CatalogError> {
        let mut file = tempfile::NamedTempFile::new_in(self.scratch_dir.path())?;
        let copied = io::copy(&mut content.take(self.scratch_limit + 1), &mut file)?;
        if copied > self.scratch_limit {
            return Err(CatalogError::TooLarge { size: copied, limit: self.scratch_limit });
        }
        file.flush()?;
        Ok(file)
    }

    /// The private scratch directory.
    pub fn scratch_dir(&self) -> &Path {
        self.scratch_dir.path()
    }
}

/// A parser for one package format.
pub trait Cataloger: Send + Sync {
    /// Stable name, e.g. `dpkg`.
    fn name(&self) -> &'static str;

    /// Bumped whenever the output for the same input may change; part of
    /// layer-cache keys.
    fn version(&self) -> u32;

    /// Cheap test, called for every regular file: does this cataloger parse it?
    fn wants(&self, file: &FileMeta<'_>) -> bool;

    /// Largest file this cataloger will read; bigger wanted files are recorded
    /// as errors without being read.
    fn max_size(&self) -> u64 {
        64 << 20
    }

    /// Parses one wanted file.
    fn catalog(&self, file: &FileMeta<'_>, content: &mut dyn Read, ctx: &CatalogContext)
        -> Result<Found, CatalogError>;
}

/// Reads all of `content` into memory, refusing more than `limit` bytes.
pub fn read_capped(content: &mut dyn Read, limit: u64) -> Result<Vec<u8>, CatalogError> {
    let mut buf = Vec::new();
    content.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(CatalogError::TooLarge { size: buf.len() as u64, limit });
    }
    Ok(buf)
}

/// Reads all of `content` as UTF-8 text (invalid sequences replaced), refusing more than `limit` bytes.
pub fn read_text_capped(content: &mut dyn Read, limit: u64) -> Result<String, CatalogError> {
    let bytes = read_capped(content, limit)?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}
