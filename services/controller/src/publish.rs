//! Putting scan tasks on the `TRAWL_TASKS` work queue.
//!
//! Every task is published with a `Nats-Msg-Id` of registry + manifest
//! digest, so JetStream itself collapses duplicates within the stream's
//! one-hour window: two controllers crawling the same registry at once, or
//! a crawl repeated while its tasks are still queued, store each image once.

use async_nats::jetstream::{self, context::PublishErrorKind};
use async_nats::HeaderMap;
use futures::stream::{self, StreamExt};
use trawl_protocol::task::CONTENT_TYPE_MSGPACK;
use trawl_protocol::ScanTask;

/// Publishes acknowledged at once; bounds memory and the server's pending acks.
const IN_FLIGHT: usize = 256;

/// Why a task could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The task did not encode.
    #[error(transparent)]
    Encode(#[from] trawl_protocol::ProtocolError),
    /// JetStream did not store it.
    #[error("queueing {reference}: {reason}")]
    Nats {
        /// The image.
        reference: String,
        /// What failed.
        reason: String,
    },
}

/// What happened to one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Stored at this stream sequence.
    New(u64),
    /// Already queued within the duplicate window: not stored again.
    Duplicate,
}

/// Counts of a batch of publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishCounts {
    /// Newly queued.
    pub queued: usize,
    /// Collapsed into a task already queued.
    pub duplicates: usize,
}

/// Publishes scan tasks with their dedupe ids.
#[derive(Clone)]
pub struct TaskPublisher {
    js: jetstream::Context,
    /// New tasks by lane (`trawl_tasks_published_total`), when counted.
    published: Option<prometheus::IntCounterVec>,
}

impl TaskPublisher {
    /// A publisher on `js`.
    pub fn new(js: jetstream::Context) -> TaskPublisher {
        TaskPublisher { js, published: None }
    }

    /// The same publisher, counting new tasks by lane in `published`.
    pub fn counting(mut self, published: prometheus::IntCounterVec) -> TaskPublisher {
        self.published = Some(published);
        self
    }

    /// Queues one task and waits until JetStream has stored it.
    pub async fn publish(&self, task: &ScanTask) -> Result<Queued, PublishError> {
        self.publish_with_id(task, &task.msg_id()).await
    }

    /// Queues one task under an explicit dedupe id.
    async fn publish_with_id(&self, task: &ScanTask, msg_id: &str) -> Result<Queued, PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        headers.insert("Content-Type", CONTENT_TYPE_MSGPACK);
        let failed =
            |e: &dyn std::fmt::Display| PublishError::Nats { reference: task.reference.clone(), reason: e.to_string() };
        let ack = self
            .js
            .publish_with_headers(task.lane.subject(), headers, task.encode()?.into())
            .await
            .map_err(|e| match e.kind() {
                PublishErrorKind::StreamNotFound => PublishError::Nats {
                    reference: task.reference.clone(),
                    reason: "no TRAWL_TASKS stream (the controller creates it at start-up)".into(),
                },
                _ => failed(&e),
            })?
            .await
            .map_err(|e| failed(&e))?;
        if ack.duplicate {
            return Ok(Queued::Duplicate);
        }
        if let Some(published) = &self.published {
            published.with_label_values(&[task.lane.name()]).inc();
        }
        Ok(Queued::New(ack.sequence))
    }

    /// Queues many tasks, several in flight at once; returns the counts and the failures.
    pub async fn publish_all(&self, tasks: Vec<ScanTask>) -> (PublishCounts, Vec<PublishError>) {
        self.publish_all_with(tasks, ScanTask::msg_id).await
    }

    /// [`TaskPublisher::publish_all`] with dedupe ids from `msg_id`.
    pub async fn publish_all_with(
        &self,
        tasks: Vec<ScanTask>,
        msg_id: impl Fn(&ScanTask) -> String,
    ) -> (PublishCounts, Vec<PublishError>) {
        // Owned tasks and publisher per future: borrowed ones trip the
        // compiler's Send check once the crawl runs in a spawned task.
        let outcomes: Vec<Result<Queued, PublishError>> = stream::iter(tasks)
            .map(|t| {
                let id = msg_id(&t);
                let this = self.clone();
                async move { this.publish_with_id(&t, &id).await }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut counts = PublishCounts::default();
        let mut errors = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(Queued::New(_)) => counts.queued += 1,
                Ok(Queued::Duplicate) => counts.duplicates += 1,
                Err(e) => errors.push(e),
            }
        }
        (counts, errors)
    }
}
