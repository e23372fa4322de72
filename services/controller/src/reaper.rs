//! Reaping tasks that reached MaxDeliver.
//!
//! When scanners keep dying on a task (an image that crashes or hangs the
//! scanner), JetStream stops redelivering it after MaxDeliver attempts but,
//! in a work-queue stream, keeps the message — the stream depth, which the
//! autoscaler follows, would count it forever. The server announces it on
//! `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.…`; the reaper answers each
//! advisory with a failed result (kind `abandoned`) and a dead letter, then
//! deletes the message. Controller replicas share the advisories through a
//! queue group, so each is handled once.

use async_nats::jetstream::{self, message::PublishMessage as Publish};
use futures::StreamExt;
use serde::Deserialize;
use trawl_protocol::{
    result_msg_id, DeadLetter, FailureKind, ScanFailure, ScanResult, ScanTask, ScannerInfo, TASKS_STREAM,
};

/// Advisory subject for the task stream's consumers.
pub const MAX_DELIVERIES_SUBJECT: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.TRAWL_TASKS.*";

/// The fields of a max-deliveries advisory the reaper uses.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
    consumer: String,
}

/// Answers max-deliveries advisories.
pub struct Reaper {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Tasks reaped so far.
    pub reaped: prometheus::IntCounter,
}

impl Reaper {
    /// A reaper on `client`.
    pub fn new(client: async_nats::Client, reaped: prometheus::IntCounter) -> Reaper {
        let js = jetstream::new(client.clone());
        Reaper { client, js, reaped }
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut advisories = self
            .client
            .queue_subscribe(MAX_DELIVERIES_SUBJECT, "trawl-controller".into())
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to max-delivery advisories: {e}"))?;
        loop {
            let msg = tokio::select! {
                m = advisories.next() => match m { Some(m) => m, None => return Ok(()) },
                _ = shutdown.changed() => return Ok(()),
            };
            let advisory: MaxDeliveries = match serde_json::from_slice(&msg.payload) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("unreadable max-deliveries advisory: {e}");
                    continue;
                }
            };
            if let Err(e) = self.reap(&advisory).await {
                tracing::warn!(sequence = advisory.stream_seq, "reaping an abandoned task: {e}");
            }
        }
    }

    async fn reap(&self, advisory: &MaxDeliveries) -> anyhow::Result<()> {
        let stream = self.js.get_stream(TASKS_STREAM).await?;
        let raw = match stream.get_raw_message(advisory.stream_seq).await {
            Ok(m) => m,
            // Already gone: a scanner acked or terminated it after all.
            Err(_) => return Ok(()),
        };
        let content_type = raw.headers.get("Content-Type").map(|v| v.as_str().to_string());
        let task = ScanTask::decode(&raw.payload, content_type.as_deref()).ok();
        let failure = ScanFailure {
            kind: FailureKind::Abandoned,
            message: format!(
                "no scanner finished this task in {} deliveries (consumer {}): scanners crashed, hung or were stopped while scanning it",
                advisory.deliveries, advisory.consumer
            ),
            attempts: advisory.deliveries,
        };
        let letter = DeadLetter::new(
            task.clone(),
            &raw.payload,
            &raw.subject,
            advisory.stream_seq,
            failure.clone(),
            "controller",
        );
        if let Some(task) = task {
            let scanner = ScannerInfo {
                name: "controller".into(),
                mode: "reaper".into(),
                advertised_addr: None,
                version: env!("CARGO_PKG_VERSION").into(),
            };
            let result = ScanResult::failed(scanner, task, failure);
            let publish = Publish::build()
                .payload(result.encode()?.into())
                .message_id(result_msg_id(advisory.stream_seq))
                .header("Content-Type", "application/msgpack+zstd");
            self.js.send_publish(result.subject(), publish).await?.await?;
        }
        let publish = Publish::build()
            .payload(letter.encode().into())
            .message_id(letter.msg_id())
            .header("Content-Type", "application/json");
        self.js.send_publish(letter.subject(), publish).await?.await?;
        stream.delete_message(advisory.stream_seq).await?;
        self.reaped.inc();
        tracing::warn!(
            sequence = advisory.stream_seq,
            deliveries = advisory.deliveries,
            "task abandoned after its last delivery: dead-lettered"
        );
        Ok(())
    }
}
