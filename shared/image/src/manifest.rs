//! Parsing of OCI / Docker v2 manifests, indexes and image configs, shared
//! by every image source, with the checks that make them trustworthy:
//! digest format, media types, platform selection, and "is this an image?".

use crate::error::ImageError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker v2 schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Every manifest media type we accept from a registry.
pub const ACCEPTED_MANIFEST_TYPES: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// A content descriptor (OCI image spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:<hex>` digest.
    pub digest: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Platform, in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations (e.g. `org.opencontainers.image.ref.name` in layouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// An OS/architecture pair, as in image indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    /// e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// e.g. `v8` for arm64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, ImageError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || ImageError::InvalidReference {
            reference: s.to_string(),
            reason: "platform must be OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64".into(),
        };
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None })
            }
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()).filter(|v| !v.is_empty()),
            }),
            _ => Err(bad()),
        }
    }

    /// True when `candidate` satisfies this requested platform (a missing
    /// requested variant matches any variant).
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && (self.variant.is_none() || self.variant == candidate.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A manifest or an index: the top-level document a reference points at.
#[derive(Debug, Clone)]
pub enum ManifestDoc {
    /// A single-platform image manifest.
    Image(Box<ImageManifest>),
    /// A multi-platform index or Docker manifest list.
    Index(Vec<Descriptor>),
}

/// A single-platform image manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Media type (from the document or the transport).
    #[serde(default)]
    pub media_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// OCI artifact type, when set.
    #[serde(default)]
    pub artifact_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    fs_layers: Option<serde_json::Value>,
}

/// Parses a manifest or index, using the transport's content type when the
/// document does not name its own media type.
pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>, reference: &str) -> Result<ManifestDoc, ImageError> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| ImageError::malformed(format!("manifest of {reference}"), e))?;
    if probe.fs_layers.is_some() || probe.schema_version == Some(1) {
        return Err(ImageError::Unsupported(format!(
            "{reference} uses the deprecated Docker schema 1 manifest format; re-push it with a current client"
        )));
    }
    let media_type = probe.media_type.clone().or_else(|| content_type.map(str::to_string)).unwrap_or_default();
    if probe.manifests.is_some() || media_type == OCI_INDEX || media_type == DOCKER_LIST {
        return Ok(ManifestDoc::Index(probe.manifests.unwrap_or_default()));
    }
    if probe.config.is_none() {
        return Err(ImageError::malformed(
            format!("manifest of {reference}"),
            "neither an image manifest nor an index",
        ));
    }
    let mut m: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| ImageError::malformed(format!("manifest of {reference}"), e))?;
    if m.media_type.is_empty() {
        m.media_type = media_type;
    }
    for d in std::iter::once(&m.config).chain(&m.layers) {
        validate_digest(&d.digest).map_err(|r| ImageError::malformed(format!("manifest of {reference}"), r))?;
    }
    check_is_container_image(&m, reference)?;
    Ok(ManifestDoc::Image(Box::new(m)))
}

/// Rejects OCI artifacts that are not container images (Helm charts,
/// signatures, SBOM attachments…) with a message naming what they are.
fn check_is_container_image(m: &ImageManifest, reference: &str) -> Result<(), ImageError> {
    let config_type = m.config.media_type.as_str();
    if config_type.is_empty() || config_type == OCI_CONFIG || config_type == DOCKER_CONFIG {
        if let Some(layer) = m.layers.iter().find(|l| !is_layer_media_type(&l.media_type)) {
            return Err(ImageError::NotAnImage {
                reference: reference.to_string(),
                what: format!("it has a non-filesystem layer of type {}", layer.media_type),
                media_type: layer.media_type.clone(),
            });
        }
        return Ok(());
    }
    let what = if config_type.contains("helm") {
        "it is a Helm chart".to_string()
    } else if config_type.contains("cosign") || config_type.contains("sigstore") {
        "it is a signature or attestation".to_string()
    } else {
        "it is an OCI artifact".to_string()
    };
    Err(ImageError::NotAnImage { reference: reference.to_string(), what, media_type: config_type.to_string() })
}

/// Layer media types whose content is a (possibly compressed) tar filesystem.
fn is_layer_media_type(mt: &str) -> bool {
    mt.is_empty()
        || mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.")
}

/// Chooses the index entry for `wanted`, or explains which platforms exist.
pub fn select_platform<'a>(
    entries: &'a [Descriptor],
    wanted: &Platform,
    reference: &str,
) -> Result<&'a Descriptor, ImageError> {
    let images: Vec<&Descriptor> = entries
        .iter()
        // Attestation manifests in BuildKit indexes carry platform unknown/unknown.
        .filter(|d| d.platform.as_ref().is_some_and(|p| p.os != "unknown"))
        .collect();
    if let Some(d) = images.iter().find(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p))) {
        return Ok(d);
    }
    // arm64 images often say variant v8 (or nothing); accept either for a bare request.
    let available: Vec<String> = images.iter().filter_map(|d| d.platform.as_ref().map(|p| p.to_string())).collect();
    Err(ImageError::NoMatchingPlatform {
        reference: reference.to_string(),
        wanted: wanted.to_string(),
        available: if available.is_empty() { "none".into() } else { available.join(", ") },
    })
}

/// The parts of an image config that Trawl reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ImageConfig {
    /// Target architecture.
    #[serde(default)]
    pub architecture: String,
    /// Target OS.
    #[serde(default)]
    pub os: String,
    /// Creation time as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Layer diff ids and type.
    #[serde(default)]
    pub rootfs: RootFs,
    /// Build history, one entry per instruction.
    #[serde(default)]
    pub history: Vec<History>,
    /// The run configuration; only its labels are kept.
    #[serde(default)]
    pub config: RunConfig,
}

/// `config` of an image config (the container defaults). Only `Labels` is
/// read: `Env` is left alone on purpose, since images often carry secrets
/// there and reports must never repeat them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RunConfig {
    /// `LABEL` values (`org.opencontainers.image.source`, maintainers, …).
    #[serde(
        rename = "Labels",
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
}

/// Docker writes `"Labels": null` for images without labels.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RootFs {
    /// Uncompressed layer digests, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One `history` entry of an image config.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct History {
    /// The instruction that created it.
    #[serde(default)]
    pub created_by: Option<String>,
    /// True when the instruction produced no layer.
    #[serde(default)]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// Parses a config blob.
    pub fn parse(bytes: &[u8], digest: &str) -> Result<ImageConfig, ImageError> {
        serde_json::from_slice(bytes).map_err(|e| ImageError::malformed(format!("image config {digest}"), e))
    }

    /// The `created_by` of each non-empty history entry, i.e. one per layer.
    pub fn layer_commands(&self) -> Vec<Option<String>> {
        self.history.iter().filter(|h| !h.empty_layer).map(|h| h.created_by.clone()).collect()
    }
}

/// Checks that a digest is `sha256:` followed by 64 lowercase hex digits —
/// the only algorithm we verify, and a safe file-name component.
pub fn validate_digest(digest: &str) -> Result<&str, String> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Ok(hex)
        }
        Some(_) => Err(format!("invalid sha256 digest {digest:?}")),
        None => Err(format!("unsupported digest algorithm in {digest:?} (only sha256 is supported)")),
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_labels_are_read_and_env_is_not_kept() {
        let with = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "config":{"Env":["TOKEN=s3cret"],"Labels":{"org.opencontainers.image.source":"https://example.com/x"}}}"#;
        let digest = sha256_digest(with);
        let config = ImageConfig::parse(with, &digest).unwrap();
        assert_eq!(
            config.config.labels.get("org.opencontainers.image.source").map(String::as_str),
            Some("https://example.com/x")
        );
        assert!(!serde_json::to_string(&config).unwrap().contains("s3cret"));
        let null = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":null}}"#;
        assert!(ImageConfig::parse(null, &sha256_digest(null)).unwrap().config.labels.is_empty());
    }

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn rejects_helm_chart() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{D}","size":1}},"layers":[{{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"{D}","size":1}}]}}"#
        );
        let err = parse_manifest(m.as_bytes(), None, "r/chart:1").unwrap_err();
        assert!(err.to_string().contains("Helm chart"), "{err}");
    }

    #[test]
    fn selects_platform_or_lists_available() {
        let entries: Vec<Descriptor> = serde_json::from_str(&format!(
            r#"[{{"digest":"{D}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
                {{"digest":"{D}","size":2,"platform":{{"os":"linux","architecture":"amd64"}}}}]"#
        ))
        .unwrap();
        let amd = select_platform(&entries, &Platform::parse("linux/amd64").unwrap(), "x").unwrap();
        assert_eq!(amd.size, 2);
        let arm = select_platform(&entries, &Platform::parse("linux/arm64").unwrap(), "x").unwrap();
        assert_eq!(arm.size, 1);
        let err = select_platform(&entries, &Platform::parse("linux/s390x").unwrap(), "x").unwrap_err();
        assert!(err.to_string().contains("linux/arm64/v8, linux/amd64"), "{err}");
    }

    #[test]
    fn digests_are_validated() {
        assert!(validate_digest(D).is_ok());
        assert!(validate_digest("sha256:../../etc/passwd").is_err());
        assert!(validate_digest("md5:abc").is_err());
    }
}
