//! Admission-control storage on a real nats-server: a re-match is stored
//! beside the scanner's report and read back merged into it; a new scan
//! replaces both, an older one replaces neither.

use trawl_catalog::{Distro, Inventory, Package, PackageType};
use trawl_controller::rematch::Rematcher;
use trawl_controller::storage::{ReportLocation, Storage};
use trawl_protocol::buckets::{digest_key, REPORTS_BUCKET};
use trawl_protocol::{ScanResult, ScannerInfo};
use trawl_vulndb::Database;

fn database(version: u64, fixed: &str) -> Database {
    let record = serde_json::from_value(serde_json::json!({"id": format!("DSA-{version}"), "summary": "openssl flaw",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]}))
    .unwrap();
    Database::build([record], vec![], 0).with_version(version)
}

/// A scanner's result for `digest`: libssl3 3.0.11-1, matched against `db`.
fn scan(digest: &str, db: &Database) -> (ScanResult, Vec<u8>) {
    let distro = Distro { id: "debian".into(), version_id: Some("12".into()), ..Default::default() };
    let mut p = Package::new(PackageType::Deb, "libssl3", "3.0.11-1");
    p.source_name = Some("openssl".into());
    p.assign_identity(Some(&distro));
    let inventory = Inventory { distro: Some(distro), packages: vec![p], issues: vec![] };
    let matched = trawl_vulndb::Matcher::new(db).match_inventory(&inventory);
    let identity = trawl_report::ImageIdentity { manifest_digest: Some(digest.into()), ..Default::default() };
    let sbom = trawl_report::SbomReport::new(identity, inventory);
    let report = trawl_report::ScanReport::new(sbom, matched, trawl_report::DbInfo::from(db.header()));
    let scanner = ScannerInfo { name: "t".into(), mode: "worker".into(), advertised_addr: None, version: "0".into() };
    let result = ScanResult::new(scanner, report);
    let bytes = result.encode().unwrap();
    (result, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rematch_is_read_merged_and_a_new_scan_supersedes_it() {
    let nats = trawl_testkit::NatsServer::start().expect("start nats-server (run scripts/setup)");
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    trawl_protocol::definitions::ensure_all(&js).await.unwrap();
    let storage = Storage::open(&js).await.unwrap();
    storage.wait_synced().await;
    let reports = js.get_key_value(REPORTS_BUCKET).await.unwrap();
    let digest = format!("sha256:{:064x}", 7);
    let overlay_key = format!("{}.rematch", digest_key(&digest));

    // Database 1 does not affect 3.0.11-1 (fixed before it); database 2 does.
    let (v1, v2, v3) = (database(1, "3.0.10-1"), database(2, "3.0.12-1"), database(3, "3.0.13-1"));
    let (result, bytes) = scan(&digest, &v1);
    storage.store_result(&result, &bytes).await.unwrap();
    let record = storage.record(&digest).await.unwrap().unwrap();
    assert_eq!((record.db_version, record.vulnerabilities.total), (Some(1), 0));

    let rematcher = Rematcher::new(&js, storage.clone()).await.unwrap();
    let outcome = rematcher.rematch_all(std::sync::Arc::new(v2)).await;
    assert_eq!(outcome.rematched, 1, "{outcome:?}");
    let record = storage.record(&digest).await.unwrap().unwrap();
    assert_eq!((record.db_version, record.vulnerabilities.total, record.fixable), (Some(2), 1, 1));
    assert_eq!((record.rematch.clone(), record.results), (Some(ReportLocation::Kv), 1));
    assert!(reports.get(&overlay_key).await.unwrap().is_some(), "the re-match is stored beside the report");
    // The scanner's report is untouched; reading the result merges the re-match in.
    assert_eq!(storage.result_bytes(&record).await.unwrap().unwrap().as_ref(), bytes.as_slice());
    let merged = storage.result(&record).await.unwrap().unwrap().report.unwrap();
    assert_eq!(merged.db.version, 2);
    assert_eq!(merged.findings.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["DSA-2"]);
    assert_eq!(merged.findings[0].fixed_version.as_deref(), Some("3.0.12-1"));
    assert_eq!(merged.packages.len(), 1, "the packages come from the scanner's report");

    // The same database again re-matches nothing.
    let again = rematcher.rematch_all(std::sync::Arc::new(database(2, "3.0.12-1"))).await;
    assert_eq!((again.rematched, again.skipped), (0, 0), "{again:?}");

    // A scan with an older database than the re-match does not replace it.
    storage.store_result(&result, &bytes).await.unwrap();
    let record = storage.record(&digest).await.unwrap().unwrap();
    assert_eq!((record.db_version, record.rematch.is_some(), record.results), (Some(2), true, 2));

    // A scan with a newer database replaces the report and drops the re-match.
    let (fresh, fresh_bytes) = scan(&digest, &v3);
    storage.store_result(&fresh, &fresh_bytes).await.unwrap();
    let record = storage.record(&digest).await.unwrap().unwrap();
    assert_eq!((record.db_version, record.rematch.clone(), record.rematched_at.clone()), (Some(3), None, None));
    assert!(reports.get(&overlay_key).await.unwrap().is_none(), "the superseded re-match is removed");
    let report = storage.result(&record).await.unwrap().unwrap().report.unwrap();
    assert_eq!(report.findings.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["DSA-3"]);
}
