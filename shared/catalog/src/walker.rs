//! Walkers turn one filesystem layer — a tar stream or a directory tree —
//! into a [`LayerInventory`]: what the catalogers found in the files they
//! wanted, plus the whiteouts and symlinks needed to stack layers later.
//!
//! A layer is walked on its own, without knowing the layers below it, so that
//! layers can be processed concurrently and their inventories cached by
//! digest. Stacking happens afterwards in [`crate::merge`].

use crate::cataloger::{CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use crate::distro::Distro;
use crate::package::Package;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::io::{self, Read};
use std::path::{Component, Path};
use std::rc::Rc;
use std::sync::Arc;

/// Prefix of a whiteout file name (OCI image spec, "Whiteouts").
const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque-directory marker.
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Symlink hops followed when resolving a path; more means a loop.
const MAX_SYMLINK_HOPS: usize = 16;

/// Everything one layer contributes to the image's inventory.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct LayerInventory {
    /// Wanted files, in archive order (a later record for the same path wins).
    pub files: Vec<FileRecord>,
    /// Paths this layer deletes from the layers below (file or whole directory).
    pub whiteouts: Vec<String>,
    /// Directories whose contents from the layers below this layer hides.
    pub opaque_dirs: Vec<String>,
    /// Symlinks at wanted paths: (link path, normalised target path).
    pub symlinks: Vec<(String, String)>,
    /// Number of archive entries walked.
    pub entries: u64,
    /// Uncompressed bytes walked.
    pub bytes: u64,
}

/// The outcome of cataloging one wanted file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path inside the image.
    pub path: String,
    /// Name of the cataloger that read it.
    pub cataloger: String,
    /// What it found, or why it could not read the file.
    pub outcome: FileOutcome,
}

/// Success or failure of one file's cataloging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOutcome {
    /// Parsed (possibly with warnings).
    Found {
        /// Packages the file records.
        packages: Vec<Package>,
        /// Distribution, for release files.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        distro: Option<Distro>,
        /// Non-fatal problems.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// Could not be parsed; the rest of the scan goes on.
    Failed(String),
}

/// Why a layer could not be walked at all. Unlike a [`CatalogError`], this
/// fails the scan: the layer's content cannot be trusted or read.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The stream broke or is not a valid tar archive (corrupt compression,
    /// truncated blob, digest mismatch, size limit hit…).
    #[error("{0}")]
    Read(#[source] io::Error),
    /// An entry path escapes the filesystem root.
    #[error("unsafe path {path:?} in archive: entries must be relative and must not contain '..'")]
    UnsafePath {
        /// The offending path, as written in the archive.
        path: String,
    },
}

/// The set of catalogers to run, in priority order.
#[derive(Clone)]
pub struct CatalogerSet {
    catalogers: Arc<Vec<Box<dyn Cataloger>>>,
}

impl CatalogerSet {
    /// Wraps a list of catalogers; the first that wants a file gets it.
    pub fn new(catalogers: Vec<Box<dyn Cataloger>>) -> Self {
        CatalogerSet { catalogers: Arc::new(catalogers) }
    }

    /// The cataloger that wants this file, if any.
    pub fn select(&self, file: &FileMeta<'_>) -> Option<&dyn Cataloger> {
        self.catalogers.iter().find(|c| c.wants(file)).map(|c| c.as_ref())
    }

    /// `name@version` of every cataloger, for cache keys.
    pub fn fingerprint(&self) -> String {
        self.catalogers.iter().map(|c| format!("{}@{}", c.name(), c.version())).collect::<Vec<_>>().join(",")
    }

    /// Runs the selected cataloger on one file and turns the result into a record.
    fn catalog(
        &self,
        cataloger: &dyn Cataloger,
        meta: &FileMeta<'_>,
        content: &mut dyn Read,
        ctx: &CatalogContext,
    ) -> FileRecord {
        let outcome = if meta.size > cataloger.max_size() {
            FileOutcome::Failed(CatalogError::TooLarge { size: meta.size, limit: cataloger.max_size() }.to_string())
        } else {
            match cataloger.catalog(meta, content, ctx) {
                Ok(Found { mut packages, distro, warnings }) => {
                    for p in &mut packages {
                        if p.path.is_empty() {
                            p.path = meta.path.to_string();
                        }
                    }
                    FileOutcome::Found { packages, distro, warnings }
                }
                Err(e) => FileOutcome::Failed(e.to_string()),
            }
        };
        FileRecord { path: meta.path.to_string(), cataloger: cataloger.name().to_string(), outcome }
    }
}

impl std::fmt::Debug for CatalogerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.catalogers.iter().map(|c| c.name())).finish()
    }
}

/// Walks a layer's tar stream once, handing wanted files to catalogers.
pub struct LayerWalker<'a> {
    catalogers: &'a CatalogerSet,
    ctx: &'a CatalogContext,
}

impl<'a> LayerWalker<'a> {
    /// A walker running `catalogers`, with scratch space from `ctx`.
    pub fn new(catalogers: &'a CatalogerSet, ctx: &'a CatalogContext) -> Self {
        LayerWalker { catalogers, ctx }
    }

    /// Reads the whole tar stream (an uncompressed layer) and returns its inventory.
    pub fn walk<R: Read>(&self, tar_stream: R) -> Result<LayerInventory, WalkError> {
        let mut inv = LayerInventory::default();
        let failure = Rc::new(RefCell::new(None));
        let mut archive = tar::Archive::new(StreamHealth { inner: tar_stream, failure: failure.clone() });
        let entries = archive.entries().map_err(WalkError::Read)?;
        for entry in entries {
            let mut entry = entry.map_err(WalkError::Read)?;
            inv.entries += 1;
            let raw_path = entry.path().map_err(WalkError::Read)?.into_owned();
            let Some(path) = normalize_entry_path(&raw_path)? else { continue };
            let header = entry.header();
            let size = entry.size();
            inv.bytes += size;
            let mode = header.mode().unwrap_or(0o644);
            let kind = header.entry_type();

            let (dir, name) = split_parent(&path);
            if name == OPAQUE_MARKER {
                inv.opaque_dirs.push(dir.to_string());
                continue;
            }
            if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                inv.whiteouts.push(join(dir, hidden));
                continue;
            }

            if kind.is_file() || kind == tar::EntryType::Continuous || kind == tar::EntryType::GNUSparse {
                let meta = FileMeta { path: &path, size, mode };
                if let Some(cataloger) = self.catalogers.select(&meta) {
                    let record = self.catalogers.catalog(cataloger, &meta, &mut entry, self.ctx);
                    // A read error inside a cataloger may be the layer stream
                    // breaking, not the file being bad: that fails the layer.
                    io::copy(&mut entry, &mut io::sink()).map_err(WalkError::Read)?;
                    if let Some((kind, msg)) = failure.borrow_mut().take() {
                        return Err(WalkError::Read(io::Error::new(kind, msg)));
                    }
                    inv.files.push(record);
                }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let meta = FileMeta { path: &path, size: 0, mode };
                if self.catalogers.select(&meta).is_none() {
                    continue;
                }
                let Some(target) = entry.link_name().map_err(WalkError::Read)? else { continue };
                let target = target.to_string_lossy();
                if kind.is_symlink() {
                    if let Some(resolved) = resolve_link_target(dir, &target) {
                        inv.symlinks.push((path.clone(), resolved));
                    }
                } else if let Some(target) = normalize_link_path(&target) {
                    // A hard link shares its target's content, which is earlier
                    // in this same layer; reuse that file's record.
                    if let Some(rec) = inv.files.iter().rev().find(|r| r.path == target).cloned() {
                        let mut rec = rec;
                        rec.path = path.clone();
                        if let FileOutcome::Found { packages, .. } = &mut rec.outcome {
                            for p in packages.iter_mut() {
                                p.path = path.clone();
                            }
                        }
                        inv.files.push(rec);
                    }
                }
            }
        }
        // Read to the true end so that trailing garbage or a truncated
        // stream is noticed and the digest check sees every byte.
        let mut inner = archive.into_inner();
        io::copy(&mut inner, &mut io::sink()).map_err(WalkError::Read)?;
        Ok(inv)
    }
}

/// Walks a directory tree (a root filesystem) without following symlinks.
pub struct DirWalker<'a> {
    catalogers: &'a CatalogerSet,
    ctx: &'a CatalogContext,
}

impl<'a> DirWalker<'a> {
    /// A walker running `catalogers`, with scratch space from `ctx`.
    pub fn new(catalogers: &'a CatalogerSet, ctx: &'a CatalogContext) -> Self {
        DirWalker { catalogers, ctx }
    }

    /// Walks `root` and returns its inventory plus the paths that could not be read.
    pub fn walk(&self, root: &Path, skip: &[&Path]) -> (LayerInventory, Vec<(String, String)>) {
        let mut inv = LayerInventory::default();
        let mut unreadable = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let read_dir = match std::fs::read_dir(&dir) {
                Ok(r) => r,
                Err(e) => {
                    unreadable.push((rel_path(root, &dir), e.to_string()));
                    continue;
                }
            };
            let mut children: Vec<_> = read_dir.filter_map(Result::ok).collect();
            children.sort_by_key(|e| e.file_name());
            for child in children.into_iter().rev() {
                let full = child.path();
                if skip.iter().any(|s| full.starts_with(s)) {
                    continue;
                }
                let Ok(ft) = child.file_type() else { continue };
                let rel = rel_path(root, &full);
                inv.entries += 1;
                if ft.is_dir() {
                    stack.push(full);
                } else if ft.is_symlink() {
                    let meta = FileMeta { path: &rel, size: 0, mode: 0o777 };
                    if self.catalogers.select(&meta).is_some() {
                        if let Ok(target) = std::fs::read_link(&full) {
                            let (parent, _) = split_parent(&rel);
                            if let Some(t) = resolve_link_target(parent, &target.to_string_lossy()) {
                                inv.symlinks.push((rel, t));
                            }
                        }
                    }
                } else if ft.is_file() {
                    let Ok(md) = child.metadata() else { continue };
                    #[cfg(unix)]
                    let mode = std::os::unix::fs::PermissionsExt::mode(&md.permissions());
                    #[cfg(not(unix))]
                    let mode = 0o644;
                    let meta = FileMeta { path: &rel, size: md.len(), mode };
                    let Some(cataloger) = self.catalogers.select(&meta) else { continue };
                    match std::fs::File::open(&full) {
                        Ok(mut f) => {
                            inv.bytes += md.len();
                            inv.files.push(self.catalogers.catalog(cataloger, &meta, &mut f, self.ctx));
                        }
                        Err(e) => unreadable.push((rel, e.to_string())),
                    }
                }
            }
        }
        (inv, unreadable)
    }
}

fn rel_path(root: &Path, full: &Path) -> String {
    full.strip_prefix(root).unwrap_or(full).to_string_lossy().into_owned()
}

/// Remembers whether the underlying stream failed, so the walker can tell a
/// broken layer from a file a cataloger merely disliked.
struct StreamHealth<R> {
    inner: R,
    failure: Rc<RefCell<Option<(io::ErrorKind, String)>>>,
}

impl<R: Read> Read for StreamHealth<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                *self.failure.borrow_mut() = Some((e.kind(), e.to_string()));
            }
        })
    }
}

/// Normalises an archive entry path: strips `./` and a trailing `/`, rejects
/// absolute paths and `..`. Returns `Ok(None)` for the root entry itself.
pub fn normalize_entry_path(raw: &Path) -> Result<Option<String>, WalkError> {
    let mut parts: Vec<String> = Vec::new();
    for comp in raw.components() {
        match comp {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(WalkError::UnsafePath { path: raw.to_string_lossy().into_owned() })
            }
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// Normalises a hard-link target (relative to the archive root).
fn normalize_link_path(target: &str) -> Option<String> {
    normalize_entry_path(Path::new(target)).ok().flatten()
}

/// Resolves a symlink target written in directory `dir` to a root-relative path,
/// clamping `..` at the root as the kernel does inside a chroot.
pub fn resolve_link_target(dir: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> =
        if target.starts_with('/') || dir.is_empty() { Vec::new() } else { dir.split('/').collect() };
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Follows symlinks (from any layer, merged) until a non-link path.
pub(crate) fn follow_symlinks(path: &str, links: &std::collections::HashMap<String, String>) -> Option<String> {
    let mut current = path.to_string();
    for _ in 0..MAX_SYMLINK_HOPS {
        match links.get(&current) {
            Some(t) => current = t.clone(),
            None => return Some(current),
        }
    }
    None
}

/// Splits `a/b/c` into (`a/b`, `c`); a top-level name has an empty parent.
fn split_parent(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_normalised_or_rejected() {
        assert_eq!(normalize_entry_path(Path::new("./etc/os-release")).unwrap().as_deref(), Some("etc/os-release"));
        assert_eq!(normalize_entry_path(Path::new("./")).unwrap(), None);
        assert!(normalize_entry_path(Path::new("../etc/passwd")).is_err());
        assert!(normalize_entry_path(Path::new("a/../../b")).is_err());
        assert!(normalize_entry_path(Path::new("/etc/passwd")).is_err());
    }

    fn tar_with(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_path(path).unwrap();
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn walk(bytes: &[u8]) -> Result<LayerInventory, WalkError> {
        let set = crate::default_catalogers();
        let ctx = CatalogContext::new(1 << 20).unwrap();
        LayerWalker::new(&set, &ctx).walk(bytes)
    }

    #[test]
    fn hard_links_reuse_their_target_record_and_whiteouts_are_recorded() {
        let status = b"Package: a\nStatus: install ok installed\nVersion: 1\n";
        let tar = tar_with(&[
            ("var/lib/dpkg/status", tar::EntryType::Regular, status, None),
            ("var/lib/dpkg/status.d/a", tar::EntryType::Link, b"", Some("var/lib/dpkg/status")),
            ("usr/lib/os-release", tar::EntryType::Link, b"", Some("etc/unwanted-target")),
            ("etc/os-release", tar::EntryType::Symlink, b"", Some("../usr/lib/os-release")),
            ("opt/.wh.gone", tar::EntryType::Regular, b"", None),
            ("app/.wh..wh..opq", tar::EntryType::Regular, b"", None),
        ]);
        let inv = walk(&tar).unwrap();
        let paths: Vec<&str> = inv.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec!["var/lib/dpkg/status", "var/lib/dpkg/status.d/a"]);
        match &inv.files[1].outcome {
            FileOutcome::Found { packages, .. } => assert_eq!(packages[0].path, "var/lib/dpkg/status.d/a"),
            FileOutcome::Failed(e) => panic!("{e}"),
        }
        assert_eq!(inv.symlinks, vec![("etc/os-release".to_string(), "usr/lib/os-release".to_string())]);
        assert_eq!(inv.whiteouts, vec!["opt/gone".to_string()]);
        assert_eq!(inv.opaque_dirs, vec!["app".to_string()]);
    }

    #[test]
    fn truncated_and_unsafe_archives_fail_the_layer() {
        let tar = tar_with(&[("var/lib/dpkg/status", tar::EntryType::Regular, &[b'x'; 4000], None)]);
        assert!(matches!(walk(&tar[..1500]), Err(WalkError::Read(_))));
        let evil = tar_with(&[("ok", tar::EntryType::Regular, b"", None)]);
        let mut evil = evil;
        // Rewrite the name field to escape the root (the tar crate refuses to write it).
        evil[..9].copy_from_slice(b"../../etc");
        let mut h = tar::Header::from_byte_slice(&evil[..512]).clone();
        h.set_cksum();
        evil[..512].copy_from_slice(h.as_bytes());
        assert!(matches!(walk(&evil), Err(WalkError::UnsafePath { .. })));
    }

    #[test]
    fn symlink_targets_resolve_inside_root() {
        assert_eq!(resolve_link_target("etc", "../usr/lib/os-release").as_deref(), Some("usr/lib/os-release"));
        assert_eq!(resolve_link_target("etc", "/usr/lib/os-release").as_deref(), Some("usr/lib/os-release"));
        assert_eq!(resolve_link_target("a", "../../../x").as_deref(), Some("x"));
    }
}
