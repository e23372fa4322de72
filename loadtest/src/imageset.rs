//! The scenario's images: generated from its [`ImageSpec`], pushed to a real registry.
//!
//! Each image is `layers` layers of `layer_size` incompressible bytes (what
//! makes pulling cost what it says). The first `shared_layers()` come from one
//! of `base_variants` base stacks, shared by every image built on it, as
//! images built `FROM` one base share its layers; the rest are the image's
//! own. The bottom layer carries an os-release and the package database
//! (generated, or a real file), the top one an application's Python metadata
//! and a build id. Content is derived from seeds, so the same scenario gives
//! the same digests on every run and machine.
//!
//! With generated packages, a vulnerability database is written too: an
//! advisory for `vulnerable_fraction` of the packages, each fixed in a later
//! version, so every scan has findings to match and report.

use crate::scenario::{ImageSpec, LayerCompression, PackageFormat, PackageSource};
use anyhow::{Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use trawl_testkit::{push, Blob, Compression, ImageBuilder, LayerBuilder, RandomReader, Registry};

/// Layers above this size are built into files instead of memory.
const IN_MEMORY_LAYER: u64 = 8 << 20;
/// Pushes in flight at once.
const PUSHES_IN_FLIGHT: usize = 4;

/// One pushed image.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// `loadtest/app-R`.
    pub repository: String,
    /// `vT`.
    pub tag: String,
    /// The manifest digest.
    pub digest: String,
    /// Compressed bytes of its layers.
    pub layer_bytes: u64,
}

impl PushedImage {
    /// `repository:tag`, to be prefixed with the registry host.
    pub fn name(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// The pushed image set and its byte totals.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Every image, in push order.
    pub images: Vec<PushedImage>,
    /// Sum of the sizes of the distinct layers: what a scan of all of them
    /// must pull at least, with a perfect layer cache.
    pub distinct_layer_bytes: u64,
    /// Sum of every image's layer sizes: what scanning them all pulls without a cache.
    pub all_layer_bytes: u64,
    /// Distinct layers.
    pub distinct_layers: usize,
}

/// Builds the images of `spec`, pushes them to `registry` and, for generated
/// packages, writes a matching vulnerability database to `db` (else a
/// one-advisory database). `work` holds file-backed layers.
pub async fn build_and_push(spec: &ImageSpec, registry: &Registry, db: &Path, work: &Path) -> Result<ImageSet> {
    let shared = spec.shared_layers();
    let packages = match &spec.packages {
        PackageSource::Generated(n) => generated_packages(*n),
        PackageSource::File { .. } => Vec::new(),
    };
    let status = dpkg_status(&packages);
    // Base stacks first: each layer built once, reused by every image on it.
    let mut bases = Vec::new();
    for variant in 0..spec.base_variants {
        let mut stack = Vec::new();
        for j in 0..shared {
            stack.push(layer(spec, &status, LayerRole { seed: seed(0xba5e, variant, j), index: j, app: None }, work)?);
        }
        bases.push(stack);
    }
    let mut planned = Vec::new();
    let mut distinct = BTreeMap::new();
    let mut all = 0;
    for r in 0..spec.repositories {
        for t in 0..spec.tags {
            let n = r * spec.tags + t;
            let mut builder = ImageBuilder::new().label("org.opencontainers.image.title", &format!("loadtest app {n}"));
            for (j, blob) in bases[n % spec.base_variants].iter().enumerate() {
                builder = builder.blob_layer(blob.clone(), Some(&format!("ADD base-{j}.tar /")));
            }
            for j in shared..spec.layers {
                let app = (j + 1 == spec.layers).then_some(n);
                let blob = layer(spec, &status, LayerRole { seed: seed(0xa44, n, j), index: j, app }, work)?;
                builder = builder.blob_layer(blob, Some(&format!("COPY layer-{j} /")));
            }
            let image = builder.build()?;
            let mut bytes = 0;
            for l in &image.layers {
                distinct.insert(l.digest.clone(), l.size);
                bytes += l.size;
            }
            all += bytes;
            let pushed = PushedImage {
                repository: format!("loadtest/app-{r}"),
                tag: format!("v{t}"),
                digest: image.manifest_digest.clone(),
                layer_bytes: bytes,
            };
            planned.push((pushed, image));
        }
    }
    let images: Vec<PushedImage> = stream::iter(planned)
        .map(|(pushed, image)| async move {
            push(registry, &pushed.repository, &pushed.tag, &image, None).await?;
            anyhow::Ok(pushed)
        })
        .buffered(PUSHES_IN_FLIGHT)
        .try_collect()
        .await?;
    // The registry has its own copy now; large layers would otherwise double the disk used.
    drop(bases);
    remove_layer_files(work);
    // No packages (a real database file): a placeholder advisory, so the database is never empty.
    write_database(db, &packages, spec.vulnerable_fraction)?;
    Ok(ImageSet {
        images,
        distinct_layer_bytes: distinct.values().sum(),
        all_layer_bytes: all,
        distinct_layers: distinct.len(),
    })
}

fn remove_layer_files(work: &Path) {
    let Ok(entries) = std::fs::read_dir(work) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("layer-") && name.ends_with(".tar") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// What one layer holds besides its payload.
struct LayerRole {
    seed: u64,
    /// Position in the image: 0 carries the os-release and package database.
    index: usize,
    /// For the top layer: the image number, for its application metadata.
    app: Option<usize>,
}

fn seed(kind: u64, a: usize, b: usize) -> u64 {
    // splitmix64 of the three, so that neighbouring layers share no bytes.
    let mut z = kind.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((a as u64) << 20) ^ b as u64;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One layer; `dpkg_status` is the generated package database, built once for all images.
fn layer(spec: &ImageSpec, dpkg_status: &str, role: LayerRole, work: &Path) -> Result<Blob> {
    let (compression, level) = match spec.compression {
        // Level 1: the payload is noise, a higher level only costs time.
        LayerCompression::Gzip => (Compression::Gzip, 1),
        LayerCompression::Zstd => (Compression::Zstd, 1),
        LayerCompression::None => (Compression::None, 0),
    };
    let mut b = LayerBuilder::new().compression(compression);
    if compression != Compression::None {
        b = b.level(level);
    }
    if role.index == 0 {
        b = b.dir("etc");
        b = match &spec.packages {
            PackageSource::Generated(_) => b
                .file("etc/os-release", trawl_testkit::DEBIAN_12_OS_RELEASE, 0o644)
                .dir("var/lib/dpkg")
                .file("var/lib/dpkg/status", dpkg_status, 0o644),
            PackageSource::File { path, format } => {
                let target = format.image_path();
                let parent = target.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                b.file("etc/os-release", os_release(*format), 0o644).dir(parent).file_from_disk(target, path)
            }
        };
    }
    if let Some(n) = role.app {
        let name = format!("loadtest-app-{n}");
        let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.{n}\n\n");
        b = b.file(format!("usr/lib/python3/dist-packages/{name}-1.0.{n}.dist-info/METADATA"), metadata, 0o644).file(
            "app/build-id",
            format!("{n}\n"),
            0o644,
        );
    }
    let payload = format!("usr/lib/loadtest/payload-{}.bin", role.index);
    if spec.layer_size > IN_MEMORY_LAYER {
        let file = work.join(format!("layer-{:016x}.tar", role.seed));
        b.file_from_reader(payload, spec.layer_size, 0o644, RandomReader::new(role.seed).take(spec.layer_size))
            .build_to_file(&file)
            .with_context(|| format!("build a layer in {}", file.display()))
    } else {
        b.file(payload, trawl_testkit::noise(role.seed, spec.layer_size as usize), 0o644).build()
    }
}

fn os_release(format: PackageFormat) -> &'static str {
    match format {
        PackageFormat::Dpkg => trawl_testkit::DEBIAN_12_OS_RELEASE,
        PackageFormat::Apk => {
            "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\n"
        }
        PackageFormat::Rpm => {
            "NAME=\"AlmaLinux\"\nVERSION=\"9.4 (Seafoam Ocelot)\"\nID=\"almalinux\"\nVERSION_ID=\"9.4\"\n"
        }
    }
}

/// A generated Debian package: name, version, and the version that fixes its advisory.
struct GeneratedPackage {
    name: String,
    version: String,
    fixed: String,
}

fn generated_packages(n: usize) -> Vec<GeneratedPackage> {
    (0..n)
        .map(|k| GeneratedPackage {
            name: format!("ltpkg{k}"),
            version: format!("1.{k}.0-1"),
            fixed: format!("1.{k}.1-1"),
        })
        .collect()
}

fn dpkg_status(packages: &[GeneratedPackage]) -> String {
    packages
        .iter()
        .map(|p| {
            format!(
                "Package: {}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {}\nDescription: generated package\n\n",
                p.name, p.version
            )
        })
        .collect()
}

/// An advisory for every `1/fraction`-th package (at least one advisory, so the database is never empty).
fn write_database(path: &Path, packages: &[GeneratedPackage], fraction: f64) -> Result<()> {
    let step = if fraction > 0.0 { (1.0 / fraction).round().max(1.0) as usize } else { usize::MAX };
    let mut records = Vec::new();
    for (k, p) in packages.iter().enumerate().filter(|(k, _)| k % step == 0) {
        let severity = ["LOW", "MEDIUM", "HIGH", "CRITICAL"][k % 4];
        records.push(serde_json::json!({
            "id": format!("CVE-2099-{:05}", k + 1), "summary": format!("{}: load-test advisory", p.name),
            "affected": [{"package": {"ecosystem": "Debian:12", "name": p.name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": p.fixed}]}]}],
            "database_specific": {"severity": severity}
        }));
    }
    if records.is_empty() {
        records.push(serde_json::json!({
            "id": "CVE-2099-00000", "summary": "placeholder advisory",
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "no-such-package"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]
        }));
    }
    let records: Vec<trawl_vulndb::osv::OsvRecord> = records
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .context("generated advisory is not OSV")?;
    trawl_vulndb::Database::build(records, Vec::new(), 0)
        .write(path)
        .with_context(|| format!("write the database {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_has_the_asked_length() {
        let mut out = Vec::new();
        RandomReader::new(7).take(100_003).read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 100_003);
        // Incompressible enough that gzip cannot shrink it by much.
        assert!(out.iter().filter(|&&b| b == 0).count() < 1_000);
    }

    #[test]
    fn the_database_has_an_advisory_per_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        write_database(&path, &generated_packages(8), 0.25).unwrap();
        let db = trawl_vulndb::Database::load(&path).unwrap();
        assert_eq!(db.header().counts.advisories, 2);
    }
}
