//! The announcement: the small JSON value that tells followers which object
//! is the current database and how to recognise it intact.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use trawl_vulndb::DbHeader;

/// The value of the announcement key: which database is current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Announcement {
    /// Database version (`header().version`); higher is newer.
    pub version: u64,
    /// Object name in the object store bucket (`trawl-<version>.db`).
    pub object: String,
    /// SHA-256 of the whole database file, lowercase hex.
    pub sha256: String,
    /// Size of the whole database file in bytes.
    pub size: u64,
    /// Build time of the database, RFC 3339.
    pub built_at: String,
    /// The advisory sources compiled in (name and SHA-256), so an updater can
    /// tell that nothing changed without downloading the database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<AnnouncedSource>,
}

/// One advisory source of an announced database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnouncedSource {
    /// Path or URL as given to the updater.
    pub name: String,
    /// SHA-256 of the source as recorded in the database header.
    pub sha256: String,
}

impl Announcement {
    /// The announcement for a database file with this header and contents.
    pub fn for_file(header: &DbHeader, bytes: &[u8]) -> Announcement {
        Announcement {
            version: header.version,
            object: object_name(header.version),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
            built_at: header.built_at.clone(),
            sources: header
                .sources
                .iter()
                .map(|s| AnnouncedSource { name: s.name.clone(), sha256: s.sha256.clone() })
                .collect(),
        }
    }

    /// The sources' SHA-256 digests, sorted: equal lists mean the same input
    /// whatever the sources were called.
    pub fn source_digests(&self) -> Vec<String> {
        let mut digests: Vec<String> = self.sources.iter().map(|s| s.sha256.clone()).collect();
        digests.sort();
        digests
    }

    /// Parses an announcement from the KV value.
    pub fn from_json(bytes: &[u8]) -> Result<Announcement, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Serialises the announcement for the KV value.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and integers always serialises.
        serde_json::to_vec(self).expect("announcement serialises")
    }
}

/// Object name for a database version: `trawl-<version>.db`.
pub fn object_name(version: u64) -> String {
    format!("trawl-{version}.db")
}

/// The version in an object name made by [`object_name`], if it is one.
pub fn object_version(name: &str) -> Option<u64> {
    name.strip_prefix("trawl-")?.strip_suffix(".db")?.parse().ok()
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_round_trip() {
        assert_eq!(object_name(1_700_000_000_123), "trawl-1700000000123.db");
        assert_eq!(object_version("trawl-1700000000123.db"), Some(1_700_000_000_123));
        assert_eq!(object_version("trawl-x.db"), None);
        assert_eq!(object_version("other.db"), None);
    }

    #[test]
    fn json_uses_the_documented_names() {
        let a = Announcement {
            version: 7,
            object: object_name(7),
            sha256: "ab".into(),
            size: 3,
            built_at: "2024-01-01T00:00:00Z".into(),
            sources: vec![],
        };
        let v: serde_json::Value = serde_json::from_slice(&a.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"version": 7, "object": "trawl-7.db", "sha256": "ab", "size": 3, "builtAt": "2024-01-01T00:00:00Z"})
        );
        assert_eq!(Announcement::from_json(&a.to_json()).unwrap(), a);
    }
}
