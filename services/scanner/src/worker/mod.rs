//! The distributed worker (`trawl-scanner worker`): competing scanners that
//! take scan tasks off the `TRAWL_TASKS` work queue, scan each image and
//! publish its result for admission-control storage.
//!
//! A worker runs `concurrency` slots. Each takes one task at a time, from
//! the high lane whenever it has one and from the bulk lane otherwise, so
//! someone waiting on an admission decision never queues behind a registry
//! sweep. A task is acknowledged only after its result is stored in the
//! results stream (JetStream's publish acknowledgement): a worker that dies
//! mid-scan loses nothing, the task is redelivered after the consumer's
//! `ack_wait`, and the result's `Nats-Msg-Id` ([`trawl_protocol::result_msg_id`])
//! collapses the duplicate a redelivery could otherwise produce. While a scan
//! runs, in-progress acknowledgements keep the task from being redelivered
//! to another worker.
//!
//! A failure either hands the task back with a delay (a transient failure
//! with deliveries left, see [`classify`]) or ends it: a failed result (so the
//! image shows as failed, with the reason) and a dead letter on
//! `trawl.dead.<lane>` (so people can inspect and requeue it), then `+TERM`.
//!
//! Layers come from the cluster-wide layer cache (`TRAWL_LAYERS`,
//! [`crate::layer_cache`]) when any scanner has walked them before, so a
//! base layer shared by a whole registry is pulled once, not once per image;
//! the heartbeat counts the hits and the bytes actually pulled. The cache is
//! an optimisation (`--no-layer-cache` turns it off): when its bucket is
//! missing or failing, scans pull every layer as the standalone command does.
//!
//! `--noop-scan` (hidden, [`WorkerConfig::noop_scan`]) exists only to measure
//! the queue's own overhead — publish, pull, ack, result stored — in
//! benchmarks: each task gets a successful result with an empty report at
//! once, without contacting any registry or matching anything. Never run it
//! against a cluster whose results matter: every image it touches shows as
//! scanned, with no packages and no findings.
//!
//! `--metrics-listen` ([`WorkerConfig::metrics_listen`]) serves the worker's
//! Prometheus metrics and a health check over HTTP ([`metrics`]); the
//! heartbeat's counts are read from the same metrics.
//!
//! The worker creates no stream, consumer or bucket (least privilege: it
//! needs to pull, publish results and dead letters, read registry
//! configurations and write heartbeats and the layer cache). It waits for
//! the controller to create them from `nats/`.
//! On SIGTERM it stops taking tasks, lets the scans in flight finish within
//! the drain timeout, hands back any still running, and deletes its
//! heartbeat.

pub mod classify;
pub mod heartbeat;
pub mod metrics;
pub mod registries;

use crate::analyze::{Analyzer, AnalyzerOptions, LayerCache};
use crate::layer_cache::KvLayerCache;
use crate::scan::build_report;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, consumer::PullConsumer, kv, message::PublishMessage, AckKind};
use classify::{classify, decide, Classified, Decision};
use futures::{FutureExt, StreamExt};
use heartbeat::{Counters, Identity, Pulled, Stats, DRAINING};
use metrics::{Health, ListenError, MetricsServer, WorkerMetrics, RETRY_PUBLISH_FAILED, RETRY_SHUTDOWN};
use registries::{RegistryDirectory, RegistryLookupError};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use trawl_catalog::CatalogerSet;
use trawl_dbdist::{DbFollower, DbHandle, DistError, FollowerConfig};
use trawl_protocol::buckets::{escape_key, REGISTRIES_BUCKET};
use trawl_protocol::task::CONTENT_TYPE_JSON;
use trawl_protocol::{
    result_msg_id, DeadLetter, FailureKind, Lane, ScanFailure, ScanResult, ScanTask, ScannerInfo, SCANNERS_BUCKET,
    TASKS_STREAM,
};
use trawl_report::{DbInfo, ImageIdentity, ImageName, SbomReport, ScanReport};
use trawl_vulndb::Database;

/// `Content-Type` of published results (zstd-compressed MessagePack).
pub const CONTENT_TYPE_RESULT: &str = "application/msgpack+zstd";
/// How long an idle slot waits on the high lane before looking at both lanes again.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Pause after a failed pull before the next one (the client reconnects meanwhile).
const PULL_RETRY: Duration = Duration::from_millis(500);
/// Bound on one pull request's round trip, so a lost connection cannot stall a slot.
const PULL_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of JetStream requests: publish acknowledgements, acks awaited, KV operations.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// In-progress acknowledgement interval when the consumer does not say its `ack_wait`.
const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// Longest pause between attempts to connect or to find the streams.
const MAX_SETUP_RETRY: Duration = Duration::from_secs(10);
/// How long the last words to NATS (heartbeat removal, flush) may take when stopping.
const GOODBYE_GRACE: Duration = Duration::from_secs(5);

/// How long in-flight scans get to hand their tasks back after the drain timeout.
const ABORT_GRACE: Duration = Duration::from_secs(10);

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique id: the heartbeat key, the dead letters' `by` and the results' scanner name.
    pub id: String,
    /// Host (or pod) name, for the heartbeat.
    pub host: String,
    /// Tasks scanned at once.
    pub concurrency: usize,
    /// First delay before a transient failure is retried; doubled per delivery.
    pub retry_delay: Duration,
    /// Longest time one scan may take.
    pub scan_timeout: Duration,
    /// Time in-flight scans get to finish after SIGTERM.
    pub drain_timeout: Duration,
    /// Platform, limits and parallelism of each scan; registry access is set per task.
    pub analyzer: AnalyzerOptions,
    /// Take layer inventories from the cluster's layer cache and add to it.
    pub layer_cache: bool,
    /// Benchmarks only: answer every task with an empty successful report
    /// without pulling or matching anything (see the module docs).
    pub noop_scan: bool,
    /// Serve `/metrics` and `/healthz` on this address (`HOST:PORT` or
    /// `:PORT`; port 0 picks a free one); `None`: no HTTP endpoint.
    pub metrics_listen: Option<String>,
}

impl WorkerConfig {
    /// The defaults (2 slots, 30 s retry delay, 30 min scan timeout, 25 s
    /// drain, layer cache on) under `id`.
    pub fn new(id: impl Into<String>) -> WorkerConfig {
        WorkerConfig {
            id: id.into(),
            host: crate::host::host_name(),
            concurrency: 2,
            retry_delay: Duration::from_secs(30),
            scan_timeout: Duration::from_secs(30 * 60),
            drain_timeout: Duration::from_secs(25),
            analyzer: AnalyzerOptions::default(),
            layer_cache: true,
            noop_scan: false,
            metrics_listen: None,
        }
    }

    /// Checks the settings, so a bad one fails at start-up rather than after connecting.
    pub fn validate(&self) -> Result<(), WorkerError> {
        let invalid = |m: &str| Err(WorkerError::Config(m.to_string()));
        if self.id.trim().is_empty() {
            return invalid("the worker id must not be empty");
        }
        if self.concurrency == 0 {
            return invalid("concurrency must be at least 1");
        }
        if self.scan_timeout.is_zero() {
            return invalid("the scan timeout must be longer than zero");
        }
        if self.metrics_listen.as_deref().is_some_and(|a| a.trim().is_empty()) {
            return invalid("the metrics address must not be empty (HOST:PORT or :PORT)");
        }
        Ok(())
    }
}

/// A fresh worker id, `<host>-<pid>-<random>`, unique across restarts on one host.
pub fn default_id(host: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's randomness for every process: enough for an id suffix.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{host}-{}-{:06x}", std::process::id(), hasher.finish() & 0xff_ffff)
}

/// Where the NATS connection goes.
#[derive(Clone)]
pub struct NatsSettings {
    /// Server URL(s), comma-separated; may carry `user:pass@` (never logged).
    pub url: String,
    /// A `.creds` file (JWT and NKey seed).
    pub creds: Option<PathBuf>,
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &trawl_dbdist::redact_url(&self.url))
            .field("creds", &self.creds)
            .finish()
    }
}

/// Which vulnerability database scans match with.
pub enum DbSource {
    /// This database, for the worker's whole life.
    Fixed(Arc<Database>),
    /// The database published in NATS (`trawl-updater publish`), followed
    /// live; the worker takes no task before the first one has loaded.
    Follow,
}

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A setting is invalid.
    #[error("invalid worker settings: {0}")]
    Config(String),
    /// The NATS connection settings are unusable (retrying would not help).
    #[error(transparent)]
    Nats(DistError),
    /// The metrics endpoint could not bind its address.
    #[error(transparent)]
    Metrics(#[from] ListenError),
}

/// Registers for SIGTERM and SIGINT now (so a signal from this point on is
/// not fatal) and returns the future that resolves on the first of them.
pub fn termination_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!("{name} received: no new tasks; draining the scans in flight");
    })
}

/// Runs a worker until `shutdown` resolves and the drain is over; returns the final counters.
///
/// NATS trouble is never fatal: connecting, finding the streams and every
/// pull are retried (the client reconnects by itself), so a worker started
/// before NATS or the controller simply waits for them.
pub async fn run(
    config: WorkerConfig,
    nats: NatsSettings,
    db: DbSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Counters, WorkerError> {
    config.validate()?;
    let metrics = WorkerMetrics::new(&config.id, env!("CARGO_PKG_VERSION"));
    let health = Health::default();
    // Bound before anything else, so a taken port fails the start at once.
    let server = match &config.metrics_listen {
        Some(addr) => Some(MetricsServer::start(addr, metrics.clone(), health.clone()).await?),
        None => None,
    };
    let result = run_with(config, nats, db, shutdown, metrics, health).await;
    if let Some(server) = server {
        server.stop().await;
    }
    result
}

async fn run_with(
    config: WorkerConfig,
    nats: NatsSettings,
    db: DbSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
    metrics: WorkerMetrics,
    health: Health,
) -> Result<Counters, WorkerError> {
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        });
    }
    let stats = Arc::new(Stats::new(config.concurrency, metrics.clone()));
    let Some(client) = connect(&nats, &config.id, &stop).await? else { return Ok(stats.snapshot()) };
    let mut js = jetstream::new(client.clone());
    js.set_timeout(REQUEST_TIMEOUT);
    let Some(bound) = bind(&js, &stop).await else { return Ok(stats.snapshot()) };

    let (db_view, follower) = match db {
        DbSource::Fixed(db) => (DbView::Fixed(db), None),
        DbSource::Follow => {
            let follower = DbFollower::start(client.clone(), None, FollowerConfig::default());
            (DbView::Follow(follower.handle()), Some(follower))
        }
    };
    {
        let view = db_view.clone();
        metrics.watch_database(move || view.current());
    }

    let who = Identity {
        id: config.id.clone(),
        key: escape_key(&config.id),
        host: config.host.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        concurrency: config.concurrency,
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    let beat_stop = CancellationToken::new();
    let beating = {
        let view = db_view.clone();
        tokio::spawn(heartbeat::run(
            bound.scanners.clone(),
            who.clone(),
            stats.clone(),
            move || view.version(),
            beat_stop.clone(),
        ))
    };

    let catalogers = trawl_catalog::default_catalogers();
    let layer_cache = if config.layer_cache && !config.noop_scan {
        open_layer_cache(&js, &catalogers, &config.id).await
    } else {
        None
    };

    // A no-op worker matches nothing, so it needs no database.
    if let Some(follower) = follower.as_ref().filter(|_| !config.noop_scan) {
        if follower.current().is_none() {
            tracing::info!("no vulnerability database loaded yet: waiting for one to be published (trawl-updater publish) before taking tasks");
        }
        tokio::select! {
            db = follower.wait_for_database() => tracing::info!(version = db.header().version, "vulnerability database loaded"),
            _ = stop.cancelled() => {}
        }
    }

    let worker = Arc::new(Worker {
        lanes: bound.lanes,
        registries: RegistryDirectory::new(bound.registries),
        catalogers,
        layer_cache,
        db: db_view,
        stats: stats.clone(),
        stop: stop.clone(),
        abort: CancellationToken::new(),
        scanner: ScannerInfo {
            name: config.id.clone(),
            mode: "worker".into(),
            advertised_addr: None,
            version: env!("CARGO_PKG_VERSION").into(),
        },
        js,
        config,
    });
    let mut slots = tokio::task::JoinSet::new();
    if !stop.is_cancelled() {
        tracing::info!(
            id = %worker.config.id,
            server = %trawl_dbdist::redact_url(&nats.url),
            concurrency = worker.config.concurrency,
            db_version = ?worker.db.version(),
            layer_cache = worker.layer_cache.is_some(),
            noop_scan = worker.config.noop_scan,
            "worker started: taking tasks from {} (high lane first)",
            TASKS_STREAM
        );
        for index in 0..worker.config.concurrency {
            slots.spawn(worker.clone().slot(index));
        }
        health.set_running();
    }

    stop.cancelled().await;
    health.set_draining();
    drain(&worker, &mut slots).await;
    beat_stop.cancel();
    // With NATS unreachable each of these would wait for a reconnection that
    // may never come: the goodbye is bounded, what is not said expires by itself.
    let goodbye = async {
        let _ = beating.await;
        if let Err(e) = bound.scanners.delete(&who.key).await {
            tracing::warn!("cannot delete the heartbeat (it expires by itself): {e}");
        }
        // Hand-backs are fire-and-forget: make sure they left before the connection closes.
        let _ = client.flush().await;
    };
    if tokio::time::timeout(GOODBYE_GRACE, goodbye).await.is_err() {
        tracing::warn!("NATS did not answer while stopping; exiting anyway (unacknowledged tasks are redelivered)");
    }
    let counters = stats.snapshot();
    tracing::info!(
        scanned = counters.scanned,
        failed = counters.failed,
        retried = counters.retried,
        bytes_pulled = counters.bytes_pulled,
        layer_cache_hits = counters.layer_cache_hits,
        "worker stopped"
    );
    Ok(counters)
}

/// After SIGTERM: the slots stop taking tasks; those scanning get the drain
/// timeout to finish, then hand their tasks back.
async fn drain(worker: &Worker, slots: &mut tokio::task::JoinSet<()>) {
    worker.stats.set_state(DRAINING);
    let in_flight = worker.stats.snapshot().current.iter().flatten().count();
    if in_flight > 0 {
        let timeout = format_duration(worker.config.drain_timeout);
        tracing::info!(in_flight, drain_timeout = %timeout, "waiting for the scans in flight");
    }
    if tokio::time::timeout(worker.config.drain_timeout, join_all(slots)).await.is_err() {
        tracing::warn!("drain timeout reached: handing the unfinished tasks back to the queue");
        worker.abort.cancel();
        if tokio::time::timeout(ABORT_GRACE, join_all(slots)).await.is_err() {
            slots.abort_all();
        }
    }
}

async fn join_all(slots: &mut tokio::task::JoinSet<()>) {
    while let Some(joined) = slots.join_next().await {
        if let Err(e) = joined {
            tracing::error!("a worker slot failed: {e}");
        }
    }
}

/// Connects, retrying until it works or `stop` (`None` then).
async fn connect(
    nats: &NatsSettings,
    id: &str,
    stop: &CancellationToken,
) -> Result<Option<async_nats::Client>, WorkerError> {
    let server = trawl_dbdist::redact_url(&nats.url);
    let mut delay = PULL_RETRY;
    loop {
        match trawl_dbdist::connect(&nats.url, nats.creds.as_deref(), &format!("trawl-scanner worker {id}")).await {
            Ok(client) => {
                tracing::info!(%server, "connected to NATS");
                return Ok(Some(client));
            }
            Err(e @ DistError::Config(_)) => return Err(WorkerError::Nats(e)),
            Err(e) => tracing::warn!(retry_in = ?delay, "{e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return Ok(None),
        }
        delay = (delay * 2).min(MAX_SETUP_RETRY);
    }
}

/// Opens the layer cache, or says why scans go without it. Not part of
/// [`bind`]: the cache is an optimisation, and a cluster without its bucket
/// (an older controller) must still get its images scanned.
async fn open_layer_cache(js: &jetstream::Context, catalogers: &CatalogerSet, id: &str) -> Option<Arc<dyn LayerCache>> {
    match KvLayerCache::open(js, catalogers, id).await {
        Ok(cache) => Some(Arc::new(cache)),
        Err(e) => {
            tracing::warn!("{e}: scanning without the layer cache (every layer is pulled)");
            None
        }
    }
}

/// One lane's consumer and what its configuration means for the worker.
struct LaneConsumer {
    lane: Lane,
    consumer: PullConsumer,
    /// In-progress acknowledgement interval: a third of `ack_wait`.
    progress_every: Duration,
    /// Deliveries before the server gives up (≤ 0: unlimited).
    max_deliver: i64,
    /// The consumer's `ack_wait` and `backoff`, which shift NAK delays ([`classify::nak_delay`]).
    ack_wait: Duration,
    backoff: Vec<Duration>,
}

/// Everything the worker uses, found (never created) on the server.
struct Bound {
    lanes: [LaneConsumer; 2],
    scanners: kv::Store,
    registries: kv::Store,
}

/// Binds to the task consumers and the two buckets, waiting until they exist.
async fn bind(js: &jetstream::Context, stop: &CancellationToken) -> Option<Bound> {
    let mut last_reason = String::new();
    let mut delay = PULL_RETRY;
    loop {
        match try_bind(js).await {
            Ok(bound) => return Some(bound),
            Err(reason) if reason != last_reason => {
                tracing::warn!(
                    "{reason}: waiting for the controller to create the streams, consumers and buckets (nats/ definitions)"
                );
                last_reason = reason;
            }
            Err(reason) => tracing::debug!("still waiting: {reason}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return None,
        }
        delay = (delay * 2).min(MAX_SETUP_RETRY);
    }
}

async fn try_bind(js: &jetstream::Context) -> Result<Bound, String> {
    let lane = |lane: Lane| async move {
        let consumer: PullConsumer = js
            .get_consumer_from_stream(lane.consumer(), TASKS_STREAM)
            .await
            .map_err(|e| format!("consumer {TASKS_STREAM}/{} is not available ({e})", lane.consumer()))?;
        let config = &consumer.cached_info().config;
        let progress_every = if config.ack_wait.is_zero() {
            DEFAULT_PROGRESS_INTERVAL
        } else {
            (config.ack_wait / 3).max(Duration::from_millis(100))
        };
        let (max_deliver, ack_wait, backoff) = (config.max_deliver, config.ack_wait, config.backoff.clone());
        Ok::<_, String>(LaneConsumer { lane, consumer, progress_every, max_deliver, ack_wait, backoff })
    };
    let bucket = |name: &'static str| async move {
        js.get_key_value(name).await.map_err(|e| format!("key-value bucket {name} is not available ({e})"))
    };
    Ok(Bound {
        lanes: [lane(Lane::High).await?, lane(Lane::Bulk).await?],
        scanners: bucket(SCANNERS_BUCKET).await?,
        registries: bucket(REGISTRIES_BUCKET).await?,
    })
}

/// A cloneable view of the database in use.
#[derive(Clone)]
enum DbView {
    Fixed(Arc<Database>),
    Follow(DbHandle),
}

impl DbView {
    fn current(&self) -> Option<Arc<Database>> {
        match self {
            DbView::Fixed(db) => Some(db.clone()),
            DbView::Follow(handle) => handle.current(),
        }
    }

    fn version(&self) -> Option<u64> {
        self.current().map(|db| db.header().version)
    }
}

/// Why one task's scan failed: its kind and the error's text.
#[derive(Debug)]
struct TaskFailure {
    classified: Classified,
    message: String,
}

impl TaskFailure {
    fn new(kind: FailureKind, message: impl Into<String>) -> TaskFailure {
        TaskFailure { classified: Classified::of(kind), message: message.into() }
    }
}

impl From<RegistryLookupError> for TaskFailure {
    fn from(e: RegistryLookupError) -> TaskFailure {
        let kind = match e {
            RegistryLookupError::Unavailable { .. } => FailureKind::Internal,
            RegistryLookupError::HostMismatch { .. } => FailureKind::BadTask,
            RegistryLookupError::Credentials(_) => FailureKind::Auth,
        };
        TaskFailure::new(kind, e.to_string())
    }
}

/// A scan that produced a report.
struct Scanned {
    report: ScanReport,
    /// Compressed bytes pulled.
    bytes: u64,
    /// Layers taken from the layer cache.
    cache_hits: u64,
    /// Layers the layer cache did not hold.
    cache_misses: u64,
}

/// `--noop-scan`'s answer to `task`: a valid report of an image with no
/// packages, filed under the task's digest, from a scan that never happened
/// (`image.source` is `noop` so that nobody mistakes it for a real one).
fn noop_report(task: &ScanTask, db: Option<&Database>) -> ScanReport {
    let identity = ImageIdentity {
        reference: task.reference.clone(),
        source: "noop".into(),
        manifest_digest: task.digest.clone(),
        ..Default::default()
    };
    let matched = trawl_vulndb::MatchResult {
        findings: Vec::new(),
        os: trawl_vulndb::OsCoverage::NoOsPackages,
        warnings: Vec::new(),
    };
    let db = db.map_or(DbInfo { version: 0, built_at: String::new(), advisories: 0 }, |db| DbInfo::from(db.header()));
    ScanReport::new(SbomReport::new(identity, trawl_catalog::Inventory::default()), matched, db)
}

/// The reference to pull for `task`, rebuilt from its parsed parts so that
/// the host the registry configuration was checked against is the host
/// contacted: by digest when the controller resolved one (`host/repo@digest`,
/// so a tag moved since the crawl is not what gets scanned), else as queued.
pub fn pull_reference(task: &ScanTask, name: &ImageName) -> Result<String, String> {
    let base = format!("{}/{}", name.registry, name.repository);
    let pinned = match (task.digest.as_deref(), name.digest.as_deref(), name.tag.as_deref()) {
        (Some(digest), _, _) | (None, Some(digest), _) => format!("{base}@{digest}"),
        (None, None, Some(tag)) => format!("{base}:{tag}"),
        (None, None, None) => base,
    };
    match ImageName::parse(&pinned) {
        Some(_) => Ok(pinned),
        None => Err(format!("task digest {:?} is not a valid manifest digest", task.digest.as_deref().unwrap_or(""))),
    }
}

/// How a task ended, for its log line.
enum Outcome<'a> {
    Scanned { findings: usize, digest: Option<String> },
    Retry { kind: FailureKind, delay: Duration, error: &'a str },
    Failed { kind: FailureKind, error: &'a str },
    HandedBack,
}

/// Where a message came from: its lane, stream sequence and delivery count.
#[derive(Clone, Copy)]
struct Delivery {
    lane: Lane,
    lane_index: usize,
    sequence: u64,
    delivered: u64,
    max_deliver: i64,
    started: Instant,
}

struct Worker {
    config: WorkerConfig,
    js: jetstream::Context,
    lanes: [LaneConsumer; 2],
    registries: RegistryDirectory,
    catalogers: CatalogerSet,
    /// The cluster's layer cache, unless disabled or unavailable.
    layer_cache: Option<Arc<dyn LayerCache>>,
    db: DbView,
    stats: Arc<Stats>,
    /// Cancelled on SIGTERM: take no more tasks.
    stop: CancellationToken,
    /// Cancelled when the drain timeout is over: hand back the tasks still scanning.
    abort: CancellationToken,
    scanner: ScannerInfo,
}

impl Worker {
    /// One slot: take a task, handle it, repeat until stopped.
    async fn slot(self: Arc<Self>, index: usize) {
        let mut failing = false;
        while !self.stop.is_cancelled() {
            match self.next_task().await {
                Ok(Some((lane, msg))) => {
                    failing = false;
                    // A bug in one scan must not take the slot down: the task comes back after ack_wait.
                    if AssertUnwindSafe(self.handle(index, lane, msg)).catch_unwind().await.is_err() {
                        tracing::error!(slot = index, "a scan panicked; its task will be redelivered");
                        self.stats.end(index);
                    }
                }
                Ok(None) => failing = false,
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(slot = index, "cannot take a task: {e}; retrying");
                    } else {
                        tracing::debug!(slot = index, "cannot take a task: {e}");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(PULL_RETRY) => {}
                        _ = self.stop.cancelled() => {}
                    }
                }
            }
        }
    }

    /// One task: from the high lane without waiting, else from the bulk lane
    /// without waiting, else whatever reaches the high lane within [`IDLE_WAIT`].
    async fn next_task(&self) -> Result<Option<(usize, jetstream::Message)>, String> {
        for (i, lane) in self.lanes.iter().enumerate() {
            let pull = async { lane.consumer.fetch().max_messages(1).messages().await };
            if let Some(msg) = take_one(lane.lane, pull, PULL_TIMEOUT).await? {
                return Ok(Some((i, msg)));
            }
        }
        let high = &self.lanes[0];
        let pull = async { high.consumer.batch().max_messages(1).expires(IDLE_WAIT).messages().await };
        Ok(take_one(high.lane, pull, IDLE_WAIT + PULL_TIMEOUT).await?.map(|m| (0, m)))
    }

    async fn handle(&self, slot: usize, lane_index: usize, msg: jetstream::Message) {
        let lane = &self.lanes[lane_index];
        let info = match msg.info() {
            Ok(info) => (info.stream_sequence, u64::try_from(info.delivered).unwrap_or(1).max(1)),
            Err(e) => {
                tracing::warn!(lane = lane_name(lane.lane), "ignoring a message without JetStream metadata: {e}");
                return;
            }
        };
        let d = Delivery {
            lane: lane.lane,
            lane_index,
            sequence: info.0,
            delivered: info.1,
            max_deliver: lane.max_deliver,
            started: Instant::now(),
        };
        if self.stop.is_cancelled() {
            // Taken as the worker was told to stop: straight back to the queue for another worker.
            self.nak(&msg, None).await;
            self.stats.retried(RETRY_SHUTDOWN);
            self.log(&d, None, Outcome::HandedBack);
            return;
        }
        let content_type = msg.headers.as_ref().and_then(|h| h.get("Content-Type")).map(|v| v.as_str().to_string());
        let task = match ScanTask::decode(&msg.payload, content_type.as_deref()) {
            Ok(task) => task,
            Err(e) => return self.bury_undecodable(&msg, &d, &e.to_string()).await,
        };
        self.stats.begin(slot, &task.reference);
        let scanned = self.scan_tracked(&msg, lane.progress_every, &task).await;
        self.stats.end(slot);
        match scanned {
            None => {
                self.nak(&msg, None).await;
                self.stats.retried(RETRY_SHUTDOWN);
                self.log(&d, Some(&task), Outcome::HandedBack);
            }
            Some(Ok(scanned)) => self.deliver(&msg, &d, task, scanned).await,
            Some(Err(failure)) => self.fail(&msg, &d, task, failure).await,
        }
    }

    /// Scans `task` within the scan timeout, sending in-progress
    /// acknowledgements meanwhile; `None` when aborted by the drain timeout.
    async fn scan_tracked(
        &self,
        msg: &jetstream::Message,
        progress_every: Duration,
        task: &ScanTask,
    ) -> Option<Result<Scanned, TaskFailure>> {
        let timeout = self.config.scan_timeout;
        let scan = tokio::time::timeout(timeout, self.scan(task));
        tokio::pin!(scan);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + progress_every, progress_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                done = &mut scan => {
                    return Some(done.unwrap_or_else(|_| Err(TaskFailure::new(
                        // Pulling is what takes time: a scan this slow is a registry too slow to serve the image.
                        FailureKind::RegistryUnavailable,
                        format!("the scan did not finish within {} (raise --scan-timeout for very large images)", format_duration(timeout)),
                    ))));
                }
                _ = ticker.tick() => {
                    if let Err(e) = msg.ack_with(AckKind::Progress).await {
                        tracing::debug!(reference = %task.reference, "cannot send an in-progress acknowledgement: {e}");
                    }
                }
                _ = self.abort.cancelled() => return None,
            }
        }
    }

    async fn scan(&self, task: &ScanTask) -> Result<Scanned, TaskFailure> {
        let name = ImageName::parse(&task.reference).ok_or_else(|| {
            TaskFailure::new(
                FailureKind::BadTask,
                format!(
                    "{:?} is not a registry image reference (workers scan images in registries only)",
                    task.reference
                ),
            )
        })?;
        let reference = pull_reference(task, &name).map_err(|m| TaskFailure::new(FailureKind::BadTask, m))?;
        if self.config.noop_scan {
            // The task was checked as a real scan would check it; nothing is pulled or matched.
            let report = noop_report(task, self.db.current().as_deref());
            return Ok(Scanned { report, bytes: 0, cache_hits: 0, cache_misses: 0 });
        }
        let source = self.registries.options_for(&task.registry, &name.registry, &self.config.analyzer.source).await?;
        let db = self
            .db
            .current()
            .ok_or_else(|| TaskFailure::new(FailureKind::Internal, "no vulnerability database is loaded"))?;
        let options = AnalyzerOptions { source, ..self.config.analyzer.clone() };
        let mut analyzer = Analyzer::new(self.catalogers.clone(), options);
        if let Some(cache) = &self.layer_cache {
            analyzer = analyzer.with_layer_cache(cache.clone());
        }
        let analysis = analyzer
            .analyze_reference(&reference)
            .await
            .map_err(|e| TaskFailure { classified: classify(&e), message: e.to_string() })?;
        let (bytes, cache_hits, cache_misses) =
            (analysis.bytes_read, analysis.layer_cache_hits, analysis.layer_cache_misses);
        // Matching is CPU work: off the async threads, which keep acknowledging and beating.
        let report = tokio::task::spawn_blocking(move || build_report(analysis, &db))
            .await
            .map_err(|e| TaskFailure::new(FailureKind::Internal, format!("matching failed: {e}")))?;
        Ok(Scanned { report, bytes, cache_hits, cache_misses })
    }

    /// Publishes the result, then acknowledges the task.
    async fn deliver(&self, msg: &jetstream::Message, d: &Delivery, task: ScanTask, scanned: Scanned) {
        for w in &scanned.report.match_warnings {
            tracing::debug!(reference = %task.reference, "{w}");
        }
        let findings = scanned.report.findings.len();
        let digest = scanned.report.image.manifest_digest.clone();
        let result = ScanResult::new(self.scanner.clone(), scanned.report).for_task(task.clone());
        let payload = match result.encode() {
            Ok(p) => p,
            Err(e) => return self.fail(msg, d, task, TaskFailure::new(FailureKind::Internal, e.to_string())).await,
        };
        let size = payload.len();
        if let Err(e) = self.publish(result.subject(), payload, result_msg_id(d.sequence), CONTENT_TYPE_RESULT).await {
            if e.too_large {
                // It would be refused every time: record a (small) failed result instead.
                let message = format!("the scan result ({size} bytes compressed) is larger than NATS accepts: {e}");
                return self.fail(msg, d, task, TaskFailure::new(FailureKind::TooLarge, message)).await;
            }
            // Not stored, so not acknowledged: the task comes back, here or elsewhere.
            let delay = self.retry(msg, d, self.backoff(d.delivered), RETRY_PUBLISH_FAILED).await;
            let error = format!("cannot publish the result: {e}");
            self.log(d, Some(&task), Outcome::Retry { kind: FailureKind::Internal, delay, error: &error });
            return;
        }
        let took = d.started.elapsed();
        if let Err(e) = msg.double_ack().await {
            // The result is stored; a redelivery's result will collapse into it (same Nats-Msg-Id).
            tracing::warn!(reference = %task.reference, "result stored but the task acknowledgement failed: {e}");
        }
        let pulled =
            Pulled { bytes: scanned.bytes, cache_hits: scanned.cache_hits, cache_misses: scanned.cache_misses };
        self.stats.scanned(lane_name(d.lane), took, pulled);
        self.log(d, Some(&task), Outcome::Scanned { findings, digest });
    }

    /// Hands the task back for a retry, or ends it with a failed result and a dead letter.
    async fn fail(&self, msg: &jetstream::Message, d: &Delivery, task: ScanTask, failure: TaskFailure) {
        let kind = failure.classified.kind;
        match decide(failure.classified, d.delivered, d.max_deliver, self.config.retry_delay) {
            Decision::Retry(delay) => {
                let delay = self.retry(msg, d, delay, kind.as_str()).await;
                self.log(d, Some(&task), Outcome::Retry { kind, delay, error: &failure.message });
            }
            Decision::Bury => {
                let record = ScanFailure { kind, message: failure.message.clone(), attempts: d.delivered };
                let result = ScanResult::failed(self.scanner.clone(), task.clone(), record.clone());
                let letter = DeadLetter::new(
                    Some(task.clone()),
                    &msg.payload,
                    &msg.subject,
                    d.sequence,
                    record,
                    &self.config.id,
                );
                if let Err(e) = self.bury(msg, d, Some(&result), &letter).await {
                    self.bury_failed(msg, d, Some(&task), &e).await;
                    return;
                }
                self.stats.failed(lane_name(d.lane), d.started.elapsed(), kind);
                self.log(d, Some(&task), Outcome::Failed { kind, error: &failure.message });
            }
        }
    }

    /// Dead-letters a message that is not a task, with its raw payload.
    async fn bury_undecodable(&self, msg: &jetstream::Message, d: &Delivery, error: &str) {
        let record = ScanFailure { kind: FailureKind::BadTask, message: error.to_string(), attempts: d.delivered };
        let letter = DeadLetter::new(None, &msg.payload, &msg.subject, d.sequence, record, &self.config.id);
        if let Err(e) = self.bury(msg, d, None, &letter).await {
            self.bury_failed(msg, d, None, &e).await;
            return;
        }
        self.stats.failed(lane_name(d.lane), d.started.elapsed(), FailureKind::BadTask);
        self.log(d, None, Outcome::Failed { kind: FailureKind::BadTask, error });
    }

    /// Stores the failed result (when there is a task) and the dead letter, then terminates the task.
    async fn bury(
        &self,
        msg: &jetstream::Message,
        d: &Delivery,
        result: Option<&ScanResult>,
        letter: &DeadLetter,
    ) -> Result<(), String> {
        if let Some(result) = result {
            let payload = result.encode().map_err(|e| e.to_string())?;
            self.publish(result.subject(), payload, result_msg_id(d.sequence), CONTENT_TYPE_RESULT)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.publish(letter.subject(), letter.encode(), letter.msg_id(), CONTENT_TYPE_JSON)
            .await
            .map_err(|e| e.to_string())?;
        msg.double_ack_with(AckKind::Term).await.map_err(|e| format!("terminating the task: {e}"))
    }

    /// The failure could not be recorded: the task comes back later to try again.
    async fn bury_failed(&self, msg: &jetstream::Message, d: &Delivery, task: Option<&ScanTask>, error: &str) {
        let delay = self.retry(msg, d, self.backoff(d.delivered), RETRY_PUBLISH_FAILED).await;
        let error = format!("cannot record the failure: {error}");
        self.log(d, task, Outcome::Retry { kind: FailureKind::Internal, delay, error: &error });
    }

    fn backoff(&self, delivered: u64) -> Duration {
        match decide(Classified::of(FailureKind::Internal), delivered, -1, self.config.retry_delay) {
            Decision::Retry(delay) => delay,
            Decision::Bury => self.config.retry_delay,
        }
    }

    /// Hands the task back to come again after `wanted`, for `reason` (one
    /// of [`metrics::RETRY_REASONS`]); returns when it is expected back.
    async fn retry(&self, msg: &jetstream::Message, d: &Delivery, wanted: Duration, reason: &str) -> Duration {
        let lane = &self.lanes[d.lane_index];
        let (sent, expected) = classify::nak_delay(wanted, d.delivered, lane.ack_wait, &lane.backoff);
        self.nak(msg, Some(sent)).await;
        self.stats.retried(reason);
        expected
    }

    async fn nak(&self, msg: &jetstream::Message, delay: Option<Duration>) {
        if let Err(e) = msg.ack_with(AckKind::Nak(delay)).await {
            tracing::warn!("cannot hand a task back (it is redelivered after the consumer's ack_wait): {e}");
        }
    }

    /// Publishes and waits until JetStream has stored the message.
    async fn publish(
        &self,
        subject: String,
        payload: Vec<u8>,
        msg_id: String,
        content_type: &'static str,
    ) -> Result<(), PublishFailure> {
        let message =
            PublishMessage::build().payload(payload.into()).message_id(msg_id).header("Content-Type", content_type);
        let failed = |what: &str, e: PublishError| PublishFailure {
            too_large: is_too_large(&e),
            message: format!("{what} on {subject}: {e}"),
        };
        let ack = self.js.send_publish(subject.clone(), message).await.map_err(|e| failed("publishing", e))?;
        ack.await.map(|_| ()).map_err(|e| failed("storing the message", e))
    }

    /// The one info line per finished task.
    fn log(&self, d: &Delivery, task: Option<&ScanTask>, outcome: Outcome<'_>) {
        let lane = lane_name(d.lane);
        let reference = task.map_or("-", |t| t.reference.as_str());
        let resolved = match &outcome {
            Outcome::Scanned { digest, .. } => digest.clone(),
            _ => None,
        };
        let digest = task.and_then(|t| t.digest.as_deref()).or(resolved.as_deref()).unwrap_or("-");
        let duration_ms = u64::try_from(d.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (sequence, attempt) = (d.sequence, d.delivered);
        match outcome {
            Outcome::Scanned { findings, .. } => tracing::info!(
                lane,
                reference,
                digest,
                outcome = "scanned",
                findings,
                attempt,
                sequence,
                duration_ms,
                "scanned {reference}"
            ),
            Outcome::Retry { kind, delay, error } => tracing::info!(
                lane, reference, digest, outcome = "retry", kind = kind.as_str(), retry_in = %format_duration(delay),
                attempt, sequence, duration_ms, error, "scan of {reference} failed; retrying later"
            ),
            Outcome::Failed { kind, error } => tracing::info!(
                lane,
                reference,
                digest,
                outcome = "failed",
                kind = kind.as_str(),
                attempt,
                sequence,
                duration_ms,
                error,
                "scan of {reference} failed for good; dead-lettered"
            ),
            Outcome::HandedBack => tracing::info!(
                lane,
                reference,
                digest,
                outcome = "handed-back",
                attempt,
                sequence,
                duration_ms,
                "worker stopping: {reference} handed back to the queue"
            ),
        }
    }
}

/// A message JetStream did not store.
#[derive(Debug)]
struct PublishFailure {
    /// Refused for its size (the connection's `max_payload` or the stream's
    /// `max_msg_size`): sending it again cannot help.
    too_large: bool,
    message: String,
}

impl std::fmt::Display for PublishFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn is_too_large(e: &PublishError) -> bool {
    let stream_limit = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<jetstream::Error>())
        .is_some_and(|j| j.error_code() == jetstream::ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM);
    stream_limit || e.kind() == PublishErrorKind::MaxPayloadExceeded
}

/// Takes at most one message from a pull, bounded by `timeout`.
async fn take_one<F, E>(lane: Lane, pull: F, timeout: Duration) -> Result<Option<jetstream::Message>, String>
where
    F: Future<Output = Result<jetstream::consumer::pull::Batch, E>>,
    E: std::fmt::Display,
{
    let lane = lane_name(lane);
    let taken = tokio::time::timeout(timeout, async {
        let mut batch = pull.await.map_err(|e| format!("pulling from the {lane} lane: {e}"))?;
        match batch.next().await {
            Some(Ok(msg)) => Ok(Some(msg)),
            Some(Err(e)) => Err(format!("pulling from the {lane} lane: {e}")),
            None => Ok(None),
        }
    })
    .await;
    taken
        .unwrap_or_else(|_| Err(format!("pulling from the {lane} lane: no answer within {}", format_duration(timeout))))
}

fn lane_name(lane: Lane) -> &'static str {
    match lane {
        Lane::High => "high",
        Lane::Bulk => "bulk",
    }
}

/// Parses a duration as `500ms`, `30s`, `10m`, `1h` or a sum such as `1m30s`
/// (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let bad = || format!("{text:?} is not a duration: write e.g. 500ms, 30s, 10m, 1h or 1m30s");
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let part = unit.checked_mul(u32::try_from(value).map_err(|_| bad())?).ok_or_else(bad)?;
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    Ok(total)
}

/// A duration the way [`parse_duration`] reads it (`30s`, `10m`, `1500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        _ if ms.is_multiple_of(3_600_000) && ms > 0 => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) && ms > 0 => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_operators_write_them() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("25").unwrap(), Duration::from_secs(25));
        for bad in ["", "s", "10x", "-5s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        for d in ["30s", "10m", "1h", "1500ms", "0s"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn tasks_with_a_digest_are_pulled_by_digest() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let task = ScanTask::new("local", "127.0.0.1:5000/team/app:1.4", Some(&digest), Lane::Bulk, "sweep");
        let name = ImageName::parse(&task.reference).unwrap();
        assert_eq!(pull_reference(&task, &name).unwrap(), format!("127.0.0.1:5000/team/app@{digest}"));
        let hub = ScanTask::new("", "debian:12", Some(&digest), Lane::High, "admission");
        let name = ImageName::parse(&hub.reference).unwrap();
        assert_eq!(pull_reference(&hub, &name).unwrap(), format!("docker.io/library/debian@{digest}"));
        let bad = ScanTask::new("local", "127.0.0.1:5000/team/app:1.4", Some("sha256:zz"), Lane::Bulk, "sweep");
        assert!(pull_reference(&bad, &name).is_err());
        let pull = |reference: &str| {
            let task = ScanTask::new("local", reference, None, Lane::Bulk, "sweep");
            pull_reference(&task, &ImageName::parse(reference).unwrap()).unwrap()
        };
        assert_eq!(pull("127.0.0.1:5000/team/app:1.4"), "127.0.0.1:5000/team/app:1.4");
        assert_eq!(pull("docker://alpine"), "docker.io/library/alpine");
        assert_eq!(pull(&format!("r.example/app:1@{digest}")), format!("r.example/app@{digest}"));
    }

    #[test]
    fn ids_are_unique_and_valid_keys() {
        let (a, b) = (default_id("node-1"), default_id("node-1"));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("node-1-{}-", std::process::id())), "{a}");
        assert_eq!(escape_key(&a), a);
        assert!(WorkerConfig { concurrency: 0, ..WorkerConfig::new("w") }.validate().is_err());
        assert!(WorkerConfig::new(" ").validate().is_err());
    }
}
