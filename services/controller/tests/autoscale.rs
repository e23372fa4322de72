//! Autoscaling end to end: the settings API (stored in NATS, changed at run
//! time), the lead controller's published status, and — with the `process`
//! backend — real scanner processes scaled on the depth of a real task queue.

mod common;

use common::Stack;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Polls controller `c`'s settings view until `ready` accepts it.
async fn wait_status(stack: &Stack, c: usize, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, view) = stack.get(c, "/api/v1/settings/autoscale").await;
        if ready(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {view}\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_validated_stored_in_nats_and_survive_a_restart() {
    let mut stack = Stack::start();
    stack.start_controller_with_env(&[("TRAWL_CONTROLLER_ID", "ctl-a"), ("TRAWL_MAX_SCANNERS", "4")]);
    let view = wait_status(&stack, 0, "a leader", |v| v["status"]["leader"] == "ctl-a").await;
    assert_eq!((view["strategy"].as_str(), view["min_scanners"].as_u64()), (Some("delayed"), Some(1)));
    assert_eq!(view["max_scanners"], 4, "the command line seeds the settings: {view}");
    assert_eq!(
        (view["scale_up_after_seconds"].as_u64(), view["scale_down_after_seconds"].as_u64()),
        (Some(90), Some(180))
    );
    assert_eq!(view["status"]["backend"], "none");
    assert_eq!(view["status"]["decision"], "no_backend");

    // Refused: no token, min above max, an unknown field, a bad strategy.
    let anonymous = reqwest::Client::new()
        .put(format!("{}/api/v1/settings/autoscale", stack.controllers[0].url))
        .header("Content-Type", "application/json")
        .body(json!({"strategy": "immediate"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    for (body, needle) in [
        (json!({"min_scanners": 5, "max_scanners": 2}), "min"),
        (json!({"strategy": "immediate", "max_scaners": 3}), "max_scaners"),
        (json!({"strategy": "sometimes"}), "sometimes"),
    ] {
        let (status, answer) = stack.send(0, "PUT", "/api/v1/settings/autoscale", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(answer["error"].as_str().unwrap_or_default().contains(needle), "{body} → {answer}");
    }

    let new = json!({"strategy": "immediate", "min_scanners": 2, "max_scanners": 6,
        "scale_up_after_seconds": 30, "scale_down_after_seconds": 60, "tasks_per_scanner": 5});
    let (status, answer) = stack.send(0, "PUT", "/api/v1/settings/autoscale", Some(new.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["strategy"], "immediate");
    // The leader applies them on its next step.
    wait_status(&stack, 0, "the leader using the new settings", |v| v["status"]["settings"]["max_scanners"] == 6).await;

    // A second replica, and a restart of both: the settings live in NATS.
    stack.start_controller_with_env(&[("TRAWL_CONTROLLER_ID", "ctl-b")]);
    let (_, from_b) = stack.get(1, "/api/v1/settings/autoscale").await;
    assert_eq!((from_b["strategy"].as_str(), from_b["max_scanners"].as_u64()), (Some("immediate"), Some(6)));
    assert_eq!(from_b["status"]["leader"], "ctl-a", "one leader, seen from every replica");
    stack.controllers[0].process.terminate();
    assert!(stack.controllers[0].process.wait_exit(Duration::from_secs(15)).is_some());
    let view = wait_status(&stack, 1, "the second replica leading", |v| v["status"]["leader"] == "ctl-b").await;
    assert_eq!(view["min_scanners"], 2);
}

/// Processes whose command line mentions `needle` (the stack's unique database path).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) && pid != std::process::id() {
            found.push(pid);
        }
    }
    found
}

/// A stack whose registry holds `images` images behind a proxy that makes
/// every blob take 400 ms: a scan takes a known while, and the queue lasts
/// long enough to watch the scanners grow.
async fn slow_registry_stack(images: usize) -> (Stack, trawl_testkit::FaultProxy) {
    let stack = Stack::start();
    common::push_numbered(&stack.registry, images, 10).await;
    let proxy = trawl_testkit::FaultProxy::start(&stack.registry).unwrap();
    proxy.add_rule(trawl_testkit::FaultRule::slow("/v2/*/blobs/*", Duration::from_millis(400)));
    (stack, proxy)
}

/// Starts controller `id` with the `process` backend running this stack's scanners.
fn start_scaling_controller(stack: &mut Stack, id: &str) {
    let db = stack.db.to_str().unwrap().to_string();
    let scanner = trawl_testkit::workspace_binary("trawl-scanner").unwrap();
    let logs = stack.dir.path().to_str().unwrap().to_string();
    stack.start_controller_with_env(&[
        ("TRAWL_CONTROLLER_ID", id),
        ("TRAWL_SCALE_BACKEND", "process"),
        ("TRAWL_SCANNER_PROGRAM", scanner.to_str().unwrap()),
        ("TRAWL_SCANNER_ARGS", &format!("--db {db} --concurrency 2")),
        ("TRAWL_SCANNER_LOG_DIR", &logs),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanners_scale_from_one_to_max_drain_the_queue_and_return_to_min() {
    const IMAGES: usize = 150;
    const MAX: u64 = 4;
    let (mut stack, proxy) = slow_registry_stack(IMAGES).await;
    let db = stack.db.to_str().unwrap().to_string();
    start_scaling_controller(&mut stack, "ctl-scaler");
    let settings = json!({"strategy": "immediate", "min_scanners": 1, "max_scanners": MAX,
        "scale_down_after_seconds": 3});
    let (status, answer) = stack.send(0, "PUT", "/api/v1/settings/autoscale", Some(settings)).await;
    assert_eq!(status, 200, "{answer}");
    // Nothing queued yet: no scanner is started before the first event.
    let idle =
        wait_status(&stack, 0, "the leader's first steps", |v| v["status"]["settings"]["max_scanners"] == MAX).await;
    assert_eq!(idle["status"]["scanners"]["desired"], 0, "{idle}");

    stack.add_registry_at("local", &proxy.url(), json!({})).await;
    let (code, answer) = stack.send(0, "POST", "/api/v1/registries/local/scan", None).await;
    assert_eq!(code, 202, "{answer}");

    // Up to the maximum while the queue is deep, never beyond it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut peak = 0;
    let mut peak_live = 0;
    loop {
        let (_, view) = stack.get(0, "/api/v1/settings/autoscale").await;
        let desired = view["status"]["scanners"]["desired"].as_u64().unwrap_or(0);
        assert!(desired <= MAX, "above the maximum: {view}");
        peak = peak.max(desired);
        let (_, scanners) = stack.get(0, "/api/v1/scanners").await;
        peak_live = peak_live.max(scanners.as_array().map_or(0, Vec::len));
        let (_, registry) = stack.get(0, "/api/v1/registries/local").await;
        if registry["images_total"] == IMAGES as u64 && registry["queued"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the queue did not drain: {registry}\n{view}\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(peak, MAX, "the scanners reached the maximum while the queue was deep");
    assert!(peak_live >= 2, "several scanner processes worked the queue (heartbeats seen: {peak_live})");
    let (_, images) = stack.get(0, "/api/v1/images?registry=local").await;
    let images = images.as_array().unwrap();
    assert_eq!(images.len(), IMAGES);
    assert!(images.iter().all(|i| i["status"] == "scanned" && i["results"] == 1), "one result per image");

    // Idle: one scanner fewer per quiet period (3 s here), down to the minimum.
    let back = wait_status(&stack, 0, "the scanners back at the minimum", |v| {
        v["status"]["scanners"]["desired"] == 1 && v["status"]["scanners"]["current"] == 1
    })
    .await;
    assert_eq!(back["status"]["last_event"]["direction"], "down", "{back}");
    assert_eq!(back["status"]["last_event"]["reason"], "idle", "{back}");

    let metrics = reqwest::get(format!("{}/metrics", stack.controllers[0].url)).await.unwrap().text().await.unwrap();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert_eq!(value("trawl_controller_leader "), 1.0);
    assert_eq!(value("trawl_scanners_desired "), 1.0);
    assert!(value("trawl_scaling_events_total{direction=\"up\",reason=\"tasks_pending\"} ") >= (MAX - 1) as f64);
    assert_eq!(value("trawl_scaling_events_total{direction=\"down\",reason=\"idle\"} "), (MAX - 1) as f64);
    assert_eq!(value("trawl_autoscale_strategy{strategy=\"immediate\"} "), 1.0);

    // Stopping the controller stops the scanners it started.
    stack.controllers[0].process.terminate();
    assert!(stack.controllers[0].process.wait_exit(Duration::from_secs(30)).is_some(), "{}", stack.logs());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_mentioning(&db).is_empty() {
        assert!(Instant::now() < deadline, "scanners left running: {:?}", processes_mentioning(&db));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_mid_scale_up_hands_scaling_to_the_other_within_max() {
    const IMAGES: usize = 120;
    const MAX: usize = 3;
    let (mut stack, proxy) = slow_registry_stack(IMAGES).await;
    let db = stack.db.to_str().unwrap().to_string();
    for id in ["ctl-a", "ctl-b"] {
        start_scaling_controller(&mut stack, id);
    }
    let settings = json!({"strategy": "immediate", "min_scanners": 1, "max_scanners": MAX});
    assert_eq!(stack.send(1, "PUT", "/api/v1/settings/autoscale", Some(settings)).await.0, 200);
    wait_status(&stack, 1, "ctl-a leading with the settings", |v| {
        v["status"]["leader"] == "ctl-a" && v["status"]["settings"]["max_scanners"] == MAX
    })
    .await;
    stack.add_registry_at("local", &proxy.url(), json!({})).await;
    assert_eq!(stack.send(1, "POST", "/api/v1/registries/local/scan", None).await.0, 202);
    // Mid scale-up: the leader has started some scanners, not all.
    wait_status(&stack, 1, "the scale-up under way", |v| v["status"]["scanners"]["desired"].as_u64() >= Some(2)).await;
    stack.controllers[0].process.kill();
    let killed = Instant::now();

    // This stack's scanners of controller `id` (the database path is unique to the stack).
    let scanners_of = |id: &str| {
        let mine = processes_mentioning(&db);
        processes_mentioning(&format!("{id}-scanner-")).into_iter().filter(|p| mine.contains(p)).count()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut took_over = None;
    loop {
        // The new leader's scanners never exceed the maximum; the old
        // leader's die with it (they drain their in-flight scans first).
        assert!(scanners_of("ctl-b") <= MAX, "ctl-b runs {} scanners", scanners_of("ctl-b"));
        if killed.elapsed() > Duration::from_secs(30) {
            assert_eq!(scanners_of("ctl-a"), 0, "the dead leader's scanners are gone after their drain");
            assert!(scanners_of("ctl-a") + scanners_of("ctl-b") <= MAX);
        }
        let (_, view) = stack.get(1, "/api/v1/settings/autoscale").await;
        assert!(view["status"]["scanners"]["desired"].as_u64().unwrap_or(0) <= MAX as u64, "{view}");
        if took_over.is_none() && view["status"]["leader"] == "ctl-b" {
            took_over = Some(killed.elapsed());
        }
        let (_, registry) = stack.get(1, "/api/v1/registries/local").await;
        if took_over.is_some() && registry["images_total"] == IMAGES as u64 && registry["queued"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not finished: {registry}\n{view}\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took_over = took_over.unwrap();
    eprintln!("failover: ctl-b leads {took_over:?} after ctl-a was killed");
    assert!(took_over < Duration::from_secs(20), "failover took {took_over:?}");
    let (_, images) = stack.get(1, "/api/v1/images?registry=local").await;
    assert!(images.as_array().unwrap().iter().all(|i| i["status"] == "scanned"), "every image scanned: {images}");
}
