//! Benchmark: re-matching 10,000 stored inventories after a database update
//! (issue 5 target: ≤ 10 s on this 2-core machine).
//!
//! A real nats-server holds 10,000 stored results, each with a 357-package
//! Debian-style inventory (the real Ubuntu 18.04 dpkg status from the shared
//! corpus when it is beside the clone, else a generated one); the new
//! database is the real Debian OSV feed (corpus) or a small generated one.
//! The timed part is `Rematcher::rematch_all`: read each report, match it
//! again, write the report and the record.
//!
//! `cargo bench -p trawl-controller --bench rematch [-- IMAGES]`

use std::sync::Arc;
use std::time::Instant;
use trawl_catalog::{Distro, Package, PackageType};
use trawl_controller::rematch::Rematcher;
use trawl_controller::storage::Storage;
use trawl_protocol::{ScanResult, ScanTask, ScannerInfo};
use trawl_report::{ImageIdentity, SbomReport, ScanReport};
use trawl_vulndb::Database;

fn corpus() -> Option<std::path::PathBuf> {
    trawl_testkit::corpus_dir()
}

/// (name, version, source) of a real dpkg status, or a generated list.
fn packages() -> (Vec<Package>, &'static str) {
    let parse = |text: &str| -> Vec<Package> {
        text.split("\n\n")
            .filter_map(|stanza| {
                let field = |k: &str| stanza.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string());
                let (name, version) = (field("Package:")?, field("Version:")?);
                let mut p = Package::new(PackageType::Deb, name.clone(), version);
                p.ecosystem = "Debian:10".into();
                p.source_name = field("Source:").map(|s| s.split_whitespace().next().unwrap_or(&name).to_string());
                p.purl = format!("pkg:deb/debian/{name}");
                Some(p)
            })
            .collect()
    };
    if let Some(dir) = corpus() {
        if let Ok(text) = std::fs::read_to_string(dir.join("pkgdb/dpkg/ubuntu-18.04-texlive.status")) {
            return (parse(&text), "real dpkg status (ubuntu-18.04-texlive, corpus)");
        }
    }
    let generated: String = (0..357)
        .map(|i| format!("Package: pkg{i}\nVersion: 1.{i}-1\nSource: src{}\n\n", i % 50))
        .chain(["Package: libssl1.1\nVersion: 1.1.1d-0+deb10u1\nSource: openssl\n\n".to_string()])
        .collect();
    (parse(&generated), "generated")
}

fn database(version: u64) -> (Database, &'static str) {
    if let Some(dir) = corpus() {
        let zip = dir.join("osv/Debian/all.zip");
        if zip.is_file() {
            let ingested = trawl_vulndb::ingest::Ingested::from_paths(&[zip]).expect("read the Debian feed");
            return (
                Database::build(ingested.records, ingested.sources, 0).with_version(version),
                "Debian OSV feed (corpus)",
            );
        }
    }
    let record = serde_json::from_value(
        serde_json::json!({"id": "DSA-0000-1", "affected": [{"package": {"ecosystem": "Debian:10", "name": "openssl"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1.1n-0+deb10u1"}]}]}]}),
    )
    .unwrap();
    (Database::build([record], vec![], 0).with_version(version), "generated")
}

fn main() {
    let images: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let nats = trawl_testkit::NatsServer::start().unwrap();
        let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        trawl_protocol::definitions::ensure_all(&js).await.unwrap();
        let storage = Storage::open(&js).await.unwrap();
        storage.wait_synced().await;
        let (packages, package_source) = packages();
        let (old_db, _) = database(1);
        let (new_db, db_source) = database(2);
        let distro = Distro { id: "debian".into(), version_id: Some("10".into()), ..Default::default() };
        let inventory =
            trawl_catalog::Inventory { distro: Some(distro.clone()), packages: packages.clone(), issues: Vec::new() };
        let matched = trawl_vulndb::Matcher::new(&old_db).match_inventory(&inventory);

        let setup = Instant::now();
        let scanner =
            ScannerInfo { name: "bench".into(), mode: "worker".into(), advertised_addr: None, version: "0".into() };
        let results: Vec<(ScanResult, Vec<u8>)> = (0..images)
            .map(|i| {
                let digest = format!("sha256:{:064x}", i);
                let identity = ImageIdentity {
                    reference: format!("bench.example/app@{digest}"),
                    manifest_digest: Some(digest.clone()),
                    ..Default::default()
                };
                let sbom = SbomReport::new(identity, inventory.clone());
                let report = ScanReport::new(sbom, matched.clone(), trawl_report::DbInfo::from(old_db.header()));
                let task = ScanTask::new(
                    "bench",
                    &format!("bench.example/app@{digest}"),
                    Some(&digest),
                    trawl_protocol::Lane::Bulk,
                    "bench",
                );
                let result = ScanResult::new(scanner.clone(), report).for_task(task);
                let bytes = result.encode().unwrap();
                (result, bytes)
            })
            .collect();
        futures::StreamExt::for_each_concurrent(futures::stream::iter(results.iter()), 64, |(r, b)| {
            let storage = storage.clone();
            async move {
                storage.store_result(r, b).await.unwrap();
            }
        })
        .await;
        while storage.read(|m| m.images.len()) < images {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let report_bytes = results[0].1.len();
        let results_sample = results[0].1.clone();
        drop(results);
        eprintln!("stored {images} results ({report_bytes} bytes each) in {:.1} s", setup.elapsed().as_secs_f64());

        // Where one image's time goes, measured alone.
        let t = Instant::now();
        let rounds = 20;
        for _ in 0..rounds {
            std::hint::black_box(trawl_vulndb::Matcher::new(&new_db).match_inventory(&inventory));
        }
        let per_match = t.elapsed().as_secs_f64() / rounds as f64;
        let sample = results_sample.clone();
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(ScanResult::decode(&sample).unwrap());
        }
        let per_decode = t.elapsed().as_secs_f64() / rounds as f64;
        eprintln!("one image: match {:.2} ms, decode {:.2} ms", per_match * 1e3, per_decode * 1e3);

        let rematcher = Rematcher::new(&js, storage.clone()).await.unwrap();
        let started = Instant::now();
        let outcome = rematcher.rematch_all(Arc::new(new_db)).await;
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(outcome.rematched, images, "{outcome:?}");
        println!(
            "rematch: {images} stored inventories × {} packages ({package_source}) against {db_source}",
            packages.len()
        );
        println!("rematch: {elapsed:.2} s ({:.0} images/s), target ≤ 10 s for 10,000", images as f64 / elapsed);
    });
}
