//! An index of a tar archive's members, so that files inside it can be read
//! by seeking instead of extracting the archive.
//!
//! The archive is scanned once (headers only: member data is skipped with
//! `seek`), recording for each regular file where its bytes start and how many
//! there are. Links are recorded too and resolved on lookup, because
//! `docker save` and skopeo store repeated layers as symlinks to one copy.
//!
//! Member names come from untrusted input. Nothing is ever written to disk, but
//! names are still normalised and absolute or `..` names rejected, so that a
//! lookup can only ever mean one member and an archive cannot pretend to hold
//! a file "outside" itself.

use crate::error::ImageError;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Most members one archive may hold; image archives hold a few dozen.
/// Bounds the index's memory for hostile archives of millions of empty members.
const MAX_MEMBERS: usize = 1_000_000;

/// Most links followed in one lookup (guards against link loops).
const MAX_LINK_HOPS: usize = 16;

/// One member of the archive, as far as lookups care.
#[derive(Debug, Clone)]
enum Member {
    /// A regular file whose bytes lie contiguously in the archive.
    File { offset: u64, size: u64 },
    /// A symbolic link; the target is relative to the link's directory.
    Symlink(String),
    /// A hard link; the target is relative to the archive root.
    Hardlink(String),
    /// Something we cannot serve (sparse file, device, fifo…), by kind.
    Other(&'static str),
}

/// Where a regular file's bytes lie inside the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberSpan {
    /// Byte offset of the data in the archive file.
    pub offset: u64,
    /// Data length in bytes.
    pub size: u64,
}

/// The members of one uncompressed tar file, by normalised name.
#[derive(Debug)]
pub(crate) struct TarIndex {
    path: PathBuf,
    members: HashMap<String, Member>,
}

impl TarIndex {
    /// Scans `path` and indexes its members. Fails with a clear error for a
    /// missing file, a compressed archive, or something that is not a tar.
    pub(crate) fn build(path: &Path) -> Result<TarIndex, ImageError> {
        let shown = path.display().to_string();
        let mut file = File::open(path).map_err(|e| ImageError::io(&shown, e))?;
        let meta = file.metadata().map_err(|e| ImageError::io(&shown, e))?;
        if meta.is_dir() {
            return Err(ImageError::Unsupported(format!(
                "{shown} is a directory, not an archive (for an OCI layout directory use oci:{shown})"
            )));
        }
        let file_len = meta.len();
        check_not_compressed(&mut file, &shown)?;

        let bad = |reason: String| ImageError::malformed(format!("archive {shown}"), reason);
        let mut archive = tar::Archive::new(BufReader::new(file));
        let entries = archive.entries_with_seek().map_err(|e| bad(format!("not a readable tar archive: {e}")))?;
        let mut members = HashMap::new();
        let mut seen = 0usize;
        for entry in entries {
            let entry = entry.map_err(|e| bad(format!("not a valid tar archive: {e}")))?;
            seen += 1;
            if seen > MAX_MEMBERS {
                return Err(bad(format!("more than {MAX_MEMBERS} members; this is not an image archive")));
            }
            let raw_name = entry.path_bytes();
            let Ok(name) = std::str::from_utf8(&raw_name) else {
                // Image archives only use ASCII names; such a member can never be looked up.
                continue;
            };
            let name = normalize_member_name(name).map_err(|r| bad(r.to_string()))?;
            if name.is_empty() {
                continue;
            }
            let kind = entry.header().entry_type();
            let member = if kind.is_file() || kind.is_contiguous() {
                let offset = entry.raw_file_position();
                let size = entry.size();
                if offset.checked_add(size).is_none_or(|end| end > file_len) {
                    return Err(bad(format!("member {name} runs past the end of the file; the archive is truncated")));
                }
                Member::File { offset, size }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry.link_name_bytes().ok_or_else(|| bad(format!("link {name} has no target")))?;
                let target = String::from_utf8_lossy(&target).into_owned();
                if kind.is_symlink() {
                    Member::Symlink(target)
                } else {
                    Member::Hardlink(target)
                }
            } else if kind.is_dir() {
                continue;
            } else if kind.is_gnu_sparse() {
                Member::Other("a sparse file")
            } else {
                Member::Other("not a regular file")
            };
            // Later members replace earlier ones, as when a tar is extracted.
            members.insert(name, member);
        }
        if seen == 0 {
            return Err(bad("empty, or not a tar archive".into()));
        }
        Ok(TarIndex { path: path.to_path_buf(), members })
    }

    /// The archive file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Finds a regular file by name, following links inside the archive.
    /// `Ok(None)` when there is no such member.
    pub(crate) fn locate(&self, name: &str) -> Result<Option<MemberSpan>, ImageError> {
        let bad = |reason: String| ImageError::malformed(format!("archive {}", self.path.display()), reason);
        let mut current = normalize_member_name(name).map_err(|r| bad(r.to_string()))?;
        for _ in 0..=MAX_LINK_HOPS {
            match self.members.get(&current) {
                None => return Ok(None),
                Some(Member::File { offset, size }) => return Ok(Some(MemberSpan { offset: *offset, size: *size })),
                Some(Member::Other(what)) => {
                    return Err(bad(format!("member {current} is {what}, which cannot be read in place")))
                }
                Some(Member::Symlink(target)) => {
                    let parent = current.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
                    current =
                        resolve_link(parent, target).map_err(|r| bad(format!("symlink {current} -> {target}: {r}")))?;
                }
                Some(Member::Hardlink(target)) => {
                    current =
                        resolve_link("", target).map_err(|r| bad(format!("hard link {current} -> {target}: {r}")))?;
                }
            }
        }
        Err(bad(format!("too many links while looking up {name} (a link loop?)")))
    }

    /// Opens a blocking reader over one member's bytes.
    pub(crate) fn open_member(&self, span: MemberSpan) -> Result<std::io::Take<File>, ImageError> {
        let shown = self.path.display().to_string();
        let mut file = File::open(&self.path).map_err(|e| ImageError::io(&shown, e))?;
        file.seek(SeekFrom::Start(span.offset)).map_err(|e| ImageError::io(&shown, e))?;
        Ok(file.take(span.size))
    }
}

/// Refuses gzip/zstd/xz/bzip2 archives with a hint: members of a compressed
/// archive cannot be reached by seeking.
fn check_not_compressed(file: &mut File, shown: &str) -> Result<(), ImageError> {
    let mut head = [0u8; 6];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ImageError::io(shown, e)),
        }
    }
    let head = &head[..filled];
    let (kind, tool) = if head.starts_with(&[0x1f, 0x8b]) {
        ("gzip", "gunzip")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ("zstd", "unzstd")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        ("xz", "unxz")
    } else if head.starts_with(b"BZh") {
        ("bzip2", "bunzip2")
    } else {
        file.seek(SeekFrom::Start(0)).map_err(|e| ImageError::io(shown, e))?;
        return Ok(());
    };
    Err(ImageError::Unsupported(format!(
        "{shown} is a {kind}-compressed archive, which cannot be read in place; decompress it first (e.g. `{tool} -k {shown}`) and scan the plain .tar"
    )))
}

/// Normalises a member name: drops `.` and empty components (so `./index.json`
/// and `index.json` are one name) and rejects absolute and `..` names.
pub(crate) fn normalize_member_name(name: &str) -> Result<String, &'static str> {
    if name.starts_with('/') {
        return Err("the archive holds a member with an absolute name; refusing it as unsafe");
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("the archive holds a member whose name contains `..`; refusing it as unsafe"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Resolves a link target against the directory `base`; `..` may climb
/// within the archive but never above its root.
fn resolve_link(base: &str, target: &str) -> Result<String, &'static str> {
    if target.starts_with('/') {
        return Err("absolute link targets are not supported");
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or("the target lies outside the archive")?;
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> tempfile::NamedTempFile {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let bytes = b.into_inner().unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        f
    }

    fn read(index: &TarIndex, name: &str) -> Option<Vec<u8>> {
        let span = index.locate(name).unwrap()?;
        let mut out = Vec::new();
        index.open_member(span).unwrap().read_to_end(&mut out).unwrap();
        Some(out)
    }

    #[test]
    fn serves_files_and_follows_links() {
        let f = archive(|b| {
            b.append_data(&mut header(tar::EntryType::Regular, 5), "./dir/a.tar", &b"hello"[..]).unwrap();
            b.append_link(&mut header(tar::EntryType::Symlink, 0), "other/layer.tar", "../dir/a.tar").unwrap();
            b.append_link(&mut header(tar::EntryType::Link, 0), "hard", "dir/a.tar").unwrap();
            b.append_link(&mut header(tar::EntryType::Symlink, 0), "escape", "../../etc/passwd").unwrap();
            b.append_link(&mut header(tar::EntryType::Symlink, 0), "loop", "loop").unwrap();
        });
        let index = TarIndex::build(f.path()).unwrap();
        assert_eq!(read(&index, "dir/a.tar").unwrap(), b"hello");
        assert_eq!(read(&index, "other/layer.tar").unwrap(), b"hello");
        assert_eq!(read(&index, "hard").unwrap(), b"hello");
        assert!(read(&index, "missing").is_none());
        assert!(index.locate("escape").unwrap_err().to_string().contains("outside the archive"));
        assert!(index.locate("loop").unwrap_err().to_string().contains("link loop"));
    }

    #[test]
    fn rejects_unsafe_names_compressed_and_non_tar_files() {
        // tar::Builder refuses `..` itself, so write the name into the header by hand.
        let mut h = header(tar::EntryType::Regular, 1);
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        let mut raw = h.as_bytes().to_vec();
        raw.extend_from_slice(&[b'x'; 512]);
        raw.extend_from_slice(&[0u8; 1024]);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&raw).unwrap();
        let err = TarIndex::build(f.path()).unwrap_err();
        assert!(err.to_string().contains("unsafe"), "{err}");

        let mut gz = tempfile::NamedTempFile::new().unwrap();
        gz.write_all(&[0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
        let err = TarIndex::build(gz.path()).unwrap_err();
        assert!(err.to_string().contains("decompress it first"), "{err}");

        let mut junk = tempfile::NamedTempFile::new().unwrap();
        junk.write_all(&[b'{'; 1024]).unwrap();
        assert!(matches!(TarIndex::build(junk.path()), Err(ImageError::Malformed { .. })));

        let err = TarIndex::build(Path::new("/nonexistent/trawl.tar")).unwrap_err();
        assert!(matches!(&err, ImageError::Io { path, .. } if path == "/nonexistent/trawl.tar"), "{err}");
    }

    #[test]
    fn truncated_archive_is_reported() {
        let f = archive(|b| {
            b.append_data(&mut header(tar::EntryType::Regular, 4096), "big", &[7u8; 4096][..]).unwrap();
        });
        let bytes = std::fs::read(f.path()).unwrap();
        let mut cut = tempfile::NamedTempFile::new().unwrap();
        cut.write_all(&bytes[..512 + 1000]).unwrap();
        let err = TarIndex::build(cut.path()).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize_member_name("./a//b/./c").unwrap(), "a/b/c");
        assert!(normalize_member_name("/etc/passwd").is_err());
        assert!(normalize_member_name("a/../../b").is_err());
        assert_eq!(resolve_link("x/y", "../z").unwrap(), "x/z");
        assert!(resolve_link("", "../z").is_err());
    }
}
