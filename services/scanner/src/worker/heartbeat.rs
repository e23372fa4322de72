//! The worker's counters and its heartbeat: a [`ScannerHeartbeat`] put
//! under the worker's id in the `TRAWL_SCANNERS` bucket every
//! [`HEARTBEAT_INTERVAL`], and at once when its state changes (draining),
//! so the controller and `nats kv ls TRAWL_SCANNERS` see every live scanner
//! and what it is doing. The bucket expires entries 30 s after their last
//! put, so a worker that dies disappears by itself; one that exits cleanly
//! deletes its key.

use async_nats::jetstream::kv;
use std::sync::{Mutex, PoisonError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use trawl_protocol::heartbeat::HEARTBEAT_INTERVAL;
use trawl_protocol::ScannerHeartbeat;

/// `state` while the worker takes tasks.
pub const RUNNING: &str = "running";
/// `state` after SIGTERM, while scans in flight finish.
pub const DRAINING: &str = "draining";

/// What the worker is doing and has done, shared by its slots.
#[derive(Debug)]
pub struct Stats {
    inner: Mutex<Counters>,
    changed: Notify,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// [`RUNNING`] or [`DRAINING`].
    pub state: &'static str,
    /// The reference each slot is scanning (`None`: idle).
    pub current: Vec<Option<String>>,
    /// Scans finished with a report.
    pub scanned: u64,
    /// Tasks that ended in a failed result or a dead letter.
    pub failed: u64,
    /// Tasks handed back for a later retry.
    pub retried: u64,
    /// Compressed bytes pulled from registries by successful scans (layers
    /// taken from the layer cache are not pulled, so not counted).
    pub bytes_pulled: u64,
    /// Layers of successful scans taken from the layer cache instead of their registry.
    pub layer_cache_hits: u64,
}

impl Stats {
    /// Counters for `slots` idle slots, running.
    pub fn new(slots: usize) -> Stats {
        Stats {
            inner: Mutex::new(Counters { state: RUNNING, current: vec![None; slots], ..Default::default() }),
            changed: Notify::new(),
        }
    }

    fn update<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> Counters {
        self.update(|c| c.clone())
    }

    /// Slot `slot` started scanning `reference`.
    pub fn begin(&self, slot: usize, reference: &str) {
        self.update(|c| {
            if let Some(s) = c.current.get_mut(slot) {
                *s = Some(reference.to_string());
            }
        });
    }

    /// Slot `slot` is idle again.
    pub fn end(&self, slot: usize) {
        self.update(|c| {
            if let Some(s) = c.current.get_mut(slot) {
                *s = None;
            }
        });
    }

    /// A scan produced a report after pulling `bytes` and taking `cache_hits` layers from the layer cache.
    pub fn scanned(&self, bytes: u64, cache_hits: u64) {
        self.update(|c| {
            c.scanned += 1;
            c.bytes_pulled += bytes;
            c.layer_cache_hits += cache_hits;
        });
    }

    /// A task was given up on.
    pub fn failed(&self) {
        self.update(|c| c.failed += 1);
    }

    /// A task was handed back for a retry.
    pub fn retried(&self) {
        self.update(|c| c.retried += 1);
    }

    /// Enters `state` and has the heartbeat sent now.
    pub fn set_state(&self, state: &'static str) {
        self.update(|c| c.state = state);
        self.changed.notify_one();
    }
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

    #[test]
    fn the_heartbeat_shows_what_the_slots_do() {
        let stats = Stats::new(2);
        stats.begin(1, "r/app:1");
        stats.scanned(100, 3);
        stats.scanned(20, 1);
        stats.retried();
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
        stats.end(1);
        stats.end(9);
        assert!(stats.snapshot().current.iter().all(Option::is_none));
    }
}
