//! The worker's counters and its heartbeat: a [`ScannerHeartbeat`] put
//! under the worker's id in the `TRAWL_SCANNERS` bucket every
//! [`HEARTBEAT_INTERVAL`], and at once when its state changes (draining),
//! so the controller and `nats kv ls TRAWL_SCANNERS` see every live scanner
//! and what it is doing. The bucket expires entries 30 s after their last
//! put, so a worker that dies disappears by itself; one that exits cleanly
//! deletes its key.

use super::metrics::WorkerMetrics;
use async_nats::jetstream::kv;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use trawl_protocol::heartbeat::HEARTBEAT_INTERVAL;
use trawl_protocol::{FailureKind, ScannerHeartbeat};

/// `state` while the worker takes tasks.
pub const RUNNING: &str = "running";
/// `state` after SIGTERM, while scans in flight finish.
pub const DRAINING: &str = "draining";

/// What the worker is doing and has done, shared by its slots.
///
/// The counts live in the worker's Prometheus metrics ([`WorkerMetrics`]):
/// every event below increments them, and [`Stats::snapshot`] (the
/// heartbeat, the final log line) reads them back, so the heartbeat and
/// `/metrics` always agree. Events are recorded under one lock, so a
/// snapshot never sees half of one.
pub struct Stats {
    inner: Mutex<Slots>,
    metrics: WorkerMetrics,
    changed: Notify,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats").field("counters", &self.snapshot()).finish_non_exhaustive()
    }
}

/// What the slots are doing: the part of the state that is not a count.
#[derive(Debug)]
struct Slots {
    state: &'static str,
    current: Vec<Option<String>>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// [`RUNNING`] or [`DRAINING`].
    pub state: &'static str,
    /// The reference each slot is scanning (`None`: idle).
    pub current: Vec<Option<String>>,
    /// Scans finished with a report (acknowledged tasks less failed ones).
    pub scanned: u64,
    /// Tasks that ended in a failed result or a dead letter.
    pub failed: u64,
    /// Tasks handed back for a later retry (or because the worker was stopping).
    pub retried: u64,
    /// Compressed bytes pulled from registries by successful scans (layers
    /// taken from the layer cache are not pulled, so not counted).
    pub bytes_pulled: u64,
    /// Layers of successful scans taken from the layer cache instead of their registry.
    pub layer_cache_hits: u64,
}

/// What a scan that produced a report read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pulled {
    /// Compressed bytes pulled from the registry.
    pub bytes: u64,
    /// Layers taken from the layer cache.
    pub cache_hits: u64,
    /// Layers the layer cache did not hold (0 without a cache).
    pub cache_misses: u64,
}

impl Stats {
    /// Counters for `slots` idle slots, running, counting into `metrics`.
    pub fn new(slots: usize, metrics: WorkerMetrics) -> Stats {
        Stats {
            inner: Mutex::new(Slots { state: RUNNING, current: vec![None; slots] }),
            metrics,
            changed: Notify::new(),
        }
    }

    /// The metrics the counts go to.
    pub fn metrics(&self) -> &WorkerMetrics {
        &self.metrics
    }

    fn update<T>(&self, f: impl FnOnce(&mut Slots, &WorkerMetrics) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner), &self.metrics)
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> Counters {
        self.update(|s, m| {
            let failed = m.failed_total();
            Counters {
                state: s.state,
                current: s.current.clone(),
                // Every acknowledged task either failed or produced a report.
                scanned: m.tasks_acked.get().saturating_sub(failed),
                failed,
                retried: m.retried_total(),
                bytes_pulled: m.bytes_pulled.get(),
                layer_cache_hits: m.layer_cache_hits.get(),
            }
        })
    }

    /// Slot `slot` started scanning `reference`.
    pub fn begin(&self, slot: usize, reference: &str) {
        self.update(|s, m| {
            if let Some(c) = s.current.get_mut(slot) {
                *c = Some(reference.to_string());
            }
            m.tasks_in_flight.set(in_flight(&s.current));
        });
    }

    /// Slot `slot` is idle again.
    pub fn end(&self, slot: usize) {
        self.update(|s, m| {
            if let Some(c) = s.current.get_mut(slot) {
                *c = None;
            }
            m.tasks_in_flight.set(in_flight(&s.current));
        });
    }

    /// A task of `lane` got its report stored and was acknowledged, `took`
    /// after it was received, having read `pulled`.
    pub fn scanned(&self, lane: &str, took: Duration, pulled: Pulled) {
        self.update(|_, m| {
            m.tasks_acked.inc();
            m.scan_duration.with_label_values(&[lane]).observe(took.as_secs_f64());
            m.bytes_pulled.inc_by(pulled.bytes);
            m.layer_cache_hits.inc_by(pulled.cache_hits);
            m.layer_cache_misses.inc_by(pulled.cache_misses);
        });
    }

    /// A task of `lane` was given up on: its failure of `kind` (a failed
    /// result when there was a task, and a dead letter) stored and the task
    /// terminated, `took` after it was received.
    pub fn failed(&self, lane: &str, took: Duration, kind: FailureKind) {
        self.update(|_, m| {
            m.tasks_acked.inc();
            m.tasks_failed.with_label_values(&[kind.as_str()]).inc();
            m.tasks_dead_lettered.inc();
            m.scan_duration.with_label_values(&[lane]).observe(took.as_secs_f64());
        });
    }

    /// A task was handed back for a retry, for `reason` (one of [`super::metrics::RETRY_REASONS`]).
    pub fn retried(&self, reason: &str) {
        self.update(|_, m| m.tasks_retried.with_label_values(&[reason]).inc());
    }

    /// Enters `state` and has the heartbeat sent now.
    pub fn set_state(&self, state: &'static str) {
        self.update(|s, _| s.state = state);
        self.changed.notify_one();
    }
}

fn in_flight(current: &[Option<String>]) -> i64 {
    i64::try_from(current.iter().flatten().count()).unwrap_or(i64::MAX)
}

/// Who is beating: the parts of the heartbeat that never change.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The worker's id.
    pub id: String,
    /// Its key in the bucket (the id, escaped where a key cannot hold it).
    pub key: String,
    /// Host or pod name.
    pub host: String,
    /// Scanner version.
    pub version: String,
    /// Slots.
    pub concurrency: usize,
    /// RFC 3339 start time.
    pub started_at: String,
}

/// The heartbeat for `who` with `counters` and database version `db_version`.
pub fn heartbeat(who: &Identity, counters: &Counters, db_version: Option<u64>) -> ScannerHeartbeat {
    ScannerHeartbeat {
        id: who.id.clone(),
        host: who.host.clone(),
        version: who.version.clone(),
        db_version,
        state: counters.state.to_string(),
        concurrency: who.concurrency,
        current: counters.current.iter().flatten().cloned().collect(),
        scanned: counters.scanned,
        failed: counters.failed,
        retried: counters.retried,
        layer_cache_hits: counters.layer_cache_hits,
        bytes_pulled: counters.bytes_pulled,
        started_at: who.started_at.clone(),
        at: now_rfc3339(),
    }
}

/// Puts heartbeats until `stop` is cancelled; `db_version` says which
/// database is in use at each beat. Failures are logged, never fatal: a
/// missed beat only makes the worker look stale for a while.
pub async fn run(
    kv: kv::Store,
    who: Identity,
    stats: std::sync::Arc<Stats>,
    db_version: impl Fn() -> Option<u64>,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        let beat = heartbeat(&who, &stats.snapshot(), db_version());
        // A struct of strings and numbers always serialises.
        let body = serde_json::to_vec(&beat).unwrap_or_default();
        match kv.put(&who.key, body.into()).await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("heartbeats are stored again");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(bucket = trawl_protocol::SCANNERS_BUCKET, "cannot store the heartbeat: {e}");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
            _ = stats.changed.notified() => {}
            _ = stop.cancelled() => return,
        }
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::metrics;

    #[test]
    fn the_heartbeat_shows_what_the_slots_do() {
        let stats = Stats::new(2, WorkerMetrics::new("w-1", "0.1.0"));
        stats.begin(1, "r/app:1");
        let took = Duration::from_millis(300);
        stats.scanned("bulk", took, Pulled { bytes: 100, cache_hits: 3, cache_misses: 1 });
        stats.scanned("high", took, Pulled { bytes: 20, cache_hits: 1, cache_misses: 0 });
        stats.retried("rate-limited");
        stats.set_state(DRAINING);
        let who = Identity {
            id: "w-1".into(),
            key: "w-1".into(),
            host: "h".into(),
            version: "0.1.0".into(),
            concurrency: 2,
            started_at: now_rfc3339(),
        };
        let beat = heartbeat(&who, &stats.snapshot(), Some(7));
        assert_eq!(beat.current, ["r/app:1"]);
        assert_eq!((beat.scanned, beat.retried, beat.failed, beat.bytes_pulled), (2, 1, 0, 120));
        assert_eq!(beat.layer_cache_hits, 4);
        assert_eq!((beat.state.as_str(), beat.db_version, beat.concurrency), (DRAINING, Some(7), 2));
        assert_eq!(stats.metrics().tasks_in_flight.get(), 1);
        stats.end(1);
        stats.end(9);
        assert!(stats.snapshot().current.iter().all(Option::is_none));
        assert_eq!(stats.metrics().tasks_in_flight.get(), 0);
    }

    #[test]
    fn the_heartbeat_counts_are_the_metrics() {
        let stats = Stats::new(1, WorkerMetrics::new("w-1", "0.1.0"));
        let took = Duration::from_secs(2);
        stats.scanned("bulk", took, Pulled { bytes: 7, cache_hits: 0, cache_misses: 2 });
        stats.failed("bulk", took, FailureKind::NotFound);
        stats.failed("high", took, FailureKind::BadTask);
        stats.retried(metrics::RETRY_SHUTDOWN);
        let c = stats.snapshot();
        assert_eq!((c.scanned, c.failed, c.retried, c.bytes_pulled, c.layer_cache_hits), (1, 2, 1, 7, 0));
        let m = stats.metrics();
        assert_eq!((m.tasks_acked.get(), m.tasks_dead_lettered.get(), m.layer_cache_misses.get()), (3, 2, 2));
        assert_eq!(m.tasks_failed.with_label_values(&["not-found"]).get(), 1);
        assert_eq!(m.scan_duration.with_label_values(&["bulk"]).get_sample_count(), 2);
        assert_eq!(m.scan_duration.with_label_values(&["high"]).get_sample_sum(), 2.0);
    }
}
