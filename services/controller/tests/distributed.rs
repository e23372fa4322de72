//! The distributed system end to end, against a real nats-server and
//! docker-registry with the real controller and scanner binaries: every
//! image gets exactly one stored result, however many controllers crawl and
//! however many scanners compete for the tasks.

mod common;

use common::{push_numbered, stream_counts, Stack};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use trawl_protocol::{RESULTS_STREAM, TASKS_STREAM};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_images_three_scanners_two_controllers_one_result_each() {
    const IMAGES: usize = 200;
    let mut stack = Stack::start();
    let pushed = push_numbered(&stack.registry, IMAGES, 10).await;
    stack.start_controller();
    stack.start_controller();
    stack.add_registry("local", json!({})).await;
    for _ in 0..3 {
        stack.start_scanner(&["--concurrency", "2"]);
    }

    // Both controllers crawl at once: the stream's dedupe keeps one task per image.
    let (a, b) = tokio::join!(
        stack.send(0, "POST", "/api/v1/registries/local/scan?wait=true", None),
        stack.send(1, "POST", "/api/v1/registries/local/scan?wait=true", None),
    );
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    for (_, report) in [&a, &b] {
        assert_eq!(report["images"], IMAGES, "{report}");
        assert_eq!(report["errors"], json!([]), "{report}");
    }
    let newly_queued = a.1["queued"].as_u64().unwrap() + b.1["queued"].as_u64().unwrap();
    let skipped = a.1["skipped"].as_u64().unwrap() + b.1["skipped"].as_u64().unwrap();
    // Each image was queued by one controller; the other saw it queued (duplicate) or already scanned (skipped).
    assert_eq!(newly_queued, IMAGES as u64, "{a:?} {b:?}");
    assert_eq!(a.1["duplicates"].as_u64().unwrap() + b.1["duplicates"].as_u64().unwrap() + skipped, IMAGES as u64);

    let status = stack.wait_settled("local", IMAGES as u64, Duration::from_secs(240)).await;
    assert_eq!((status["scanned"].as_u64(), status["failed"].as_u64()), (Some(IMAGES as u64), Some(0)), "{status}");

    // Exactly one result per image, stored once, with the findings of the database.
    let (_, images) = stack.get(1, "/api/v1/images?registry=local").await;
    let images = images.as_array().unwrap().clone();
    assert_eq!(images.len(), IMAGES);
    let digests: HashSet<&str> = images.iter().map(|i| i["digest"].as_str().unwrap()).collect();
    let expected: HashSet<&str> = pushed.iter().map(|(_, _, d)| d.as_str()).collect();
    assert_eq!(digests, expected);
    for image in &images {
        assert_eq!(image["results"], 1, "{image}");
        assert_eq!(image["status"], "scanned", "{image}");
        assert_eq!(image["vulnerabilities"]["critical"], 1, "{image}");
        assert_eq!(image["vulnerabilities"]["high"], 1, "{image}");
        assert_eq!(image["tags"].as_array().unwrap().len(), 1, "{image}");
    }
    let js = stack.jetstream().await;
    assert_eq!(stream_counts(&js, TASKS_STREAM).await, (IMAGES as u64, 0), "one task per image, all acked");
    assert_eq!(stream_counts(&js, RESULTS_STREAM).await, (IMAGES as u64, 0), "one result per image, all stored");

    // The full report is there, and the scanners are listed with what they did.
    let first = &images[0]["digest"].as_str().unwrap().to_string();
    let (code, report) = stack.get(0, &format!("/api/v1/images/{first}/report")).await;
    assert_eq!(code, 200);
    assert_eq!(report["findings"].as_array().unwrap().len(), 2, "{report}");
    // Heartbeats come every 5 s: wait for the ones that count the last scans.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, scanners) = stack.get(0, "/api/v1/scanners").await;
        let scanners = scanners.as_array().unwrap();
        assert_eq!(scanners.len(), 3, "{scanners:?}");
        let scanned: u64 = scanners.iter().map(|s| s["scanned"].as_u64().unwrap()).sum();
        assert!(scanned <= IMAGES as u64, "more scans than images: {scanners:?}");
        if scanned == IMAGES as u64 && scanners.iter().all(|s| s["current"] == json!([])) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "heartbeats never counted every scan: {scanners:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A second crawl publishes nothing new.
    let (code, again) = stack.send(0, "POST", "/api/v1/registries/local/scan?wait=true", None).await;
    assert_eq!(code, 200);
    assert_eq!((again["queued"].as_u64(), again["skipped"].as_u64()), (Some(0), Some(IMAGES as u64)), "{again}");
    assert_eq!(stream_counts(&js, TASKS_STREAM).await.0, IMAGES as u64);
    let (_, queue) = stack.get(0, "/api/v1/queue").await;
    assert_eq!(queue["depth"], 0, "{queue}");
}
