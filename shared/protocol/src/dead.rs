//! Dead letters: tasks no scanner could scan, kept in the `TRAWL_DEAD`
//! stream for people to inspect and requeue.
//!
//! Dead letters are JSON (with `Content-Type: application/json`) because
//! people read them: `nats stream view TRAWL_DEAD` shows the reason, and
//! the `task` field is a task a scanner accepts as it is, so requeueing is
//! `nats stream get TRAWL_DEAD <seq> --json | jq -r .data | base64 -d | jq -c .task | nats pub trawl.tasks.high -H Content-Type:application/json` (docs/nats.md).

use crate::{FailureKind, Lane, ProtocolError, ScanFailure, ScanTask};
use serde::{Deserialize, Serialize};

/// The dead-letter stream (`nats/streams/TRAWL_DEAD.json`).
pub const DEAD_STREAM: &str = "TRAWL_DEAD";
/// Document type of [`DeadLetter`].
pub const DEAD_LETTER_SCHEMA: &str = "trawl.dead-letter";
/// Version of [`DeadLetter`]'s layout.
pub const DEAD_LETTER_SCHEMA_VERSION: &str = "1.0.0";

/// One task that will not be retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Always [`DEAD_LETTER_SCHEMA`].
    pub schema: String,
    /// [`DEAD_LETTER_SCHEMA_VERSION`].
    pub schema_version: String,
    /// The task, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<ScanTask>,
    /// The payload as received, when it could not be read as a task (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The subject the task was queued on.
    pub subject: String,
    /// Its sequence number in the task stream.
    pub stream_sequence: u64,
    /// Why it failed for good.
    pub failure: ScanFailure,
    /// Who gave up on it: a scanner's id, or `controller` for abandoned tasks.
    pub by: String,
    /// RFC 3339 time of death.
    pub at: String,
}

impl DeadLetter {
    /// A dead letter for the task read from `payload` on `subject`.
    pub fn new(
        task: Option<ScanTask>,
        payload: &[u8],
        subject: &str,
        stream_sequence: u64,
        failure: ScanFailure,
        by: &str,
    ) -> DeadLetter {
        const MAX_RAW: usize = 4096;
        let raw = task.is_none().then(|| String::from_utf8_lossy(&payload[..payload.len().min(MAX_RAW)]).into_owned());
        DeadLetter {
            schema: DEAD_LETTER_SCHEMA.into(),
            schema_version: DEAD_LETTER_SCHEMA_VERSION.into(),
            task,
            raw,
            subject: subject.into(),
            stream_sequence,
            failure,
            by: by.into(),
            at: crate::now_rfc3339(),
        }
    }

    /// The subject it is published on: `trawl.dead.<lane>`.
    pub fn subject(&self) -> String {
        let lane =
            self.task.as_ref().map(|t| t.lane).or_else(|| Lane::ALL.into_iter().find(|l| l.subject() == self.subject));
        match lane {
            Some(Lane::High) => "trawl.dead.high".into(),
            Some(Lane::Bulk) => "trawl.dead.bulk".into(),
            None => "trawl.dead.unknown".into(),
        }
    }

    /// The `Nats-Msg-Id` that makes two scanners burying the same task store it once.
    pub fn msg_id(&self) -> String {
        format!("dead|{}", self.stream_sequence)
    }

    /// JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a dead letter.
    pub fn decode(bytes: &[u8]) -> Result<DeadLetter, ProtocolError> {
        const WHAT: &str = "dead letter";
        let letter: DeadLetter =
            serde_json::from_slice(bytes).map_err(|source| ProtocolError::Json { what: WHAT, source })?;
        crate::check_version(
            WHAT,
            &letter.schema,
            &letter.schema_version,
            DEAD_LETTER_SCHEMA,
            DEAD_LETTER_SCHEMA_VERSION,
        )?;
        Ok(letter)
    }

    /// Whether requeueing it could help (the failure was not about the image itself).
    pub fn worth_requeueing(&self) -> bool {
        self.task.is_some()
            && (self.failure.kind.is_transient()
                || self.failure.kind == FailureKind::Abandoned
                || self.failure.kind == FailureKind::Auth)
    }
}
