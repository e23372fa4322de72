//! Publishing and following against a real `nats-server -js`: the happy path,
//! every rejection (older, corrupt, truncated, missing, malformed), pruning,
//! a swap under a running scan loop, and a server restart.

mod common;

use common::*;
use futures::TryStreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use trawl_dbdist::*;
use trawl_testkit::NatsServer;
use trawl_vulndb::Matcher;

/// Writes an object and an announcement straight into the buckets, bypassing
/// the publisher's checks (what a buggy or hostile publisher could do).
async fn announce_raw(publisher: &DbPublisher, object: &str, bytes: &[u8], announcement: &Announcement) {
    let buckets = publisher.buckets();
    buckets.objects.put(object, &mut &bytes[..]).await.unwrap();
    buckets.announce.put(ANNOUNCE_KEY, announcement.to_json().into()).await.unwrap();
}

/// An announcement for `bytes` claiming `version`.
fn claim(version: u64, bytes: &[u8]) -> Announcement {
    Announcement {
        version,
        object: object_name(version),
        sha256: sha256_hex(bytes),
        size: bytes.len() as u64,
        built_at: "2024-01-01T00:00:00Z".into(),
        sources: vec![],
    }
}

#[tokio::test]
async fn follower_loads_the_announced_database_then_each_newer_one() {
    let nats = NatsServer::start().unwrap();
    let publisher = DbPublisher::connect(client(&nats.url()).await).await.unwrap();
    let v1 = publisher.publish(&database_bytes(1_000, 1)).await.unwrap();
    assert_eq!((v1.version, v1.object.as_str()), (1_000, "trawl-1000.db"));

    // The announcement is the documented JSON, pointing at an object that is there.
    let raw = publisher.buckets().announce.get(ANNOUNCE_KEY).await.unwrap().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    for key in ["version", "object", "sha256", "size", "builtAt"] {
        assert!(value.get(key).is_some(), "announcement lacks {key}: {value}");
    }
    assert_eq!(value["sha256"], sha256_hex(&database_bytes(1_000, 1)));
    let info = publisher.buckets().objects.info("trawl-1000.db").await.unwrap();
    assert_eq!(info.size as u64, v1.size);

    let cache = tempfile::tempdir().unwrap();
    let config = FollowerConfig { cache_file: Some(cache.path().join("trawl.db")), ..Default::default() };
    let follower = DbFollower::start(client(&nats.url()).await, None, config);
    let mut events = follower.events();
    expect_loaded(&mut events, 1_000).await;
    assert_eq!(follower.wait_for_database().await.header().version, 1_000);
    assert_eq!(trawl_vulndb::Database::read_header(&cache.path().join("trawl.db")).unwrap().version, 1_000);

    publisher.publish(&database_bytes(2_000, 2)).await.unwrap();
    expect_loaded(&mut events, 2_000).await;
    assert_eq!(follower.current().unwrap().header().version, 2_000);
    let state = follower.state().borrow().clone();
    assert_eq!((state.version, state.loaded, state.rejected, state.connected), (Some(2_000), 2, 0, true));
    assert_eq!(trawl_vulndb::Database::read_header(&cache.path().join("trawl.db")).unwrap().version, 2_000);
}

#[tokio::test]
async fn publisher_validates_and_refuses_older_versions_unless_forced() {
    let nats = NatsServer::start().unwrap();
    let publisher = DbPublisher::connect(client(&nats.url()).await).await.unwrap();
    assert!(publisher.announced().await.unwrap().is_none());

    let garbage = publisher.publish(b"PK\x03\x04 not a database").await.unwrap_err();
    assert!(matches!(garbage, DistError::InvalidDatabase(_)), "{garbage}");
    let mut truncated = database_bytes(5_000, 1);
    truncated.truncate(truncated.len() - 7);
    assert!(matches!(publisher.publish(&truncated).await, Err(DistError::InvalidDatabase(_))));
    // Nothing reached the server.
    assert!(publisher.announced().await.unwrap().is_none());
    let objects: Vec<_> = publisher.buckets().objects.list().await.unwrap().try_collect().await.unwrap();
    assert!(objects.is_empty(), "{objects:?}");

    publisher.publish(&database_bytes(2_000, 1)).await.unwrap();
    for older in [1_000, 2_000] {
        match publisher.publish(&database_bytes(older, 1)).await {
            Err(DistError::NotNewer { version, announced }) => assert_eq!((version, announced), (older, 2_000)),
            other => panic!("expected NotNewer for v{older}, got {other:?}"),
        }
    }
    let forced = publisher.publish_with(&database_bytes(1_000, 1), PublishOptions { force: true }).await.unwrap();
    assert_eq!(publisher.announced().await.unwrap(), Some(forced));
}

#[tokio::test]
async fn publisher_keeps_only_the_newest_versions() {
    let nats = NatsServer::start().unwrap();
    let publisher = DbPublisher::connect(client(&nats.url()).await).await.unwrap();
    for v in 1..=5u64 {
        publisher.publish(&database_bytes(v * 1_000, 1)).await.unwrap();
    }
    let mut names: Vec<String> =
        publisher.buckets().objects.list().await.unwrap().map_ok(|o| o.name).try_collect().await.unwrap();
    names.sort();
    assert_eq!(names, ["trawl-3000.db", "trawl-4000.db", "trawl-5000.db"]);
}

#[tokio::test]
async fn follower_rejects_older_corrupt_truncated_and_missing_databases_and_keeps_the_current_one() {
    let nats = NatsServer::start().unwrap();
    let publisher = DbPublisher::connect(client(&nats.url()).await).await.unwrap();
    publisher.publish(&database_bytes(1_000, 1)).await.unwrap();
    publisher.publish(&database_bytes(2_000, 2)).await.unwrap();
    let follower = DbFollower::start(client(&nats.url()).await, None, FollowerConfig::default());
    let mut events = follower.events();
    expect_loaded(&mut events, 2_000).await;

    let rejected = |event: FollowerEvent| match event {
        FollowerEvent::Rejected { version, reason } => (version, reason),
        other => panic!("expected a rejection, got {other:?}"),
    };

    // Older, through the publisher with force.
    publisher.publish_with(&database_bytes(1_000, 1), PublishOptions { force: true }).await.unwrap();
    let (version, reason) = rejected(next_verdict(&mut events).await);
    assert_eq!((version, reason), (1_000, RejectReason::NotNewer { current: 2_000 }));

    // Older, written straight into the buckets.
    let old = database_bytes(1_500, 1);
    announce_raw(&publisher, &object_name(1_500), &old, &claim(1_500, &old)).await;
    assert_eq!(rejected(next_verdict(&mut events).await), (1_500, RejectReason::NotNewer { current: 2_000 }));

    let good = database_bytes(3_000, 3);
    // Corrupt: one byte flipped, announcement carries the good file's digest.
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    announce_raw(&publisher, &object_name(3_000), &flipped, &claim(3_000, &good)).await;
    let (version, reason) = rejected(next_verdict(&mut events).await);
    assert_eq!(version, 3_000);
    assert!(matches!(reason, RejectReason::ChecksumMismatch { .. }), "{reason}");

    // Corrupt, with an announcement that matches the corrupt bytes: the database's own checksum catches it.
    announce_raw(&publisher, &object_name(3_000), &flipped, &claim(3_000, &flipped)).await;
    let (_, reason) = rejected(next_verdict(&mut events).await);
    assert!(matches!(reason, RejectReason::InvalidDatabase(_)), "{reason}");

    // Truncated, announcement matching the truncated bytes.
    let truncated = &good[..good.len() - 100];
    announce_raw(&publisher, &object_name(3_000), truncated, &claim(3_000, truncated)).await;
    let (_, reason) = rejected(next_verdict(&mut events).await);
    assert!(matches!(&reason, RejectReason::InvalidDatabase(m) if m.contains("truncated")), "{reason}");

    // An announcement whose size disagrees with the object.
    let mut wrong_size = claim(3_000, &good);
    wrong_size.size += 1;
    announce_raw(&publisher, &object_name(3_000), &good, &wrong_size).await;
    let (_, reason) = rejected(next_verdict(&mut events).await);
    assert!(matches!(reason, RejectReason::SizeMismatch { .. }), "{reason}");

    // Announced but never uploaded.
    publisher.buckets().announce.put(ANNOUNCE_KEY, claim(4_000, &good).to_json().into()).await.unwrap();
    let (version, reason) = rejected(next_verdict(&mut events).await);
    assert_eq!((version, reason), (4_000, RejectReason::MissingObject("trawl-4000.db".into())));

    // A header that names another version than the announcement.
    announce_raw(&publisher, &object_name(4_000), &good, &claim(4_000, &good)).await;
    let (_, reason) = rejected(next_verdict(&mut events).await);
    assert_eq!(reason, RejectReason::VersionMismatch { announced: 4_000, actual: 3_000 });

    // Not JSON at all.
    publisher.buckets().announce.put(ANNOUNCE_KEY, "{not json".into()).await.unwrap();
    let (version, reason) = rejected(next_verdict(&mut events).await);
    assert_eq!(version, 0);
    assert!(matches!(reason, RejectReason::BadAnnouncement(_)), "{reason}");

    assert_eq!(follower.current().unwrap().header().version, 2_000);
    assert_eq!(follower.state().borrow().rejected, 9);

    // A good database of a version that was rejected before still loads once it is intact.
    publisher.publish_with(&good, PublishOptions { force: true }).await.unwrap();
    expect_loaded(&mut events, 3_000).await;
    assert_eq!(follower.current().unwrap().header().version, 3_000);
}

#[tokio::test]
async fn follower_starting_with_a_local_database_only_takes_newer_ones() {
    let nats = NatsServer::start().unwrap();
    let publisher = DbPublisher::connect(client(&nats.url()).await).await.unwrap();
    publisher.publish(&database_bytes(2_000, 2)).await.unwrap();

    // Same version locally: nothing to do, no event.
    let local = Arc::new(database(2_000, 2));
    let follower = DbFollower::start(client(&nats.url()).await, Some(local.clone()), FollowerConfig::default());
    let mut events = follower.events();
    // Until something newer verifies, the local database is the one in use.
    assert!(Arc::ptr_eq(&follower.current().unwrap(), &local));
    // Newer locally: the announced one is refused.
    let newer_local =
        DbFollower::start(client(&nats.url()).await, Some(Arc::new(database(9_000, 1))), FollowerConfig::default());
    let mut newer_events = newer_local.events();
    assert_eq!(
        next_verdict(&mut newer_events).await,
        FollowerEvent::Rejected { version: 2_000, reason: RejectReason::NotNewer { current: 9_000 } }
    );

    publisher.publish(&database_bytes(3_000, 3)).await.unwrap();
    // The first verdict of the same-version follower is for v3: v2 raised no event.
    expect_loaded(&mut events, 3_000).await;
    assert_eq!(follower.current().unwrap().header().version, 3_000);
    assert_eq!(
        next_verdict(&mut newer_events).await,
        FollowerEvent::Rejected { version: 3_000, reason: RejectReason::NotNewer { current: 9_000 } }
    );
    assert_eq!(newer_local.current().unwrap().header().version, 9_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_scan_is_lost_while_the_database_is_swapped() {
    let nats = NatsServer::start().unwrap();
    let publisher = DbPublisher::connect(client(&nats.url()).await).await.unwrap();
    publisher.publish(&database_bytes(2_000, 2)).await.unwrap();
    let follower = DbFollower::start(client(&nats.url()).await, None, FollowerConfig::default());
    let mut events = follower.events();
    expect_loaded(&mut events, 2_000).await;

    // Scan workers see only a handle, as the scanner's will. They report
    // progress as (scans against v2, scans against v3).
    let handle = follower.handle();
    let stop = Arc::new(AtomicBool::new(false));
    let (progress_tx, progress) = tokio::sync::watch::channel((0u64, 0u64));
    let scanner = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let inventory = inventory();
            while !stop.load(Ordering::Acquire) {
                // One Arc per scan, held to its end.
                let db = handle.current().expect("a database is always there");
                let version = db.header().version;
                let result = Matcher::new(&db).match_inventory(&inventory);
                // Every scan completes and is consistent with the database it started with.
                let expected = match version {
                    2_000 => 2,
                    3_000 => 3,
                    other => panic!("unexpected database version {other}"),
                };
                assert_eq!(result.findings.len(), expected, "scan against v{version}");
                progress_tx.send_modify(|(v2, v3)| if version == 3_000 { *v3 += 1 } else { *v2 += 1 });
            }
        })
    };

    // Swap while scans are running.
    reached(&progress, |p| p.0 >= 10).await;
    publisher.publish(&database_bytes(3_000, 3)).await.unwrap();
    expect_loaded(&mut events, 3_000).await;
    // A scan that starts after the swap uses v3.
    let db = follower.current().unwrap();
    assert_eq!(Matcher::new(&db).match_inventory(&inventory()).findings.len(), 3);
    let (_, v3_scans) = reached(&progress, |p| p.1 >= 10).await;
    stop.store(true, Ordering::Release);
    scanner.await.expect("no scan failed");
    assert!(v3_scans >= 10);
}

/// Waits until the scan loop's progress satisfies `f`; panics after the deadline.
async fn reached(
    progress: &tokio::sync::watch::Receiver<(u64, u64)>,
    f: impl FnMut(&(u64, u64)) -> bool,
) -> (u64, u64) {
    let mut progress = progress.clone();
    let reached = tokio::time::timeout(DEADLINE, progress.wait_for(f)).await.expect("scan loop stalled");
    reached.map(|progress| *progress).expect("scan loop ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_survives_a_server_restart() {
    let mut nats = NatsServer::start().unwrap();
    let publisher = DbPublisher::connect(client(&nats.url()).await).await.unwrap();
    publisher.publish(&database_bytes(1_000, 1)).await.unwrap();
    let follower = DbFollower::start(client(&nats.url()).await, None, FollowerConfig::default());
    let mut events = follower.events();
    expect_loaded(&mut events, 1_000).await;

    nats.restart().unwrap();

    // A fresh publisher connection: the old one may still be reconnecting.
    let publisher = DbPublisher::connect(client(&nats.url()).await).await.unwrap();
    // The store survived the restart.
    assert_eq!(publisher.announced().await.unwrap().map(|a| a.version), Some(1_000));
    publisher.publish(&database_bytes(2_000, 2)).await.unwrap();
    expect_loaded(&mut events, 2_000).await;
    assert_eq!(follower.current().unwrap().header().version, 2_000);

    // And once more: the watch resumes every time.
    nats.restart().unwrap();
    let publisher = DbPublisher::connect(client(&nats.url()).await).await.unwrap();
    publisher.publish(&database_bytes(3_000, 3)).await.unwrap();
    expect_loaded(&mut events, 3_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_follows_buckets_that_were_deleted_and_made_anew() {
    let nats = NatsServer::start().unwrap();
    let publisher = DbPublisher::connect(client(&nats.url()).await).await.unwrap();
    publisher.publish(&database_bytes(1_000, 1)).await.unwrap();
    publisher.publish(&database_bytes(2_000, 2)).await.unwrap();
    let follower = DbFollower::start(client(&nats.url()).await, None, FollowerConfig::default());
    let mut events = follower.events();
    expect_loaded(&mut events, 2_000).await;

    // An operator drops both buckets (say, to apply new limits); revisions start again at 1.
    let js = &publisher.buckets().jetstream;
    js.delete_key_value(ANNOUNCE_BUCKET).await.unwrap();
    js.delete_object_store(OBJECT_BUCKET).await.unwrap();
    let publisher = DbPublisher::connect(client(&nats.url()).await).await.unwrap();
    publisher.publish(&database_bytes(3_000, 3)).await.unwrap();
    expect_loaded(&mut events, 3_000).await;
}

#[tokio::test]
async fn missing_buckets_are_created_as_the_nats_definitions_say() {
    let nats = NatsServer::start().unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    open_buckets(client.clone()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for stream in [format!("KV_{ANNOUNCE_BUCKET}"), format!("OBJ_{OBJECT_BUCKET}")] {
        let want = trawl_protocol::definitions::stream_config(&stream).unwrap();
        let got = js.get_stream(&stream).await.unwrap().cached_info().config.clone();
        assert_eq!(
            (&got.description, got.max_messages_per_subject, got.max_message_size, got.storage),
            (&want.description, want.max_messages_per_subject, want.max_message_size, want.storage),
            "{stream} is made from its nats/ file"
        );
    }
}
