//! OCI image layouts (image-spec `image-layout.md`): a directory, or a tar of
//! one as skopeo's `oci-archive:` writes, holding `oci-layout`, `index.json`
//! and content-addressed `blobs/sha256/<hex>`.
//!
//! Resolution mirrors the registry source: pick the `index.json` entry by its
//! `org.opencontainers.image.ref.name` tag, descend through an image index to
//! the requested platform, then read manifest and config — each verified
//! against its digest and capped in size. Layer blobs are streamed raw.

use super::store::{blocking, Store};
use super::tar_index::TarIndex;
use crate::error::ImageError;
use crate::manifest::{
    parse_manifest, select_platform, sha256_digest, validate_digest, Descriptor, ImageConfig, ImageManifest,
    ManifestDoc, OCI_INDEX, OCI_MANIFEST,
};
use crate::source::{BlobStream, ImageSource, LayerDescriptor, ResolvedImage, SourceOptions};
use async_trait::async_trait;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// The annotation that names (tags) an image in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// `oci-layout` is a tiny marker file; anything bigger is not one.
const MARKER_CAP: u64 = 64 << 10;

/// An image in an OCI image layout (a directory or a tar of one).
pub struct OciLayoutSource {
    inner: Arc<Inner>,
}

/// What resolving needs, shared with the blocking task that does it.
struct Inner {
    store: Store,
    tag: Option<String>,
    options: SourceOptions,
    /// The reference as given, for messages and [`ResolvedImage::reference`].
    display: String,
    /// The reference without its tag, to suggest `BASE:TAG`.
    base: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutMarker {
    image_layout_version: String,
}

impl OciLayoutSource {
    /// Opens a layout directory (`oci:DIR[:TAG]`); fails if it is missing.
    pub fn open_dir(dir: &Path, tag: Option<&str>, options: SourceOptions) -> Result<Self, ImageError> {
        let shown = dir.display().to_string();
        let meta = std::fs::metadata(dir).map_err(|e| ImageError::io(&shown, e))?;
        let display = display("oci", dir, tag);
        if !meta.is_dir() {
            return Err(ImageError::InvalidReference {
                reference: display,
                reason: format!("{shown} is a file, not a directory (for a layout archive use oci-archive:{shown})"),
            });
        }
        let base = self::display("oci", dir, None);
        Ok(OciLayoutSource::new(Store::Dir(dir.to_path_buf()), tag, options, display, base))
    }

    /// Opens a layout archive (`oci-archive:FILE[:TAG]`): indexes the tar
    /// without extracting it. The archive must be uncompressed.
    pub fn open_archive(file: &Path, tag: Option<&str>, options: SourceOptions) -> Result<Self, ImageError> {
        let index = TarIndex::build(file)?;
        let (shown, base) = (display("oci-archive", file, tag), display("oci-archive", file, None));
        Ok(OciLayoutSource::new(Store::Archive(Arc::new(index)), tag, options, shown, base))
    }

    fn new(store: Store, tag: Option<&str>, options: SourceOptions, display: String, base: String) -> Self {
        OciLayoutSource { inner: Arc::new(Inner { store, tag: tag.map(str::to_string), options, display, base }) }
    }
}

/// The reference as the user would write it.
fn display(scheme: &str, path: &Path, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("{scheme}:{}:{t}", path.display()),
        None => format!("{scheme}:{}", path.display()),
    }
}

impl Inner {
    fn layout_error(&self, reason: impl ToString) -> ImageError {
        ImageError::malformed(format!("OCI layout {}", self.store.location()), reason)
    }

    fn resolve_blocking(&self) -> Result<ResolvedImage, ImageError> {
        self.check_marker()?;
        let cap = self.options.max_document_bytes;
        let index_bytes = self
            .store
            .read_document("index.json", cap, "index.json")?
            .ok_or_else(|| self.layout_error("index.json is missing"))?;
        let entries = match parse_manifest(&index_bytes, Some(OCI_INDEX), &self.display)? {
            ManifestDoc::Index(entries) => entries,
            ManifestDoc::Image(_) => return Err(self.layout_error("index.json is an image manifest, not an index")),
        };
        let chosen = self.choose_entry(&entries)?;

        let (manifest, manifest_digest, index_digest) = match self.read_manifest(&chosen)? {
            ManifestDoc::Image(m) => (m, chosen.digest.clone(), None),
            ManifestDoc::Index(children) => {
                let child = select_platform(&children, &self.options.platform, &self.display)?.clone();
                match self.read_manifest(&child)? {
                    ManifestDoc::Image(m) => (m, child.digest.clone(), Some(chosen.digest.clone())),
                    ManifestDoc::Index(_) => {
                        return Err(ImageError::malformed("image index", "an index entry points at another index"))
                    }
                }
            }
        };

        let config_bytes = self.read_blob_document(&manifest.config, "image config")?;
        let config = ImageConfig::parse(&config_bytes, &manifest.config.digest)?;
        Ok(self.assemble(*manifest, manifest_digest, index_digest, config))
    }

    /// Checks `oci-layout`: its presence is what makes a directory a layout.
    fn check_marker(&self) -> Result<(), ImageError> {
        let marker = self.store.read_document("oci-layout", MARKER_CAP, "oci-layout")?.ok_or_else(|| {
            self.layout_error(
                "no oci-layout file: this is not an OCI image layout (for `docker save` output use docker-archive:)",
            )
        })?;
        let marker: LayoutMarker =
            serde_json::from_slice(&marker).map_err(|e| self.layout_error(format!("oci-layout is not valid: {e}")))?;
        // 1.x layouts are compatible by the spec's versioning rules.
        if marker.image_layout_version.split('.').next() != Some("1") {
            return Err(ImageError::Unsupported(format!(
                "{} uses OCI image layout version {}; only 1.x is supported",
                self.store.location(),
                marker.image_layout_version
            )));
        }
        Ok(())
    }

    /// Picks the `index.json` entry the tag names, or the only image.
    fn choose_entry(&self, entries: &[Descriptor]) -> Result<Descriptor, ImageError> {
        let tag_of = |d: &Descriptor| d.annotations.as_ref().and_then(|a| a.get(REF_NAME_ANNOTATION)).cloned();
        let mut tags: Vec<String> = entries.iter().filter_map(tag_of).collect();
        tags.sort();
        tags.dedup();
        let listed = if tags.is_empty() { "none".to_string() } else { tags.join(", ") };

        let candidates: Vec<Descriptor> = match &self.tag {
            Some(tag) => entries.iter().filter(|d| tag_of(d).as_deref() == Some(tag.as_str())).cloned().collect(),
            None => entries.to_vec(),
        };
        match candidates.as_slice() {
            [] if self.tag.is_some() => {
                Err(ImageError::NotFound { reference: format!("{} (tags in the layout: {listed})", self.display) })
            }
            [] => Err(self.layout_error("index.json lists no images")),
            [only] => Ok(only.clone()),
            // Some tools list one manifest per platform directly in index.json.
            several if several.iter().all(|d| d.platform.is_some()) => {
                Ok(select_platform(several, &self.options.platform, &self.display)?.clone())
            }
            several => Err(ImageError::InvalidReference {
                reference: self.display.clone(),
                reason: match &self.tag {
                    None => format!(
                        "the layout holds {} images; name one as {}:TAG (tags in the layout: {listed})",
                        several.len(),
                        self.base
                    ),
                    Some(tag) => {
                        format!("tag {tag} names {} images that are not platform variants of one image", several.len())
                    }
                },
            }),
        }
    }

    /// Reads and parses the manifest or index a descriptor points at.
    fn read_manifest(&self, desc: &Descriptor) -> Result<ManifestDoc, ImageError> {
        let bytes = self.read_blob_document(desc, "manifest")?;
        let content_type = Some(desc.media_type.as_str()).filter(|t| !t.is_empty());
        parse_manifest(&bytes, content_type, &self.display)
    }

    /// Reads a small blob (manifest, index, config), capped in size and
    /// verified against the descriptor's digest and size.
    fn read_blob_document(&self, desc: &Descriptor, what: &str) -> Result<Vec<u8>, ImageError> {
        let hex = validate_digest(&desc.digest).map_err(|r| self.layout_error(format!("{what}: {r}")))?;
        let cap = self.options.max_document_bytes;
        let label = format!("{what} {}", desc.digest);
        if desc.size > cap {
            return Err(ImageError::LimitExceeded {
                what: label,
                reason: format!("{} bytes, more than {cap}", desc.size),
                flag: "--max-document-size",
            });
        }
        let bytes =
            self.store.read_document(&blob_name(hex), cap, &label)?.ok_or_else(|| self.missing_blob(&desc.digest))?;
        let actual = sha256_digest(&bytes);
        if actual != desc.digest {
            return Err(ImageError::DigestMismatch { what: label, expected: desc.digest.clone(), actual });
        }
        if desc.size != 0 && bytes.len() as u64 != desc.size {
            return Err(ImageError::SizeMismatch { what: label, expected: desc.size, actual: bytes.len() as u64 });
        }
        Ok(bytes)
    }

    fn missing_blob(&self, digest: &str) -> ImageError {
        self.layout_error(format!("blob {digest} is referenced but missing from the layout (an incomplete copy?)"))
    }

    fn assemble(
        &self,
        manifest: ImageManifest,
        manifest_digest: String,
        index_digest: Option<String>,
        config: ImageConfig,
    ) -> ResolvedImage {
        let mut layers: Vec<LayerDescriptor> = manifest
            .layers
            .iter()
            .map(|l| LayerDescriptor {
                digest: l.digest.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
                diff_id: None,
                created_by: None,
            })
            .collect();
        ResolvedImage::attach_config_details(&mut layers, &config);
        ResolvedImage {
            reference: self.display.clone(),
            manifest_digest,
            index_digest,
            media_type: if manifest.media_type.is_empty() { OCI_MANIFEST.to_string() } else { manifest.media_type },
            config_digest: manifest.config.digest.clone(),
            config,
            layers,
        }
    }
}

/// The path of a blob inside a layout; `hex` must come from [`validate_digest`].
fn blob_name(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

#[async_trait]
impl ImageSource for OciLayoutSource {
    async fn resolve(&self) -> Result<ResolvedImage, ImageError> {
        let inner = self.inner.clone();
        blocking(move || inner.resolve_blocking()).await
    }

    async fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobStream, ImageError> {
        let inner = &self.inner;
        let hex = validate_digest(&layer.digest).map_err(|r| inner.layout_error(format!("layer: {r}")))?;
        inner.store.open_stream(&blob_name(hex)).await?.ok_or_else(|| inner.missing_blob(&layer.digest))
    }
}
