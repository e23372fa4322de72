//! Admission-control storage: what the controller knows about every image,
//! kept in JetStream key-value buckets so that every controller replica, an
//! admission webhook or `nats kv get` sees the same thing.
//!
//! * `TRAWL_IMAGES` — one [`ImageRecord`] (JSON) per manifest digest: status,
//!   severity counts, database version, where the full report is.
//! * `TRAWL_REPORTS` / `TRAWL_LARGE_REPORTS` — the full result as the
//!   scanner sent it (zstd MessagePack), in the key-value bucket when it fits
//!   in 1 MiB, in the object store otherwise.
//! * `TRAWL_TAGS` — `<registry>/<repository>/<tag>` → digest, from crawls.
//! * `TRAWL_REGISTRIES` — registry configurations.
//!
//! Each replica keeps an in-memory [`Mirror`] of the small buckets, fed by
//! key-value watchers, so API reads never scan a bucket; writes go to
//! JetStream first and reach the mirror through the same watchers.

use async_nats::jetstream::{self, kv, object_store};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use trawl_protocol::buckets::{
    digest_key, tag_key, IMAGES_BUCKET, INLINE_REPORT_LIMIT, LARGE_REPORTS_BUCKET, REGISTRIES_BUCKET, REPORTS_BUCKET,
    TAGS_BUCKET,
};
use trawl_protocol::{RegistryConfig, ScanFailure, ScanResult, ScannerHeartbeat, SCANNERS_BUCKET};

/// Why storage could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// JetStream refused or did not answer.
    #[error("{what}: {reason}")]
    Nats {
        /// What was being done.
        what: String,
        /// The error.
        reason: String,
    },
    /// A stored value did not decode.
    #[error("stored {what} is not readable: {reason}")]
    Corrupt {
        /// What was read.
        what: String,
        /// The decoder's error.
        reason: String,
    },
}

fn nats_error(what: impl Into<String>) -> impl FnOnce(&dyn std::fmt::Display) -> StorageError {
    let what = what.into();
    move |e| StorageError::Nats { what, reason: e.to_string() }
}

/// Whether an image has a usable result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    /// Scanned: the record has counts and a report.
    Scanned,
    /// The scan failed: the record says why.
    Failed,
}

/// Where an image's full report is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportLocation {
    /// In the `TRAWL_REPORTS` key-value bucket.
    Kv,
    /// In the `TRAWL_LARGE_REPORTS` object store.
    Object,
}

/// What admission control needs to know about one image (JSON in `TRAWL_IMAGES`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Manifest digest.
    pub digest: String,
    /// Scanned or failed.
    pub status: ImageStatus,
    /// Registry configuration it was queued for (empty for standalone results).
    #[serde(default)]
    pub registry: String,
    /// The reference the scanner pulled.
    pub reference: String,
    /// RFC 3339 time the scan finished.
    pub scanned_at: String,
    /// Scanner that produced the result.
    pub scanner: String,
    /// Database version the findings are from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_version: Option<u64>,
    /// Finding counts by severity.
    #[serde(default)]
    pub vulnerabilities: trawl_report::SeverityCounts,
    /// Of the findings, how many have a fixed version.
    #[serde(default)]
    pub fixable: usize,
    /// Packages found.
    #[serde(default)]
    pub packages: usize,
    /// `pretty_name` or id of the distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<String>,
    /// Why the scan failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ScanFailure>,
    /// Where the full result is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportLocation>,
    /// Size of the stored result in bytes.
    #[serde(default)]
    pub report_bytes: usize,
    /// Results stored for this digest so far (1 for an image scanned once).
    #[serde(default)]
    pub results: u64,
    /// RFC 3339 time the findings were last re-matched against a newer database without a new scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rematched_at: Option<String>,
    /// Where that re-match is (its findings replace the report's); cleared by a new scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rematch: Option<ReportLocation>,
}

impl ImageRecord {
    /// The record a result makes, or `None` when the result names no image digest.
    pub fn from_result(result: &ScanResult, report_bytes: usize) -> Option<ImageRecord> {
        let digest = result.image_digest()?.to_string();
        let task = result.task.as_ref();
        let mut record = ImageRecord {
            digest,
            status: ImageStatus::Failed,
            registry: task.map(|t| t.registry.clone()).unwrap_or_default(),
            reference: task.map(|t| t.reference.clone()).unwrap_or_default(),
            scanned_at: result.finished_at.clone(),
            scanner: result.scanner.name.clone(),
            db_version: None,
            vulnerabilities: Default::default(),
            fixable: 0,
            packages: 0,
            distro: None,
            failure: result.failure.clone(),
            report: None,
            report_bytes,
            results: 1,
            rematched_at: None,
            rematch: None,
        };
        if let Some(report) = &result.report {
            record.status = ImageStatus::Scanned;
            if record.reference.is_empty() {
                record.reference = report.image.reference.clone();
            }
            record.db_version = Some(report.db.version);
            record.packages = report.packages.len();
            record.distro = report.distro.as_ref().map(|d| d.pretty_name.clone().unwrap_or_else(|| d.id.clone()));
            record.vulnerabilities = report.summary.clone();
            record.fixable = report.findings.iter().filter(|f| f.fixed_version.is_some()).count();
        }
        Some(record)
    }

    /// Whether `incoming` should replace this record: a failure does not
    /// hide a good result, and an older database does not replace a newer one.
    pub fn superseded_by(&self, incoming: &ImageRecord) -> bool {
        if self.status == ImageStatus::Scanned && incoming.status == ImageStatus::Failed {
            return false;
        }
        match (self.db_version, incoming.db_version) {
            (Some(old), Some(new)) => new >= old,
            _ => true,
        }
    }
}

/// Where the re-match of the report stored under `report_key` is kept.
fn rematch_key(report_key: &str) -> String {
    format!("{report_key}.rematch")
}

/// Document type of [`StoredRematch`].
pub const STORED_REMATCH_SCHEMA: &str = "trawl.rematch";
/// Version of [`StoredRematch`]'s layout.
pub const STORED_REMATCH_SCHEMA_VERSION: &str = "1.0.0";

/// A re-match as stored beside the report it updates
/// (`<report key>.rematch`, zstd MessagePack like the report).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRematch {
    /// Always [`STORED_REMATCH_SCHEMA`].
    pub schema: String,
    /// [`STORED_REMATCH_SCHEMA_VERSION`] for documents written by this build.
    pub schema_version: String,
    /// RFC 3339 time of the re-match.
    pub rematched_at: String,
    /// The new findings.
    pub rematch: trawl_report::Rematch,
}

impl StoredRematch {
    /// A document for `rematch`, made now.
    pub fn new(rematch: trawl_report::Rematch) -> StoredRematch {
        StoredRematch {
            schema: STORED_REMATCH_SCHEMA.into(),
            schema_version: STORED_REMATCH_SCHEMA_VERSION.into(),
            rematched_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            rematch,
        }
    }

    /// Compressed MessagePack bytes, as stored.
    pub fn encode(&self) -> Result<Vec<u8>, trawl_protocol::ProtocolError> {
        trawl_protocol::encode_packed("re-match", self)
    }

    /// Reads a stored re-match, checking its schema.
    pub fn decode(bytes: &[u8]) -> Result<StoredRematch, StorageError> {
        let corrupt = |reason: String| StorageError::Corrupt { what: "re-match".into(), reason };
        let doc: StoredRematch =
            trawl_protocol::decode_packed("re-match", bytes).map_err(|e| corrupt(e.to_string()))?;
        let major = |v: &str| v.split('.').next().unwrap_or_default().to_string();
        if doc.schema != STORED_REMATCH_SCHEMA || major(&doc.schema_version) != major(STORED_REMATCH_SCHEMA_VERSION) {
            return Err(corrupt(format!(
                "schema {} {} is not {STORED_REMATCH_SCHEMA} 1.x",
                doc.schema, doc.schema_version
            )));
        }
        Ok(doc)
    }
}

/// What one stored result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// A new or newer record was written.
    Stored,
    /// An equal or better record was already there; only the count changed.
    Kept,
    /// The result names no image; nothing to store for admission control.
    NotAnImage,
}

/// The in-memory view of the small buckets, kept current by watchers.
#[derive(Debug, Default)]
pub struct Mirror {
    /// Digest → record.
    pub images: HashMap<String, ImageRecord>,
    /// Tag key → digest.
    pub tags: BTreeMap<String, String>,
    /// Name → configuration.
    pub registries: BTreeMap<String, RegistryConfig>,
}

/// Images of one registry, by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RegistryCounts {
    /// Distinct digests its tags point to.
    pub images_total: usize,
    /// Of those, scanned.
    pub scanned: usize,
    /// Failed.
    pub failed: usize,
    /// Neither yet.
    pub queued: usize,
}

impl Mirror {
    /// Digests the tags of `registry` point to.
    pub fn registry_digests(&self, registry: &str) -> Vec<String> {
        let prefix = format!("{}/", trawl_protocol::buckets::escape_key(registry));
        let mut digests: Vec<String> = self
            .tags
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, d)| d.clone())
            .collect();
        digests.sort();
        digests.dedup();
        digests
    }

    /// Tags (`repository:tag`) of `registry` pointing at `digest`.
    pub fn tags_of(&self, digest: &str) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, d)| d.as_str() == digest)
            .map(|(k, _)| {
                // Registry names and tags hold no `/`; the repository between them may.
                let unescape = trawl_protocol::buckets::unescape_key;
                match k.split_once('/').and_then(|(r, rest)| rest.rsplit_once('/').map(|(repo, tag)| (r, repo, tag))) {
                    Some((registry, repo, tag)) => {
                        format!("{}:{}:{}", unescape(registry), unescape(repo), unescape(tag))
                    }
                    None => unescape(k),
                }
            })
            .collect()
    }

    /// Status counts of `registry`.
    pub fn registry_counts(&self, registry: &str) -> RegistryCounts {
        let digests = self.registry_digests(registry);
        let mut c = RegistryCounts { images_total: digests.len(), ..Default::default() };
        for d in &digests {
            match self.images.get(d).map(|r| r.status) {
                Some(ImageStatus::Scanned) => c.scanned += 1,
                Some(ImageStatus::Failed) => c.failed += 1,
                None => c.queued += 1,
            }
        }
        c
    }
}

/// Handles on the storage buckets, and the mirror.
#[derive(Clone)]
pub struct Storage {
    images: kv::Store,
    tags: kv::Store,
    reports: kv::Store,
    large_reports: object_store::ObjectStore,
    registries: kv::Store,
    scanners: kv::Store,
    mirror: Arc<RwLock<Mirror>>,
    synced: watch::Receiver<bool>,
}

impl Storage {
    /// Opens the buckets (which `definitions::ensure_all` created) and starts mirroring them.
    pub async fn open(js: &jetstream::Context) -> Result<Storage, StorageError> {
        let kv = |name: &'static str| async move {
            js.get_key_value(name).await.map_err(|e| nats_error(format!("opening bucket {name}"))(&e))
        };
        let images = kv(IMAGES_BUCKET).await?;
        let tags = kv(TAGS_BUCKET).await?;
        let registries = kv(REGISTRIES_BUCKET).await?;
        let (synced_tx, synced) = watch::channel(false);
        let storage = Storage {
            reports: kv(REPORTS_BUCKET).await?,
            scanners: kv(SCANNERS_BUCKET).await?,
            large_reports: js
                .get_object_store(LARGE_REPORTS_BUCKET)
                .await
                .map_err(|e| nats_error(format!("opening object store {LARGE_REPORTS_BUCKET}"))(&e))?,
            images: images.clone(),
            tags: tags.clone(),
            registries: registries.clone(),
            mirror: Arc::default(),
            synced,
        };
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(3));
        let done = Arc::new(synced_tx);
        let m = storage.mirror.clone();
        spawn_mirror(images, m.clone(), pending.clone(), done.clone(), |mirror, key, value| match value {
            Some(bytes) => {
                if let Ok(record) = serde_json::from_slice::<ImageRecord>(bytes) {
                    mirror.images.insert(record.digest.clone(), record);
                }
            }
            None => {
                mirror.images.remove(&trawl_protocol::buckets::digest_from_key(key));
            }
        })
        .await?;
        spawn_mirror(tags, m.clone(), pending.clone(), done.clone(), |mirror, key, value| match value {
            Some(bytes) => {
                mirror.tags.insert(key.to_string(), String::from_utf8_lossy(bytes).into_owned());
            }
            None => {
                mirror.tags.remove(key);
            }
        })
        .await?;
        spawn_mirror(registries, m, pending, done, |mirror, key, value| match value {
            Some(bytes) => {
                if let Ok(config) = serde_json::from_slice::<RegistryConfig>(bytes) {
                    mirror.registries.insert(config.name.clone(), config);
                }
            }
            None => {
                mirror.registries.remove(key);
            }
        })
        .await?;
        Ok(storage)
    }

    /// Waits until the mirror holds everything that was in the buckets at start-up.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Whether the mirror has caught up (readiness).
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Reads the mirror.
    pub fn read<T>(&self, f: impl FnOnce(&Mirror) -> T) -> T {
        let guard = self.mirror.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&guard)
    }

    /// Stores one result: the full result first, then the record that points
    /// at it, written with compare-and-set so that two controllers storing
    /// results of the same image at once count both.
    pub async fn store_result(&self, result: &ScanResult, payload: &[u8]) -> Result<StoreOutcome, StorageError> {
        let Some(incoming) = ImageRecord::from_result(result, payload.len()) else {
            return Ok(StoreOutcome::NotAnImage);
        };
        let key = digest_key(&incoming.digest);
        let mut report_written = None;
        for _ in 0..8 {
            let entry = self
                .images
                .entry(key.as_str())
                .await
                .map_err(|e| nats_error(format!("reading the record of {}", incoming.digest))(&e))?
                .filter(|e| matches!(e.operation, kv::Operation::Put));
            let existing: Option<ImageRecord> = entry.as_ref().and_then(|e| serde_json::from_slice(&e.value).ok());
            let mut record = incoming.clone();
            let outcome = match &existing {
                Some(old) if !old.superseded_by(&incoming) => {
                    record = old.clone();
                    StoreOutcome::Kept
                }
                _ => StoreOutcome::Stored,
            };
            record.results = existing.as_ref().map_or(0, |r| r.results) + 1;
            if outcome == StoreOutcome::Stored {
                if result.report.is_some() {
                    if report_written.is_none() {
                        report_written = Some(self.put_report(&key, &incoming.digest, payload).await?);
                    }
                    record.report = report_written.clone();
                } else {
                    record.report = existing.as_ref().and_then(|r| r.report.clone());
                    record.rematch = existing.as_ref().and_then(|r| r.rematch.clone());
                }
            }
            let json = serde_json::to_vec(&record)
                .map_err(|e| StorageError::Corrupt { what: "record".into(), reason: e.to_string() })?;
            let written = match &entry {
                Some(e) => self.images.update(key.as_str(), json.into(), e.revision).await.is_ok(),
                None => self.images.create(key.as_str(), json.into()).await.is_ok(),
            };
            if written {
                // A new report makes the old one's re-match meaningless; the
                // record no longer points at it, so removing it is tidiness
                // and may fail.
                if let Some(stale) = existing.and_then(|r| r.rematch).filter(|_| record.rematch.is_none()) {
                    self.delete_report(&rematch_key(&key), &stale).await;
                }
                return Ok(outcome);
            }
            // Another writer got there first: read again and redo.
        }
        Err(StorageError::Nats {
            what: format!("storing the record of {}", incoming.digest),
            reason: "too many concurrent writers".into(),
        })
    }

    /// Stores a re-match of an image already scanned beside its report
    /// (`payload` is `rematch` encoded as a [`StoredRematch`]): the record's
    /// counts and database version change, the stored report and the count
    /// of scan results do not. Returns false when the record is gone, failed,
    /// or already at this database (another controller re-matched it).
    pub async fn store_rematch(
        &self,
        digest: &str,
        rematch: &trawl_report::Rematch,
        rematched_at: &str,
        payload: &[u8],
    ) -> Result<bool, StorageError> {
        let key = digest_key(digest);
        let mut written = None;
        for _ in 0..8 {
            let Some(entry) = self
                .images
                .entry(key.as_str())
                .await
                .map_err(|e| nats_error(format!("reading the record of {digest}"))(&e))?
                .filter(|e| matches!(e.operation, kv::Operation::Put))
            else {
                return Ok(false);
            };
            let Ok(mut record) = serde_json::from_slice::<ImageRecord>(&entry.value) else { return Ok(false) };
            if record.status != ImageStatus::Scanned || record.db_version >= Some(rematch.db.version) {
                return Ok(false);
            }
            if written.is_none() {
                written = Some(self.put_report(&rematch_key(&key), digest, payload).await?);
            }
            record.rematch = written.clone();
            record.db_version = Some(rematch.db.version);
            record.vulnerabilities = rematch.summary.clone();
            record.fixable = rematch.findings.iter().filter(|f| f.fixed_version.is_some()).count();
            record.rematched_at = Some(rematched_at.to_string());
            let json = serde_json::to_vec(&record)
                .map_err(|e| StorageError::Corrupt { what: "record".into(), reason: e.to_string() })?;
            if self.images.update(key.as_str(), json.into(), entry.revision).await.is_ok() {
                return Ok(true);
            }
        }
        Err(StorageError::Nats { what: format!("re-matching {digest}"), reason: "too many concurrent writers".into() })
    }

    async fn put_report(&self, key: &str, digest: &str, payload: &[u8]) -> Result<ReportLocation, StorageError> {
        if payload.len() <= INLINE_REPORT_LIMIT {
            self.reports
                .put(key, bytes::Bytes::copy_from_slice(payload))
                .await
                .map_err(|e| nats_error(format!("storing the report of {digest}"))(&e))?;
            return Ok(ReportLocation::Kv);
        }
        self.large_reports
            .put(key, &mut &payload[..])
            .await
            .map_err(|e| nats_error(format!("storing the large report of {digest}"))(&e))?;
        Ok(ReportLocation::Object)
    }

    /// The stored record of `digest`, read from the bucket (not the mirror).
    pub async fn record(&self, digest: &str) -> Result<Option<ImageRecord>, StorageError> {
        let value = self
            .images
            .get(digest_key(digest))
            .await
            .map_err(|e| nats_error(format!("reading the record of {digest}"))(&e))?;
        value
            .map(|v| serde_json::from_slice(&v))
            .transpose()
            .map_err(|e| StorageError::Corrupt { what: format!("record of {digest}"), reason: e.to_string() })
    }

    /// The full stored result of `digest`, if it has a report.
    pub async fn result(&self, record: &ImageRecord) -> Result<Option<ScanResult>, StorageError> {
        let Some(bytes) = self.result_bytes(record).await? else { return Ok(None) };
        let corrupt = |what: &str, e: &dyn std::fmt::Display| StorageError::Corrupt {
            what: format!("{what} of {}", record.digest),
            reason: e.to_string(),
        };
        let mut result = ScanResult::decode(&bytes).map_err(|e| corrupt("report", &e))?;
        let key = rematch_key(&digest_key(&record.digest));
        // The newest findings are the re-match's, when there is one.
        if let (Some(report), Some(location)) = (result.report.as_mut(), &record.rematch) {
            if let Some(bytes) = self.read_report(&key, location, &record.digest).await? {
                let stored = StoredRematch::decode(&bytes).map_err(|e| corrupt("re-match", &e))?;
                report.apply_rematch(stored.rematch);
            }
        }
        Ok(Some(result))
    }

    /// The stored result of `record` as the scanner sent it (zstd
    /// MessagePack, without a later re-match), for callers that decode it off
    /// the async threads.
    pub async fn result_bytes(&self, record: &ImageRecord) -> Result<Option<bytes::Bytes>, StorageError> {
        match &record.report {
            None => Ok(None),
            Some(location) => self.read_report(&digest_key(&record.digest), location, &record.digest).await,
        }
    }

    /// Removes what [`Storage::put_report`] stored under `key`, logging a failure.
    async fn delete_report(&self, key: &str, location: &ReportLocation) {
        let outcome = match location {
            ReportLocation::Kv => self.reports.purge(key).await.map_err(|e| e.to_string()),
            ReportLocation::Object => self.large_reports.delete(key).await.map_err(|e| e.to_string()),
        };
        if let Err(e) = outcome {
            tracing::warn!(key, "could not remove a superseded re-match: {e}");
        }
    }

    /// Reads what [`Storage::put_report`] stored under `key`.
    async fn read_report(
        &self,
        key: &str,
        location: &ReportLocation,
        digest: &str,
    ) -> Result<Option<bytes::Bytes>, StorageError> {
        match location {
            ReportLocation::Kv => {
                self.reports.get(key).await.map_err(|e| nats_error(format!("reading the report of {digest}"))(&e))
            }
            ReportLocation::Object => {
                let failed = |e: &dyn std::fmt::Display| nats_error(format!("reading the large report of {digest}"))(e);
                let mut object = self.large_reports.get(key).await.map_err(|e| failed(&e))?;
                let mut buf = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut object, &mut buf).await.map_err(|e| failed(&e))?;
                Ok(Some(buf.into()))
            }
        }
    }

    /// Records that `repository:tag` of `registry` points at `digest`.
    pub async fn put_tag(&self, registry: &str, repository: &str, tag: &str, digest: &str) -> Result<(), StorageError> {
        let key = tag_key(registry, repository, tag);
        if self.read(|m| m.tags.get(&key).map(String::as_str) == Some(digest)) {
            return Ok(());
        }
        self.tags
            .put(&key, digest.to_string().into())
            .await
            .map_err(|e| nats_error(format!("storing tag {repository}:{tag}"))(&e))?;
        Ok(())
    }

    /// Removes tags of `registry` that a crawl no longer found.
    pub async fn prune_tags(
        &self,
        registry: &str,
        keep: &std::collections::HashSet<String>,
    ) -> Result<usize, StorageError> {
        let prefix = format!("{}/", trawl_protocol::buckets::escape_key(registry));
        let stale: Vec<String> =
            self.read(|m| m.tags.keys().filter(|k| k.starts_with(&prefix) && !keep.contains(*k)).cloned().collect());
        for key in &stale {
            self.tags.delete(key).await.map_err(|e| nats_error(format!("removing tag {key}"))(&e))?;
        }
        Ok(stale.len())
    }

    /// Saves a registry configuration.
    pub async fn put_registry(&self, config: &RegistryConfig) -> Result<(), StorageError> {
        let json = serde_json::to_vec(config)
            .map_err(|e| StorageError::Corrupt { what: "registry".into(), reason: e.to_string() })?;
        self.registries
            .put(&config.name, json.into())
            .await
            .map_err(|e| nats_error(format!("storing registry {}", config.name))(&e))?;
        Ok(())
    }

    /// Deletes a registry configuration and its tags (records stay: other registries may share digests).
    pub async fn delete_registry(&self, name: &str) -> Result<(), StorageError> {
        self.registries.delete(name).await.map_err(|e| nats_error(format!("deleting registry {name}"))(&e))?;
        self.prune_tags(name, &Default::default()).await?;
        Ok(())
    }

    /// Live scanner heartbeats (expired ones have left the bucket).
    pub async fn scanners(&self) -> Result<Vec<ScannerHeartbeat>, StorageError> {
        let mut keys = self.scanners.keys().await.map_err(|e| nats_error("listing scanners")(&e))?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let Ok(key) = key else { continue };
            if let Ok(Some(value)) = self.scanners.get(&key).await {
                if let Ok(hb) = serde_json::from_slice::<ScannerHeartbeat>(&value) {
                    out.push(hb);
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// Watches `store` from its beginning into the mirror with `apply`;
/// decrements `pending` when it has caught up, and marks `done` when all have.
async fn spawn_mirror(
    store: kv::Store,
    mirror: Arc<RwLock<Mirror>>,
    pending: Arc<std::sync::atomic::AtomicUsize>,
    done: Arc<watch::Sender<bool>>,
    apply: fn(&mut Mirror, &str, Option<&[u8]>),
) -> Result<(), StorageError> {
    use std::sync::atomic::Ordering;
    let name = store.name.clone();
    let caught_up = move || {
        if pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _ = done.send(true);
        }
    };
    let status = store.status().await.map_err(|e| nats_error(format!("reading bucket {name}"))(&e))?;
    let empty = status.info.state.messages == 0;
    // The latest value of every key, then every change.
    let mut watch =
        store.watch_with_history(">").await.map_err(|e| nats_error(format!("watching bucket {name}"))(&e))?;
    if empty {
        caught_up();
    }
    tokio::spawn(async move {
        let mut caught_up = (!empty).then_some(caught_up);
        while let Some(entry) = watch.next().await {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(bucket = %name, "watch error: {e}");
                    continue;
                }
            };
            {
                let mut guard = mirror.write().unwrap_or_else(|p| p.into_inner());
                let value = matches!(entry.operation, kv::Operation::Put).then_some(entry.value.as_ref());
                apply(&mut guard, &entry.key, value);
            }
            if entry.delta == 0 {
                if let Some(f) = caught_up.take() {
                    f();
                }
            }
        }
        tracing::warn!(bucket = %name, "bucket watch ended");
    });
    Ok(())
}
