//! Fixture helpers shared by the `layout_*` tests: hand-written OCI layouts
//! and docker archives, the external tools (umoci, skopeo), and reading a
//! blob the way the scanner does (pump + decompress), so tests see the same
//! digest verification.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use trawl_image::blob::{decompress, BlobPump};
use trawl_image::manifest::{sha256_digest, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use trawl_image::{ImageError, ImageSource, LayerDescriptor, LayerLimits};

/// True when `tool` runs; otherwise prints why the calling test is skipped.
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: {tool} is not installed");
    }
    ok
}

/// Runs a command and panics with its output if it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An uncompressed layer tar holding the given files.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// gzip of some bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Names of the members in a tar. Stops quietly at a truncated end: umoci
/// 0.4 writes layer tars without the final padding and end-of-archive blocks.
pub fn tar_names(data: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(data);
    a.entries().unwrap().map_while(Result::ok).map(|e| e.path().unwrap().to_string_lossy().into_owned()).collect()
}

/// Reads a layer like the scanner does: raw bytes through [`BlobPump`] (which
/// verifies digest and size), decompressed on a blocking thread. Returns the
/// uncompressed tar, or the pump's (or decompressor's) error.
pub async fn read_layer(source: &dyn ImageSource, layer: &LayerDescriptor) -> Result<Vec<u8>, ImageError> {
    let stream = source.open_blob(layer).await?;
    let (pump, reader) = BlobPump::start(stream, layer);
    let progress = pump.progress.clone();
    let digest = layer.digest.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ImageError> {
        let (_, mut r) = decompress(reader, &digest, LayerLimits::default(), progress)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| ImageError::io("layer", e))?;
        Ok(out)
    })
    .await
    .unwrap();
    // The pump's verdict (digest, size) comes first: a tampered blob often
    // also fails to decompress, but the mismatch is the real cause.
    pump.finish().await?;
    read
}

/// A descriptor as JSON.
pub fn desc(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": sha256_digest(bytes), "size": bytes.len()})
}

/// Writes an OCI layout by hand, blob by blob.
pub struct LayoutWriter {
    /// The layout directory.
    pub dir: PathBuf,
    entries: Vec<serde_json::Value>,
}

impl LayoutWriter {
    /// Starts a layout in `dir` (created).
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        LayoutWriter { dir: dir.to_path_buf(), entries: Vec::new() }
    }

    /// Stores a blob; returns its digest.
    pub fn blob(&self, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(self.dir.join("blobs/sha256").join(hex), bytes).unwrap();
        digest
    }

    /// Path of a stored blob.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
    }

    /// Stores a single-platform image of gzip layers built from `layers`
    /// (uncompressed tars); returns the manifest bytes.
    pub fn image(&self, arch: &str, layers: &[Vec<u8>]) -> Vec<u8> {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
        let history: Vec<serde_json::Value> =
            (0..layers.len()).map(|i| serde_json::json!({"created_by": format!("step {i} on {arch}")})).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }))
        .unwrap();
        self.blob(&config);
        let layer_descs: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| {
                let gz = gzip(l);
                self.blob(&gz);
                desc("application/vnd.oci.image.layer.v1.tar+gzip", &gz)
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": desc(OCI_CONFIG, &config), "layers": layer_descs,
        }))
        .unwrap();
        self.blob(&manifest);
        manifest
    }

    /// Stores an index over `(manifest, arch)` pairs; returns its bytes.
    pub fn index(&self, manifests: &[(&[u8], &str)]) -> Vec<u8> {
        let entries: Vec<serde_json::Value> = manifests
            .iter()
            .map(|(m, arch)| {
                let mut d = desc(OCI_MANIFEST, m);
                d["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
                d
            })
            .collect();
        let index =
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}))
                .unwrap();
        self.blob(&index);
        index
    }

    /// Lists a manifest or index in `index.json`, with an optional tag.
    pub fn tag(&mut self, media_type: &str, doc: &[u8], tag: Option<&str>) -> &mut Self {
        let mut d = desc(media_type, doc);
        if let Some(t) = tag {
            d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": t});
        }
        self.entries.push(d);
        self
    }

    /// Writes `index.json`.
    pub fn finish(&self) {
        let index = serde_json::json!({"schemaVersion": 2, "manifests": self.entries});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }
}

/// Writes a tar file from `(name, bytes)` members (directories implied).
pub fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.finish().unwrap();
}

/// A `docker save` `manifest.json` entry.
pub fn save_entry(config: &str, tags: &[&str], layers: &[String]) -> serde_json::Value {
    serde_json::json!({"Config": config, "RepoTags": tags, "Layers": layers})
}
