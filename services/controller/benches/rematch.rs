//! Benchmark: re-matching 10,000 stored inventories after a database update
//! (issue 5 target: ≤ 10 s on this 2-core machine).
//!
//! A real nats-server holds 10,000 stored results, each with a 357-package
//! Debian-style inventory (the real Ubuntu 18.04 dpkg status from the shared
//! corpus when it is beside the clone, else a generated one) varied as a
//! registry built on 40 base-image releases is: 30 packages per release at
//! that release's versions, 3 per image at versions no other image has. The
//! new database is the real Debian OSV feed (corpus) or a small generated one.
//! The timed part is `Rematcher::rematch_all`: read each report, decode its
//! packages, match them again, write the re-match beside the report and
//! update the record (compare-and-set) — for every image, whether or not its
//! findings changed, so this is the worst case of a database update. It then
//! checks that image 0 reads back with the new database's findings.
//!
//! `cargo bench -p trawl-controller --bench rematch [-- IMAGES]`

use std::sync::Arc;
use std::time::Instant;

// As in the controller binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
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

/// Base-image releases the generated registry is built from.
const BASE_RELEASES: usize = 40;
/// Packages each base release moves to its own version.
const PACKAGES_PER_RELEASE: usize = 30;
/// Packages at a version no other image has (the application's own layer).
const UNIQUE_PER_IMAGE: usize = 3;

/// Image `i`'s inventory: the base packages as base release `i % 40` ships
/// them (30 of them at that release's versions), and three packages at
/// versions only this image has — so a pass meets ~1,600 distinct base
/// packages plus 3 unmatched-before packages per image, as a registry built
/// on a few dozen base images does.
fn image_inventory(base: &trawl_catalog::Inventory, i: usize) -> trawl_catalog::Inventory {
    let mut inventory = base.clone();
    let n = inventory.packages.len();
    let release = i % BASE_RELEASES;
    for k in 0..PACKAGES_PER_RELEASE {
        let p = &mut inventory.packages[(release * 7 + k * 11) % n];
        p.version = format!("{}+rel{release}", p.version);
        p.source_version = None;
    }
    for k in 0..UNIQUE_PER_IMAGE {
        let p = &mut inventory.packages[(i * 13 + k * 101) % n];
        p.version = format!("{}+img{i}", p.version);
        p.source_version = None;
    }
    inventory
}

/// User plus system CPU seconds of process `pid` ("self" for this one), from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
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
        let old_db = Arc::new(database(1).0);
        let old_matcher = trawl_vulndb::CachedMatcher::new(old_db.clone());
        let (new_db, db_source) = database(2);
        let distro = Distro { id: "debian".into(), version_id: Some("10".into()), ..Default::default() };
        let inventory =
            trawl_catalog::Inventory { distro: Some(distro.clone()), packages: packages.clone(), issues: Vec::new() };

        let setup = Instant::now();
        let scanner =
            ScannerInfo { name: "bench".into(), mode: "worker".into(), advertised_addr: None, version: "0".into() };
        let make = |i: usize| -> (ScanResult, Vec<u8>) {
            let digest = format!("sha256:{:064x}", i);
            let identity = ImageIdentity {
                reference: format!("bench.example/app@{digest}"),
                manifest_digest: Some(digest.clone()),
                ..Default::default()
            };
            let inventory = image_inventory(&inventory, i);
            let matched = old_matcher.match_inventory(&inventory);
            let sbom = SbomReport::new(identity, inventory);
            let report = ScanReport::new(sbom, matched, trawl_report::DbInfo::from(old_db.header()));
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
        };
        let (_, results_sample) = make(0);
        futures::StreamExt::for_each_concurrent(futures::stream::iter(0..images), 64, |i| {
            let storage = storage.clone();
            let (result, bytes) = make(i);
            async move {
                storage.store_result(&result, &bytes).await.unwrap();
            }
        })
        .await;
        while storage.read(|m| m.images.len()) < images {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let report_bytes = results_sample.len();
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
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(ScanResult::decode_report_as::<trawl_report::RematchInput>(&sample).unwrap());
        }
        let per_input = t.elapsed().as_secs_f64() / rounds as f64;
        let decoded = ScanResult::decode(&sample).unwrap();
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(decoded.encode().unwrap());
        }
        let per_encode = t.elapsed().as_secs_f64() / rounds as f64;
        eprintln!(
            "one image: match {:.2} ms (uncached), decode {:.2} ms (packages only {:.2} ms), encode {:.2} ms ({} findings)",
            per_match * 1e3,
            per_decode * 1e3,
            per_input * 1e3,
            per_encode * 1e3,
            decoded.report.as_ref().map_or(0, |r| r.findings.len())
        );

        let rematcher = Rematcher::new(&js, storage.clone()).await.unwrap();
        let (cpu_before, server_before) = (cpu_seconds("self"), nats.pid().map(|p| cpu_seconds(&p.to_string())));
        let started = Instant::now();
        let new_db = Arc::new(new_db);
        let check_db = new_db.clone();
        let outcome = rematcher.rematch_all(new_db).await;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds("self") - cpu_before;
        let server = nats.pid().map(|p| cpu_seconds(&p.to_string())).zip(server_before).map(|(a, b)| a - b);
        eprintln!(
            "rematch CPU: controller {cpu:.2} s, nats-server {:.2} s, over {elapsed:.2} s on {} cores",
            server.unwrap_or(f64::NAN),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        assert_eq!(outcome.rematched, images, "{outcome:?}");
        // What the API serves afterwards: the scanner's report with the new findings merged in.
        let record = storage.record(&format!("sha256:{:064x}", 0)).await.unwrap().unwrap();
        let served = storage.result(&record).await.unwrap().unwrap().report.unwrap();
        let expected = trawl_vulndb::Matcher::new(&check_db).match_inventory(&image_inventory(&inventory, 0));
        assert_eq!((served.db.version, &served.findings), (2, &expected.findings), "image 0 after the re-match");
        println!(
            "rematch: {images} stored inventories × {} packages ({package_source}) against {db_source}",
            packages.len()
        );
        println!("rematch: {elapsed:.2} s ({:.0} images/s), target ≤ 10 s for 10,000", images as f64 / elapsed);
    });
}
