//! Re-matching stored inventories when a new vulnerability database arrives.
//!
//! Every stored report carries the image's whole package inventory, so a
//! new database needs no image pull: the controller matches each stored
//! inventory again — a database update re-evaluates every image in
//! seconds, where a rescan would pull the whole registry again. The new
//! findings are stored beside the report (`<key>.rematch`, a
//! [`StoredRematch`]) rather than as a rewritten copy of it: the packages,
//! most of a report, never change for a digest, and not re-encoding them
//! halves the work. Each distinct package is matched once per pass
//! ([`CachedMatcher`]): images share base layers. One controller does it per database version: the one
//! that creates `rematch.<version>` in `TRAWL_CONTROL` first.

use crate::storage::{ImageStatus, Storage, StoredRematch};
use futures::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::Instant;
use trawl_protocol::buckets::CONTROL_BUCKET;
use trawl_protocol::ScanResult;
use trawl_report::RematchInput;
use trawl_vulndb::{CachedMatcher, Database};

/// Reports re-matched at once (each is read, matched on a blocking thread, and written).
const PARALLEL: usize = 64;

/// What one re-matching pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RematchOutcome {
    /// Images whose findings were replaced.
    pub rematched: usize,
    /// Images already at this database, or changed meanwhile.
    pub skipped: usize,
    /// Images whose report could not be read or written.
    pub failed: usize,
}

/// Re-matches stored inventories against new databases.
#[derive(Clone)]
pub struct Rematcher {
    storage: Storage,
    control: async_nats::jetstream::kv::Store,
}

impl Rematcher {
    /// A re-matcher over `storage`.
    pub async fn new(js: &async_nats::jetstream::Context, storage: Storage) -> anyhow::Result<Rematcher> {
        let control =
            js.get_key_value(CONTROL_BUCKET).await.map_err(|e| anyhow::anyhow!("opening {CONTROL_BUCKET}: {e}"))?;
        Ok(Rematcher { storage, control })
    }

    /// Re-matches every image scanned with an older database than `db`,
    /// unless another controller claimed this version first.
    pub async fn on_new_database(&self, db: Arc<Database>) -> Option<RematchOutcome> {
        let version = db.header().version;
        let claim = format!("rematch.{version}");
        let me = format!("controller-{}", std::process::id());
        if self.control.create(&claim, me.into()).await.is_err() {
            tracing::info!(version, "another controller re-matches for this database");
            return None;
        }
        Some(self.rematch_all(db).await)
    }

    /// Re-matches every stored image older than `db` (no claim: for tests and benchmarks).
    pub async fn rematch_all(&self, db: Arc<Database>) -> RematchOutcome {
        let started = Instant::now();
        let version = db.header().version;
        let stale: Vec<crate::storage::ImageRecord> = self.storage.read(|m| {
            m.images
                .values()
                .filter(|r| r.status == ImageStatus::Scanned && r.db_version.is_some_and(|v| v < version))
                .cloned()
                .collect()
        });
        let total = stale.len();
        // Images share base layers: each distinct package is matched once per pass.
        let matcher = Arc::new(CachedMatcher::new(db));
        // Decoding, matching and encoding are CPU work: one at a time per
        // core, so that 64 reads in flight do not become 64 threads
        // time-slicing two cores.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let cpu = Arc::new(tokio::sync::Semaphore::new(cores));
        // Each image is its own task, so reading, decoding and writing spread
        // over the runtime's threads instead of being polled by this one.
        let outcomes: Vec<Result<bool, String>> = stream::iter(stale)
            .map(|record| {
                let (storage, matcher, cpu) = (self.storage.clone(), matcher.clone(), cpu.clone());
                tokio::spawn(async move { rematch_one(&storage, &record, matcher, &cpu).await })
            })
            .buffer_unordered(PARALLEL)
            .map(|joined| joined.unwrap_or_else(|e| Err(format!("re-matching task failed: {e}"))))
            .collect()
            .await;
        let mut outcome = RematchOutcome::default();
        for o in outcomes {
            match o {
                Ok(true) => outcome.rematched += 1,
                Ok(false) => outcome.skipped += 1,
                Err(e) => {
                    outcome.failed += 1;
                    tracing::warn!("re-matching: {e}");
                }
            }
        }
        tracing::info!(
            version,
            images = total,
            rematched = outcome.rematched,
            failed = outcome.failed,
            distinct_packages = matcher.distinct_packages(),
            seconds = started.elapsed().as_secs_f64(),
            "re-matched stored inventories against the new database"
        );
        outcome
    }
}

/// Re-matches one image: read its stored report, decode the packages,
/// match, encode the new findings (the CPU work, on a blocking thread and
/// one per core), store them beside the report.
async fn rematch_one(
    storage: &Storage,
    record: &crate::storage::ImageRecord,
    matcher: Arc<CachedMatcher>,
    cpu: &tokio::sync::Semaphore,
) -> Result<bool, String> {
    let Some(bytes) = storage.result_bytes(record).await.map_err(|e| e.to_string())? else { return Ok(false) };
    let core = cpu.acquire().await.map_err(|e| e.to_string())?;
    let digest = record.digest.clone();
    let rematched = tokio::task::spawn_blocking(move || -> Result<Option<(StoredRematch, Vec<u8>)>, String> {
        // Only the packages and suppressions: the old findings are not built just to be dropped.
        let Some(mut input) =
            ScanResult::decode_report_as::<RematchInput>(&bytes).map_err(|e| format!("report of {digest}: {e}"))?
        else {
            return Ok(None);
        };
        let inventory = input.take_inventory();
        let matched = matcher.match_inventory(&inventory);
        let rematch = input.rematch(matched, trawl_report::DbInfo::from(matcher.database().header()));
        let stored = StoredRematch::new(rematch);
        let payload = stored.encode().map_err(|e| format!("encoding the re-match of {digest}: {e}"))?;
        Ok(Some((stored, payload)))
    })
    .await
    .map_err(|e| e.to_string())??;
    drop(core);
    match rematched {
        Some((stored, payload)) => storage
            .store_rematch(&record.digest, &stored.rematch, &stored.rematched_at, &payload)
            .await
            .map_err(|e| e.to_string()),
        None => Ok(false),
    }
}
