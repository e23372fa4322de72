//! `layer-cache-images`: the image set of the layer-cache benchmark
//! (`loadtest/bench-layer-cache.sh`), served from a real `docker-registry`.
//!
//! Builds N images that share one base layer — a Debian os-release and dpkg
//! status plus a few MiB of incompressible data, so that pulling it is what a
//! scan costs — and add one small layer each (an application's Python
//! package metadata and a build id). All are tags of one repository, pushed
//! to a fresh registry on a free loopback port. It prints
//!
//! ```text
//! REGISTRY <host:port>
//! IMAGES <n>
//! BASE_BYTES <compressed size of the base layer>
//! UNIQUE_BYTES <sum of the sizes of the distinct layers>
//! ALL_BYTES <sum of every image's layer sizes: what N uncached scans pull>
//! READY
//! ```
//!
//! then serves until its standard input closes (the registry dies with it).
//! With `--db FILE` it also writes a vulnerability database with one
//! advisory for a base-layer package, for the workers' `--db`.
//!
//! Usage: `layer-cache-images [--images N] [--base-mib MIB] [--db FILE]`

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use trawl_testkit::{push, Blob, ImageBuilder, LayerBuilder, Registry};

/// Repository all the images are tags of.
const REPOSITORY: &str = "bench/app";

struct Args {
    images: usize,
    base_mib: usize,
    db: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args { images: 100, base_mib: 4, db: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--images" => args.images = value()?.parse().context("--images")?,
            "--base-mib" => args.base_mib = value()?.parse().context("--base-mib")?,
            "--db" => args.db = Some(value()?.into()),
            other => {
                bail!("unknown argument {other:?}; usage: layer-cache-images [--images N] [--base-mib MIB] [--db FILE]")
            }
        }
    }
    if args.images == 0 {
        bail!("--images must be at least 1");
    }
    Ok(args)
}

fn dpkg_status() -> String {
    let packages = [
        ("base-files", "12.4+deb12u5", None),
        ("bash", "5.2.15-2+b2", None),
        ("coreutils", "9.1-1", None),
        ("libc6", "2.36-9+deb12u4", Some("glibc")),
        ("libssl3", "3.0.11-1~deb12u2", Some("openssl")),
        ("zlib1g", "1:1.2.13.dfsg-1", Some("zlib")),
        ("tar", "1.34+dfsg-1.2", None),
        ("gzip", "1.12-1", None),
    ];
    packages
        .iter()
        .map(|(name, version, source)| {
            let source = source.map(|s| format!("Source: {s}\n")).unwrap_or_default();
            format!(
                "Package: {name}\nStatus: install ok installed\nArchitecture: amd64\n{source}Version: {version}\nDescription: {name}\n\n"
            )
        })
        .collect()
}

fn base_layer(mib: usize) -> Result<Blob> {
    LayerBuilder::new()
        .dir("etc")
        .file("etc/os-release", trawl_testkit::DEBIAN_12_OS_RELEASE, 0o644)
        .dir("var/lib/dpkg")
        .file("var/lib/dpkg/status", dpkg_status(), 0o644)
        .dir("usr/lib/bench")
        .file("usr/lib/bench/payload.bin", trawl_testkit::noise(0x9e37_79b9_7f4a_7c15, mib << 20), 0o755)
        .build()
}

fn app_layer(index: usize) -> Result<Blob> {
    let name = format!("bench-app-{index:03}");
    let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.{index}\n\n");
    LayerBuilder::new()
        .file(format!("usr/lib/python3/dist-packages/{name}-1.0.{index}.dist-info/METADATA"), metadata, 0o644)
        .file("app/build-id", format!("{index}\n"), 0o644)
        .build()
}

/// One advisory on zlib (a base-layer package), so every scan has a finding to match.
fn write_db(path: &std::path::Path) -> Result<()> {
    let record: trawl_vulndb::osv::OsvRecord = serde_json::from_value(serde_json::json!({
        "id": "CVE-2099-1000", "summary": "zlib: benchmark advisory",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "zlib"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]
    }))?;
    trawl_vulndb::Database::build([record], Vec::new(), 0).write(path).context("write the database")?;
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if let Some(db) = &args.db {
        write_db(db)?;
    }
    let registry = Registry::start().context("start docker-registry (run scripts/setup)")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let base = base_layer(args.base_mib)?;
    // Distinct layers by digest, and every image's layers, for the two byte totals.
    let mut distinct = BTreeMap::new();
    let mut all_bytes = 0;
    for index in 0..args.images {
        let app = app_layer(index)?;
        let image = ImageBuilder::new()
            .blob_layer(base.clone(), Some("ADD rootfs.tar.gz /"))
            .blob_layer(app, Some("COPY app /app"))
            .build()?;
        for layer in &image.layers {
            distinct.insert(layer.digest.clone(), layer.size);
            all_bytes += layer.size;
        }
        // One repository: the base blob is uploaded once, later pushes find it with HEAD.
        runtime.block_on(push(&registry, REPOSITORY, &format!("v{index:03}"), &image, None))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "REGISTRY {}", registry.host())?;
    writeln!(out, "IMAGES {}", args.images)?;
    writeln!(out, "BASE_BYTES {}", base.size)?;
    writeln!(out, "UNIQUE_BYTES {}", distinct.values().sum::<u64>())?;
    writeln!(out, "ALL_BYTES {all_bytes}")?;
    writeln!(out, "READY")?;
    out.flush()?;
    drop(out);
    trawl_testkit::serve_until_stdin_closes();
    Ok(())
}
