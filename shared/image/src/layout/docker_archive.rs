//! `docker save` archives (`docker-archive:FILE[:REPO:TAG]`), read in place.
//!
//! The archive's `manifest.json` lists, per image, the config file, its
//! `RepoTags` and the layer files, bottom first. Classic `docker save` and
//! skopeo store each layer as an uncompressed tar (`<id>/layer.tar` or
//! `<diff-id>.tar`, often symlinked); Docker ≥ 25 stores content-addressed
//! `blobs/sha256/<hex>` files (an OCI layout in the same tar).
//!
//! Callers verify each layer's raw bytes against [`LayerDescriptor::digest`],
//! so that digest must describe the bytes *as stored*:
//! * an uncompressed layer's digest is its config `rootfs.diff_ids[i]`;
//! * a compressed layer stored as `blobs/sha256/<hex>` uses that digest;
//! * any other compressed layer (rare: not written by docker or skopeo) is
//!   hashed once while resolving.
//!
//! There is no manifest in such an archive, so one is synthesized: a Docker v2
//! schema 2 manifest (config descriptor plus the layer descriptors above, in
//! that field order, compact JSON) whose sha256 is reported as
//! `manifest_digest`. It is stable for a given archive content, but it is not
//! the digest a registry would show after `docker push` (which compresses
//! layers); use `config_digest` (the image ID) to correlate with Docker.

use super::store::{blocking, Store, CHUNK};
use super::tar_index::{normalize_member_name, TarIndex};
use crate::blob::Compression;
use crate::error::ImageError;
use crate::manifest::{sha256_digest, validate_digest, Descriptor, ImageConfig, DOCKER_CONFIG, DOCKER_MANIFEST};
use crate::source::{BlobStream, ImageSource, LayerDescriptor, ResolvedImage, SourceOptions};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Media type of an uncompressed layer tar in a Docker v2 manifest.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Media type of a gzip-compressed layer in a Docker v2 manifest.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Media type of a zstd-compressed layer (Docker v2 has none of its own).
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// An image in a `docker save` archive.
pub struct DockerArchiveSource {
    inner: Arc<Inner>,
}

/// State shared with the blocking resolve task.
struct Inner {
    store: Store,
    image: Option<String>,
    display: String,
    base: String,
    /// Layer digest → member name, filled by `resolve` for `open_blob`.
    layer_members: Mutex<HashMap<String, String>>,
}

/// One image entry of `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// The synthesized Docker v2 manifest (see the module docs).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyntheticManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
}

impl DockerArchiveSource {
    /// Opens a `docker save` tar (indexing it without extracting); `image`
    /// (`REPO:TAG`, or `@N` for the N-th image) picks one of several images.
    pub fn open(file: &Path, image: Option<&str>) -> Result<Self, ImageError> {
        let index = TarIndex::build(file)?;
        let base = format!("docker-archive:{}", file.display());
        let display = match image {
            Some(i) => format!("{base}:{i}"),
            None => base.clone(),
        };
        Ok(DockerArchiveSource {
            inner: Arc::new(Inner {
                store: Store::Archive(Arc::new(index)),
                image: image.map(str::to_string),
                display,
                base,
                layer_members: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl Inner {
    fn archive_error(&self, reason: impl ToString) -> ImageError {
        ImageError::malformed(format!("docker archive {}", self.store.location()), reason)
    }

    fn resolve_blocking(&self) -> Result<ResolvedImage, ImageError> {
        // The archive format has no options of its own; use the default document cap.
        let cap = SourceOptions::default().max_document_bytes;
        let Some(listing) = self.store.read_document("manifest.json", cap, "manifest.json")? else {
            let hint = if self.store.open_sync("index.json")?.is_some() {
                "no manifest.json, but an index.json: this is an OCI archive, use oci-archive: instead"
            } else {
                "no manifest.json: this is not a `docker save` archive"
            };
            return Err(self.archive_error(hint));
        };
        let entries: Vec<SaveEntry> = serde_json::from_slice(&listing)
            .map_err(|e| self.archive_error(format!("manifest.json is not valid: {e}")))?;
        let entry = self.choose_entry(&entries)?;

        let config_bytes = self
            .store
            .read_document(&entry.config, cap, "image config")?
            .ok_or_else(|| self.archive_error(format!("config {} is listed but missing", entry.config)))?;
        let config_digest = sha256_digest(&config_bytes);
        // Docker names the config after its digest (the image ID); check it when it does.
        if let Some(expected) = digest_from_name(&entry.config, true) {
            if expected != config_digest {
                return Err(ImageError::DigestMismatch {
                    what: "image config".into(),
                    expected,
                    actual: config_digest,
                });
            }
        }
        let config = ImageConfig::parse(&config_bytes, &config_digest)?;
        if entry.layers.len() != config.rootfs.diff_ids.len() {
            return Err(self.archive_error(format!(
                "manifest.json lists {} layers but the config has {} diff_ids",
                entry.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }

        let mut descriptors = Vec::with_capacity(entry.layers.len());
        let mut members = Vec::with_capacity(entry.layers.len());
        for (name, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let (descriptor, member) = self.describe_layer(name, diff_id)?;
            descriptors.push(descriptor);
            members.push(member);
        }

        let config_desc = Descriptor {
            media_type: DOCKER_CONFIG.to_string(),
            digest: config_digest.clone(),
            size: config_bytes.len() as u64,
            platform: None,
            annotations: None,
        };
        let synthetic = SyntheticManifest {
            schema_version: 2,
            media_type: DOCKER_MANIFEST,
            config: &config_desc,
            layers: &descriptors,
        };
        let manifest_bytes = serde_json::to_vec(&synthetic).map_err(|e| self.archive_error(e))?;

        let mut layers: Vec<LayerDescriptor> = descriptors
            .iter()
            .map(|d| LayerDescriptor {
                digest: d.digest.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
                diff_id: None,
                created_by: None,
            })
            .collect();
        ResolvedImage::attach_config_details(&mut layers, &config);

        if let Ok(mut map) = self.layer_members.lock() {
            for (layer, member) in layers.iter().zip(members) {
                map.insert(layer.digest.clone(), member);
            }
        }
        Ok(ResolvedImage {
            reference: self.display.clone(),
            manifest_digest: sha256_digest(&manifest_bytes),
            index_digest: None,
            media_type: DOCKER_MANIFEST.to_string(),
            config_digest,
            config,
            layers,
        })
    }

    /// Picks the entry whose `RepoTags` hold the requested name, or the only one.
    fn choose_entry<'a>(&self, entries: &'a [SaveEntry]) -> Result<&'a SaveEntry, ImageError> {
        let mut names: Vec<&str> =
            entries.iter().flat_map(|e| e.repo_tags.iter().flatten()).map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        let listed = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        match (&self.image, entries) {
            (_, []) => Err(self.archive_error("manifest.json lists no images")),
            (None, [only]) => Ok(only),
            (None, several) => Err(ImageError::InvalidReference {
                reference: self.display.clone(),
                reason: format!(
                    "the archive holds {} images; name one as {}:REPO:TAG or {}:@N (tags: {listed})",
                    several.len(),
                    self.base,
                    self.base
                ),
            }),
            (Some(wanted), entries) => {
                if let Some(n) = wanted.strip_prefix('@').and_then(|n| n.parse::<usize>().ok()) {
                    return entries.get(n).ok_or_else(|| ImageError::NotFound {
                        reference: format!(
                            "{} (the archive holds {} images, numbered from @0)",
                            self.display,
                            entries.len()
                        ),
                    });
                }
                let wanted = normalize_image_name(wanted);
                entries
                    .iter()
                    .find(|e| e.repo_tags.iter().flatten().any(|t| normalize_image_name(t) == wanted))
                    .ok_or_else(|| ImageError::NotFound {
                        reference: format!("{} (tags in the archive: {listed})", self.display),
                    })
            }
        }
    }

    /// Builds the descriptor of one layer member (see the module docs for
    /// which digest) and returns it with the member's name.
    fn describe_layer(&self, name: &str, diff_id: &str) -> Result<(Descriptor, String), ImageError> {
        let member = normalize_member_name(name).map_err(|r| self.archive_error(format!("layer {name}: {r}")))?;
        let (mut reader, size) = self
            .store
            .open_sync(&member)?
            .ok_or_else(|| self.archive_error(format!("layer {name} is listed but missing")))?;
        let io_err = |e: std::io::Error| ImageError::io(format!("layer {name} in {}", self.store.location()), e);
        let mut head = [0u8; 6];
        let mut filled = 0;
        while filled < head.len() {
            match reader.read(&mut head[filled..]).map_err(io_err)? {
                0 => break,
                n => filled += n,
            }
        }
        let compression = sniff(&head[..filled]);
        let digest = match (compression, digest_from_name(&member, false)) {
            (Compression::None, _) => {
                validate_digest(diff_id).map_err(|r| self.archive_error(format!("config diff_id: {r}")))?;
                diff_id.to_string()
            }
            (_, Some(named)) => named,
            // Not content-addressed and not the diff_id: hash it, streaming.
            (_, None) => {
                let mut hasher = Sha256::new();
                hasher.update(&head[..filled]);
                let mut buf = vec![0u8; CHUNK];
                loop {
                    match reader.read(&mut buf).map_err(io_err)? {
                        0 => break,
                        n => hasher.update(&buf[..n]),
                    }
                }
                format!("sha256:{}", hex::encode(hasher.finalize()))
            }
        };
        let media_type = match compression {
            Compression::None => DOCKER_LAYER_TAR,
            Compression::Gzip => DOCKER_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        };
        let descriptor =
            Descriptor { media_type: media_type.to_string(), digest, size, platform: None, annotations: None };
        Ok((descriptor, member))
    }

    fn member_for(&self, digest: &str) -> Option<String> {
        self.layer_members.lock().ok().and_then(|m| m.get(digest).cloned())
    }
}

/// Compression by magic bytes (like [`crate::blob::decompress`]; xz and
/// bzip2 count as uncompressed here and are refused when decompressing).
fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The digest a member's name states: `blobs/sha256/<hex>`, or, when
/// `allow_json` (configs), `<hex>.json` as classic `docker save` writes.
fn digest_from_name(name: &str, allow_json: bool) -> Option<String> {
    let name = normalize_member_name(name).ok()?;
    let hex = match name.strip_prefix("blobs/sha256/") {
        Some(hex) => hex,
        None if allow_json => name.strip_suffix(".json")?,
        None => return None,
    };
    let digest = format!("sha256:{hex}");
    validate_digest(&digest).ok()?;
    Some(digest)
}

/// Normalises an image name the way Docker does, so that `alpine`,
/// `alpine:latest`, `library/alpine` and `docker.io/library/alpine:latest`
/// all match (skopeo writes full names in `RepoTags`, docker short ones).
fn normalize_image_name(name: &str) -> String {
    let (repo, suffix) = match name.split_once('@') {
        Some((repo, digest)) => (repo, format!("@{digest}")),
        None => {
            let last_slash = name.rfind('/').map_or(0, |i| i + 1);
            match name[last_slash..].rfind(':') {
                Some(colon) => (&name[..last_slash + colon], name[last_slash + colon..].to_string()),
                None => (name, ":latest".to_string()),
            }
        }
    };
    let (domain, path) = match repo.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), repo.to_string()),
    };
    let domain = if domain == "index.docker.io" { "docker.io".to_string() } else { domain };
    let path = if domain == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path };
    format!("{domain}/{path}{suffix}")
}

#[async_trait]
impl ImageSource for DockerArchiveSource {
    async fn resolve(&self) -> Result<ResolvedImage, ImageError> {
        let inner = self.inner.clone();
        blocking(move || inner.resolve_blocking()).await
    }

    async fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobStream, ImageError> {
        // Member names are only known after resolving; resolve now if the caller has not.
        let member = match self.inner.member_for(&layer.digest) {
            Some(m) => m,
            None => {
                self.resolve().await?;
                self.inner.member_for(&layer.digest).ok_or_else(|| {
                    self.inner.archive_error(format!("layer {} is not part of this image", layer.digest))
                })?
            }
        };
        self.inner
            .store
            .open_stream(&member)
            .await?
            .ok_or_else(|| self.inner.archive_error(format!("layer {member} is missing")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_normalize_like_docker() {
        let full = "docker.io/library/alpine:latest";
        for n in ["alpine", "alpine:latest", "library/alpine", "docker.io/alpine", full] {
            assert_eq!(normalize_image_name(n), full, "{n}");
        }
        assert_eq!(normalize_image_name("repo/x:tag"), "docker.io/repo/x:tag");
        assert_eq!(normalize_image_name("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(normalize_image_name("ghcr.io/a/b:1"), "ghcr.io/a/b:1");
        assert_ne!(normalize_image_name("alpine:3"), full);
    }

    #[test]
    fn digests_from_member_names() {
        let hex = "a".repeat(64);
        assert_eq!(digest_from_name(&format!("blobs/sha256/{hex}"), false), Some(format!("sha256:{hex}")));
        assert_eq!(digest_from_name(&format!("{hex}.json"), true), Some(format!("sha256:{hex}")));
        assert_eq!(digest_from_name(&format!("{hex}.json"), false), None);
        assert_eq!(digest_from_name("abc/layer.tar", false), None);
        assert_eq!(digest_from_name("blobs/sha256/../../x", false), None);
    }
}
