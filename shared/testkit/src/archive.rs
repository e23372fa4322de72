//! Writing images to disk the way other tools exchange them: OCI image layouts, OCI archives
//! (a layout in a tar) and `docker save` archives.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::image::{Artifact, BuiltImage, OCI_INDEX};
use crate::layer::Blob;

/// Where layout files go: a directory or a tar stream.
trait Sink {
    fn put(&mut self, path: &str, size: u64, data: &mut dyn Read) -> Result<()>;
    fn dir(&mut self, path: &str) -> Result<()>;
}

struct DirSink {
    root: PathBuf,
}

impl Sink for DirSink {
    fn put(&mut self, path: &str, _size: u64, data: &mut dyn Read) -> Result<()> {
        let dest = self.root.join(path);
        let mut f = BufWriter::new(File::create(&dest).with_context(|| format!("create {}", dest.display()))?);
        io::copy(data, &mut f)?;
        f.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        std::fs::create_dir_all(self.root.join(path))?;
        Ok(())
    }
}

struct TarSink<W: Write> {
    tar: tar::Builder<W>,
}

impl<W: Write> TarSink<W> {
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }
}

impl<W: Write> Sink for TarSink<W> {
    fn put(&mut self, path: &str, size: u64, data: &mut dyn Read) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, size);
        self.tar.append_data(&mut h, path, data)?;
        Ok(())
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.tar.append_data(&mut h, format!("{path}/"), io::empty())?;
        Ok(())
    }
}

fn put_bytes(sink: &mut dyn Sink, path: &str, bytes: &[u8]) -> Result<()> {
    sink.put(path, bytes.len() as u64, &mut &bytes[..])
}

fn hex_of(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 => Ok(h),
        _ => bail!("unsupported digest {digest:?}"),
    }
}

/// Writes an OCI image layout: `oci-layout`, `index.json` and `blobs/sha256/…`.
fn write_layout(sink: &mut dyn Sink, refs: &[(&str, &dyn Artifact)]) -> Result<()> {
    put_bytes(sink, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    sink.dir("blobs")?;
    sink.dir("blobs/sha256")?;
    let mut written = HashSet::new();
    let mut put_blob_bytes = |sink: &mut dyn Sink, digest: &str, bytes: &[u8]| -> Result<()> {
        if written.insert(digest.to_owned()) {
            put_bytes(sink, &format!("blobs/sha256/{}", hex_of(digest)?), bytes)?;
        }
        Ok(())
    };
    let mut blobs: Vec<Blob> = Vec::new();
    let mut manifests = Vec::new();
    for (tag, artifact) in refs {
        for child in artifact.children() {
            blobs.extend(child.blobs());
            put_blob_bytes(sink, &child.manifest_digest, &child.manifest)?;
        }
        blobs.extend(artifact.blobs());
        put_blob_bytes(sink, artifact.manifest_digest(), artifact.manifest_bytes())?;

        let mut d = Map::new();
        d.insert("mediaType".into(), json!(artifact.manifest_media_type()));
        d.insert("digest".into(), json!(artifact.manifest_digest()));
        d.insert("size".into(), json!(artifact.manifest_bytes().len()));
        if let Some(p) = artifact.platform() {
            d.insert("platform".into(), p.to_json());
        }
        if !tag.is_empty() {
            d.insert("annotations".into(), json!({ "org.opencontainers.image.ref.name": tag }));
        }
        manifests.push(Value::Object(d));
    }
    let mut seen_blobs = HashSet::new();
    for blob in &blobs {
        if written.contains(&blob.digest) || !seen_blobs.insert(blob.digest.clone()) {
            continue;
        }
        let mut r = blob.reader()?;
        sink.put(&format!("blobs/sha256/{}", hex_of(&blob.digest)?), blob.size, &mut r)
            .with_context(|| format!("write blob {}", blob.digest))?;
    }
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    put_bytes(sink, "index.json", &serde_json::to_vec_pretty(&index)?)
}

/// Writes an OCI image layout into `dir` (created if missing): `oci-layout`, `index.json` with
/// one entry per `(tag, artifact)` annotated `org.opencontainers.image.ref.name = tag` (no
/// annotation when `tag` is empty), and every manifest, config and layer under
/// `blobs/sha256/`. Artifacts may be images or indexes.
pub fn write_oci_layout(dir: &Path, refs: &[(&str, &dyn Artifact)]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    write_layout(&mut DirSink { root: dir.to_path_buf() }, refs)
}

/// Writes the same layout as [`write_oci_layout`] as a tar file (`oci-archive:` transport).
pub fn write_oci_archive(file: &Path, refs: &[(&str, &dyn Artifact)]) -> Result<()> {
    let out = BufWriter::new(File::create(file).with_context(|| format!("create {}", file.display()))?);
    let mut sink = TarSink { tar: tar::Builder::new(out) };
    write_layout(&mut sink, refs)?;
    sink.tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

/// Writes `image` as a `docker save` archive: `manifest.json` (`Config`, `RepoTags`,
/// `Layers`), `repositories`, the config as `<hex>.json`, and each layer *uncompressed* as
/// `<id>/layer.tar`, where `<id>` is the layer's chain ID hex (unique per position).
pub fn write_docker_archive(file: &Path, repo_tag: &str, image: &BuiltImage) -> Result<()> {
    let out = BufWriter::new(File::create(file).with_context(|| format!("create {}", file.display()))?);
    let mut sink = TarSink { tar: tar::Builder::new(out) };

    let config_name = format!("{}.json", hex_of(&image.config_digest)?);
    put_bytes(&mut sink, &config_name, &image.config)?;

    let mut layer_paths = Vec::new();
    let mut chain: Option<String> = None;
    for layer in &image.layers {
        let id = match &chain {
            None => hex_of(&layer.diff_id)?.to_owned(),
            Some(parent) => hex::encode(Sha256::digest(format!("sha256:{parent} {}", layer.diff_id))),
        };
        sink.dir(&id)?;
        let mut r = layer.uncompressed_reader()?;
        sink.put(&format!("{id}/layer.tar"), layer.diff_size, &mut r)
            .with_context(|| format!("write layer {}", layer.digest))?;
        put_bytes(&mut sink, &format!("{id}/VERSION"), b"1.0")?;
        layer_paths.push(format!("{id}/layer.tar"));
        chain = Some(id);
    }

    let manifest = json!([{ "Config": config_name, "RepoTags": [repo_tag], "Layers": layer_paths }]);
    put_bytes(&mut sink, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    if let (Some((repo, tag)), Some(top)) = (split_repo_tag(repo_tag), &chain) {
        let repositories = json!({ repo: { tag: top } });
        put_bytes(&mut sink, "repositories", &serde_json::to_vec(&repositories)?)?;
    }
    sink.tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

fn split_repo_tag(repo_tag: &str) -> Option<(&str, &str)> {
    let slash = repo_tag.rfind('/').map_or(0, |i| i + 1);
    let colon = repo_tag[slash..].rfind(':')? + slash;
    Some((&repo_tag[..colon], &repo_tag[colon + 1..]))
}
