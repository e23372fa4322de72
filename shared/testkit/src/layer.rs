//! Layer tarballs built entry by entry, and the [`Blob`] type that carries them.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// OCI media type of an uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI media type of a gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI media type of a zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker media type of an uncompressed layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker media type of a gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker media type of a zstd layer (as containerd names it; Docker schema 2 defines none).
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

/// How a layer tarball is compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// gzip (RFC 1952), the common case.
    #[default]
    Gzip,
    /// zstd frames.
    Zstd,
    /// A plain tar.
    None,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
            Compression::None => OCI_LAYER_TAR,
        }
    }

    /// The Docker schema 2 layer media type for this compression.
    pub fn docker_media_type(self) -> &'static str {
        match self {
            Compression::Gzip => DOCKER_LAYER_GZIP,
            Compression::Zstd => DOCKER_LAYER_ZSTD,
            Compression::None => DOCKER_LAYER_TAR,
        }
    }

    /// The compression a standard OCI or Docker layer media type implies, if it is one.
    pub fn from_layer_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => Some(Compression::Gzip),
            OCI_LAYER_ZSTD | DOCKER_LAYER_ZSTD => Some(Compression::Zstd),
            OCI_LAYER_TAR | DOCKER_LAYER_TAR => Some(Compression::None),
            _ => None,
        }
    }

    /// Wraps `r` (compressed with `self`) in a decompressing reader.
    pub fn decompress<'a, R: Read + Send + 'a>(self, r: R) -> io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(r))),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
            Compression::None => Box::new(r),
        })
    }
}

/// Where a blob's bytes live.
#[derive(Clone, Debug)]
pub enum BlobData {
    /// In memory (cheap to clone).
    Memory(Bytes),
    /// In a file (large blobs, streamed when pushed or written).
    File(PathBuf),
}

/// A content-addressed blob: a layer (or any other manifest-referenced payload) plus what a
/// manifest and image config need to know about it.
///
/// Fields are public so tests can build deliberately inconsistent images (e.g. a wrong
/// `diff_id`); constructors keep them consistent.
#[derive(Clone)]
pub struct Blob {
    /// `sha256:<hex>` of the bytes as stored (compressed).
    pub digest: String,
    /// Media type used in manifest descriptors.
    pub media_type: String,
    /// Size in bytes as stored.
    pub size: u64,
    /// `sha256:<hex>` of the uncompressed content (the image config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// Size of the uncompressed content.
    pub diff_size: u64,
    /// How the stored bytes are compressed.
    pub compression: Compression,
    /// The stored bytes.
    pub data: BlobData,
    /// Keeps a temp dir holding file-backed data alive as long as any clone of the blob.
    keep: Option<Arc<TempDir>>,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("digest", &self.digest)
            .field("media_type", &self.media_type)
            .field("size", &self.size)
            .field("diff_id", &self.diff_id)
            .field("compression", &self.compression)
            .field(
                "data",
                &match &self.data {
                    BlobData::Memory(_) => "memory".to_string(),
                    BlobData::File(p) => p.display().to_string(),
                },
            )
            .finish()
    }
}

impl Blob {
    /// An uncompressed blob holding `bytes` as is (a config, an SBOM, a non-tar artifact…);
    /// its `diff_id` equals its digest.
    pub fn from_bytes(media_type: &str, bytes: impl Into<Bytes>) -> Self {
        let bytes: Bytes = bytes.into();
        let digest = sha256_digest(&bytes);
        Self {
            diff_id: digest.clone(),
            digest,
            media_type: media_type.to_owned(),
            size: bytes.len() as u64,
            diff_size: bytes.len() as u64,
            compression: Compression::None,
            data: BlobData::Memory(bytes),
            keep: None,
        }
    }

    /// A blob whose stored bytes are the existing file `path`, compressed with `compression`
    /// (hashes the file, decompressing it once to compute the `diff_id`).
    pub fn from_file(media_type: &str, path: &Path, compression: Compression) -> Result<Self> {
        let (digest, size) = hash_reader(File::open(path).with_context(|| format!("open {}", path.display()))?)?;
        let (diff_id, diff_size) = hash_reader(compression.decompress(File::open(path)?)?)?;
        Ok(Self {
            digest,
            media_type: media_type.to_owned(),
            size,
            diff_id,
            diff_size,
            compression,
            data: BlobData::File(path.to_path_buf()),
            keep: None,
        })
    }

    pub(crate) fn keep_alive(mut self, dir: Arc<TempDir>) -> Self {
        self.keep = Some(dir);
        self
    }

    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }

    /// A reader over the stored (compressed) bytes.
    pub fn reader(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(match &self.data {
            BlobData::Memory(b) => Box::new(&b[..]),
            BlobData::File(p) => Box::new(BufReader::with_capacity(256 * 1024, File::open(p)?)),
        })
    }

    /// A reader over the uncompressed content (the tar for a layer).
    pub fn uncompressed_reader(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        self.compression.decompress(self.reader()?)
    }

    /// The stored bytes, reading the file for file-backed blobs.
    pub fn bytes(&self) -> io::Result<Bytes> {
        match &self.data {
            BlobData::Memory(b) => Ok(b.clone()),
            BlobData::File(p) => std::fs::read(p).map(Bytes::from),
        }
    }

    /// The OCI descriptor (`mediaType`, `digest`, `size`) for a manifest.
    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hash_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut w = HashingWriter::new(io::sink());
    io::copy(&mut r, &mut w)?;
    let (_, digest, n) = w.finish();
    Ok((digest, n))
}

/// What one layer entry is.
enum EntryKind {
    File(Bytes),
    HostFile(PathBuf),
    Stream { size: u64, reader: Box<dyn Read + Send> },
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
}

struct Entry {
    path: Vec<u8>,
    mode: Option<u32>,
    kind: EntryKind,
}

/// Builds one layer tarball entry by entry, in the order given, then compresses it.
///
/// Paths are written to the tar header byte for byte, exactly as given — no leading `/` is
/// stripped, no parent directory is added, and `..` is allowed — so tests can reproduce odd
/// real-world and hostile layers. Names longer than 100 bytes use GNU long-name records.
/// Every entry has uid/gid 0 and mtime 0, and gzip headers carry no timestamp, so the same
/// builder always yields the same digest.
pub struct LayerBuilder {
    entries: Vec<Entry>,
    compression: Compression,
    level: Option<i32>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    /// An empty layer, gzip-compressed unless [`LayerBuilder::compression`] says otherwise.
    pub fn new() -> Self {
        Self { entries: Vec::new(), compression: Compression::Gzip, level: None }
    }

    /// Sets the compression.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets the compression level (gzip 0–9, zstd 1–22); defaults are 6 and 3.
    pub fn level(mut self, level: i32) -> Self {
        self.level = Some(level);
        self
    }

    fn push(mut self, path: impl AsRef<[u8]>, mode: Option<u32>, kind: EntryKind) -> Self {
        self.entries.push(Entry { path: path.as_ref().to_vec(), mode, kind });
        self
    }

    /// A regular file with `contents` and permission bits `mode` (e.g. `0o644`).
    pub fn file(self, path: impl AsRef<[u8]>, contents: impl AsRef<[u8]>, mode: u32) -> Self {
        let data = Bytes::copy_from_slice(contents.as_ref());
        self.push(path, Some(mode), EntryKind::File(data))
    }

    /// A directory (mode `0o755`).
    pub fn dir(self, path: impl AsRef<[u8]>) -> Self {
        self.push(path, Some(0o755), EntryKind::Dir)
    }

    /// A directory with explicit permission bits.
    pub fn dir_with_mode(self, path: impl AsRef<[u8]>, mode: u32) -> Self {
        self.push(path, Some(mode), EntryKind::Dir)
    }

    /// A symbolic link at `path` pointing to `target` (stored verbatim).
    pub fn symlink(self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        self.push(path, Some(0o777), EntryKind::Symlink(target.as_ref().to_vec()))
    }

    /// A hard link at `path` to the earlier entry `target` (the target's path in the archive).
    pub fn hardlink(self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        self.push(path, Some(0o644), EntryKind::Hardlink(target.as_ref().to_vec()))
    }

    /// An OCI whiteout deleting `path` from lower layers: an empty file `DIR/.wh.NAME`.
    pub fn whiteout(self, path: impl AsRef<[u8]>) -> Self {
        let path = path.as_ref();
        let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        let mut wh = dir.to_vec();
        wh.extend_from_slice(b".wh.");
        wh.extend_from_slice(name);
        self.push(wh, Some(0o644), EntryKind::File(Bytes::new()))
    }

    /// An opaque-directory marker `DIR/.wh..wh..opq`: hides everything lower layers put in `dir`.
    pub fn opaque(self, dir: impl AsRef<[u8]>) -> Self {
        let mut p = dir.as_ref().to_vec();
        if !p.is_empty() && !p.ends_with(b"/") {
            p.push(b'/');
        }
        p.extend_from_slice(b".wh..wh..opq");
        self.push(p, Some(0o644), EntryKind::File(Bytes::new()))
    }

    /// A regular file whose contents are streamed from `host_path` when the layer is built
    /// (e.g. a real package database); the mode is taken from the host file.
    pub fn file_from_disk(self, path_in_image: impl AsRef<[u8]>, host_path: impl AsRef<Path>) -> Self {
        self.push(path_in_image, None, EntryKind::HostFile(host_path.as_ref().to_path_buf()))
    }

    /// A regular file of exactly `size` bytes streamed from `reader` when the layer is built
    /// (generated content that should never sit in memory whole).
    pub fn file_from_reader(
        self,
        path: impl AsRef<[u8]>,
        size: u64,
        mode: u32,
        reader: impl Read + Send + 'static,
    ) -> Self {
        self.push(path, Some(mode), EntryKind::Stream { size, reader: Box::new(reader) })
    }

    /// Builds the layer in memory.
    pub fn build(self) -> Result<Blob> {
        let compression = self.compression;
        let (out, info) = self.write_into(Vec::new())?;
        Ok(info.into_blob(compression, BlobData::Memory(Bytes::from(out))))
    }

    /// Builds the layer into the file `path` (created or truncated), streaming: memory use
    /// does not grow with the layer size.
    pub fn build_to_file(self, path: &Path) -> Result<Blob> {
        let compression = self.compression;
        let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
        let (out, info) = self.write_into(BufWriter::with_capacity(256 * 1024, file))?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all().ok();
        Ok(info.into_blob(compression, BlobData::File(path.to_path_buf())))
    }

    /// Writes the compressed layer to `out`; returns `out` and the digests.
    fn write_into<W: Write>(self, out: W) -> Result<(W, LayerInfo)> {
        let encoder = Encoder::new(self.compression, self.level, HashingWriter::new(out))?;
        let mut tar = tar::Builder::new(HashingWriter::new(encoder));
        for entry in self.entries {
            write_entry(&mut tar, entry)?;
        }
        let (encoder, diff_id, diff_size) = tar.into_inner()?.finish();
        let (out, digest, size) = encoder.finish()?.finish();
        Ok((out, LayerInfo { digest, size, diff_id, diff_size }))
    }
}

struct LayerInfo {
    digest: String,
    size: u64,
    diff_id: String,
    diff_size: u64,
}

impl LayerInfo {
    fn into_blob(self, compression: Compression, data: BlobData) -> Blob {
        Blob {
            digest: self.digest,
            media_type: compression.oci_media_type().to_owned(),
            size: self.size,
            diff_id: self.diff_id,
            diff_size: self.diff_size,
            compression,
            data,
            keep: None,
        }
    }
}

fn write_entry<W: Write>(tar: &mut tar::Builder<W>, entry: Entry) -> Result<()> {
    let Entry { path, mode, kind } = entry;
    let shown = String::from_utf8_lossy(&path).into_owned();
    match kind {
        EntryKind::File(data) => {
            append_raw(tar, tar::EntryType::Regular, &path, None, mode.unwrap_or(0o644), data.len() as u64, &data[..])
        }
        EntryKind::HostFile(host) => {
            use std::os::unix::fs::PermissionsExt;
            let file = File::open(&host).with_context(|| format!("open {} for layer entry {shown}", host.display()))?;
            let meta = file.metadata()?;
            let mode = mode.unwrap_or(meta.permissions().mode() & 0o7777);
            append_raw(tar, tar::EntryType::Regular, &path, None, mode, meta.len(), BufReader::new(file))
        }
        EntryKind::Stream { size, reader } => {
            let mut limited = reader.take(size);
            append_raw(tar, tar::EntryType::Regular, &path, None, mode.unwrap_or(0o644), size, &mut limited)?;
            anyhow::ensure!(limited.limit() == 0, "reader for {shown} ended before its declared {size} bytes");
            Ok(())
        }
        EntryKind::Dir => {
            append_raw(tar, tar::EntryType::Directory, &path, None, mode.unwrap_or(0o755), 0, io::empty())
        }
        EntryKind::Symlink(target) => {
            append_raw(tar, tar::EntryType::Symlink, &path, Some(&target), mode.unwrap_or(0o777), 0, io::empty())
        }
        EntryKind::Hardlink(target) => {
            append_raw(tar, tar::EntryType::Link, &path, Some(&target), mode.unwrap_or(0o644), 0, io::empty())
        }
    }
    .with_context(|| format!("write layer entry {shown}"))
}

/// Appends one entry with its name bytes copied verbatim into the header (the `tar` crate's
/// path setters reject `..` and absolute paths, which tests need to produce).
fn append_raw<W: Write>(
    tar: &mut tar::Builder<W>,
    kind: tar::EntryType,
    path: &[u8],
    link: Option<&[u8]>,
    mode: u32,
    size: u64,
    data: impl Read,
) -> Result<()> {
    if path.len() > 100 {
        append_long_name(tar, tar::EntryType::GNULongName, path)?;
    }
    if let Some(link) = link.filter(|l| l.len() > 100) {
        append_long_name(tar, tar::EntryType::GNULongLink, link)?;
    }
    let mut header = tar::Header::new_gnu();
    {
        let gnu = header.as_gnu_mut().expect("gnu header");
        let n = path.len().min(100);
        gnu.name[..n].copy_from_slice(&path[..n]);
        if let Some(link) = link {
            let n = link.len().min(100);
            gnu.linkname[..n].copy_from_slice(&link[..n]);
        }
    }
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header.set_username("root")?;
    header.set_groupname("root")?;
    header.set_cksum();
    tar.append(&header, data)?;
    Ok(())
}

fn append_long_name<W: Write>(tar: &mut tar::Builder<W>, kind: tar::EntryType, name: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().expect("gnu header").name[..13].copy_from_slice(b"././@LongLink");
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    let mut data = name.to_vec();
    data.push(0);
    header.set_size(data.len() as u64);
    header.set_cksum();
    tar.append(&header, &data[..])?;
    Ok(())
}

/// A writer that hashes and counts what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self { inner, hasher: Sha256::new(), len: 0 }
    }

    /// Returns the inner writer, `sha256:<hex>` and the byte count.
    pub(crate) fn finish(self) -> (W, String, u64) {
        (self.inner, format!("sha256:{}", hex::encode(self.hasher.finalize())), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Encoder<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    None(W),
}

impl<W: Write> Encoder<W> {
    fn new(compression: Compression, level: Option<i32>, out: W) -> Result<Self> {
        Ok(match compression {
            Compression::Gzip => {
                let level = flate2::Compression::new(level.unwrap_or(6).clamp(0, 9) as u32);
                // GzBuilder without mtime/filename: the header is byte-for-byte reproducible.
                Encoder::Gzip(flate2::GzBuilder::new().write(out, level))
            }
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(out, level.unwrap_or(3))?),
            Compression::None => Encoder::None(out),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::None(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::None(w) => w.flush(),
        }
    }
}
