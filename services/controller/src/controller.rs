//! The controller's operations, shared by the API, the scheduler and the
//! binary: crawling a registry into tasks (a *sweep*), queueing one image
//! on demand, and reporting the queue.

use crate::publish::{PublishCounts, Queued, TaskPublisher};
use crate::registry::{self, ImageFilter, RegistryClient};
use crate::storage::{ImageStatus, Storage, StorageError};
use async_nats::jetstream;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use trawl_protocol::buckets::{tag_key, CONTROL_BUCKET};
use trawl_protocol::registry::RescanPolicy;
use trawl_protocol::{Lane, RegistryConfig, ScanTask, DEAD_STREAM, TASKS_STREAM};

/// Tags resolved at once during a crawl.
const CRAWL_CONCURRENCY: usize = 8;

/// Why an operation failed; the API maps each kind to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such registry configuration.
    #[error("no registry named {0:?}: add it with POST /api/v1/registries")]
    UnknownRegistry(String),
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The registry could not be crawled.
    #[error("crawling registry {registry}: {source}")]
    Crawl {
        /// Registry name.
        registry: String,
        /// What failed.
        #[source]
        source: registry::CrawlError,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// NATS failed.
    #[error("{0}")]
    Nats(String),
}

/// What one crawl did (kept in `TRAWL_CONTROL` as `crawl.<registry>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrawlReport {
    /// Registry name.
    pub registry: String,
    /// RFC 3339 start.
    pub started_at: String,
    /// RFC 3339 end.
    pub finished_at: String,
    /// Tags found that the filters want.
    pub tags: usize,
    /// Distinct manifest digests among them.
    pub images: usize,
    /// Tasks newly queued.
    pub queued: usize,
    /// Tasks that were already queued (collapsed by the stream's dedupe).
    pub duplicates: usize,
    /// Images skipped: already scanned with the current database.
    pub skipped: usize,
    /// Tags no longer in the registry, forgotten.
    pub pruned: usize,
    /// Repositories or tags that could not be read, and tasks that could not be queued.
    pub errors: Vec<String>,
}

/// Depth of one lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LaneDepth {
    /// Waiting for a scanner.
    pub pending: u64,
    /// Taken by a scanner, not yet acked.
    pub in_flight: u64,
    /// Redelivered at least once and still unfinished.
    pub redelivered: u64,
}

/// The queue as `GET /api/v1/queue` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    /// Messages in the task stream: pending plus in flight — the autoscaler's task count.
    pub depth: u64,
    /// Per lane.
    pub lanes: BTreeMap<String, LaneDepth>,
    /// Results waiting to be stored.
    pub results_pending: u64,
    /// Dead letters kept.
    pub dead_letters: u64,
}

/// An image queued on demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnDemand {
    /// The task as queued.
    pub task: ScanTask,
    /// False when the same image was already queued (the stream collapsed it).
    pub queued: bool,
}

/// The shared context of every controller operation.
#[derive(Clone)]
pub struct Controller {
    js: jetstream::Context,
    storage: Storage,
    publisher: TaskPublisher,
    control: jetstream::kv::Store,
}

impl Controller {
    /// A controller on `js` with `storage`, counting the tasks it publishes in `published`.
    pub async fn new(
        js: jetstream::Context,
        storage: Storage,
        published: prometheus::IntCounterVec,
    ) -> Result<Controller, ControlError> {
        let control = js
            .get_key_value(CONTROL_BUCKET)
            .await
            .map_err(|e| ControlError::Nats(format!("opening {CONTROL_BUCKET}: {e}")))?;
        Ok(Controller { publisher: TaskPublisher::new(js.clone()).counting(published), js, storage, control })
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The version of the database scanners currently match with, from its announcement.
    pub async fn current_db_version(&self) -> Option<u64> {
        let announce = self.js.get_key_value(trawl_dbdist::ANNOUNCE_BUCKET).await.ok()?;
        let value = announce.get(trawl_dbdist::ANNOUNCE_KEY).await.ok()??;
        trawl_dbdist::Announcement::from_json(&value).ok().map(|a| a.version)
    }

    /// Crawls `name` and queues a bulk task for every image that needs one.
    pub async fn sweep(&self, name: &str) -> Result<CrawlReport, ControlError> {
        let config = self.registry(name)?;
        let started_at = now();
        let crawl_error = |source| ControlError::Crawl { registry: name.to_string(), source };
        let client = RegistryClient::new(&config).map_err(crawl_error)?;
        let filter = ImageFilter::new(&config).map_err(crawl_error)?;
        let outcome = registry::crawl(&client, &filter, CRAWL_CONCURRENCY).await.map_err(crawl_error)?;
        let mut report =
            CrawlReport { registry: name.to_string(), started_at, tags: outcome.images.len(), ..Default::default() };
        report.errors = outcome.errors.iter().map(|p| p.to_string()).collect();

        // Tags first, so the registry's counts include an image from the moment it is queued.
        let keep: HashSet<String> = outcome.images.iter().map(|i| tag_key(name, &i.repository, &i.tag)).collect();
        let tag_results: Vec<Result<(), StorageError>> = stream::iter(outcome.images.clone())
            .map(|i| {
                let (storage, name) = (self.storage.clone(), name.to_string());
                async move { storage.put_tag(&name, &i.repository, &i.tag, &i.digest).await }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        for e in tag_results.into_iter().filter_map(Result::err) {
            report.errors.push(e.to_string());
        }
        // A failed listing of one repository must not forget its tags.
        if outcome.errors.is_empty() {
            report.pruned = self.storage.prune_tags(name, &keep).await?;
        }

        let mut by_digest: BTreeMap<&str, &registry::ResolvedTag> = BTreeMap::new();
        for image in &outcome.images {
            by_digest.entry(image.digest.as_str()).or_insert(image);
        }
        report.images = by_digest.len();
        let current_db = self.current_db_version().await;
        let mut tasks = Vec::new();
        for (digest, image) in by_digest {
            if config.rescan == RescanPolicy::Missing && self.has_current_result(digest, current_db) {
                report.skipped += 1;
                continue;
            }
            let reference = format!("{}/{}@{}", config.host(), image.repository, digest);
            let mut task = ScanTask::new(name, &reference, Some(digest), Lane::Bulk, "sweep");
            if config.rescan == RescanPolicy::Always {
                // A new id per crawl, so the dedupe window does not swallow the rescan.
                task.reason = format!("rescan {}", report.started_at);
            }
            tasks.push(task);
        }
        let (counts, errors) = self.publish_tasks(tasks, config.rescan == RescanPolicy::Always).await;
        report.queued = counts.queued;
        report.duplicates = counts.duplicates;
        report.errors.extend(errors);
        report.finished_at = now();
        self.save_crawl(&report).await;
        tracing::info!(
            registry = name,
            tags = report.tags,
            images = report.images,
            queued = report.queued,
            skipped = report.skipped,
            duplicates = report.duplicates,
            errors = report.errors.len(),
            "crawl finished"
        );
        Ok(report)
    }

    async fn publish_tasks(&self, tasks: Vec<ScanTask>, per_crawl_ids: bool) -> (PublishCounts, Vec<String>) {
        let (counts, errors) = if per_crawl_ids {
            self.publisher.publish_all_with(tasks, |t| format!("{}|{}", t.msg_id(), t.reason)).await
        } else {
            self.publisher.publish_all(tasks).await
        };
        (counts, errors.into_iter().map(|e| e.to_string()).collect())
    }

    /// Whether `digest` has a successful result from the current database (or any, when none is announced).
    fn has_current_result(&self, digest: &str, current_db: Option<u64>) -> bool {
        self.storage.read(|m| {
            m.images.get(digest).is_some_and(|r| {
                r.status == ImageStatus::Scanned && current_db.is_none_or(|db| r.db_version.is_some_and(|v| v >= db))
            })
        })
    }

    /// The configuration named `name`.
    pub fn registry(&self, name: &str) -> Result<RegistryConfig, ControlError> {
        self.storage
            .read(|m| m.registries.get(name).cloned())
            .ok_or_else(|| ControlError::UnknownRegistry(name.to_string()))
    }

    /// The last crawl of `name`, from any controller.
    pub async fn last_crawl(&self, name: &str) -> Option<CrawlReport> {
        let value = self.control.get(format!("crawl.{}", trawl_protocol::buckets::escape_key(name))).await.ok()??;
        serde_json::from_slice(&value).ok()
    }

    async fn save_crawl(&self, report: &CrawlReport) {
        let key = format!("crawl.{}", trawl_protocol::buckets::escape_key(&report.registry));
        if let Ok(json) = serde_json::to_vec(report) {
            if let Err(e) = self.control.put(key, json.into()).await {
                tracing::warn!("saving the crawl report: {e}");
            }
        }
    }

    /// Queues one image on the high lane now. `reference` is `host/repo:tag`
    /// or `host/repo@digest`; the registry is the configuration whose host
    /// matches (or `registry`, when given).
    pub async fn scan_now(&self, reference: &str, registry: Option<&str>) -> Result<OnDemand, ControlError> {
        let name = trawl_report::imageref::ImageName::parse(reference).ok_or_else(|| {
            ControlError::Invalid(format!(
                "{reference:?} is not an image reference: write host/repository:tag or host/repository@sha256:…"
            ))
        })?;
        let config = match registry {
            Some(r) => Some(self.registry(r)?),
            None => self.storage.read(|m| m.registries.values().find(|c| c.host() == name.registry).cloned()),
        };
        let registry_name = config.as_ref().map(|c| c.name.clone()).unwrap_or_default();
        let digest = match (&name.digest, &name.tag, &config) {
            (Some(d), _, _) => Some(d.clone()),
            (None, Some(tag), Some(config)) => {
                let crawl_error = |source| ControlError::Crawl { registry: config.name.clone(), source };
                let client = RegistryClient::new(config).map_err(crawl_error)?;
                let resolved = client.resolve(&name.repository, tag).await.map_err(crawl_error)?;
                self.storage.put_tag(&config.name, &name.repository, tag, &resolved.digest).await?;
                Some(resolved.digest)
            }
            // An unconfigured registry: the scanner resolves the tag itself.
            (None, _, None) | (None, None, Some(_)) => None,
        };
        let reference = match &digest {
            Some(d) => format!("{}/{}@{}", name.registry, name.repository, d),
            None => reference.to_string(),
        };
        let task = ScanTask::new(&registry_name, &reference, digest.as_deref(), Lane::High, "on-demand");
        let queued = self.publisher.publish(&task).await.map_err(|e| ControlError::Nats(e.to_string()))?;
        Ok(OnDemand { queued: matches!(queued, Queued::New(_)), task })
    }

    /// The queue's depth by lane.
    pub async fn queue_status(&self) -> Result<QueueStatus, ControlError> {
        let nats = |e: &dyn std::fmt::Display| ControlError::Nats(format!("reading the queue: {e}"));
        let mut tasks = self.js.get_stream(TASKS_STREAM).await.map_err(|e| nats(&e))?;
        let mut status =
            QueueStatus { depth: tasks.info().await.map_err(|e| nats(&e))?.state.messages, ..Default::default() };
        for lane in Lane::ALL {
            let mut consumer: jetstream::consumer::PullConsumer =
                tasks.get_consumer(lane.consumer()).await.map_err(|e| nats(&e))?;
            let info = consumer.info().await.map_err(|e| nats(&e))?;
            status.lanes.insert(
                lane.name().to_string(),
                LaneDepth {
                    pending: info.num_pending,
                    in_flight: info.num_ack_pending as u64,
                    redelivered: info.num_redelivered as u64,
                },
            );
        }
        if let Ok(mut results) = self.js.get_stream(trawl_protocol::RESULTS_STREAM).await {
            status.results_pending = results.info().await.map(|i| i.state.messages).unwrap_or_default();
        }
        if let Ok(mut dead) = self.js.get_stream(DEAD_STREAM).await {
            status.dead_letters = dead.info().await.map(|i| i.state.messages).unwrap_or_default();
        }
        Ok(status)
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
