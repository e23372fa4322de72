//! Scan tasks: what the controller puts on the `TRAWL_TASKS` work queue, one
//! per image, and a scanner takes off it.
//!
//! A task names an image, not how to log in to its registry: credentials
//! never travel on the queue. Scanners hold the registries' credentials
//! themselves, looked up by [`ScanTask::registry`].
//!
//! On the wire a task is MessagePack with field names; a `Content-Type`
//! header says so. A task published by hand as JSON (`nats pub
//! trawl.tasks.high '{"schema": …}'`, with or without the header) is read too,
//! so operators can replay and inject tasks with the `nats` CLI.

use crate::ProtocolError;
use serde::{Deserialize, Serialize};

/// The task stream (`nats/streams/TRAWL_TASKS.json`).
pub const TASKS_STREAM: &str = "TRAWL_TASKS";
/// Document type of [`ScanTask`].
pub const SCAN_TASK_SCHEMA: &str = "trawl.scan-task";
/// Version of [`ScanTask`]'s layout.
pub const SCAN_TASK_SCHEMA_VERSION: &str = "1.0.0";
/// `Content-Type` of MessagePack payloads.
pub const CONTENT_TYPE_MSGPACK: &str = "application/msgpack";
/// `Content-Type` of JSON payloads.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// Largest task accepted: a task is a few hundred bytes; anything near this is not one.
pub const MAX_TASK_BYTES: usize = 64 << 10;

/// Which lane a task waits in; scanners drain `High` before `Bulk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    /// On-demand and admission-triggered scans: someone is waiting.
    High,
    /// Registry sweeps and rescans.
    Bulk,
}

impl Lane {
    /// Both lanes, in the order scanners serve them.
    pub const ALL: [Lane; 2] = [Lane::High, Lane::Bulk];

    /// The lane's name (`high`, `bulk`), as metrics and the API label it.
    pub fn name(self) -> &'static str {
        match self {
            Lane::High => "high",
            Lane::Bulk => "bulk",
        }
    }

    /// The lane's subject (`trawl.tasks.high`).
    pub fn subject(self) -> &'static str {
        match self {
            Lane::High => "trawl.tasks.high",
            Lane::Bulk => "trawl.tasks.bulk",
        }
    }

    /// The durable consumer scanners share for this lane (`nats/consumers/`).
    pub fn consumer(self) -> &'static str {
        match self {
            Lane::High => "scanners-high",
            Lane::Bulk => "scanners-bulk",
        }
    }
}

/// One image to scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanTask {
    /// Always [`SCAN_TASK_SCHEMA`].
    pub schema: String,
    /// [`SCAN_TASK_SCHEMA_VERSION`] for tasks written by this build.
    pub schema_version: String,
    /// Name of the registry configuration the image belongs to.
    pub registry: String,
    /// The image reference to pull (`host/repo:tag` or `host/repo@sha256:…`).
    pub reference: String,
    /// Manifest digest the controller resolved, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The lane it was queued in.
    pub lane: Lane,
    /// Why it was queued (`sweep`, `on-demand`, `admission`, `rescan`).
    pub reason: String,
    /// RFC 3339 time it was queued, to the millisecond (queue latency is measured from it).
    pub requested_at: String,
}

impl ScanTask {
    /// A task for `reference` in `registry`, queued now.
    pub fn new(registry: &str, reference: &str, digest: Option<&str>, lane: Lane, reason: &str) -> ScanTask {
        ScanTask {
            schema: SCAN_TASK_SCHEMA.into(),
            schema_version: SCAN_TASK_SCHEMA_VERSION.into(),
            registry: registry.into(),
            reference: reference.into(),
            digest: digest.map(str::to_string),
            lane,
            reason: reason.into(),
            requested_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }

    /// The `Nats-Msg-Id` that collapses duplicates: the same image (registry
    /// and manifest digest, or the reference before it is resolved) queued
    /// twice within the stream's duplicate window is stored once.
    pub fn msg_id(&self) -> String {
        format!("{}|{}", self.registry, self.digest.as_deref().unwrap_or(&self.reference))
    }

    /// MessagePack bytes, to publish with `Content-Type:` [`CONTENT_TYPE_MSGPACK`].
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        rmp_serde::to_vec_named(self).map_err(|source| ProtocolError::Encode { what: "scan task", source })
    }

    /// Reads a task as MessagePack or JSON. The `Content-Type` header decides
    /// when present; without one, a payload starting with `{` is JSON.
    pub fn decode(payload: &[u8], content_type: Option<&str>) -> Result<ScanTask, ProtocolError> {
        const WHAT: &str = "scan task";
        if payload.len() > MAX_TASK_BYTES {
            return Err(ProtocolError::TooLarge { what: WHAT, size: payload.len(), limit: MAX_TASK_BYTES });
        }
        let json = match content_type.map(str::trim) {
            Some(t) if t.starts_with(CONTENT_TYPE_JSON) => true,
            Some(t) if t.starts_with(CONTENT_TYPE_MSGPACK) => false,
            Some(other) => return Err(ProtocolError::ContentType { what: WHAT, content_type: other.to_string() }),
            None => payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
        };
        let task: ScanTask = if json {
            serde_json::from_slice(payload).map_err(|source| ProtocolError::Json { what: WHAT, source })?
        } else {
            rmp_serde::from_slice(payload).map_err(|source| ProtocolError::Decode { what: WHAT, source })?
        };
        crate::check_version(WHAT, &task.schema, &task.schema_version, SCAN_TASK_SCHEMA, SCAN_TASK_SCHEMA_VERSION)?;
        Ok(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> ScanTask {
        ScanTask::new("local", "127.0.0.1:5000/library/debian:12", Some("sha256:abc"), Lane::Bulk, "sweep")
    }

    #[test]
    fn messagepack_round_trips_and_is_the_default() {
        let t = task();
        let bytes = t.encode().unwrap();
        assert_eq!(ScanTask::decode(&bytes, Some(CONTENT_TYPE_MSGPACK)).unwrap(), t);
        assert_eq!(ScanTask::decode(&bytes, None).unwrap(), t);
    }

    #[test]
    fn hand_written_json_is_accepted() {
        let text = r#" {"schema":"trawl.scan-task","schemaVersion":"1.2.0","registry":"local",
            "reference":"127.0.0.1:5000/app:1","lane":"high","reason":"on-demand","requestedAt":"2026-12-02T00:00:00Z"}"#;
        for content_type in [None, Some("application/json; charset=utf-8")] {
            let t = ScanTask::decode(text.as_bytes(), content_type).unwrap();
            assert_eq!((t.lane, t.digest.as_deref(), t.reference.as_str()), (Lane::High, None, "127.0.0.1:5000/app:1"));
        }
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        assert!(matches!(ScanTask::decode(b"{\"schema\":1}", None), Err(ProtocolError::Json { .. })));
        assert!(matches!(ScanTask::decode(b"\xc1", None), Err(ProtocolError::Decode { .. })));
        assert!(matches!(ScanTask::decode(b"x", Some("text/plain")), Err(ProtocolError::ContentType { .. })));
        assert!(matches!(ScanTask::decode(&vec![b' '; MAX_TASK_BYTES + 1], None), Err(ProtocolError::TooLarge { .. })));
        let mut future = task();
        future.schema_version = "2.0.0".into();
        let bytes = future.encode().unwrap();
        assert!(matches!(ScanTask::decode(&bytes, None), Err(ProtocolError::Version { .. })));
    }

    #[test]
    fn duplicates_collapse_on_registry_and_digest() {
        let a = task();
        let mut b = task();
        b.reference = "127.0.0.1:5000/library/debian:bookworm".into();
        assert_eq!(a.msg_id(), b.msg_id(), "two tags of one digest are one task");
        b.digest = None;
        assert_ne!(a.msg_id(), b.msg_id());
        assert_eq!(Lane::High.subject(), "trawl.tasks.high");
    }
}
