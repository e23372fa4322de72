//! The [`ImageSource`] interface that every way of getting an image
//! implements, and the user-facing reference syntax that picks one.
//!
//! References follow skopeo/syft conventions: `HOST/REPO:TAG` or
//! `HOST/REPO@sha256:…` for registries, `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
//! `docker-archive:FILE`, `docker:NAME` (a Docker Engine API) and `dir:PATH`
//! for a root filesystem.

use crate::error::ImageError;
use crate::manifest::{ImageConfig, Platform};
use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A stream of raw (still compressed, not yet verified) blob bytes.
pub type BlobStream = BoxStream<'static, std::io::Result<bytes::Bytes>>;

/// One layer of a resolved image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDescriptor {
    /// Digest of the blob as stored (compressed), verified while streaming.
    pub digest: String,
    /// Blob size in bytes according to the manifest.
    pub size: u64,
    /// Media type from the manifest.
    pub media_type: String,
    /// Digest of the uncompressed tar, from the config's `rootfs.diff_ids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// The build instruction that created the layer, from the config history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// An image resolved to one platform: identity, config and layers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolvedImage {
    /// The reference as the user gave it.
    pub reference: String,
    /// Digest of the platform-specific manifest.
    pub manifest_digest: String,
    /// Digest of the index the manifest was selected from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    /// Manifest media type.
    pub media_type: String,
    /// Digest of the config blob.
    pub config_digest: String,
    /// The parsed config.
    pub config: ImageConfig,
    /// Layers, bottom first.
    pub layers: Vec<LayerDescriptor>,
}

impl ResolvedImage {
    /// Pairs manifest layers with the config's diff ids and history.
    pub(crate) fn attach_config_details(layers: &mut [LayerDescriptor], config: &ImageConfig) {
        let commands = config.layer_commands();
        for (i, layer) in layers.iter_mut().enumerate() {
            if layer.diff_id.is_none() {
                layer.diff_id = config.rootfs.diff_ids.get(i).cloned();
            }
            // History may be missing or shorter than the layer list.
            if commands.len() == config.rootfs.diff_ids.len() {
                layer.created_by = commands.get(i).cloned().flatten();
            }
        }
    }
}

/// Somewhere an image can be read from.
#[async_trait]
pub trait ImageSource: Send + Sync {
    /// Resolves the reference to one platform's manifest, config and layers.
    async fn resolve(&self) -> Result<ResolvedImage, ImageError>;

    /// Opens a layer blob as a byte stream. The caller verifies its digest
    /// and size (see [`crate::blob`]), so sources just deliver bytes.
    async fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobStream, ImageError>;

    /// True when [`ImageSource::open_blob`]'s stream already fails on a
    /// digest mismatch (with [`ImageError::DigestMismatch`]), so the caller
    /// need not hash the bytes a second time.
    fn verifies_digests(&self) -> bool {
        false
    }
}

/// Registry credentials. Never logged: `Debug` hides the secret.
#[derive(Clone, Default)]
pub enum Credentials {
    /// No credentials (anonymous pull, with anonymous token exchange when asked).
    #[default]
    Anonymous,
    /// Username and password (basic auth, or exchanged for a bearer token).
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// A bearer token to present as is.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Options that apply to how an image is fetched.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Platform to pick from multi-platform images.
    pub platform: Platform,
    /// Registry credentials.
    pub credentials: Credentials,
    /// Use plain HTTP for the registry.
    pub plain_http: bool,
    /// Accept invalid TLS certificates (self-signed registries).
    pub insecure_tls: bool,
    /// Largest manifest, index or config accepted, in bytes.
    pub max_document_bytes: u64,
    /// Docker Engine API endpoint for `docker:` references: `unix:///PATH`, a
    /// bare absolute socket path, or plain-HTTP `tcp://HOST:PORT` / `http://HOST:PORT`
    /// (TLS endpoints are not supported yet; see `docs/docker-engine.md`).
    pub docker_url: String,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            platform: Platform { os: "linux".into(), architecture: "amd64".into(), variant: None },
            credentials: Credentials::Anonymous,
            plain_http: false,
            insecure_tls: false,
            max_document_bytes: 8 << 20,
            docker_url: crate::docker_engine::DEFAULT_DOCKER_URL.to_string(),
        }
    }
}

/// A parsed image reference: which kind of source, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `HOST/REPO:TAG` or `HOST/REPO@DIGEST` (Docker Hub names are expanded).
    Registry(String),
    /// `oci:DIR[:TAG]`.
    OciLayout {
        /// Layout directory.
        dir: PathBuf,
        /// Tag (`org.opencontainers.image.ref.name`), if given.
        tag: Option<String>,
    },
    /// `oci-archive:FILE[:TAG]`.
    OciArchive {
        /// Tar file holding an OCI layout.
        file: PathBuf,
        /// Tag, if given.
        tag: Option<String>,
    },
    /// `docker-archive:FILE[:REPO:TAG]` (`docker save` output).
    DockerArchive {
        /// Tar file.
        file: PathBuf,
        /// `repo:tag` to pick when the archive holds several images.
        image: Option<String>,
    },
    /// `docker:NAME` or `docker-daemon:NAME`, an image held by a Docker
    /// Engine API (Docker itself, or Podman's compatible service).
    DockerDaemon(String),
    /// `dir:PATH`, a root filesystem on disk.
    Dir(PathBuf),
}

impl ImageRef {
    /// Parses a reference in skopeo/syft syntax. A bare name is a registry reference.
    pub fn parse(s: &str) -> Result<ImageRef, ImageError> {
        let invalid =
            |reason: &str| ImageError::InvalidReference { reference: s.to_string(), reason: reason.to_string() };
        if s.trim().is_empty() {
            return Err(invalid("empty reference"));
        }
        if let Some(rest) = s.strip_prefix("docker://").or_else(|| s.strip_prefix("registry:")) {
            return Ok(ImageRef::Registry(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = split_path_tag(rest);
            return Ok(ImageRef::OciLayout { dir, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = split_path_tag(rest);
            return Ok(ImageRef::OciArchive { file, tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            // The path may not contain ':'; anything after the first ':' names the image.
            return Ok(match rest.split_once(':') {
                Some((file, image)) if !image.is_empty() => {
                    ImageRef::DockerArchive { file: file.into(), image: Some(image.to_string()) }
                }
                _ => ImageRef::DockerArchive { file: rest.trim_end_matches(':').into(), image: None },
            });
        }
        if let Some(rest) = s.strip_prefix("docker-daemon:").or_else(|| s.strip_prefix("docker:")) {
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                return Err(invalid("docker: needs an image name or ID"));
            }
            return Ok(ImageRef::DockerDaemon(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("dir:") {
            if rest.is_empty() {
                return Err(invalid("dir: needs a path"));
            }
            return Ok(ImageRef::Dir(rest.into()));
        }
        if s.contains(char::is_whitespace) {
            return Err(invalid("references cannot contain whitespace"));
        }
        Ok(ImageRef::Registry(s.to_string()))
    }
}

/// Splits `PATH[:TAG]`; a colon inside the path's last component is a tag.
fn split_path_tag(s: &str) -> (PathBuf, Option<String>) {
    match s.rsplit_once(':') {
        Some((path, tag)) if !path.is_empty() && !tag.contains('/') && !tag.is_empty() => {
            (PathBuf::from(path), Some(tag.to_string()))
        }
        _ => (PathBuf::from(s.trim_end_matches(':')), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reference_kinds() {
        assert_eq!(ImageRef::parse("alpine:3.18").unwrap(), ImageRef::Registry("alpine:3.18".into()));
        assert_eq!(
            ImageRef::parse("oci:/tmp/layout:v1").unwrap(),
            ImageRef::OciLayout { dir: "/tmp/layout".into(), tag: Some("v1".into()) }
        );
        assert_eq!(
            ImageRef::parse("oci:/tmp/layout").unwrap(),
            ImageRef::OciLayout { dir: "/tmp/layout".into(), tag: None }
        );
        assert_eq!(
            ImageRef::parse("docker-archive:/tmp/a.tar:repo:tag").unwrap(),
            ImageRef::DockerArchive { file: "/tmp/a.tar".into(), image: Some("repo:tag".into()) }
        );
        assert_eq!(ImageRef::parse("dir:/").unwrap(), ImageRef::Dir("/".into()));
        assert_eq!(ImageRef::parse("docker:ubuntu:16.04").unwrap(), ImageRef::DockerDaemon("ubuntu:16.04".into()));
        assert_eq!(ImageRef::parse("docker-daemon:ubuntu").unwrap(), ImageRef::DockerDaemon("ubuntu".into()));
        assert_eq!(ImageRef::parse("docker://ubuntu").unwrap(), ImageRef::Registry("ubuntu".into()));
        assert!(ImageRef::parse("docker:").is_err());
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse("dir:").is_err());
    }

    #[test]
    fn credentials_never_print_secrets() {
        let c = Credentials::Basic { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Bearer("tok".into())).contains("tok"));
    }
}
