//! Trawl's NATS protocol: the subjects and JetStream streams the services
//! share, and the messages that travel on them, encoded as MessagePack
//! (`rmp-serde`, with field names, so either side can add fields without
//! breaking the other) and compressed with zstd: a result embeds the whole
//! inventory, and NATS's default 1 MiB payload limit would otherwise be
//! reached by images with a few thousand packages.
//!
//! Every message type carries a `schema` and `schemaVersion`, like the JSON
//! reports: a reader rejects a major version it does not know rather than
//! misreading it.

use serde::{Deserialize, Serialize};
use trawl_report::ScanReport;

pub mod buckets;
pub mod dead;
pub mod definitions;
pub mod failure;
pub mod heartbeat;
pub mod registry;
pub mod task;

pub use dead::{DeadLetter, DEAD_STREAM};
pub use failure::{FailureKind, ScanFailure};
pub use heartbeat::{ScannerHeartbeat, SCANNERS_BUCKET};
pub use registry::{RegistryConfig, RegistryLogin};
pub use task::{Lane, ScanTask, TASKS_STREAM};

/// JetStream stream that keeps scan results until the controller stores them (`nats/streams/`).
pub const RESULTS_STREAM: &str = "TRAWL_RESULTS";
/// Subject prefix of scan results; the stream captures `trawl.results.>`.
pub const RESULTS_SUBJECT_PREFIX: &str = "trawl.results";

/// Document type of [`ScanResult`].
pub const SCAN_RESULT_SCHEMA: &str = "trawl.scan-result";
/// Version of [`ScanResult`]'s layout.
pub const SCAN_RESULT_SCHEMA_VERSION: &str = "2.0.0";

/// Largest decompressed message accepted: a bound on hostile payloads.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// zstd level: results are written once and read a few times, and the
/// controller re-encodes every stored result on a database update, so favour
/// speed (level 1 compresses a report ~3× faster than 3, ~10% larger).
const ZSTD_LEVEL: i32 = 1;

thread_local! {
    // Compression contexts are ~1 MiB of tables each: made once per thread
    // rather than per message (the controller re-matching thousands of
    // stored results spent a third of its time creating and zeroing them).
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// zstd at [`ZSTD_LEVEL`], with this thread's compression context; the
/// frame records the content size, which [`decompress`] relies on.
fn compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        compressor.compress(data)
    })
}

/// Decompresses one zstd frame of at most [`MAX_MESSAGE_BYTES`] into a
/// buffer of exactly its recorded size (sizing it at the bound instead would
/// reserve 256 MiB per message); frames without a recorded size (written by
/// a streaming encoder) are streamed through the same bound.
fn decompress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let too_big = || std::io::Error::new(std::io::ErrorKind::InvalidData, "expands past the size bound");
    let size = match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(size)) => Some(usize::try_from(size).ok().filter(|&s| s <= MAX_MESSAGE_BYTES).ok_or_else(too_big)?),
        Ok(None) => None,
        Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a zstd frame")),
    };
    let Some(size) = size else {
        use std::io::Read;
        let mut out = Vec::new();
        let decoder = zstd::stream::read::Decoder::new(data)?;
        decoder.take(MAX_MESSAGE_BYTES as u64 + 1).read_to_end(&mut out)?;
        return if out.len() > MAX_MESSAGE_BYTES { Err(too_big()) } else { Ok(out) };
    };
    DECOMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        let decompressor = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(data, size)
    })
}

/// `value` as named MessagePack compressed with zstd: how every Trawl
/// message and stored document that can be large is written.
pub fn encode_packed<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>, ProtocolError> {
    let packed = rmp_serde::to_vec_named(value).map_err(|source| ProtocolError::Encode { what, source })?;
    compress(&packed).map_err(|source| ProtocolError::Compression { what, source })
}

/// Reads what [`encode_packed`] wrote, never expanding past [`MAX_MESSAGE_BYTES`].
pub fn decode_packed<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, ProtocolError> {
    let packed = decompress(bytes).map_err(|source| ProtocolError::Compression { what, source })?;
    rmp_serde::from_slice(&packed).map_err(|source| ProtocolError::Decode { what, source })
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Encoding failed (a bug: every message type is encodable).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// Message type.
        what: &'static str,
        /// Encoder error.
        #[source]
        source: rmp_serde::encode::Error,
    },
    /// The bytes are not zstd data, or expand past [`MAX_MESSAGE_BYTES`].
    #[error("{what} message is not valid zstd data within {MAX_MESSAGE_BYTES} bytes: {source}")]
    Compression {
        /// Message type.
        what: &'static str,
        /// Decompressor error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid message of this type.
    #[error("not a valid {what} message: {source}")]
    Decode {
        /// Message type.
        what: &'static str,
        /// Decoder error.
        #[source]
        source: rmp_serde::decode::Error,
    },
    /// A JSON message did not parse.
    #[error("not a valid {what} JSON message: {source}")]
    Json {
        /// Message type.
        what: &'static str,
        /// Parser error.
        #[source]
        source: serde_json::Error,
    },
    /// The `Content-Type` header names an encoding Trawl does not speak.
    #[error("{what} has Content-Type {content_type:?}: use application/msgpack or application/json")]
    ContentType {
        /// Message type.
        what: &'static str,
        /// The header's value.
        content_type: String,
    },
    /// The payload is larger than any valid message of this type.
    #[error("{what} of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Message type.
        what: &'static str,
        /// Payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The message is of a schema version this build cannot read.
    #[error("{what} schema {found} is not supported (this build reads {supported}.x)")]
    Version {
        /// Message type.
        what: &'static str,
        /// Version found.
        found: String,
        /// Major version understood.
        supported: String,
    },
}

/// Who produced a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScannerInfo {
    /// Stable name of the scanner instance (host name, pod name).
    pub name: String,
    /// `standalone` for one-shot scans, `worker` for queue consumers.
    pub mode: String,
    /// Address the scanner says it is reachable at (NeuVector's
    /// `CLUSTER_ADVERTISED_ADDR`); informational, since NATS connections are outbound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_addr: Option<String>,
    /// Scanner version.
    pub version: String,
}

/// A finished scan, published on [`results_subject`] for admission-control
/// storage: a report, or the failure that prevented one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResult {
    /// Always [`SCAN_RESULT_SCHEMA`].
    pub schema: String,
    /// [`SCAN_RESULT_SCHEMA_VERSION`] for messages written by this build.
    pub schema_version: String,
    /// The scanner that produced it.
    pub scanner: ScannerInfo,
    /// The task it answers, for results of queued scans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<ScanTask>,
    /// The full scan report, when the scan succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ScanReport>,
    /// Why there is no report, when the scan failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ScanFailure>,
    /// RFC 3339 time the scan finished.
    pub finished_at: String,
}

impl ScanResult {
    /// Wraps a report from `scanner`.
    pub fn new(scanner: ScannerInfo, report: ScanReport) -> ScanResult {
        ScanResult {
            schema: SCAN_RESULT_SCHEMA.into(),
            schema_version: SCAN_RESULT_SCHEMA_VERSION.into(),
            scanner,
            task: None,
            report: Some(report),
            failure: None,
            finished_at: now_rfc3339(),
        }
    }

    /// A failed scan of `task`.
    pub fn failed(scanner: ScannerInfo, task: ScanTask, failure: ScanFailure) -> ScanResult {
        ScanResult {
            schema: SCAN_RESULT_SCHEMA.into(),
            schema_version: SCAN_RESULT_SCHEMA_VERSION.into(),
            scanner,
            task: Some(task),
            report: None,
            failure: Some(failure),
            finished_at: now_rfc3339(),
        }
    }

    /// The same result, marked as answering `task`.
    pub fn for_task(mut self, task: ScanTask) -> ScanResult {
        self.task = Some(task);
        self
    }

    /// Compressed MessagePack bytes for the wire.
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        encode_packed("scan result", self)
    }

    /// Reads a message, checking its schema version.
    pub fn decode(bytes: &[u8]) -> Result<ScanResult, ProtocolError> {
        const WHAT: &str = "scan result";
        let msg: ScanResult = decode_packed(WHAT, bytes)?;
        check_version(WHAT, &msg.schema, &msg.schema_version, SCAN_RESULT_SCHEMA, SCAN_RESULT_SCHEMA_VERSION)?;
        Ok(msg)
    }

    /// Reads only the report of a message, as `R` — a view holding the
    /// fields a reader needs (the decoder skips the rest without building
    /// it): `None` for a failed scan. Checks the schema version as
    /// [`ScanResult::decode`] does.
    pub fn decode_report_as<R: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<Option<R>, ProtocolError> {
        const WHAT: &str = "scan result";
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct View<R> {
            schema: String,
            schema_version: String,
            #[serde(default = "none")]
            report: Option<R>,
        }
        fn none<R>() -> Option<R> {
            None
        }
        let msg: View<R> = decode_packed(WHAT, bytes)?;
        check_version(WHAT, &msg.schema, &msg.schema_version, SCAN_RESULT_SCHEMA, SCAN_RESULT_SCHEMA_VERSION)?;
        Ok(msg.report)
    }

    /// The manifest digest of the scanned image: the report's, else the task's.
    pub fn image_digest(&self) -> Option<&str> {
        let from_report =
            self.report.as_ref().and_then(|r| r.image.manifest_digest.as_deref().or(r.image.config_digest.as_deref()));
        from_report.or_else(|| self.task.as_ref().and_then(|t| t.digest.as_deref()))
    }

    /// The subject this result is published on.
    pub fn subject(&self) -> String {
        if let Some(digest) = self.image_digest() {
            return results_subject("image", digest.trim_start_matches("sha256:"));
        }
        match (&self.report, &self.task) {
            (Some(report), _) => results_subject(&report.image.source, &self.scanner.name),
            (None, Some(task)) => results_subject("reference", &task.reference.replace(['/', ':', '@'], "_")),
            (None, None) => results_subject("unknown", &self.scanner.name),
        }
    }
}

/// The `Nats-Msg-Id` of the result of the task at `task_sequence` in the
/// task stream: if a scanner dies after publishing a result but before
/// acking its task, the redelivered task's result collapses into the first.
pub fn result_msg_id(task_sequence: u64) -> String {
    format!("result|{TASKS_STREAM}|{task_sequence}")
}

/// Now, as RFC 3339 with seconds, in UTC.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Accepts a message of `schema` whose major version this build reads.
pub(crate) fn check_version(
    what: &'static str,
    schema: &str,
    version: &str,
    expected_schema: &str,
    supported: &str,
) -> Result<(), ProtocolError> {
    let major = |v: &str| v.split('.').next().unwrap_or_default().to_string();
    if schema == expected_schema && major(version) == major(supported) {
        return Ok(());
    }
    Err(ProtocolError::Version { what, found: format!("{schema} {version}"), supported: major(supported) })
}

/// `trawl.results.<kind>.<key>`, with the key made subject-safe (NATS
/// subjects cannot hold `.`, `*`, `>` or white space inside a token).
pub fn results_subject(kind: &str, key: &str) -> String {
    let safe = |s: &str| -> String {
        let t: String =
            s.chars().map(|c| if c == '.' || c == '*' || c == '>' || c.is_whitespace() { '_' } else { c }).collect();
        if t.is_empty() {
            "_".into()
        } else {
            t
        }
    };
    format!("{RESULTS_SUBJECT_PREFIX}.{}.{}", safe(kind), safe(key))
}

/// The results stream as `nats/streams/TRAWL_RESULTS.json` defines it: a
/// work queue the controller drains into its admission-control store.
pub fn results_stream_config() -> Result<async_nats::jetstream::stream::Config, definitions::DefinitionError> {
    definitions::stream_config(RESULTS_STREAM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_single_tokens_per_part() {
        assert_eq!(results_subject("image", "abc123"), "trawl.results.image.abc123");
        assert_eq!(results_subject("host", "node-1.example.com"), "trawl.results.host.node-1_example_com");
        assert_eq!(results_subject("host", ""), "trawl.results.host._");
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        assert!(matches!(ScanResult::decode(b"not zstd"), Err(ProtocolError::Compression { .. })));
        let not_msgpack = zstd::bulk::compress(b"\xc1\xc1", 3).unwrap();
        assert!(matches!(ScanResult::decode(&not_msgpack), Err(ProtocolError::Decode { .. })));
    }

    #[test]
    fn frames_with_and_without_a_recorded_size_decompress() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let sized = compress(&data).unwrap();
        assert_eq!(zstd::zstd_safe::get_frame_content_size(&sized).unwrap(), Some(data.len() as u64));
        assert_eq!(decompress(&sized).unwrap(), data);
        // A streaming encoder does not know the size up front.
        let mut streamed = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        std::io::Write::write_all(&mut streamed, &data).unwrap();
        let streamed = streamed.finish().unwrap();
        assert_eq!(zstd::zstd_safe::get_frame_content_size(&streamed).unwrap(), None);
        assert_eq!(decompress(&streamed).unwrap(), data);
        // Contexts are reused: a second message on the same thread decodes the same.
        assert_eq!(decompress(&compress(b"again").unwrap()).unwrap(), b"again");
        assert!(decompress(&sized[..sized.len() / 2]).is_err(), "a truncated frame is an error");
    }
}
