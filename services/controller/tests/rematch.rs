//! A new database re-evaluates every stored image without pulling it: the
//! controller re-matches the stored inventories and replaces the findings.

mod common;

use common::{push_numbered, stream_counts, Stack};
use serde_json::json;
use std::time::{Duration, Instant};
use trawl_protocol::TASKS_STREAM;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_rematches_stored_inventories_without_a_scan() {
    const IMAGES: usize = 6;
    let mut stack = Stack::start();
    push_numbered(&stack.registry, IMAGES, 3).await;
    stack.start_controller();
    stack.add_registry("local", json!({})).await;
    stack.start_scanner(&[]);
    let (code, _) = stack.send(0, "POST", "/api/v1/registries/local/scan?wait=true", None).await;
    assert_eq!(code, 200);
    stack.wait_settled("local", IMAGES as u64, Duration::from_secs(120)).await;
    let (_, before) = stack.get(0, "/api/v1/images?registry=local").await;
    for image in before.as_array().unwrap() {
        assert_eq!((image["db_version"].as_u64(), image["vulnerabilities"]["total"].as_u64()), (Some(1), Some(2)));
    }
    let js = stack.jetstream().await;
    let tasks_before = stream_counts(&js, TASKS_STREAM).await;

    // The updater publishes version 2, which knows a flaw in bash.
    let bash = json!({"id": "DSA-9999-7", "summary": "bash: new flaw",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "bash"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.2.15-2+deb12u1"}]}]}]});
    let publisher =
        trawl_dbdist::DbPublisher::connect(async_nats::connect(stack.nats.url()).await.unwrap()).await.unwrap();
    publisher.publish(&common::database(2, &[bash])).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let (_, images) = stack.get(0, "/api/v1/images?registry=local").await;
        if images.as_array().unwrap().iter().all(|i| i["db_version"] == 2) {
            break images;
        }
        assert!(Instant::now() < deadline, "not re-matched: {images}\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for image in after.as_array().unwrap() {
        assert_eq!(image["vulnerabilities"]["total"], 3, "{image}");
        assert_eq!(image["results"], 1, "re-matching is not a new scan: {image}");
        assert!(image["rematched_at"].is_string(), "{image}");
    }
    let digest = after[0]["digest"].as_str().unwrap();
    let (_, report) = stack.get(0, &format!("/api/v1/images/{digest}/report")).await;
    assert_eq!(report["db"]["version"], 2);
    assert!(report["findings"].as_array().unwrap().iter().any(|f| f["id"] == "DSA-9999-7"), "{report}");
    // Nothing was queued or pulled again.
    assert_eq!(stream_counts(&js, TASKS_STREAM).await, tasks_before);
}
