//! Images, indexes and OCI artifacts assembled from layers: manifests and configs that follow
//! the OCI image spec (or Docker schema 2), byte-for-byte reproducible.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::layer::{sha256_digest, Blob, Compression, LayerBuilder};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Helm chart config media type.
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// Helm chart content layer media type.
pub const HELM_CHART_CONTENT: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// The timestamp written into configs unless [`ImageBuilder::created`] overrides it.
pub const DEFAULT_CREATED: &str = "2024-01-01T00:00:00Z";

/// Which family of media types an image or index uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MediaTypes {
    /// OCI image spec media types.
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2 / manifest list media types.
    DockerV2,
}

impl MediaTypes {
    /// The image manifest media type.
    pub fn manifest(self) -> &'static str {
        match self {
            MediaTypes::Oci => OCI_MANIFEST,
            MediaTypes::DockerV2 => DOCKER_MANIFEST,
        }
    }

    /// The index / manifest list media type.
    pub fn index(self) -> &'static str {
        match self {
            MediaTypes::Oci => OCI_INDEX,
            MediaTypes::DockerV2 => DOCKER_MANIFEST_LIST,
        }
    }

    /// The image config media type.
    pub fn config(self) -> &'static str {
        match self {
            MediaTypes::Oci => OCI_CONFIG,
            MediaTypes::DockerV2 => DOCKER_CONFIG,
        }
    }

    /// The layer media type for `compression`.
    pub fn layer(self, compression: Compression) -> &'static str {
        match self {
            MediaTypes::Oci => compression.oci_media_type(),
            MediaTypes::DockerV2 => compression.docker_media_type(),
        }
    }
}

/// An image's platform, as in index entries and the config's `os`/`architecture`/`variant`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// GOARCH style, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// e.g. `v8` for arm64, `v7` for arm.
    pub variant: Option<String>,
}

impl Platform {
    /// A platform without variant.
    pub fn new(os: &str, architecture: &str) -> Self {
        Self { os: os.to_owned(), architecture: architecture.to_owned(), variant: None }
    }

    /// The same platform with a variant.
    pub fn with_variant(mut self, variant: &str) -> Self {
        self.variant = Some(variant.to_owned());
        self
    }

    /// The JSON object used in index entries.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("architecture".into(), json!(self.architecture));
        m.insert("os".into(), json!(self.os));
        if let Some(v) = &self.variant {
            m.insert("variant".into(), json!(v));
        }
        Value::Object(m)
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self::new("linux", "amd64")
    }
}

/// Anything with a manifest that can be pushed or written to a layout: a [`BuiltImage`] or a
/// [`BuiltIndex`].
pub trait Artifact: Sync {
    /// The manifest (or index) media type.
    fn manifest_media_type(&self) -> &str;
    /// The manifest (or index) bytes, exactly as stored.
    fn manifest_bytes(&self) -> &[u8];
    /// `sha256:<hex>` of [`Artifact::manifest_bytes`].
    fn manifest_digest(&self) -> &str;
    /// Blobs the manifest references directly (config first, then layers); none for an index.
    fn blobs(&self) -> Vec<Blob>;
    /// Manifests an index references, which must be stored before it; none for an image.
    fn children(&self) -> &[BuiltImage];
    /// The platform to record for this manifest in an index or layout, if any.
    fn platform(&self) -> Option<&Platform>;
}

/// A complete image: manifest, config and layers, all content-addressed.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// `sha256:<hex>` of `manifest`.
    pub manifest_digest: String,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// The config bytes.
    pub config: Vec<u8>,
    /// `sha256:<hex>` of `config`.
    pub config_digest: String,
    /// The config's media type.
    pub config_media_type: String,
    /// The layers, bottom first.
    pub layers: Vec<Blob>,
    /// The platform (recorded in indexes); `None` for artifacts such as Helm charts.
    pub platform: Option<Platform>,
}

impl BuiltImage {
    /// An image from raw parts, computing only digests: the escape hatch for hand-made (or
    /// deliberately broken) manifests and configs.
    pub fn from_parts(
        manifest_media_type: &str,
        manifest: Vec<u8>,
        config_media_type: &str,
        config: Vec<u8>,
        layers: Vec<Blob>,
        platform: Option<Platform>,
    ) -> Self {
        Self {
            manifest_digest: sha256_digest(&manifest),
            manifest,
            manifest_media_type: manifest_media_type.to_owned(),
            config_digest: sha256_digest(&config),
            config,
            config_media_type: config_media_type.to_owned(),
            layers,
            platform,
        }
    }

    /// An image whose manifest is generated (schema 2, `mediaType` set, descriptors for the
    /// config and `layers`, optional annotations) around the given config bytes.
    pub fn assemble(
        media_types: MediaTypes,
        config_media_type: &str,
        config: Vec<u8>,
        layers: Vec<Blob>,
        platform: Option<Platform>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let mut manifest = Map::new();
        manifest.insert("schemaVersion".into(), json!(2));
        manifest.insert("mediaType".into(), json!(media_types.manifest()));
        manifest.insert(
            "config".into(),
            json!({ "mediaType": config_media_type, "digest": sha256_digest(&config), "size": config.len() }),
        );
        manifest.insert("layers".into(), Value::Array(layers.iter().map(Blob::descriptor).collect()));
        if !annotations.is_empty() {
            if media_types == MediaTypes::DockerV2 {
                bail!("Docker schema 2 manifests have no annotations");
            }
            manifest.insert("annotations".into(), json!(annotations));
        }
        let manifest = serde_json::to_vec_pretty(&Value::Object(manifest))?;
        Ok(Self::from_parts(media_types.manifest(), manifest, config_media_type, config, layers, platform))
    }

    /// The manifest parsed as JSON.
    pub fn manifest_json(&self) -> Value {
        serde_json::from_slice(&self.manifest).unwrap_or(Value::Null)
    }

    /// The config parsed as JSON.
    pub fn config_json(&self) -> Value {
        serde_json::from_slice(&self.config).unwrap_or(Value::Null)
    }

    /// The config as a [`Blob`].
    pub fn config_blob(&self) -> Blob {
        Blob::from_bytes(&self.config_media_type, Bytes::from(self.config.clone()))
    }

    /// The layer digests, bottom first.
    pub fn layer_digests(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.digest.clone()).collect()
    }

    /// The layer diff IDs, bottom first.
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }
}

impl Artifact for BuiltImage {
    fn manifest_media_type(&self) -> &str {
        &self.manifest_media_type
    }
    fn manifest_bytes(&self) -> &[u8] {
        &self.manifest
    }
    fn manifest_digest(&self) -> &str {
        &self.manifest_digest
    }
    fn blobs(&self) -> Vec<Blob> {
        std::iter::once(self.config_blob()).chain(self.layers.iter().cloned()).collect()
    }
    fn children(&self) -> &[BuiltImage] {
        &[]
    }
    fn platform(&self) -> Option<&Platform> {
        self.platform.as_ref()
    }
}

enum PendingLayer {
    Builder(LayerBuilder),
    Blob(Blob),
}

enum HistoryItem {
    Layer { created_by: Option<String>, comment: Option<String> },
    Empty { created_by: String },
}

/// Builds a single-platform image layer by layer.
///
/// The config carries `rootfs.diff_ids` (one per layer) and a `history` entry per layer (plus
/// any [`ImageBuilder::empty_layer_history`] entries, flagged `empty_layer`), in call order.
pub struct ImageBuilder {
    media_types: MediaTypes,
    platform: Platform,
    layers: Vec<PendingLayer>,
    history: Vec<HistoryItem>,
    created: String,
    env: Vec<String>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    config_fields: Map<String, Value>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// An empty `linux/amd64` OCI image.
    pub fn new() -> Self {
        Self {
            media_types: MediaTypes::Oci,
            platform: Platform::default(),
            layers: Vec::new(),
            history: Vec::new(),
            created: DEFAULT_CREATED.to_owned(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()],
            cmd: None,
            entrypoint: None,
            working_dir: None,
            user: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            config_fields: Map::new(),
        }
    }

    /// OCI (default) or Docker schema 2 media types; layer media types follow.
    pub fn media_types(mut self, media_types: MediaTypes) -> Self {
        self.media_types = media_types;
        self
    }

    /// Sets `os` and `architecture` (and clears the variant).
    pub fn platform(mut self, os: &str, architecture: &str) -> Self {
        self.platform = Platform::new(os, architecture);
        self
    }

    /// Sets the platform variant (e.g. `v8`).
    pub fn variant(mut self, variant: &str) -> Self {
        self.platform.variant = Some(variant.to_owned());
        self
    }

    /// Appends a layer (built at [`ImageBuilder::build`]) with a history entry without `created_by`.
    pub fn layer(mut self, layer: LayerBuilder) -> Self {
        self.layers.push(PendingLayer::Builder(layer));
        self.history.push(HistoryItem::Layer { created_by: None, comment: None });
        self
    }

    /// Appends a layer whose history entry says `created_by` (e.g. `RUN apk add curl`).
    pub fn layer_with_history(mut self, layer: LayerBuilder, created_by: &str) -> Self {
        self.layers.push(PendingLayer::Builder(layer));
        self.history.push(HistoryItem::Layer { created_by: Some(created_by.to_owned()), comment: None });
        self
    }

    /// Appends an already built layer (e.g. a base layer shared by several images, or a
    /// file-backed one), with an optional `created_by`.
    pub fn blob_layer(mut self, blob: Blob, created_by: Option<&str>) -> Self {
        self.layers.push(PendingLayer::Blob(blob));
        self.history.push(HistoryItem::Layer { created_by: created_by.map(str::to_owned), comment: None });
        self
    }

    /// Appends a history entry with `empty_layer: true` (like `ENV` or `CMD` in a Dockerfile).
    pub fn empty_layer_history(mut self, created_by: &str) -> Self {
        self.history.push(HistoryItem::Empty { created_by: created_by.to_owned() });
        self
    }

    /// Sets the comment of the most recently added layer's history entry.
    pub fn history_comment(mut self, comment: &str) -> Self {
        if let Some(HistoryItem::Layer { comment: c, .. }) =
            self.history.iter_mut().rev().find(|h| matches!(h, HistoryItem::Layer { .. }))
        {
            *c = Some(comment.to_owned());
        }
        self
    }

    /// Sets the config's `created` timestamp (RFC 3339), also used for history entries.
    pub fn created(mut self, created: &str) -> Self {
        self.created = created.to_owned();
        self
    }

    /// Adds an environment variable (`KEY=VALUE`) to `config.Env`.
    pub fn env(mut self, key_value: &str) -> Self {
        self.env.push(key_value.to_owned());
        self
    }

    /// Sets `config.Cmd`.
    pub fn cmd(mut self, args: &[&str]) -> Self {
        self.cmd = Some(args.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Sets `config.Entrypoint`.
    pub fn entrypoint(mut self, args: &[&str]) -> Self {
        self.entrypoint = Some(args.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Sets `config.WorkingDir`.
    pub fn working_dir(mut self, dir: &str) -> Self {
        self.working_dir = Some(dir.to_owned());
        self
    }

    /// Sets `config.User`.
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    /// Adds a label to `config.Labels`.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a manifest annotation (OCI only).
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets (or with `Value::Null`, removes) a top-level config field after everything else is
    /// generated, e.g. to test odd configs.
    pub fn config_field(mut self, key: &str, value: Value) -> Self {
        self.config_fields.insert(key.to_owned(), value);
        self
    }

    /// Builds the layers (in memory), the config and the manifest.
    pub fn build(self) -> Result<BuiltImage> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in self.layers {
            let mut blob = match layer {
                PendingLayer::Builder(b) => b.build()?,
                PendingLayer::Blob(b) => b,
            };
            // Standard layer types follow the image's media type family; custom ones are kept.
            if let Some(c) = Compression::from_layer_media_type(&blob.media_type) {
                blob.media_type = self.media_types.layer(c).to_owned();
            }
            layers.push(blob);
        }

        let history: Vec<Value> = self
            .history
            .iter()
            .map(|h| {
                let mut m = Map::new();
                m.insert("created".into(), json!(self.created));
                match h {
                    HistoryItem::Layer { created_by, comment } => {
                        if let Some(c) = created_by {
                            m.insert("created_by".into(), json!(c));
                        }
                        if let Some(c) = comment {
                            m.insert("comment".into(), json!(c));
                        }
                    }
                    HistoryItem::Empty { created_by } => {
                        m.insert("created_by".into(), json!(created_by));
                        m.insert("empty_layer".into(), json!(true));
                    }
                }
                Value::Object(m)
            })
            .collect();

        let mut container_config = Map::new();
        container_config.insert("Env".into(), json!(self.env));
        if let Some(cmd) = &self.cmd {
            container_config.insert("Cmd".into(), json!(cmd));
        }
        if let Some(ep) = &self.entrypoint {
            container_config.insert("Entrypoint".into(), json!(ep));
        }
        if let Some(wd) = &self.working_dir {
            container_config.insert("WorkingDir".into(), json!(wd));
        }
        if let Some(u) = &self.user {
            container_config.insert("User".into(), json!(u));
        }
        if !self.labels.is_empty() {
            container_config.insert("Labels".into(), json!(self.labels));
        }

        let mut config = Map::new();
        config.insert("created".into(), json!(self.created));
        config.insert("architecture".into(), json!(self.platform.architecture));
        config.insert("os".into(), json!(self.platform.os));
        if let Some(v) = &self.platform.variant {
            config.insert("variant".into(), json!(v));
        }
        config.insert("config".into(), Value::Object(container_config));
        config.insert(
            "rootfs".into(),
            json!({ "type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>() }),
        );
        config.insert("history".into(), Value::Array(history));
        for (k, v) in self.config_fields {
            if v.is_null() {
                config.remove(&k);
            } else {
                config.insert(k, v);
            }
        }
        let config = serde_json::to_vec_pretty(&Value::Object(config))?;
        BuiltImage::assemble(
            self.media_types,
            self.media_types.config(),
            config,
            layers,
            Some(self.platform),
            &self.annotations,
        )
    }
}

/// A multi-platform image: an OCI image index or Docker manifest list and its images.
#[derive(Clone, Debug)]
pub struct BuiltIndex {
    /// The index bytes.
    pub index: Vec<u8>,
    /// `sha256:<hex>` of `index`.
    pub digest: String,
    /// The index media type.
    pub media_type: String,
    /// The referenced images, in index order.
    pub images: Vec<BuiltImage>,
}

impl BuiltIndex {
    /// The index parsed as JSON.
    pub fn index_json(&self) -> Value {
        serde_json::from_slice(&self.index).unwrap_or(Value::Null)
    }

    /// The child image for `architecture`, if any.
    pub fn image_for(&self, architecture: &str) -> Option<&BuiltImage> {
        self.images.iter().find(|i| i.platform.as_ref().is_some_and(|p| p.architecture == architecture))
    }
}

impl Artifact for BuiltIndex {
    fn manifest_media_type(&self) -> &str {
        &self.media_type
    }
    fn manifest_bytes(&self) -> &[u8] {
        &self.index
    }
    fn manifest_digest(&self) -> &str {
        &self.digest
    }
    fn blobs(&self) -> Vec<Blob> {
        Vec::new()
    }
    fn children(&self) -> &[BuiltImage] {
        &self.images
    }
    fn platform(&self) -> Option<&Platform> {
        None
    }
}

/// Builds an image index (OCI) or manifest list (Docker) over several platform images.
pub struct IndexBuilder {
    media_types: MediaTypes,
    images: Vec<BuiltImage>,
    annotations: BTreeMap<String, String>,
}

impl IndexBuilder {
    /// An empty index of the given media type family.
    pub fn new(media_types: MediaTypes) -> Self {
        Self { media_types, images: Vec::new(), annotations: BTreeMap::new() }
    }

    /// Adds an image; its [`BuiltImage::platform`] goes into the index entry.
    pub fn image(mut self, image: BuiltImage) -> Self {
        self.images.push(image);
        self
    }

    /// Adds an index annotation (OCI only).
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Serialises the index.
    pub fn build(self) -> Result<BuiltIndex> {
        let manifests: Vec<Value> = self
            .images
            .iter()
            .map(|img| {
                let mut d = Map::new();
                d.insert("mediaType".into(), json!(img.manifest_media_type));
                d.insert("digest".into(), json!(img.manifest_digest));
                d.insert("size".into(), json!(img.manifest.len()));
                if let Some(p) = &img.platform {
                    d.insert("platform".into(), p.to_json());
                }
                Value::Object(d)
            })
            .collect();
        if self.media_types == MediaTypes::DockerV2 && self.images.iter().any(|i| i.platform.is_none()) {
            bail!("every entry of a Docker manifest list needs a platform");
        }
        let mut index = Map::new();
        index.insert("schemaVersion".into(), json!(2));
        index.insert("mediaType".into(), json!(self.media_types.index()));
        index.insert("manifests".into(), Value::Array(manifests));
        if !self.annotations.is_empty() {
            if self.media_types == MediaTypes::DockerV2 {
                bail!("Docker manifest lists have no annotations");
            }
            index.insert("annotations".into(), json!(self.annotations));
        }
        let index = serde_json::to_vec_pretty(&Value::Object(index))?;
        Ok(BuiltIndex {
            digest: sha256_digest(&index),
            index,
            media_type: self.media_types.index().to_owned(),
            images: self.images,
        })
    }
}

/// A Helm-chart-like OCI artifact, as `helm push` stores it: config of media type
/// [`HELM_CONFIG`] holding the chart metadata, one [`HELM_CHART_CONTENT`] layer holding
/// `NAME/Chart.yaml`, `NAME/values.yaml` and `extra_files` (paths relative to the chart dir).
pub fn helm_chart(name: &str, version: &str, extra_files: &[(&str, &[u8])]) -> Result<BuiltImage> {
    let chart_yaml = format!(
        "apiVersion: v2\nname: {name}\nversion: {version}\ndescription: A test chart built by trawl-testkit\ntype: application\nappVersion: \"{version}\"\n"
    );
    let mut layer = LayerBuilder::new()
        .compression(Compression::Gzip)
        .dir(format!("{name}/"))
        .file(format!("{name}/Chart.yaml"), chart_yaml, 0o644)
        .file(format!("{name}/values.yaml"), "image:\n  repository: nginx\n  tag: \"1.25\"\n", 0o644);
    for (path, contents) in extra_files {
        layer = layer.file(format!("{name}/{path}"), contents, 0o644);
    }
    let mut layer = layer.build()?;
    layer.media_type = HELM_CHART_CONTENT.to_owned();
    let config = serde_json::to_vec(&json!({
        "name": name,
        "version": version,
        "description": "A test chart built by trawl-testkit",
        "apiVersion": "v2",
        "appVersion": version,
        "type": "application",
    }))?;
    let mut annotations = BTreeMap::new();
    annotations.insert("org.opencontainers.image.title".to_owned(), name.to_owned());
    annotations.insert("org.opencontainers.image.version".to_owned(), version.to_owned());
    BuiltImage::assemble(MediaTypes::Oci, HELM_CONFIG, config, vec![layer], None, &annotations)
}
