//! The worker's Prometheus metrics, on a registry of its own (never the
//! `prometheus` crate's global one), and the HTTP endpoint that serves them
//! (`--metrics-listen`): `GET /metrics` in the text exposition format and
//! `GET /healthz`, 200 while the worker's slots take tasks.
//!
//! The counters are the worker's only counters: [`super::heartbeat::Stats`]
//! increments them and the heartbeat reads its `scanned`, `failed`,
//! `retried`, `bytes_pulled` and `layer_cache_hits` back from them, so the
//! heartbeat and `/metrics` cannot disagree. Every counter and gauge is a
//! cloneable handle onto the same registry; [`WorkerMetrics`] is cloned
//! wherever it is needed.
//!
//! Counters count what this worker did (`sum()` over workers is the
//! cluster's); labels are low-cardinality by construction: `kind` is a
//! [`FailureKind`], `reason` one of [`RETRY_REASONS`], `lane` `high` or
//! `bulk`. Every label value is exported from the start (at 0), so a rate
//! over a series that has not happened yet is 0, not missing.

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use trawl_protocol::FailureKind;
use trawl_vulndb::Database;

/// Upper bounds of the scan duration histogram, in seconds: 50 ms (a no-op
/// or fully cached scan) to 10 min (a large image from a slow registry).
pub const DURATION_BUCKETS: [f64; 13] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// `reason` of a hand-back after a result, failed result or dead letter could not be stored.
pub const RETRY_PUBLISH_FAILED: &str = "publish-failed";
/// `reason` of a hand-back because the worker is stopping (SIGTERM, drain timeout).
pub const RETRY_SHUTDOWN: &str = "shutdown";
/// Every `reason` of `trawl_scanner_tasks_retried_total`: the transient
/// failure kinds ([`FailureKind::is_transient`]), then the two above.
pub const RETRY_REASONS: [&str; 5] =
    ["rate-limited", "registry-unavailable", "internal", RETRY_PUBLISH_FAILED, RETRY_SHUTDOWN];

/// Every failure kind, so each `kind` series exists from the start.
const FAILURE_KINDS: [FailureKind; 12] = [
    FailureKind::Auth,
    FailureKind::NotFound,
    FailureKind::RateLimited,
    FailureKind::RegistryUnavailable,
    FailureKind::DigestMismatch,
    FailureKind::Corrupt,
    FailureKind::TooLarge,
    FailureKind::NotAnImage,
    FailureKind::Unsupported,
    FailureKind::BadTask,
    FailureKind::Abandoned,
    FailureKind::Internal,
];

/// Where the worker finds the database it matches with, read at each scrape.
type DbProbe = Arc<dyn Fn() -> Option<Arc<Database>> + Send + Sync>;

/// Every metric the worker exports, on its own registry. Cloning is cheap
/// and every clone counts into the same metrics.
#[derive(Clone)]
pub struct WorkerMetrics {
    registry: Registry,
    /// `trawl_scanner_tasks_acked_total`.
    pub tasks_acked: IntCounter,
    /// `trawl_scanner_tasks_failed_total{kind}`.
    pub tasks_failed: IntCounterVec,
    /// `trawl_scanner_tasks_dead_lettered_total`.
    pub tasks_dead_lettered: IntCounter,
    /// `trawl_scanner_tasks_retried_total{reason}`.
    pub tasks_retried: IntCounterVec,
    /// `trawl_scanner_scan_duration_seconds{lane}`.
    pub scan_duration: HistogramVec,
    /// `trawl_scanner_bytes_pulled_total`.
    pub bytes_pulled: IntCounter,
    /// `trawl_scanner_layer_cache_hits_total`.
    pub layer_cache_hits: IntCounter,
    /// `trawl_scanner_layer_cache_misses_total`.
    pub layer_cache_misses: IntCounter,
    /// `trawl_scanner_tasks_in_flight`.
    pub tasks_in_flight: IntGauge,
    /// `trawl_scanner_vulndb_version`.
    pub vulndb_version: IntGauge,
    /// `trawl_scanner_vulndb_built_timestamp_seconds`.
    pub vulndb_built: IntGauge,
    db_probe: Arc<Mutex<Option<DbProbe>>>,
}

impl WorkerMetrics {
    /// Creates and registers every metric for worker `id` running scanner `version`.
    pub fn new(id: &str, version: &str) -> WorkerMetrics {
        let registry = Registry::new();
        // Names and help texts are constants: registration fails only on a
        // duplicate or invalid name, a bug the unit tests catch.
        fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
            r.register(Box::new(m.clone())).expect("metric names are unique");
            m
        }
        let counter = |name: &str, help: &str| reg(&registry, IntCounter::new(name, help).expect("valid metric"));
        let counter_vec = |name: &str, help: &str, label: &str| {
            reg(&registry, IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric"))
        };
        let gauge = |name: &str, help: &str| reg(&registry, IntGauge::new(name, help).expect("valid metric"));

        let info = reg(
            &registry,
            IntGaugeVec::new(
                Opts::new("trawl_scanner_info", "Always 1: this scanner's version and worker id, as labels."),
                &["version", "id"],
            )
            .expect("valid metric"),
        );
        info.with_label_values(&[version, id]).set(1);

        let m = WorkerMetrics {
            tasks_acked: counter(
                "trawl_scanner_tasks_acked_total",
                "Tasks this worker finished for good: acknowledged (or terminated) once their outcome was stored, \
                 whether a scan result, a failed result and its dead letter, or the dead letter of an unreadable \
                 task.",
            ),
            tasks_failed: counter_vec(
                "trawl_scanner_tasks_failed_total",
                "Tasks that ended in failure for good (a failed result and a dead letter; bad-task: the dead \
                 letter alone when the task could not be read), by failure kind as the protocol names it.",
                "kind",
            ),
            tasks_dead_lettered: counter(
                "trawl_scanner_tasks_dead_lettered_total",
                "Dead letters this worker published on trawl.dead.<lane>.",
            ),
            tasks_retried: counter_vec(
                "trawl_scanner_tasks_retried_total",
                "Tasks handed back to the queue (NAK) to be delivered again, by reason: a transient failure kind \
                 (rate-limited, registry-unavailable, internal), publish-failed (the outcome could not be \
                 stored) or shutdown (the worker is stopping).",
                "reason",
            ),
            scan_duration: reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "trawl_scanner_scan_duration_seconds",
                        "Time from receiving a task to storing its outcome (result or dead letter), for tasks \
                         finished for good, by lane.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["lane"],
                )
                .expect("valid metric"),
            ),
            bytes_pulled: counter(
                "trawl_scanner_bytes_pulled_total",
                "Compressed layer bytes pulled from registries by scans that produced a report (layers taken \
                 from the layer cache are not pulled).",
            ),
            layer_cache_hits: counter(
                "trawl_scanner_layer_cache_hits_total",
                "Layers of scans that produced a report whose inventory came from the cluster's layer cache.",
            ),
            layer_cache_misses: counter(
                "trawl_scanner_layer_cache_misses_total",
                "Layers of scans that produced a report that the layer cache did not hold, so they were pulled \
                 and walked (not counted while the cache is off).",
            ),
            tasks_in_flight: gauge("trawl_scanner_tasks_in_flight", "Tasks this worker is scanning now."),
            vulndb_version: gauge(
                "trawl_scanner_vulndb_version",
                "Version of the vulnerability database scans match with (its build time in milliseconds since \
                 the Unix epoch); 0 while none is loaded.",
            ),
            vulndb_built: gauge(
                "trawl_scanner_vulndb_built_timestamp_seconds",
                "Build time of the vulnerability database scans match with, in Unix seconds (0 while none is \
                 loaded): time() minus this is the database's age.",
            ),
            registry,
            db_probe: Arc::new(Mutex::new(None)),
        };
        for kind in FAILURE_KINDS {
            m.tasks_failed.with_label_values(&[kind.as_str()]);
        }
        for reason in RETRY_REASONS {
            m.tasks_retried.with_label_values(&[reason]);
        }
        for lane in ["high", "bulk"] {
            m.scan_duration.with_label_values(&[lane]);
        }
        m
    }

    /// Has every scrape read the database gauges from `probe` (the database in use now).
    pub fn watch_database(&self, probe: impl Fn() -> Option<Arc<Database>> + Send + Sync + 'static) {
        *self.db_probe.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(probe));
        self.refresh();
    }

    /// Sets the database gauges from `db` (`None`: no database loaded).
    pub fn set_database(&self, db: Option<&Database>) {
        let header = db.map(Database::header);
        let version = header.map_or(0, |h| i64::try_from(h.version).unwrap_or(i64::MAX));
        let built =
            header.and_then(|h| chrono::DateTime::parse_from_rfc3339(&h.built_at).ok()).map_or(0, |t| t.timestamp());
        self.vulndb_version.set(version);
        self.vulndb_built.set(built);
    }

    fn refresh(&self) {
        let probe = self.db_probe.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(probe) = probe {
            self.set_database(probe().as_deref());
        }
    }

    /// Sum of `trawl_scanner_tasks_failed_total` over its kinds.
    pub fn failed_total(&self) -> u64 {
        FAILURE_KINDS.iter().map(|k| self.tasks_failed.with_label_values(&[k.as_str()]).get()).sum()
    }

    /// Sum of `trawl_scanner_tasks_retried_total` over its reasons.
    pub fn retried_total(&self) -> u64 {
        RETRY_REASONS.iter().map(|r| self.tasks_retried.with_label_values(&[r]).get()).sum()
    }

    /// Every metric now, in the Prometheus text exposition format ([`TEXT_CONTENT_TYPE`]).
    pub fn render(&self) -> Result<String, prometheus::Error> {
        self.refresh();
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// `Content-Type` of `/metrics`.
pub const TEXT_CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// What `/healthz` says: 200 only while the worker's slots take tasks.
#[derive(Debug, Clone)]
pub struct Health(Arc<AtomicU8>);

const STARTING: u8 = 0;
const RUNNING: u8 = 1;
const DRAINING: u8 = 2;

impl Default for Health {
    /// Starting: connecting to NATS, waiting for the streams or for a database.
    fn default() -> Health {
        Health(Arc::new(AtomicU8::new(STARTING)))
    }
}

impl Health {
    /// Connected, bound and (when following the published database) loaded: taking tasks.
    pub fn set_running(&self) {
        self.0.store(RUNNING, Ordering::Relaxed);
    }

    /// Told to stop: no new tasks.
    pub fn set_draining(&self) {
        self.0.store(DRAINING, Ordering::Relaxed);
    }

    /// The status and body of `/healthz`.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self.0.load(Ordering::Relaxed) {
            RUNNING => (StatusCode::OK, "running\n"),
            DRAINING => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
            // Connecting to NATS, waiting for the streams or for a database.
            _ => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        }
    }
}

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {source}")]
pub struct ListenError {
    /// The address as given.
    pub addr: String,
    /// What binding said.
    #[source]
    pub source: std::io::Error,
}

/// The running metrics endpoint.
pub struct MetricsServer {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` (`HOST:PORT`, or `:PORT` for every IPv4 interface; port
    /// 0 picks a free one) and serves `/metrics` and `/healthz` until [`MetricsServer::stop`].
    pub async fn start(addr: &str, metrics: WorkerMetrics, health: Health) -> Result<MetricsServer, ListenError> {
        let failed = |source| ListenError { addr: addr.to_string(), source };
        let bind_to = if addr.starts_with(':') { format!("0.0.0.0{addr}") } else { addr.to_string() };
        let listener = tokio::net::TcpListener::bind(&bind_to).await.map_err(failed)?;
        let local = listener.local_addr().map_err(failed)?;
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(move || scrape(metrics.clone())))
            .route("/healthz", axum::routing::get(move || std::future::ready(health.status())));
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::warn!("the metrics endpoint stopped: {e}");
            }
        });
        tracing::info!(addr = %local, "metrics listening on {local} (GET /metrics, GET /healthz)");
        Ok(MetricsServer { addr: local, stop, task })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops serving, letting a scrape in progress finish (bounded).
    pub async fn stop(self) {
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn scrape(metrics: WorkerMetrics) -> axum::response::Response {
    match metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the metrics: {e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails to compile when a failure kind is added without being listed in [`FAILURE_KINDS`].
    #[allow(dead_code)]
    fn every_failure_kind_is_listed(kind: FailureKind) -> usize {
        match kind {
            FailureKind::Auth
            | FailureKind::NotFound
            | FailureKind::RateLimited
            | FailureKind::RegistryUnavailable
            | FailureKind::DigestMismatch
            | FailureKind::Corrupt
            | FailureKind::TooLarge
            | FailureKind::NotAnImage
            | FailureKind::Unsupported
            | FailureKind::BadTask
            | FailureKind::Abandoned
            | FailureKind::Internal => FAILURE_KINDS.len(),
        }
    }

    #[test]
    fn every_series_is_exported_from_the_start() {
        let m = WorkerMetrics::new("w-1", "0.1.0");
        let text = m.render().unwrap();
        for line in [
            "trawl_scanner_tasks_acked_total 0",
            "trawl_scanner_tasks_failed_total{kind=\"not-found\"} 0",
            "trawl_scanner_tasks_failed_total{kind=\"registry-unavailable\"} 0",
            "trawl_scanner_tasks_dead_lettered_total 0",
            "trawl_scanner_tasks_retried_total{reason=\"shutdown\"} 0",
            "trawl_scanner_tasks_retried_total{reason=\"rate-limited\"} 0",
            "trawl_scanner_scan_duration_seconds_count{lane=\"high\"} 0",
            "trawl_scanner_scan_duration_seconds_bucket{lane=\"bulk\",le=\"600\"} 0",
            "trawl_scanner_bytes_pulled_total 0",
            "trawl_scanner_layer_cache_hits_total 0",
            "trawl_scanner_layer_cache_misses_total 0",
            "trawl_scanner_tasks_in_flight 0",
            "trawl_scanner_vulndb_version 0",
            "trawl_scanner_vulndb_built_timestamp_seconds 0",
            "trawl_scanner_info{id=\"w-1\",version=\"0.1.0\"} 1",
            "# TYPE trawl_scanner_scan_duration_seconds histogram",
            "# TYPE trawl_scanner_tasks_in_flight gauge",
            "# TYPE trawl_scanner_tasks_acked_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        for reason in RETRY_REASONS {
            assert!(
                reason == RETRY_PUBLISH_FAILED
                    || reason == RETRY_SHUTDOWN
                    || FAILURE_KINDS.iter().any(|k| k.is_transient() && k.as_str() == reason)
            );
        }
        assert_eq!(
            FAILURE_KINDS.iter().filter(|k| k.is_transient()).count(),
            3,
            "a new transient kind is a new retry reason"
        );
    }

    #[test]
    fn the_database_gauges_follow_the_database_in_use() {
        let m = WorkerMetrics::new("w-1", "0.1.0");
        let db = Arc::new(Database::build(vec![], vec![], 0).with_version(1_700_000_000_123));
        let current = Arc::new(Mutex::new(None::<Arc<Database>>));
        let view = current.clone();
        m.watch_database(move || view.lock().unwrap().clone());
        assert!(m.render().unwrap().contains("\ntrawl_scanner_vulndb_version 0\n"));
        *current.lock().unwrap() = Some(db.clone());
        let text = m.render().unwrap();
        assert!(text.contains("\ntrawl_scanner_vulndb_version 1700000000123\n"), "{text}");
        let built = chrono::DateTime::parse_from_rfc3339(&db.header().built_at).unwrap().timestamp();
        assert!(text.contains(&format!("\ntrawl_scanner_vulndb_built_timestamp_seconds {built}\n")), "{text}");
    }
}
