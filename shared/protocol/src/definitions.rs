//! The JetStream objects of `nats/` (streams, consumers, and the streams
//! behind the key-value and object-store buckets), embedded at
//! build time so that every service creates exactly what the files say —
//! the files stay the one source of truth, and they are also the `nats`
//! CLI's `--config` files for operators.
//!
//! [`ensure_stream`] and [`ensure_consumer`] create an object or bring an
//! existing one up to date, so services can call them at every start-up.
//!
//! The files say one replica, right for a single server. A JetStream cluster
//! keeps each stream on as many servers as its replica count, so a cluster
//! deployment overrides that one field ([`ensure_all_with_replicas`], the
//! controller's `--stream-replicas`) rather than keeping a second set of
//! files that would drift. Consumers carry no replica count of their own:
//! they inherit their stream's.

use async_nats::jetstream::{self, consumer, stream};

/// Streams: (name, file contents). Key-value buckets are the streams
/// `KV_<bucket>` and object stores `OBJ_<bucket>`, as JetStream stores them;
/// `nats stream add --config nats/kv/<bucket>.json` creates a bucket the
/// `nats kv` commands then use.
pub const STREAMS: &[(&str, &str)] = &[
    ("TRAWL_TASKS", include_str!("../../../nats/streams/TRAWL_TASKS.json")),
    ("TRAWL_RESULTS", include_str!("../../../nats/streams/TRAWL_RESULTS.json")),
    ("TRAWL_DEAD", include_str!("../../../nats/streams/TRAWL_DEAD.json")),
    ("KV_TRAWL_IMAGES", include_str!("../../../nats/kv/TRAWL_IMAGES.json")),
    ("KV_TRAWL_TAGS", include_str!("../../../nats/kv/TRAWL_TAGS.json")),
    ("KV_TRAWL_REPORTS", include_str!("../../../nats/kv/TRAWL_REPORTS.json")),
    ("KV_TRAWL_REGISTRIES", include_str!("../../../nats/kv/TRAWL_REGISTRIES.json")),
    ("KV_TRAWL_SCANNERS", include_str!("../../../nats/kv/TRAWL_SCANNERS.json")),
    ("KV_TRAWL_LAYERS", include_str!("../../../nats/kv/TRAWL_LAYERS.json")),
    ("KV_TRAWL_CONTROL", include_str!("../../../nats/kv/TRAWL_CONTROL.json")),
    ("KV_TRAWL_SETTINGS", include_str!("../../../nats/kv/TRAWL_SETTINGS.json")),
    ("KV_TRAWL_LEADER", include_str!("../../../nats/kv/TRAWL_LEADER.json")),
    ("KV_TRAWL_DB_ANNOUNCE", include_str!("../../../nats/kv/TRAWL_DB_ANNOUNCE.json")),
    ("OBJ_TRAWL_LARGE_REPORTS", include_str!("../../../nats/objects/TRAWL_LARGE_REPORTS.json")),
    ("OBJ_TRAWL_DB", include_str!("../../../nats/objects/TRAWL_DB.json")),
];

/// Consumers: (stream, durable name, file contents).
pub const CONSUMERS: &[(&str, &str, &str)] = &[
    ("TRAWL_TASKS", "scanners-high", include_str!("../../../nats/consumers/TRAWL_TASKS-scanners-high.json")),
    ("TRAWL_TASKS", "scanners-bulk", include_str!("../../../nats/consumers/TRAWL_TASKS-scanners-bulk.json")),
    ("TRAWL_RESULTS", "controller", include_str!("../../../nats/consumers/TRAWL_RESULTS-controller.json")),
];

/// Why a definition could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// No file defines this object.
    #[error("no definition for {0} in nats/")]
    Unknown(String),
    /// The embedded file does not parse (a build with a broken nats/ file).
    #[error("nats/ definition of {name} is not valid: {source}")]
    Parse {
        /// Object name.
        name: String,
        /// Parser error.
        #[source]
        source: serde_json::Error,
    },
    /// A replica count JetStream cannot hold.
    #[error("{0} stream replicas asked for: JetStream allows 1 to 5 (and no more than the cluster's servers)")]
    Replicas(usize),
    /// The server refused to create or update the object.
    #[error("JetStream refused {name}: {reason}")]
    Server {
        /// Object name.
        name: String,
        /// The server's answer.
        reason: String,
    },
}

/// The configuration of stream `name` from its file.
pub fn stream_config(name: &str) -> Result<stream::Config, DefinitionError> {
    let (_, json) = STREAMS.iter().find(|(n, _)| *n == name).ok_or_else(|| DefinitionError::Unknown(name.into()))?;
    serde_json::from_str(json).map_err(|source| DefinitionError::Parse { name: name.into(), source })
}

/// The configuration of consumer `durable` on `stream` from its file.
pub fn consumer_config(stream: &str, durable: &str) -> Result<consumer::pull::Config, DefinitionError> {
    let label = format!("{stream}/{durable}");
    let (_, _, json) = CONSUMERS
        .iter()
        .find(|(s, d, _)| *s == stream && *d == durable)
        .ok_or_else(|| DefinitionError::Unknown(label.clone()))?;
    serde_json::from_str(json).map_err(|source| DefinitionError::Parse { name: label, source })
}

/// The most replicas JetStream allows a stream.
pub const MAX_REPLICAS: usize = 5;

/// Creates stream `name` as its file defines it, or updates an existing one to match.
pub async fn ensure_stream(js: &jetstream::Context, name: &str) -> Result<stream::Stream, DefinitionError> {
    ensure_stream_with_replicas(js, name, None).await
}

/// Like [`ensure_stream`], with `replicas` (when given) in place of the file's
/// replica count. An existing stream is updated to it: JetStream adds or
/// removes peers in place, keeping the messages.
pub async fn ensure_stream_with_replicas(
    js: &jetstream::Context,
    name: &str,
    replicas: Option<usize>,
) -> Result<stream::Stream, DefinitionError> {
    let mut config = stream_config(name)?;
    if let Some(replicas) = replicas {
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(DefinitionError::Replicas(replicas));
        }
        config.num_replicas = replicas;
    }
    let refused = |e: &dyn std::fmt::Display| DefinitionError::Server { name: name.into(), reason: e.to_string() };
    if js.get_stream(name).await.is_ok() {
        js.update_stream(&config).await.map_err(|e| refused(&e))?;
        return js.get_stream(name).await.map_err(|e| refused(&e));
    }
    js.create_stream(config).await.map_err(|e| refused(&e))
}

/// Creates consumer `durable` on `stream` as its file defines it (or updates it).
pub async fn ensure_consumer(
    js: &jetstream::Context,
    stream: &str,
    durable: &str,
) -> Result<consumer::PullConsumer, DefinitionError> {
    let config = consumer_config(stream, durable)?;
    let label = format!("{stream}/{durable}");
    let refused = |e: &dyn std::fmt::Display| DefinitionError::Server { name: label.clone(), reason: e.to_string() };
    let handle = js.get_stream(stream).await.map_err(|e| refused(&e))?;
    handle.create_consumer(config).await.map_err(|e| refused(&e))
}

/// Creates or updates every stream and consumer of `nats/`: what the
/// controller does at start-up, so that the cluster matches the files.
pub async fn ensure_all(js: &jetstream::Context) -> Result<(), DefinitionError> {
    ensure_all_with_replicas(js, None).await
}

/// Like [`ensure_all`], with every stream (and so every consumer and bucket)
/// at `replicas` copies when given: 3 on a three-node cluster.
pub async fn ensure_all_with_replicas(js: &jetstream::Context, replicas: Option<usize>) -> Result<(), DefinitionError> {
    for (name, _) in STREAMS {
        ensure_stream_with_replicas(js, name, replicas).await?;
    }
    for (stream, durable, _) in CONSUMERS {
        ensure_consumer(js, stream, durable).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_parses_and_names_itself() {
        for (name, _) in STREAMS {
            assert_eq!(stream_config(name).unwrap().name, *name);
        }
        for (stream, durable, _) in CONSUMERS {
            assert_eq!(consumer_config(stream, durable).unwrap().durable_name.as_deref(), Some(*durable));
        }
        assert!(matches!(stream_config("NOPE"), Err(DefinitionError::Unknown(_))));
    }

    #[test]
    fn consumers_inherit_their_streams_replicas() {
        // A replica count in a consumer file would pin it below an R3 stream's.
        for (stream, durable, _) in CONSUMERS {
            assert_eq!(consumer_config(stream, durable).unwrap().num_replicas, 0, "{stream}/{durable}");
        }
    }

    #[test]
    fn task_lanes_do_not_overlap() {
        // A work-queue stream rejects consumers whose filters overlap.
        let lanes: Vec<String> = CONSUMERS
            .iter()
            .filter(|(s, _, _)| *s == "TRAWL_TASKS")
            .map(|(s, d, _)| consumer_config(s, d).unwrap().filter_subject)
            .collect();
        assert_eq!(lanes, ["trawl.tasks.high", "trawl.tasks.bulk"]);
        assert_eq!(stream_config("TRAWL_TASKS").unwrap().subjects, lanes);
    }
}
