//! Draining the results stream into admission-control storage.
//!
//! Results wait in the `TRAWL_RESULTS` work queue until a controller has
//! stored them; only then is the message acked, so a controller that dies
//! mid-way loses nothing (the result is redelivered, and storing it again
//! changes nothing). Several controller replicas share the one durable
//! consumer and so split the results between them.

use crate::storage::{Storage, StoreOutcome};
use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use trawl_protocol::{ScanResult, RESULTS_STREAM};

/// Results taken per pull.
const BATCH: usize = 256;
/// Results stored at once.
const PARALLEL: usize = 32;

/// Counters of the ingester, for the API and metrics.
#[derive(Debug, Default)]
pub struct IngestCounters {
    /// Results stored (new or newer records).
    pub stored: AtomicU64,
    /// Results that repeated a stored one.
    pub kept: AtomicU64,
    /// Messages that were not valid results (terminated).
    pub rejected: AtomicU64,
    /// Failed results among the stored ones.
    pub failed: AtomicU64,
}

/// Stores results as they arrive.
pub struct ResultIngester {
    consumer: PullConsumer,
    storage: Storage,
    counters: Arc<IngestCounters>,
}

impl ResultIngester {
    /// Binds to the `controller` consumer of the results stream.
    pub async fn new(js: &jetstream::Context, storage: Storage, counters: Arc<IngestCounters>) -> anyhow::Result<Self> {
        let consumer = js
            .get_consumer_from_stream("controller", RESULTS_STREAM)
            .await
            .map_err(|e| anyhow::anyhow!("binding to the results consumer: {e}"))?;
        Ok(ResultIngester { consumer, storage, counters })
    }

    /// Runs until `shutdown` resolves; survives NATS outages by retrying.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let batch = self.consumer.fetch().max_messages(BATCH).expires(Duration::from_secs(1)).messages();
            let batch = tokio::select! {
                b = batch => b,
                _ = shutdown.changed() => return,
            };
            let messages = match batch {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("pulling results: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let messages: Vec<_> = messages.collect().await;
            if messages.is_empty() {
                // fetch() returns at once on an empty stream; wait for work with a blocking pull.
                let next = self.consumer.batch().max_messages(BATCH).expires(Duration::from_secs(2)).messages();
                let more = tokio::select! { b = next => b, _ = shutdown.changed() => return };
                if let Ok(stream) = more {
                    let waited: Vec<_> = stream.collect().await;
                    self.store_all(waited).await;
                }
                continue;
            }
            self.store_all(messages).await;
        }
    }

    async fn store_all(&self, messages: Vec<Result<jetstream::Message, async_nats::Error>>) {
        futures::stream::iter(messages.into_iter().flatten())
            .for_each_concurrent(PARALLEL, |msg| async move { self.store_one(msg).await })
            .await;
    }

    async fn store_one(&self, msg: jetstream::Message) {
        let result = match ScanResult::decode(&msg.payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(subject = %msg.subject, "not a scan result, dropped: {e}");
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                let _ = msg.ack_with(AckKind::Term).await;
                return;
            }
        };
        match self.storage.store_result(&result, &msg.payload).await {
            Ok(outcome) => {
                let counter = match outcome {
                    StoreOutcome::Stored => &self.counters.stored,
                    StoreOutcome::Kept | StoreOutcome::NotAnImage => &self.counters.kept,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if outcome == StoreOutcome::Stored && result.failure.is_some() {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                }
                if outcome == StoreOutcome::NotAnImage {
                    tracing::info!(subject = %msg.subject, "result without an image digest (host scan): not kept for admission control");
                }
                if let Err(e) = msg.ack().await {
                    tracing::warn!("acking a stored result: {e} (it will be stored again, harmlessly)");
                }
            }
            Err(e) => {
                tracing::warn!("storing a result: {e}; it will be retried");
                let _ = msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
}
