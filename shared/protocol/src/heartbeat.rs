//! Scanner heartbeats: each worker puts a JSON record under its id in the
//! `TRAWL_SCANNERS` bucket every few seconds. The bucket's entries expire
//! after 30 s, so a scanner that died disappears by itself, and every
//! controller replica (and `nats kv ls TRAWL_SCANNERS`) sees the same list.

use serde::{Deserialize, Serialize};

/// The heartbeat bucket (`nats/kv/TRAWL_SCANNERS.json`).
pub const SCANNERS_BUCKET: &str = "TRAWL_SCANNERS";
/// How often workers send a heartbeat.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A worker's state as it last reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScannerHeartbeat {
    /// Unique id of this worker process (`<host>-<pid>-<random>`).
    pub id: String,
    /// Host (or pod) name.
    pub host: String,
    /// Scanner version.
    pub version: String,
    /// Version of the vulnerability database it matches with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_version: Option<u64>,
    /// `running`, or `draining` after SIGTERM.
    pub state: String,
    /// Tasks it may work on at once.
    pub concurrency: usize,
    /// The images it is scanning now.
    #[serde(default)]
    pub current: Vec<String>,
    /// Scans finished with a result.
    pub scanned: u64,
    /// Scans that ended in a failed result.
    pub failed: u64,
    /// Tasks handed back for a later retry.
    pub retried: u64,
    /// Layers taken from the cluster's layer cache instead of the registry.
    pub layer_cache_hits: u64,
    /// Compressed bytes pulled from registries.
    pub bytes_pulled: u64,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 time of this heartbeat.
    pub at: String,
}
