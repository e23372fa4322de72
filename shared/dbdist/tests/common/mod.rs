//! Shared fixtures: databases built from hand-written OSV records with chosen
//! versions, a one-package inventory, and awaiting follower events with a deadline.

#![allow(dead_code)]

use serde_json::json;
use std::time::Duration;
use tokio::sync::broadcast;
use trawl_catalog::{Inventory, Package, PackageType};
use trawl_dbdist::FollowerEvent;
use trawl_vulndb::osv::OsvRecord;
use trawl_vulndb::Database;

/// How long any single awaited event may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

fn record(id: &str, alias: &str, fixed: &str) -> OsvRecord {
    serde_json::from_value(json!({
        "id": id,
        "aliases": [alias],
        "summary": format!("{id} in lodash"),
        "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]
    }))
    .unwrap()
}

/// A database with `advisories` lodash advisories (1 to 3), stamped `version`.
///
/// Versions are set explicitly: build-time milliseconds would collide when
/// two databases are built in the same millisecond.
pub fn database(version: u64, advisories: usize) -> Database {
    let all = [
        record("GHSA-0001", "CVE-2020-0001", "4.17.19"),
        record("GHSA-0002", "CVE-2021-0002", "4.17.21"),
        record("GHSA-0003", "CVE-2022-0003", "4.18.0"),
    ];
    Database::build(all.into_iter().take(advisories), vec![], 0).with_version(version)
}

/// The serialised form of [`database`].
pub fn database_bytes(version: u64, advisories: usize) -> Vec<u8> {
    database(version, advisories).to_bytes().unwrap()
}

/// An inventory holding one npm package, lodash 4.17.0 (affected by every advisory above).
pub fn inventory() -> Inventory {
    let mut p = Package::new(PackageType::Npm, "lodash", "4.17.0");
    p.assign_identity(None);
    Inventory { distro: None, packages: vec![p], issues: vec![] }
}

/// The next `Loaded`/`Rejected` event (skipping `Unavailable` while NATS recovers), or a panic after [`DEADLINE`].
pub async fn next_verdict(events: &mut broadcast::Receiver<FollowerEvent>) -> FollowerEvent {
    loop {
        let event = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("no follower event within the deadline")
            .expect("follower event channel closed or lagged");
        match event {
            FollowerEvent::Unavailable { .. } => continue,
            other => return other,
        }
    }
}

/// Asserts the next verdict is `Loaded { version }`.
pub async fn expect_loaded(events: &mut broadcast::Receiver<FollowerEvent>, version: u64) {
    let event = next_verdict(events).await;
    assert_eq!(event, FollowerEvent::Loaded { version }, "expected v{version} to load");
}

/// Connects a plain client to the test server.
pub async fn client(url: &str) -> async_nats::Client {
    async_nats::connect(url).await.expect("connect to the test nats-server")
}
