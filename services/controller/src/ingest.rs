//! Draining the results stream into admission-control storage.
//!
//! Results wait in the `TRAWL_RESULTS` work queue until a controller has
//! stored them; only then is the message acked, so a controller that dies
//! mid-way loses nothing (the result is redelivered, and storing it again
//! changes nothing). Several controller replicas share the one durable
//! consumer and so split the results between them.

use crate::metrics::ControllerMetrics;
use crate::storage::{Storage, StoreOutcome};
use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use futures::StreamExt;
use std::time::Duration;
use trawl_protocol::{ScanResult, RESULTS_STREAM};

/// Results taken per pull.
const BATCH: usize = 256;
/// Results stored at once.
const PARALLEL: usize = 32;

/// Stores results as they arrive.
pub struct ResultIngester {
    consumer: PullConsumer,
    storage: Storage,
    metrics: ControllerMetrics,
}

impl ResultIngester {
    /// Binds to the `controller` consumer of the results stream.
    pub async fn new(js: &jetstream::Context, storage: Storage, metrics: ControllerMetrics) -> anyhow::Result<Self> {
        let consumer = js
            .get_consumer_from_stream("controller", RESULTS_STREAM)
            .await
            .map_err(|e| anyhow::anyhow!("binding to the results consumer: {e}"))?;
        Ok(ResultIngester { consumer, storage, metrics })
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
                self.metrics.results_rejected.inc();
                let _ = msg.ack_with(AckKind::Term).await;
                return;
            }
        };
        match self.storage.store_result(&result, &msg.payload).await {
            Ok(outcome) => {
                match outcome {
                    StoreOutcome::Stored => {
                        let status = if result.failure.is_some() { "failed" } else { "scanned" };
                        self.metrics.results_stored.with_label_values(&[status]).inc();
                    }
                    StoreOutcome::Kept | StoreOutcome::NotAnImage => self.metrics.results_repeated.inc(),
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
