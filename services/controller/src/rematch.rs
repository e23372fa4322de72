//! Re-matching stored inventories when a new vulnerability database arrives.
//!
//! Every stored report carries the image's whole package inventory, so a
//! new database needs no image pull: the controller matches each stored
//! inventory again and replaces the findings — a database update
//! re-evaluates every image in seconds, where a rescan would pull the whole
//! registry again. One controller does it per database version: the one
//! that creates `rematch.<version>` in `TRAWL_CONTROL` first.

use crate::storage::{ImageStatus, Storage};
use futures::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::Instant;
use trawl_protocol::buckets::CONTROL_BUCKET;
use trawl_protocol::{ScanResult, ScannerInfo};
use trawl_vulndb::Database;

/// Reports re-matched at once (each is read, matched on a blocking thread, and written).
const PARALLEL: usize = 16;

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
        let outcomes: Vec<Result<bool, String>> = stream::iter(stale)
            .map(|record| {
                let (storage, db) = (self.storage.clone(), db.clone());
                async move { rematch_one(&storage, &record, db).await }
            })
            .buffer_unordered(PARALLEL)
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
            seconds = started.elapsed().as_secs_f64(),
            "re-matched stored inventories against the new database"
        );
        outcome
    }
}

async fn rematch_one(
    storage: &Storage,
    record: &crate::storage::ImageRecord,
    db: Arc<Database>,
) -> Result<bool, String> {
    let Some(stored) = storage.result(record).await.map_err(|e| e.to_string())? else { return Ok(false) };
    let rematched = tokio::task::spawn_blocking(move || -> Option<ScanResult> {
        let report = stored.report?;
        let inventory = trawl_catalog::Inventory {
            distro: report.distro.clone(),
            packages: report.packages.clone(),
            issues: Vec::new(),
        };
        let matched = trawl_vulndb::Matcher::new(&db).match_inventory(&inventory);
        let report = report.rematched(matched, trawl_report::DbInfo::from(db.header()));
        let scanner = ScannerInfo {
            name: "controller".into(),
            mode: "rematch".into(),
            advertised_addr: None,
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let mut result = ScanResult::new(scanner, report);
        result.task = stored.task;
        Some(result)
    })
    .await
    .map_err(|e| e.to_string())?;
    match rematched {
        Some(result) => storage.store_rematch(&result).await.map_err(|e| e.to_string()),
        None => Ok(false),
    }
}
