//! The distributed worker end to end: the real `trawl-scanner worker`
//! binary against a real nats-server (set up from the `nats/` definitions,
//! as the controller does) and a real docker-registry. Tasks go in as the
//! controller queues them; what comes out is read back from the results and
//! dead-letter streams and the heartbeat bucket, polled until a deadline.

mod common;

use async_nats::jetstream::{self, stream::Stream};
use async_nats::HeaderMap;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use trawl_protocol::buckets::REGISTRIES_BUCKET;
use trawl_protocol::task::CONTENT_TYPE_MSGPACK;
use trawl_protocol::{
    definitions, result_msg_id, DeadLetter, FailureKind, Lane, RegistryConfig, ScanResult, ScanTask, ScannerHeartbeat,
    DEAD_STREAM, RESULTS_STREAM, SCANNERS_BUCKET, TASKS_STREAM,
};
use trawl_testkit::{free_port, helm_chart, push, ImageBuilder, NatsServer, Registry};

/// A nats-server set up as the controller leaves it, a registry it knows
/// as `local`, and the small test database.
struct Cluster {
    nats: NatsServer,
    registry: Registry,
    js: jetstream::Context,
    dir: tempfile::TempDir,
    db: PathBuf,
}

impl Cluster {
    async fn start() -> Cluster {
        let nats = NatsServer::start().expect("start nats-server (run scripts/setup)");
        let registry = registry();
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = jetstream::new(client);
        ensure_definitions(&js).await;
        let mut config = RegistryConfig::new("local", &registry.url());
        config.insecure = true;
        let registries = js.get_key_value(REGISTRIES_BUCKET).await.unwrap();
        registries.put("local", serde_json::to_vec(&config).unwrap().into()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = small_db(dir.path());
        Cluster { nats, registry, js, dir, db }
    }

    /// Starts `trawl-scanner worker` with the fixed test database, id `id` and `extra` flags.
    fn worker(&self, id: &str, extra: &[&str]) -> Worker {
        let db = self.db.to_str().unwrap().to_string();
        self.worker_following(id, &[&["--db", db.as_str()], extra].concat())
    }

    /// Starts `trawl-scanner worker` without a database file: it follows the one published in NATS.
    fn worker_following(&self, id: &str, extra: &[&str]) -> Worker {
        spawn_worker(&self.nats.url(), self.dir.path(), id, extra, &[])
    }

    /// Queues `task` as the controller does: MessagePack, Content-Type, Nats-Msg-Id.
    async fn queue(&self, task: &ScanTask) {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", CONTENT_TYPE_MSGPACK);
        headers.insert("Nats-Msg-Id", task.msg_id().as_str());
        self.queue_raw(task.lane, headers, task.encode().unwrap()).await;
    }

    async fn queue_raw(&self, lane: Lane, headers: HeaderMap, payload: Vec<u8>) {
        self.js.publish_with_headers(lane.subject(), headers, payload.into()).await.unwrap().await.unwrap();
    }

    /// Pushes the fixture image as `repo:tag`: its reference and manifest digest.
    async fn push_fixture(&self, repo: &str, tag: &str) -> (String, String) {
        let digest = push(&self.registry, repo, tag, &fixture_image(), None).await.unwrap();
        (format!("{}/{repo}:{tag}", self.registry.host()), digest)
    }

    /// How many messages stream `name` holds now.
    async fn depth(&self, name: &str) -> Option<u64> {
        Some(self.js.get_stream(name).await.ok()?.cached_info().state.messages)
    }

    /// Waits until stream `name` holds `n` messages and returns them in order, with their headers.
    async fn messages(&self, name: &str, n: u64, worker: &Worker) -> Vec<(String, HeaderMap, Vec<u8>)> {
        eventually(&format!("{n} messages in {name}"), worker, || async move {
            (self.depth(name).await? >= n).then_some(())
        })
        .await;
        let stream: Stream = self.js.get_stream(name).await.unwrap();
        let first = stream.cached_info().state.first_sequence;
        let mut out = Vec::new();
        for seq in first..first + n {
            let m = stream.get_raw_message(seq).await.unwrap();
            out.push((m.subject.to_string(), m.headers, m.payload.to_vec()));
        }
        out
    }

    async fn results(&self, n: u64, worker: &Worker) -> Vec<(ScanResult, HeaderMap)> {
        let raw = self.messages(RESULTS_STREAM, n, worker).await;
        raw.into_iter().map(|(_, h, p)| (ScanResult::decode(&p).expect("a valid result"), h)).collect()
    }

    async fn dead_letters(&self, n: u64, worker: &Worker) -> Vec<(String, HeaderMap, DeadLetter)> {
        let raw = self.messages(DEAD_STREAM, n, worker).await;
        raw.into_iter().map(|(s, h, p)| (s, h, DeadLetter::decode(&p).expect("a valid dead letter"))).collect()
    }

    /// Waits until every task is acknowledged or terminated (a work queue then holds none).
    async fn wait_tasks_done(&self, worker: &Worker) {
        eventually(
            "an empty task stream",
            worker,
            || async move { (self.depth(TASKS_STREAM).await? == 0).then_some(()) },
        )
        .await;
    }

    async fn heartbeat(&self, id: &str) -> Option<ScannerHeartbeat> {
        let kv = self.js.get_key_value(SCANNERS_BUCKET).await.unwrap();
        let value = kv.get(id).await.unwrap()?;
        Some(serde_json::from_slice(&value).expect("a heartbeat is JSON"))
    }
}

async fn ensure_definitions(js: &jetstream::Context) {
    definitions::ensure_all(js).await.unwrap();
}

fn finding_ids(result: &ScanResult) -> Vec<String> {
    let report = result.report.as_ref().expect("a report");
    let mut ids: Vec<String> = report.findings.iter().map(|f| f.id.clone()).collect();
    ids.sort();
    ids
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_task_is_scanned_into_a_result_and_acknowledged() {
    let cluster = Cluster::start().await;
    let (reference, digest) = cluster.push_fixture("team/app", "1.0").await;
    let task = ScanTask::new("local", &reference, Some(&digest), Lane::Bulk, "sweep");
    cluster.queue(&task).await;

    let worker = cluster.worker("w-bulk", &[]);
    let results = cluster.results(1, &worker).await;
    let (result, headers) = &results[0];
    assert_eq!(result.task.as_ref(), Some(&task));
    assert!(result.failure.is_none(), "{:?}", result.failure);
    assert_eq!(finding_ids(result), ["CVE-2099-0001", "CVE-2099-0002", "CVE-2099-0003"]);
    let report = result.report.as_ref().unwrap();
    assert_eq!(report.image.manifest_digest.as_deref(), Some(digest.as_str()), "pulled by digest");
    assert_eq!((result.scanner.name.as_str(), result.scanner.mode.as_str()), ("w-bulk", "worker"));
    assert_eq!(result.subject(), format!("trawl.results.image.{}", digest.trim_start_matches("sha256:")));
    assert_eq!(header(headers, "Nats-Msg-Id"), Some(result_msg_id(1).as_str()));
    assert_eq!(header(headers, "Content-Type"), Some("application/msgpack+zstd"));
    cluster.wait_tasks_done(&worker).await;

    let log = worker.log();
    let line = log.lines().find(|l| l.contains("outcome=\"scanned\"")).unwrap_or_else(|| panic!("no task line: {log}"));
    assert!(line.contains(&reference) && line.contains(&digest) && line.contains("duration_ms="), "{line}");
    assert!(!log.contains(FIXTURE_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_high_lane_is_drained_before_the_bulk_lane() {
    let cluster = Cluster::start().await;
    // Bulk first, so the stream order alone would scan them first.
    let mut queued = Vec::new();
    for (lane, tag) in
        [(Lane::Bulk, "b1"), (Lane::Bulk, "b2"), (Lane::Bulk, "b3"), (Lane::High, "h1"), (Lane::High, "h2")]
    {
        let (reference, _) = cluster.push_fixture("team/lanes", tag).await;
        let task = ScanTask::new("local", &reference, None, lane, "sweep");
        cluster.queue(&task).await;
        queued.push(task);
    }

    let worker = cluster.worker("w-lanes", &["--concurrency", "1"]);
    let results = cluster.results(5, &worker).await;
    let order: Vec<String> = results
        .iter()
        .map(|(r, _)| r.task.as_ref().expect("the task").reference.rsplit(':').next().unwrap().to_string())
        .collect();
    assert_eq!(order, ["h1", "h2", "b1", "b2", "b3"], "{}", worker.log());
    cluster.wait_tasks_done(&worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_become_failed_results_and_dead_letters() {
    let cluster = Cluster::start().await;
    // Stored bytes changed behind the registry's back: a digest mismatch.
    let image = ImageBuilder::new().layer(debian_base(&[("tampered", "1", None)])).build().unwrap();
    let digest = push(&cluster.registry, "bad/tampered", "v1", &image, None).await.unwrap();
    let layer = &image.layers[0];
    let mut bytes = layer.bytes().unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    cluster.registry.corrupt_blob(&layer.digest, &bytes).unwrap();
    let tampered = ScanTask::new(
        "local",
        &format!("{}/bad/tampered:v1", cluster.registry.host()),
        Some(&digest),
        Lane::Bulk,
        "sweep",
    );
    cluster.queue(&tampered).await;
    // A Helm chart is not an image.
    let chart = helm_chart("mychart", "0.1.0", &[]).unwrap();
    push(&cluster.registry, "charts/mychart", "0.1.0", &chart, None).await.unwrap();
    let helm =
        ScanTask::new("", &format!("{}/charts/mychart:0.1.0", cluster.registry.host()), None, Lane::Bulk, "sweep");
    cluster.queue(&helm).await;

    let worker = cluster.worker("w-bad", &["--concurrency", "1"]);
    let results = cluster.results(2, &worker).await;
    let failure = |task: &ScanTask| {
        let (result, headers) = results.iter().find(|(r, _)| r.task.as_ref() == Some(task)).expect("a result per task");
        assert!(result.report.is_none());
        assert!(header(headers, "Nats-Msg-Id").is_some_and(|id| id.starts_with("result|TRAWL_TASKS|")));
        result.failure.clone().expect("a failure")
    };
    let mismatch = failure(&tampered);
    assert_eq!((mismatch.kind, mismatch.attempts), (FailureKind::DigestMismatch, 1), "{}", mismatch.message);
    assert!(mismatch.message.contains("digest mismatch"), "{}", mismatch.message);
    let not_image = failure(&helm);
    assert_eq!(not_image.kind, FailureKind::NotAnImage, "{}", not_image.message);
    assert!(not_image.message.contains("Helm chart"), "{}", not_image.message);

    let letters = cluster.dead_letters(2, &worker).await;
    for (subject, headers, letter) in &letters {
        assert_eq!(subject, "trawl.dead.bulk");
        assert_eq!(header(headers, "Nats-Msg-Id"), Some(letter.msg_id().as_str()));
        assert_eq!(header(headers, "Content-Type"), Some("application/json"));
        assert_eq!((letter.by.as_str(), letter.subject.as_str()), ("w-bad", "trawl.tasks.bulk"));
        assert!(letter.raw.is_none());
    }
    let kinds: Vec<FailureKind> = letters.iter().map(|(_, _, l)| l.failure.kind).collect();
    assert_eq!(kinds, [FailureKind::DigestMismatch, FailureKind::NotAnImage]);
    assert_eq!(letters[0].2.task.as_ref(), Some(&tampered));
    cluster.wait_tasks_done(&worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_task_is_dead_lettered_with_its_payload() {
    let cluster = Cluster::start().await;
    cluster.queue_raw(Lane::High, HeaderMap::new(), b"scan everything please".to_vec()).await;

    let worker = cluster.worker("w-garbage", &[]);
    let letters = cluster.dead_letters(1, &worker).await;
    let (subject, _, letter) = &letters[0];
    assert_eq!(subject, "trawl.dead.high");
    assert_eq!(letter.task, None);
    assert_eq!(letter.raw.as_deref(), Some("scan everything please"));
    assert_eq!((letter.failure.kind, letter.failure.attempts), (FailureKind::BadTask, 1));
    assert!(letter.failure.message.contains("scan task"), "{}", letter.failure.message);
    cluster.wait_tasks_done(&worker).await;
    // Nothing to attach a result to: no result.
    assert_eq!(cluster.depth(RESULTS_STREAM).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_is_published_and_sigterm_when_idle_exits_cleanly() {
    let cluster = Cluster::start().await;
    let mut worker = cluster.worker("w-beat", &["--concurrency", "3"]);
    let beat = eventually("a heartbeat", &worker, || cluster.heartbeat("w-beat")).await;
    assert_eq!((beat.id.as_str(), beat.state.as_str(), beat.concurrency), ("w-beat", "running", 3));
    let db = trawl_vulndb::Database::load(&cluster.db).unwrap();
    assert_eq!(beat.db_version, Some(db.header().version));
    assert!(beat.current.is_empty() && beat.scanned == 0);

    let signalled = Instant::now();
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(15)).expect("the worker exits after SIGTERM");
    assert!(status.success(), "{status:?}: {}", worker.log());
    assert!(signalled.elapsed() < Duration::from_secs(8), "idle drain took {:?}", signalled.elapsed());
    assert!(cluster.heartbeat("w-beat").await.is_none(), "the heartbeat key is deleted on exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_with_backoff_until_the_last_delivery() {
    let cluster = Cluster::start().await;
    // A registry that is configured but not running: every pull is refused.
    let host = format!("127.0.0.1:{}", free_port().unwrap());
    let mut down = RegistryConfig::new("down", &format!("http://{host}"));
    down.insecure = true;
    let registries = cluster.js.get_key_value(REGISTRIES_BUCKET).await.unwrap();
    registries.put("down", serde_json::to_vec(&down).unwrap().into()).await.unwrap();
    // The nats/ consumer's backoff (30 s, 60 s, …) sets a floor under the second and later
    // retries (see worker::classify::nak_delay); without it, and with three deliveries, the
    // worker's own schedule (50 ms, 100 ms) plays out in test time.
    let mut high = definitions::consumer_config(TASKS_STREAM, Lane::High.consumer()).unwrap();
    (high.backoff, high.max_deliver) = (Vec::new(), 3);
    cluster.js.get_stream(TASKS_STREAM).await.unwrap().create_consumer(high).await.unwrap();
    let task = ScanTask::new("down", &format!("{host}/team/app:1"), None, Lane::High, "on-demand");
    cluster.queue(&task).await;

    let started = Instant::now();
    let worker = cluster.worker("w-retry", &["--retry-delay", "50ms"]);
    let results = cluster.results(1, &worker).await;
    // Handed back with a delay, not left to the 30 s ack_wait.
    assert!(started.elapsed() < Duration::from_secs(20), "{}", worker.log());
    let failure = results[0].0.failure.clone().expect("a failed result");
    // Two hand-backs, then the last delivery gives up.
    assert_eq!((failure.kind, failure.attempts), (FailureKind::RegistryUnavailable, 3), "{}", failure.message);
    assert!(failure.message.contains(&host), "{}", failure.message);
    let log = worker.log();
    assert_eq!(log.matches("outcome=\"retry\"").count(), 2, "{log}");
    assert!(log.contains("retry_in=50ms") && log.contains("retry_in=100ms"), "{log}");
    let letters = cluster.dead_letters(1, &worker).await;
    assert_eq!(letters[0].0, "trawl.dead.high");
    assert!(letters[0].2.worth_requeueing());
    cluster.wait_tasks_done(&worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_database_file_the_worker_waits_for_the_published_one() {
    let cluster = Cluster::start().await;
    let worker = cluster.worker_following("w-follow", &[]);
    let beat = eventually("a heartbeat", &worker, || cluster.heartbeat("w-follow")).await;
    assert_eq!(beat.db_version, None, "nothing published yet");
    let (reference, digest) = cluster.push_fixture("team/app", "2.0").await;
    cluster.queue(&ScanTask::new("local", &reference, Some(&digest), Lane::High, "admission")).await;

    let client = async_nats::connect(cluster.nats.url()).await.unwrap();
    let publisher = trawl_dbdist::DbPublisher::connect(client).await.unwrap();
    let announced = publisher.publish(&std::fs::read(&cluster.db).unwrap()).await.unwrap();
    let results = cluster.results(1, &worker).await;
    let report = results[0].0.report.as_ref().expect("a report");
    assert_eq!(report.db.version, announced.version);
    assert_eq!(finding_ids(&results[0].0), ["CVE-2099-0001", "CVE-2099-0002", "CVE-2099-0003"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_survives_a_nats_restart() {
    let mut cluster = Cluster::start().await;
    let worker = cluster.worker("w-restart", &[]);
    eventually("a heartbeat", &worker, || cluster.heartbeat("w-restart")).await;
    // A crash (SIGKILL) and a restart on the same port with the same store.
    cluster.nats.restart().unwrap();

    let (reference, digest) = cluster.push_fixture("team/app", "3.0").await;
    let task = ScanTask::new("local", &reference, Some(&digest), Lane::Bulk, "sweep");
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", CONTENT_TYPE_MSGPACK);
    headers.insert("Nats-Msg-Id", task.msg_id().as_str());
    let payload = task.encode().unwrap();
    // The test's own client reconnects too; Nats-Msg-Id makes a retried publish store once.
    eventually("the task queued after the restart", &worker, || {
        let (headers, payload) = (headers.clone(), payload.clone());
        let js = &cluster.js;
        async move {
            let ack = js.publish_with_headers(Lane::Bulk.subject(), headers, payload.into()).await.ok()?;
            ack.await.ok()
        }
    })
    .await;
    let results = cluster.results(1, &worker).await;
    assert_eq!(results[0].0.task.as_ref(), Some(&task));
    assert!(results[0].0.report.is_some(), "{:?}", results[0].0.failure);
    cluster.wait_tasks_done(&worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_a_scan_that_outlasts_the_drain_timeout() {
    let cluster = Cluster::start().await;
    // A "registry" that accepts connections and never answers: the scan hangs.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let (accepted, mut first_accept) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            let _ = accepted.send(());
        }
    });
    let mut stall = RegistryConfig::new("stall", &format!("http://{host}"));
    stall.insecure = true;
    let registries = cluster.js.get_key_value(REGISTRIES_BUCKET).await.unwrap();
    registries.put("stall", serde_json::to_vec(&stall).unwrap().into()).await.unwrap();
    cluster.queue(&ScanTask::new("stall", &format!("{host}/team/app:1"), None, Lane::High, "on-demand")).await;

    let mut worker = cluster.worker("w-drain", &["--drain-timeout", "1s"]);
    tokio::time::timeout(WORKER_DEADLINE, first_accept.recv()).await.expect("the worker starts the scan");
    let signalled = Instant::now();
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(20)).expect("the worker exits after its drain timeout");
    assert!(status.success(), "{status:?}: {}", worker.log());
    assert!(signalled.elapsed() < Duration::from_secs(10), "drain took {:?}", signalled.elapsed());
    let log = worker.log();
    assert!(log.contains("drain timeout reached") && log.contains("outcome=\"handed-back\""), "{log}");
    assert!(cluster.heartbeat("w-drain").await.is_none());

    // Handed back with a NAK, the task is at once available again (not after the 30 s ack_wait).
    let consumer: jetstream::consumer::PullConsumer =
        cluster.js.get_consumer_from_stream(Lane::High.consumer(), TASKS_STREAM).await.unwrap();
    let mut batch = consumer.batch().max_messages(1).expires(Duration::from_secs(5)).messages().await.unwrap();
    let msg = futures::StreamExt::next(&mut batch).await.expect("the task is back").unwrap();
    assert_eq!(msg.info().unwrap().delivered, 2);
}
