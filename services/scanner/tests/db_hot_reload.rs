//! Hot reload of the vulnerability database, as a scanner worker sees it:
//! full image scans (registry pull, inventory, match) keep running while the
//! updater publishes new databases through a real nats-server. The next scan
//! after a publish uses the new database, no scan fails during the swap, and
//! a corrupt database is rejected while the current one stays in use.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use trawl_dbdist::{
    object_name, sha256_hex, Announcement, DbFollower, DbPublisher, FollowerConfig, FollowerEvent, ANNOUNCE_KEY,
};
use trawl_scanner::analyze::Analyzer;
use trawl_testkit::{push, ImageBuilder, NatsServer};
use trawl_vulndb::{Database, Matcher};

fn advisory(id: &str, cve: &str, name: &str, fixed: &str) -> serde_json::Value {
    json!({"id": id, "aliases": [cve], "summary": format!("{name} flaw"),
        "affected": [{"package": {"ecosystem": "Debian:12", "name": name},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]})
}

fn db_bytes(version: u64, records: &[serde_json::Value]) -> Vec<u8> {
    let records = records.iter().map(|r| serde_json::from_value(r.clone()).unwrap());
    Database::build(records, vec![], 0).with_version(version).to_bytes().unwrap()
}

async fn next_event(events: &mut tokio::sync::broadcast::Receiver<FollowerEvent>) -> FollowerEvent {
    tokio::time::timeout(Duration::from_secs(60), events.recv()).await.expect("follower event").expect("event channel")
}

/// One full scan with whatever database is current when it starts: the ids found.
async fn scan_ids(analyzer: &Analyzer, reference: &str, follower: &trawl_dbdist::DbHandle) -> (u64, Vec<String>) {
    let db = follower.current().expect("a database is loaded");
    let analysis = analyzer.analyze_reference(reference).await.expect("scan succeeds");
    let result = Matcher::new(&db).match_inventory(&analysis.inventory);
    let mut ids: Vec<String> = result.findings.into_iter().map(|f| f.id).collect();
    ids.sort();
    (db.header().version, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_pick_up_new_databases_without_failing_and_corrupt_ones_are_rejected() {
    let nats = NatsServer::start().unwrap();
    let registry = registry();
    let image = ImageBuilder::new()
        .layer(debian_base(&[("libssl3", "3.0.11-1~deb12u1", Some("openssl")), ("curl", "7.88.1-10", None)]))
        .build()
        .unwrap();
    push(&registry, "app/live", "v1", &image, None).await.unwrap();
    let reference = format!("{}/app/live:v1", registry.host());
    let analyzer = Analyzer::new(trawl_catalog::default_catalogers(), plain_http_options());

    let client = async_nats::connect(nats.url()).await.unwrap();
    let publisher = DbPublisher::connect(client.clone()).await.unwrap();
    let openssl = advisory("DSA-1-1", "CVE-2099-1", "openssl", "3.0.13-1~deb12u1");
    publisher.publish(&db_bytes(1_000, std::slice::from_ref(&openssl))).await.unwrap();

    let follower = DbFollower::start(client, None, FollowerConfig::default());
    let mut events = follower.events();
    assert_eq!(next_event(&mut events).await, FollowerEvent::Loaded { version: 1_000 });
    let handle = follower.handle();
    assert_eq!(scan_ids(&analyzer, &reference, &handle).await, (1_000, vec!["CVE-2099-1".to_string()]));

    // Scans run back to back on another task while v2 (adding a curl advisory) is published.
    let stop = Arc::new(AtomicBool::new(false));
    let scanning = {
        let (analyzer, reference, handle, stop) = (analyzer.clone(), reference.clone(), handle.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                seen.push(scan_ids(&analyzer, &reference, &handle).await);
            }
            seen
        })
    };
    let curl = advisory("DSA-2-1", "CVE-2099-2", "curl", "7.88.1-10+deb12u5");
    publisher.publish(&db_bytes(2_000, &[openssl.clone(), curl.clone()])).await.unwrap();
    assert_eq!(next_event(&mut events).await, FollowerEvent::Loaded { version: 2_000 });
    // The next scan started after the swap sees the new advisory.
    let after = scan_ids(&analyzer, &reference, &handle).await;
    assert_eq!(after, (2_000, vec!["CVE-2099-1".to_string(), "CVE-2099-2".to_string()]));

    // A corrupt v3 (flipped byte, announcement matching the corrupt bytes) is rejected.
    let mut corrupt = db_bytes(3_000, &[openssl, curl, advisory("DSA-3-1", "CVE-2099-3", "bash", "9")]);
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x55;
    let buckets = publisher.buckets();
    buckets.objects.put(object_name(3_000).as_str(), &mut &corrupt[..]).await.unwrap();
    let claim = Announcement {
        version: 3_000,
        object: object_name(3_000),
        sha256: sha256_hex(&corrupt),
        size: corrupt.len() as u64,
        built_at: "2026-01-01T00:00:00Z".into(),
        sources: vec![],
    };
    buckets.announce.put(ANNOUNCE_KEY, claim.to_json().into()).await.unwrap();
    assert!(matches!(next_event(&mut events).await, FollowerEvent::Rejected { version: 3_000, .. }));
    stop.store(true, Ordering::SeqCst);
    let seen = scanning.await.expect("every scan during the swaps succeeded");

    assert_eq!(scan_ids(&analyzer, &reference, &handle).await.0, 2_000, "the current database is kept");
    assert!(!seen.is_empty());
    // Every scan's findings are exactly those of the database it started with.
    for (version, ids) in &seen {
        let expected: Vec<String> = match version {
            1_000 => vec!["CVE-2099-1".into()],
            2_000 => vec!["CVE-2099-1".into(), "CVE-2099-2".into()],
            other => panic!("scan used database {other}"),
        };
        assert_eq!(ids, &expected);
    }
}
