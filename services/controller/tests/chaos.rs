//! Chaos: the 200-image registry scanned while scanners are SIGKILLed every
//! few seconds (and restarted) and nats-server itself crashes and restarts
//! once mid-run. File storage and explicit acks mean nothing is lost, and
//! result ids mean nothing is stored twice.

mod common;

use common::{push_numbered, stream_counts, Stack};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};
use trawl_protocol::{RESULTS_STREAM, TASKS_STREAM};
use trawl_testkit::{workspace_binary, ServiceProcess};

/// Starts (or restarts) scanner `i` in its slot, with the id it had before.
fn spawn_scanner(stack: &mut Stack, i: usize) {
    let mut cmd = Command::new(workspace_binary("trawl-scanner").unwrap());
    cmd.args(["worker", "--nats", &stack.nats.url(), "--db"])
        .arg(&stack.db)
        .args(["--id", &format!("scanner-{i}"), "--concurrency", "2"])
        .env("TRAWL_LOG", "info,async_nats=warn");
    let log = stack.dir.path().join(format!("scanner-{i}.log"));
    let process = ServiceProcess::spawn("trawl-scanner", cmd, &log).unwrap();
    if i < stack.scanners.len() {
        stack.scanners[i] = process;
    } else {
        stack.scanners.push(process);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanners_killed_and_nats_restarted_lose_nothing_and_store_nothing_twice() {
    const IMAGES: usize = 200;
    const SCANNERS: usize = 3;
    let mut stack = Stack::start();
    push_numbered(&stack.registry, IMAGES, 10).await;
    stack.start_controller();
    stack.add_registry("local", json!({})).await;
    let (code, crawl) = stack.send(0, "POST", "/api/v1/registries/local/scan?wait=true", None).await;
    assert_eq!((code, crawl["queued"].as_u64()), (200, Some(IMAGES as u64)), "{crawl}");
    for i in 0..SCANNERS {
        spawn_scanner(&mut stack, i);
    }

    // Kill a scanner every 2 s, round robin, restarting it at once; crash
    // nats-server once, after the third kill.
    let started = Instant::now();
    let mut kills = 0;
    let mut nats_restarted = false;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (_, status) = stack.get(0, "/api/v1/registries/local").await;
        if status["queued"] == 0 && nats_restarted {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(240), "no progress under chaos: {status}\n{}", stack.logs());
        let victim = kills % SCANNERS;
        stack.scanners[victim].kill();
        spawn_scanner(&mut stack, victim);
        kills += 1;
        if kills == 3 {
            assert_ne!(status["queued"], 0, "the crash must come while work is left: {status}");
            stack.nats.restart().unwrap();
            nats_restarted = true;
        }
    }
    assert!(kills >= 3, "the run ended before the chaos began ({kills} kills)");

    // Every task redelivered after the kills is done: the registry settles.
    let status = stack.wait_settled("local", IMAGES as u64, Duration::from_secs(180)).await;
    assert_eq!((status["scanned"].as_u64(), status["failed"].as_u64()), (Some(IMAGES as u64), Some(0)), "{status}");
    let (_, images) = stack.get(0, "/api/v1/images?registry=local").await;
    let images = images.as_array().unwrap().clone();
    assert_eq!(images.len(), IMAGES);
    for image in &images {
        assert_eq!(image["results"], 1, "stored twice: {image}");
    }
    let js = stack.jetstream().await;
    assert_eq!(stream_counts(&js, TASKS_STREAM).await, (IMAGES as u64, 0), "task stream empty, one task per image");
    let (results_ever, results_waiting) = stream_counts(&js, RESULTS_STREAM).await;
    assert_eq!(
        (results_ever, results_waiting),
        (IMAGES as u64, 0),
        "a redelivered task's result collapsed into the first"
    );

    // No scanner is stuck: all three report in, idle.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, scanners) = stack.get(0, "/api/v1/scanners").await;
        let scanners = scanners.as_array().unwrap().clone();
        let idle = scanners.iter().filter(|s| s["current"] == json!([]) && s["state"] == "running").count();
        if idle == SCANNERS {
            break;
        }
        assert!(Instant::now() < deadline, "scanners not idle: {scanners:?}\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, queue) = stack.get(0, "/api/v1/queue").await;
    assert_eq!(queue["depth"], 0, "{queue}");
    assert_eq!(queue["dead_letters"], 0, "{queue}");
}
