//! Benchmark: queue overhead — tasks per second through publish → pull →
//! ack → result stored, with a no-op scan (issue 5 target: ≥ 2,000/s on this
//! 2-core machine).
//!
//! Real processes on one machine: nats-server, `trawl-controller` (creates
//! the streams, ingests results into admission-control storage) and two
//! `trawl-scanner worker --noop-scan` processes (which take each task,
//! publish a result for it without pulling anything, and ack it). The
//! benchmark publishes N tasks with the controller's own `TaskPublisher` and
//! times until N image records are stored.
//!
//! `cargo build --release -p trawl-scanner && cargo bench -p trawl-controller --bench queue [-- TASKS]`

use std::process::Command;
use std::time::{Duration, Instant};
use trawl_controller::publish::TaskPublisher;
use trawl_protocol::{Lane, ScanTask};
use trawl_testkit::{workspace_binary, NatsServer, ServiceProcess};

fn main() {
    let tasks: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let nats = NatsServer::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = trawl_testkit::free_port().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trawl-controller"));
        cmd.args(["--nats", &nats.url(), "--listen", &format!("127.0.0.1:{port}")]).env("TRAWL_LOG", "warn");
        let mut controller = ServiceProcess::spawn("trawl-controller", cmd, &dir.path().join("controller.log")).unwrap();
        controller.wait_http_ok(([127, 0, 0, 1], port).into(), "/readyz").unwrap();

        let db = dir.path().join("empty.db");
        trawl_vulndb::Database::build(Vec::new(), vec![], 0).write(&db).unwrap();
        let scanner = workspace_binary("trawl-scanner").expect("cargo build --release -p trawl-scanner first");
        let mut workers = Vec::new();
        for i in 0..2 {
            let mut cmd = Command::new(&scanner);
            cmd.args(["worker", "--noop-scan", "--concurrency", "64", "--nats", &nats.url(), "--db"])
                .arg(&db)
                .args(["--id", &format!("bench-{i}")])
                .env("TRAWL_LOG", "warn,trawl_scanner=info");
            workers.push(ServiceProcess::spawn("trawl-scanner", cmd, &dir.path().join(format!("worker-{i}.log"))).unwrap());
        }

        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let batch: Vec<ScanTask> = (0..tasks)
            .map(|i| {
                let digest = format!("sha256:{i:064x}");
                ScanTask::new("bench", &format!("bench.example/app@{digest}"), Some(&digest), Lane::Bulk, "bench")
            })
            .collect();
        let publisher = TaskPublisher::new(js.clone());
        let started = Instant::now();
        let (counts, errors) = publisher.publish_all(batch).await;
        let published = started.elapsed().as_secs_f64();
        assert!(errors.is_empty(), "{:?}", errors.first());
        assert_eq!(counts.queued, tasks);
        loop {
            let mut records = js.get_stream("KV_TRAWL_IMAGES").await.unwrap();
            let stored = records.info().await.unwrap().state.messages as usize;
            if stored >= tasks {
                break;
            }
            if started.elapsed() > Duration::from_secs(300) {
                panic!("only {stored} of {tasks} stored after 300 s:\n{}\n{}", workers[0].log(), controller.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!("queue: {tasks} tasks published in {published:.2} s ({:.0}/s)", tasks as f64 / published);
        println!(
            "queue: {tasks} tasks published, pulled, acked and their results stored in {elapsed:.2} s: {:.0} tasks/s (target ≥ 2,000/s)",
            tasks as f64 / elapsed
        );
        for w in &mut workers {
            w.terminate();
        }
        drop(controller);
    });
}
