//! "nats CLI replay": an independent client (Python nats-py) takes a task
//! off the queue, decodes it as documented, republishes it by hand as JSON,
//! and the system scans it.

mod common;

use common::{stream_counts, Stack};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use trawl_protocol::TASKS_STREAM;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_replayed_by_nats_py_is_scanned() {
    let mut stack = Stack::start();
    let digest =
        trawl_testkit::push(&stack.registry, "replay/app", "1.0", &common::numbered_image(7), None).await.unwrap();
    stack.start_controller();
    stack.add_registry("local", json!({})).await;

    // Queued on the high lane with no scanner running yet.
    let reference = format!("{}/replay/app:1.0", stack.registry.host());
    let (code, queued) = stack.send(0, "POST", "/api/v1/scan", Some(json!({"reference": reference}))).await;
    assert_eq!(code, 202, "{queued}");
    assert_eq!(queued["task"]["digest"], digest.as_str());

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/replay_task.py");
    let out = Command::new("python3").arg(script).arg(stack.nats.url()).output().expect("run python3");
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    let decoded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decoded["schema"], "trawl.scan-task");
    assert_eq!(decoded["digest"], digest.as_str());
    assert_eq!(decoded["lane"], "high");
    let js = stack.jetstream().await;
    // The original was acked by the Python client; its JSON copy waits.
    assert_eq!(stream_counts(&js, TASKS_STREAM).await, (2, 1));

    stack.start_scanner(&[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let record = loop {
        let (code, record) = stack.get(0, &format!("/api/v1/images/{digest}")).await;
        if code == 200 {
            break record;
        }
        assert!(Instant::now() < deadline, "the replayed task was not scanned:\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record["status"], "scanned", "{record}");
    assert_eq!(record["results"], 1, "{record}");
    assert_eq!(record["tags"], json!(["local:replay/app:1.0"]));
    assert_eq!(stream_counts(&js, TASKS_STREAM).await.1, 0);
}
