//! Following the announcement: download, verify, swap.
//!
//! A background task watches [`crate::ANNOUNCE_KEY`] (starting with the value
//! current when it starts) and, for each announcement, downloads the object
//! with a size bound and a deadline, checks its SHA-256 against the
//! announcement, loads it with `Database::from_bytes` (which checks magic,
//! format and the body checksum again — the announcement may itself be wrong),
//! and accepts it only when its version is newer than the current one.
//!
//! The current database sits behind an `RwLock<Option<Arc<Database>>>` that is
//! held only to clone or replace the `Arc`: a scan clones the `Arc` once at its
//! start and keeps that database to the end, so a swap never changes the
//! database under a running scan, and the old one is freed when its last scan
//! finishes.
//!
//! Failures split in two. A verdict on the announced database (corrupt,
//! truncated, older, missing) is final for that announcement: it is reported
//! as [`FollowerEvent::Rejected`] and the current database is kept. A failure
//! to talk to NATS (server restarting, timeout) says nothing about the
//! database: it is reported as [`FollowerEvent::Unavailable`] and the task
//! starts over, with backoff, from the announcement current at that time. The
//! KV revision of the last announcement judged is remembered, so a restarted
//! watch does not judge (or report) the same announcement twice.

use crate::announce::{sha256_hex, Announcement};
use crate::buckets::{open_buckets, Buckets};
use crate::ANNOUNCE_KEY;
use async_nats::jetstream::kv::Operation;
use async_nats::jetstream::object_store::GetErrorKind;
use futures::StreamExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{broadcast, watch};
use trawl_vulndb::Database;

/// Shortest wait before retrying after NATS trouble.
const RETRY_MIN: Duration = Duration::from_millis(250);
/// Longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Events buffered for a slow [`DbFollower::events`] receiver before it lags.
const EVENT_BUFFER: usize = 64;

/// Limits and options of a [`DbFollower`].
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// Largest database file accepted, in bytes (the whole file is held in memory while verified).
    pub max_size: u64,
    /// Deadline for downloading one database.
    pub download_timeout: Duration,
    /// Longest wait for the next chunk of a download before giving up on it
    /// (and retrying): a stalled transfer should not take the whole deadline.
    pub stall_timeout: Duration,
    /// Where to keep a copy of each accepted database (written atomically), so
    /// a restarted scanner can start from it before NATS answers.
    pub cache_file: Option<PathBuf>,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        FollowerConfig {
            max_size: 2 << 30,
            download_timeout: Duration::from_secs(600),
            stall_timeout: Duration::from_secs(30),
            cache_file: None,
        }
    }
}

/// Something the follower did, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FollowerEvent {
    /// A newer database was verified and is now current.
    Loaded {
        /// Its version.
        version: u64,
    },
    /// An announced database was refused; the current one is kept.
    Rejected {
        /// The announced version (0 when the announcement could not be read).
        version: u64,
        /// Why.
        reason: RejectReason,
    },
    /// NATS could not be reached or failed mid-way; the follower retries.
    Unavailable {
        /// What failed.
        reason: String,
    },
}

/// Why an announced database was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    /// Not newer than the database in use.
    #[error("not newer than the current version {current}")]
    NotNewer {
        /// Version in use.
        current: u64,
    },
    /// The announcement is not valid JSON of the expected shape.
    #[error("malformed announcement: {0}")]
    BadAnnouncement(String),
    /// The announced size is over [`FollowerConfig::max_size`].
    #[error("announced size {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Announced size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The announced object is not in the bucket.
    #[error("object {0} is not in the bucket")]
    MissingObject(String),
    /// The object's size differs from the announcement's.
    #[error("object is {actual} bytes, the announcement says {announced}")]
    SizeMismatch {
        /// Announced size.
        announced: u64,
        /// Size found (or read so far).
        actual: u64,
    },
    /// The object's SHA-256 differs from the announcement's.
    #[error("SHA-256 mismatch: announced {announced}, downloaded {actual}")]
    ChecksumMismatch {
        /// Announced digest.
        announced: String,
        /// Digest of the downloaded bytes.
        actual: String,
    },
    /// The object store's own chunk digest failed while reading.
    #[error("object store reports a damaged object: {0}")]
    DamagedObject(String),
    /// The bytes match the announcement but are not a valid database.
    #[error("not a valid database: {0}")]
    InvalidDatabase(String),
    /// The database's header names another version than the announcement.
    #[error("database header says version {actual}, the announcement says {announced}")]
    VersionMismatch {
        /// Announced version.
        announced: u64,
        /// Version in the header.
        actual: u64,
    },
}

/// A snapshot of the follower for health checks and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowerState {
    /// Version of the current database, if any.
    pub version: Option<u64>,
    /// The most recent event.
    pub last_event: Option<FollowerEvent>,
    /// Databases loaded since start.
    pub loaded: u64,
    /// Announcements rejected since start.
    pub rejected: u64,
    /// True while the announcement watch is established.
    pub connected: bool,
}

/// A cheap, cloneable read handle on the follower's current database (for
/// scan workers that need nothing else).
#[derive(Debug, Clone)]
pub struct DbHandle {
    current: Arc<RwLock<Option<Arc<Database>>>>,
}

impl DbHandle {
    /// The current database; take it once per scan and keep it to the end.
    pub fn current(&self) -> Option<Arc<Database>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn version(&self) -> Option<u64> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).as_ref().map(|db| db.header().version)
    }

    fn swap(&self, db: Arc<Database>) {
        // Only the `Arc` moves under the lock; the old database is dropped
        // after the lock is released, when its last scan lets go of it.
        let old = self.current.write().unwrap_or_else(PoisonError::into_inner).replace(db);
        drop(old);
    }
}

/// Follows the announced database and swaps it in when a newer one verifies.
///
/// Dropping the follower stops its task; [`DbHandle`]s keep the last database.
pub struct DbFollower {
    handle: DbHandle,
    events: broadcast::Sender<FollowerEvent>,
    first_events: Mutex<Option<broadcast::Receiver<FollowerEvent>>>,
    state: watch::Receiver<FollowerState>,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for DbFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbFollower").field("state", &*self.state.borrow()).finish()
    }
}

impl DbFollower {
    /// Starts following on `client`'s server, with `initial` as the current
    /// database (e.g. one loaded from a local file); must be called within a
    /// Tokio runtime. The announcement current at start is processed first.
    pub fn start(client: async_nats::Client, initial: Option<Arc<Database>>, config: FollowerConfig) -> DbFollower {
        let version = initial.as_ref().map(|db| db.header().version);
        let handle = DbHandle { current: Arc::new(RwLock::new(initial)) };
        let (events, first) = broadcast::channel(EVENT_BUFFER);
        let (state_tx, state) = watch::channel(FollowerState { version, ..Default::default() });
        let worker = Worker {
            client,
            config,
            handle: handle.clone(),
            events: events.clone(),
            state: state_tx,
            last_revision: 0,
        };
        let task = tokio::spawn(worker.run()).abort_handle();
        DbFollower { handle, events, first_events: Mutex::new(Some(first)), state, task }
    }

    /// The current database; take it once per scan and keep it to the end.
    pub fn current(&self) -> Option<Arc<Database>> {
        self.handle.current()
    }

    /// A cloneable read handle for scan workers.
    pub fn handle(&self) -> DbHandle {
        self.handle.clone()
    }

    /// Every event from now on; the first call's receiver also holds the
    /// events since [`DbFollower::start`] (up to a buffer of 64).
    pub fn events(&self) -> broadcast::Receiver<FollowerEvent> {
        self.first_events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| self.events.subscribe())
    }

    /// The latest [`FollowerState`], updated after every event.
    pub fn state(&self) -> watch::Receiver<FollowerState> {
        self.state.clone()
    }

    /// Waits until there is a current database (immediately when there is one).
    pub async fn wait_for_database(&self) -> Arc<Database> {
        let mut state = self.state.clone();
        loop {
            if let Some(db) = self.current() {
                return db;
            }
            // The sender lives in the task, which runs until the follower is dropped.
            if state.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for DbFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The verdict on one announcement (a NATS failure is the `Err` beside it).
enum Outcome {
    Loaded(u64),
    Rejected(u64, RejectReason),
    AlreadyCurrent,
}

struct Worker {
    client: async_nats::Client,
    config: FollowerConfig,
    handle: DbHandle,
    events: broadcast::Sender<FollowerEvent>,
    state: watch::Sender<FollowerState>,
    /// KV revision of the last announcement judged (0: none yet).
    last_revision: u64,
}

impl Worker {
    async fn run(mut self) {
        let mut delay = RETRY_MIN;
        loop {
            let reason = match self.session(&mut delay).await {
                Ok(()) => "the announcement watch ended".to_string(),
                Err(reason) => reason,
            };
            self.state.send_modify(|s| s.connected = false);
            tracing::warn!(%reason, retry_in = ?delay, "vulnerability database feed unavailable; keeping the current database");
            self.emit(FollowerEvent::Unavailable { reason });
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    /// One watch from the current announcement on; returns on NATS failure.
    async fn session(&mut self, delay: &mut Duration) -> Result<(), String> {
        let buckets = open_buckets(self.client.clone()).await.map_err(|e| e.to_string())?;
        // Last value first, then every change: the start-up load and the
        // follow-up are one code path.
        let mut watch = buckets
            .announce
            .watch_with_history(ANNOUNCE_KEY)
            .await
            .map_err(|e| format!("watching the announcement: {e}"))?;
        self.state.send_modify(|s| s.connected = true);
        *delay = RETRY_MIN;
        let mut first = true;
        while let Some(entry) = watch.next().await {
            let entry = entry.map_err(|e| format!("watching the announcement: {e}"))?;
            if std::mem::take(&mut first) && entry.revision < self.last_revision {
                // Revisions only grow within a bucket: this one was deleted and made anew.
                tracing::info!(
                    revision = entry.revision,
                    "announcement bucket was recreated; following it from the start"
                );
                self.last_revision = 0;
            }
            if entry.revision <= self.last_revision {
                continue;
            }
            if entry.delta > 0 {
                // A newer announcement is already waiting: this one is superseded,
                // and its object may already be pruned.
                tracing::debug!(revision = entry.revision, "skipping a superseded announcement");
                self.last_revision = entry.revision;
                continue;
            }
            if entry.operation != Operation::Put {
                tracing::info!(revision = entry.revision, "announcement removed; keeping the current database");
                self.last_revision = entry.revision;
                continue;
            }
            let outcome = self.judge(&buckets, &entry.value).await?;
            self.last_revision = entry.revision;
            match outcome {
                Outcome::Loaded(version) => self.emit(FollowerEvent::Loaded { version }),
                Outcome::Rejected(version, reason) => {
                    tracing::warn!(version, %reason, current = ?self.handle.version(), "rejected announced vulnerability database; keeping the current one");
                    self.emit(FollowerEvent::Rejected { version, reason });
                }
                Outcome::AlreadyCurrent => {}
            }
        }
        Ok(())
    }

    /// Downloads, verifies and (when newer) swaps in the announced database.
    /// `Err` is a NATS failure: the announcement stays unjudged.
    async fn judge(&self, buckets: &Buckets, value: &[u8]) -> Result<Outcome, String> {
        let announcement = match Announcement::from_json(value) {
            Ok(a) => a,
            Err(e) => return Ok(Outcome::Rejected(0, RejectReason::BadAnnouncement(e.to_string()))),
        };
        let version = announcement.version;
        match self.handle.version() {
            Some(current) if current == version => {
                tracing::debug!(version, "announced vulnerability database is already current");
                return Ok(Outcome::AlreadyCurrent);
            }
            Some(current) if version < current => {
                return Ok(Outcome::Rejected(version, RejectReason::NotNewer { current }))
            }
            _ => {}
        }
        if announcement.size > self.config.max_size {
            let reason = RejectReason::TooLarge { size: announcement.size, limit: self.config.max_size };
            return Ok(Outcome::Rejected(version, reason));
        }
        let transfer = download(buckets, &announcement, self.config.stall_timeout);
        let bytes = match tokio::time::timeout(self.config.download_timeout, transfer).await {
            Err(_) => return Err(format!("downloading {} timed out", announcement.object)),
            Ok(Err(Download::Transient(reason))) => return Err(reason),
            Ok(Err(Download::Reject(reason))) => return Ok(Outcome::Rejected(version, reason)),
            Ok(Ok(bytes)) => bytes,
        };
        // Hashing and decompressing a large database is CPU-bound: off the async threads.
        let checked = tokio::task::spawn_blocking(move || verify(&announcement, &bytes).map(|db| (db, bytes)))
            .await
            .map_err(|e| format!("verification task failed: {e}"))?;
        let (db, bytes) = match checked {
            Ok(ok) => ok,
            Err(reason) => return Ok(Outcome::Rejected(version, reason)),
        };
        // Only this task swaps, so the version cannot have moved since the check above.
        let header = db.header().clone();
        self.handle.swap(Arc::new(db));
        tracing::info!(version, built_at = %header.built_at, advisories = header.counts.advisories, size = bytes.len(), "loaded vulnerability database");
        if let Some(path) = self.config.cache_file.clone() {
            let written =
                tokio::task::spawn_blocking(move || write_atomically(&path, &bytes).map_err(|e| (path, e))).await;
            if let Ok(Err((path, e))) = written {
                tracing::warn!(path = %path.display(), error = %e, "cannot keep a local copy of the vulnerability database");
            }
        }
        Ok(Outcome::Loaded(version))
    }

    fn emit(&self, event: FollowerEvent) {
        let version = self.handle.version();
        self.state.send_modify(|s| {
            s.version = version;
            match &event {
                FollowerEvent::Loaded { .. } => s.loaded += 1,
                FollowerEvent::Rejected { .. } => s.rejected += 1,
                FollowerEvent::Unavailable { .. } => {}
            }
            s.last_event = Some(event.clone());
        });
        // No receiver is fine: events are for whoever listens.
        let _ = self.events.send(event);
    }
}

enum Download {
    Reject(RejectReason),
    Transient(String),
}

/// Reads the announced object, never more than the announced size plus one
/// byte, giving up when no data arrives for `stall`.
async fn download(buckets: &Buckets, announcement: &Announcement, stall: Duration) -> Result<Vec<u8>, Download> {
    let name = &announcement.object;
    let mut object = match buckets.objects.get(name).await {
        Ok(object) => object,
        Err(e) if e.kind() == GetErrorKind::NotFound => {
            return Err(Download::Reject(RejectReason::MissingObject(name.clone())))
        }
        Err(e) if e.kind() == GetErrorKind::InvalidName => {
            return Err(Download::Reject(RejectReason::BadAnnouncement(format!("invalid object name {name:?}"))))
        }
        Err(e) => return Err(Download::Transient(format!("opening {name}: {e}"))),
    };
    let stored = object.info().size as u64;
    if stored != announcement.size {
        return Err(Download::Reject(RejectReason::SizeMismatch { announced: announcement.size, actual: stored }));
    }
    let mut bytes = Vec::with_capacity(announcement.size as usize);
    let mut limited = (&mut object).take(announcement.size + 1);
    let mut chunk = vec![0u8; 256 << 10];
    loop {
        match tokio::time::timeout(stall, limited.read(&mut chunk)).await {
            Err(_) => return Err(Download::Transient(format!("reading {name}: no data for {}s", stall.as_secs()))),
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
            // async-nats checks the object's own digest at the last chunk.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(Download::Reject(RejectReason::DamagedObject(e.to_string())))
            }
            Ok(Err(e)) => return Err(Download::Transient(format!("reading {name}: {e}"))),
        }
    }
    if bytes.len() as u64 != announcement.size {
        let actual = bytes.len() as u64;
        return Err(Download::Reject(RejectReason::SizeMismatch { announced: announcement.size, actual }));
    }
    Ok(bytes)
}

/// Checks the bytes against the announcement and loads them.
fn verify(announcement: &Announcement, bytes: &[u8]) -> Result<Database, RejectReason> {
    let actual = sha256_hex(bytes);
    if !actual.eq_ignore_ascii_case(&announcement.sha256) {
        return Err(RejectReason::ChecksumMismatch { announced: announcement.sha256.clone(), actual });
    }
    let db =
        Database::from_bytes(bytes, &announcement.object).map_err(|e| RejectReason::InvalidDatabase(e.to_string()))?;
    if db.header().version != announcement.version {
        return Err(RejectReason::VersionMismatch { announced: announcement.version, actual: db.header().version });
    }
    Ok(db)
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, so a reader never sees a partial file.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
