//! The worker's Prometheus endpoint end to end: the real `trawl-scanner
//! worker` binary with `--metrics-listen`, against a real nats-server (set
//! up from the `nats/` definitions, as the controller does) and a real
//! docker-registry. Tasks go in as the controller queues them; `/metrics`
//! and `/healthz` are read over plain HTTP.

mod common;

use async_nats::jetstream;
use async_nats::HeaderMap;
use common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trawl_protocol::buckets::REGISTRIES_BUCKET;
use trawl_protocol::task::CONTENT_TYPE_MSGPACK;
use trawl_protocol::{
    definitions, Lane, RegistryConfig, ScanTask, ScannerHeartbeat, RESULTS_STREAM, SCANNERS_BUCKET, TASKS_STREAM,
};
use trawl_testkit::{free_port, push, NatsServer, Registry};

/// The line the worker logs once its metrics endpoint is bound.
const LISTENING: &str = "metrics listening on ";

/// A nats-server set up as the controller leaves it, a registry it knows as `local`, and the small test database.
struct Cluster {
    nats: NatsServer,
    registry: Registry,
    js: jetstream::Context,
    dir: tempfile::TempDir,
    db: std::path::PathBuf,
}

impl Cluster {
    async fn start() -> Cluster {
        let nats = NatsServer::start().expect("start nats-server (run scripts/setup)");
        let registry = registry();
        let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        definitions::ensure_all(&js).await.unwrap();
        let mut config = RegistryConfig::new("local", &registry.url());
        config.insecure = true;
        let registries = js.get_key_value(REGISTRIES_BUCKET).await.unwrap();
        registries.put("local", serde_json::to_vec(&config).unwrap().into()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = small_db(dir.path());
        Cluster { nats, registry, js, dir, db }
    }

    /// Queues `task` as the controller does: MessagePack, Content-Type, Nats-Msg-Id.
    async fn queue(&self, task: &ScanTask) {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", CONTENT_TYPE_MSGPACK);
        headers.insert("Nats-Msg-Id", task.msg_id().as_str());
        let payload = task.encode().unwrap();
        self.js.publish_with_headers(task.lane.subject(), headers, payload.into()).await.unwrap().await.unwrap();
    }

    async fn depth(&self, name: &str) -> Option<u64> {
        Some(self.js.get_stream(name).await.ok()?.cached_info().state.messages)
    }

    async fn heartbeat(&self, id: &str) -> Option<ScannerHeartbeat> {
        let kv = self.js.get_key_value(SCANNERS_BUCKET).await.unwrap();
        let value = kv.get(id).await.unwrap()?;
        Some(serde_json::from_slice(&value).expect("a heartbeat is JSON"))
    }
}

/// The address in the worker's "metrics listening on ADDR …" log line, once it is there.
fn logged_metrics_addr(log: &str) -> Option<std::net::SocketAddr> {
    let rest = &log[log.find(LISTENING)? + LISTENING.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// A plain HTTP/1.0 GET: the status code, the header block and the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await??;
    let text = String::from_utf8(raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, head.to_string(), body.to_string()))
}

/// The value of a header in a header block, by case-insensitive name.
fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Parses the text exposition format strictly: every line is a `# HELP` or
/// `# TYPE` comment or `name{labels} value`. Returns each series (`name` or
/// `name{labels}`, as written) with its value; panics on anything else.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let valid_name = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut series = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            assert!(matches!(kind, "HELP" | "TYPE") && valid_name(name), "bad comment line {line:?}");
            if kind == "TYPE" {
                let t = words.next().unwrap_or("");
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&t), "{line:?}");
            }
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let name = match key.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                for pair in labels.split(',') {
                    let (label, quoted) = pair.split_once('=').unwrap_or_else(|| panic!("bad label in {line:?}"));
                    assert!(valid_name(label), "bad label name in {line:?}");
                    assert!(quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'), "{line:?}");
                }
                name
            }
            None => key,
        };
        assert!(valid_name(name), "bad metric name in {line:?}");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(series.insert(key.to_string(), value).is_none(), "series repeated: {line:?}");
    }
    series
}

fn value(series: &BTreeMap<String, f64>, key: &str) -> f64 {
    *series.get(key).unwrap_or_else(|| panic!("no series {key} in {:?}", series.keys().collect::<Vec<_>>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_scans_failures_bytes_and_the_database_in_use() {
    let cluster = Cluster::start().await;
    let digest = push(&cluster.registry, "team/app", "1.0", &fixture_image(), None).await.unwrap();
    let good = format!("{}/team/app:1.0", cluster.registry.host());
    let missing = format!("{}/team/missing:1.0", cluster.registry.host());
    cluster.queue(&ScanTask::new("local", &good, Some(&digest), Lane::Bulk, "sweep")).await;
    cluster.queue(&ScanTask::new("local", &missing, None, Lane::Bulk, "sweep")).await;

    let db = cluster.db.to_str().unwrap();
    let extra = ["--db", db, "--concurrency", "1", "--metrics-listen", "127.0.0.1:0"];
    let mut worker = spawn_worker(&cluster.nats.url(), cluster.dir.path(), "w-metrics", &extra, &[]);
    let addr =
        eventually("the metrics address in the log", &worker, || async { logged_metrics_addr(&worker.log()) }).await;
    assert_ne!(addr.port(), 0, "the real port is logged");

    eventually("both results", &worker, || async { (cluster.depth(RESULTS_STREAM).await? >= 2).then_some(()) }).await;
    eventually("an empty task stream", &worker, || async { (cluster.depth(TASKS_STREAM).await? == 0).then_some(()) })
        .await;
    // The counters move just after the acknowledgement: scrape until both tasks show.
    let (head, body) = eventually("2 acknowledged tasks in /metrics", &worker, || async {
        let (status, head, body) = http_get(addr, "/metrics").await.ok()?;
        assert_eq!(status, 200, "{head}");
        let done = body.lines().any(|l| l == "trawl_scanner_tasks_acked_total 2");
        done.then_some((head, body))
    })
    .await;
    assert_eq!(header_value(&head, "content-type"), Some("text/plain; version=0.0.4"), "{head}");

    let series = parse_exposition(&body);
    assert_eq!(value(&series, "trawl_scanner_tasks_acked_total"), 2.0);
    assert_eq!(value(&series, "trawl_scanner_tasks_failed_total{kind=\"not-found\"}"), 1.0, "{body}");
    let failed: f64 =
        series.iter().filter(|(k, _)| k.starts_with("trawl_scanner_tasks_failed_total{")).map(|(_, v)| v).sum();
    assert_eq!(failed, 1.0, "only the missing image failed: {body}");
    assert_eq!(value(&series, "trawl_scanner_tasks_dead_lettered_total"), 1.0);
    let retried: f64 =
        series.iter().filter(|(k, _)| k.starts_with("trawl_scanner_tasks_retried_total{")).map(|(_, v)| v).sum();
    assert_eq!(retried, 0.0, "{body}");
    assert_eq!(value(&series, "trawl_scanner_scan_duration_seconds_count{lane=\"bulk\"}"), 2.0);
    assert_eq!(value(&series, "trawl_scanner_scan_duration_seconds_count{lane=\"high\"}"), 0.0);
    assert_eq!(value(&series, "trawl_scanner_scan_duration_seconds_bucket{lane=\"bulk\",le=\"+Inf\"}"), 2.0);
    assert!(value(&series, "trawl_scanner_scan_duration_seconds_sum{lane=\"bulk\"}") > 0.0);
    assert!(value(&series, "trawl_scanner_bytes_pulled_total") > 0.0, "{body}");
    // The cache starts empty: both layers of the image scanned are misses.
    assert_eq!(value(&series, "trawl_scanner_layer_cache_hits_total"), 0.0);
    assert_eq!(value(&series, "trawl_scanner_layer_cache_misses_total"), 2.0);
    assert_eq!(value(&series, "trawl_scanner_tasks_in_flight"), 0.0);
    let header = trawl_vulndb::Database::load(&cluster.db).unwrap().header().clone();
    assert_eq!(value(&series, "trawl_scanner_vulndb_version"), header.version as f64);
    let built = chrono::DateTime::parse_from_rfc3339(&header.built_at).unwrap().timestamp();
    assert_eq!(value(&series, "trawl_scanner_vulndb_built_timestamp_seconds"), built as f64);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(value(&series, &format!("trawl_scanner_info{{id=\"w-metrics\",version=\"{version}\"}}")), 1.0);
    for (name, kind) in [
        ("trawl_scanner_tasks_acked_total", "counter"),
        ("trawl_scanner_tasks_failed_total", "counter"),
        ("trawl_scanner_scan_duration_seconds", "histogram"),
        ("trawl_scanner_tasks_in_flight", "gauge"),
        ("trawl_scanner_vulndb_built_timestamp_seconds", "gauge"),
    ] {
        assert!(body.lines().any(|l| l == format!("# TYPE {name} {kind}")), "no {kind} {name}: {body}");
    }

    // The heartbeat reads the same counters.
    let beat = eventually("a heartbeat with both tasks", &worker, || async {
        cluster.heartbeat("w-metrics").await.filter(|b| b.scanned + b.failed == 2)
    })
    .await;
    assert_eq!((beat.scanned, beat.failed, beat.retried, beat.layer_cache_hits), (1, 1, 0, 0), "{beat:?}");
    assert_eq!(beat.bytes_pulled as f64, value(&series, "trawl_scanner_bytes_pulled_total"));

    let (status, _, health) = http_get(addr, "/healthz").await.unwrap();
    assert_eq!((status, health.as_str()), (200, "running\n"));
    let (status, _, _) = http_get(addr, "/nothing-here").await.unwrap();
    assert_eq!(status, 404);

    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(15)).expect("the worker exits after SIGTERM");
    assert!(status.success(), "{status:?}: {}", worker.log());
    assert!(http_get(addr, "/metrics").await.is_err(), "the endpoint closes with the worker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_address_in_use_is_one_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: the worker must fail on the metrics address before it ever connects.
    let nats = format!("nats://127.0.0.1:{}", free_port().unwrap());
    let mut worker = spawn_worker(&nats, dir.path(), "w-taken", &["--metrics-listen", &addr], &[]);
    let status = worker.wait_exit(Duration::from_secs(20)).expect("the worker exits at once");
    let log = worker.log();
    assert!(!status.success(), "{status:?}: {log}");
    assert_eq!(status.code(), Some(2), "a settings error: {log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(errors[0].contains(&format!("cannot serve metrics on {addr}")), "{log}");
    assert!(errors[0].to_lowercase().contains("in use"), "{log}");
    assert!(!log.contains(LISTENING) && !log.contains("connected to NATS"), "{log}");
    drop(taken);
}
