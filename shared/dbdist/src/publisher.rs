//! Publishing a database: validate, upload the object, announce, prune.
//!
//! Order matters. The bytes are checked with `Database::from_bytes` before
//! anything leaves the process (a bad build must never reach a scanner).
//! The object is stored before the announcement points at it, so a follower
//! that reacts to the announcement always finds the object. The announcement
//! is a compare-and-set on the KV revision read at the version check, so two
//! publishers racing cannot announce an older database over a newer one.
//! Pruning runs last and is best-effort: the database is already live.

use crate::announce::{object_version, Announcement};
use crate::buckets::{open_buckets, Buckets};
use crate::error::DistError;
use crate::{ANNOUNCE_KEY, DEFAULT_KEEP};
use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::object_store::ObjectMetadata;
use futures::TryStreamExt;
use std::collections::HashMap;
use trawl_vulndb::Database;

/// Publishes databases into [`crate::OBJECT_BUCKET`] and announces them in
/// [`crate::ANNOUNCE_BUCKET`].
#[derive(Debug, Clone)]
pub struct DbPublisher {
    buckets: Buckets,
    keep: usize,
}

/// Options for [`DbPublisher::publish_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishOptions {
    /// Announce even when the version is not newer than the announced one
    /// (a rollback); followers will still refuse to load an older database.
    pub force: bool,
}

impl DbPublisher {
    /// Opens (creating when missing) the buckets on `client`'s server.
    pub async fn connect(client: async_nats::Client) -> Result<DbPublisher, DistError> {
        Ok(DbPublisher { buckets: open_buckets(client).await?, keep: DEFAULT_KEEP })
    }

    /// Keeps the newest `keep` versions (at least 1) in the object store when pruning.
    pub fn with_keep(mut self, keep: usize) -> DbPublisher {
        self.keep = keep.max(1);
        self
    }

    /// The buckets in use (for tools and tests that inspect or write them directly).
    pub fn buckets(&self) -> &Buckets {
        &self.buckets
    }

    /// The current announcement, if any.
    pub async fn announced(&self) -> Result<Option<Announcement>, DistError> {
        match self.announced_with_revision().await?.0 {
            Some(Ok(announcement)) => Ok(Some(announcement)),
            Some(Err(reason)) => Err(DistError::BadAnnouncement(reason)),
            None => Ok(None),
        }
    }

    /// Validates and publishes a database file's bytes, refusing a version
    /// that is not newer than the announced one.
    pub async fn publish(&self, bytes: &[u8]) -> Result<Announcement, DistError> {
        self.publish_with(bytes, PublishOptions::default()).await
    }

    /// Validates and publishes a database file's bytes with `options`.
    pub async fn publish_with(&self, bytes: &[u8], options: PublishOptions) -> Result<Announcement, DistError> {
        // Decompressing and decoding a large database is CPU-bound: keep it off the async threads.
        let owned = bytes.to_vec();
        let (owned, checked) = tokio::task::spawn_blocking(move || {
            let checked = Database::from_bytes(&owned, "database to publish")
                .map(|db| Announcement::for_file(db.header(), &owned));
            (owned, checked)
        })
        .await
        .map_err(|e| DistError::nats("validating the database", e))?;
        let announcement = checked.map_err(DistError::InvalidDatabase)?;

        let (current, revision) = self.announced_with_revision().await?;
        match &current {
            Some(Ok(current)) if announcement.version <= current.version && !options.force => {
                return Err(DistError::NotNewer { version: announcement.version, announced: current.version });
            }
            // Only a forced publish may overwrite an announcement nobody can read.
            Some(Err(reason)) if !options.force => return Err(DistError::BadAnnouncement(reason.clone())),
            _ => {}
        }

        let metadata = ObjectMetadata {
            name: announcement.object.clone(),
            description: Some(format!("Trawl vulnerability database version {}", announcement.version)),
            metadata: HashMap::from([
                ("version".to_string(), announcement.version.to_string()),
                ("sha256".to_string(), announcement.sha256.clone()),
            ]),
            ..Default::default()
        };
        let info = self
            .buckets
            .objects
            .put(metadata, &mut owned.as_slice())
            .await
            .map_err(|e| DistError::nats(format!("uploading {}", announcement.object), e))?;
        if info.size as u64 != announcement.size {
            return Err(DistError::nats(
                format!("uploading {}", announcement.object),
                format!("server stored {} bytes of {}", info.size, announcement.size),
            ));
        }

        let value = announcement.to_json().into();
        match revision {
            Some(revision) => {
                self.buckets.announce.update(ANNOUNCE_KEY, value, revision).await.map_err(|e| {
                    if e.kind() == UpdateErrorKind::WrongLastRevision {
                        DistError::Conflict
                    } else {
                        DistError::nats("announcing", e)
                    }
                })?;
            }
            None => {
                self.buckets.announce.create(ANNOUNCE_KEY, value).await.map_err(|e| {
                    if e.kind() == CreateErrorKind::AlreadyExists {
                        DistError::Conflict
                    } else {
                        DistError::nats("announcing", e)
                    }
                })?;
            }
        }
        tracing::info!(
            version = announcement.version,
            object = %announcement.object,
            size = announcement.size,
            sha256 = %announcement.sha256,
            forced = options.force,
            "published vulnerability database"
        );

        if let Err(e) = self.prune(Some(&announcement.object)).await {
            tracing::warn!(error = %e, "pruning old database objects failed; they stay until the next publish");
        }
        Ok(announcement)
    }

    /// Deletes database objects beyond the newest `keep` versions, never the
    /// one named `announced`; returns the names deleted.
    pub async fn prune(&self, announced: Option<&str>) -> Result<Vec<String>, DistError> {
        let objects: Vec<_> = self
            .buckets
            .objects
            .list()
            .await
            .map_err(|e| DistError::nats("listing database objects", e))?
            .try_collect()
            .await
            .map_err(|e| DistError::nats("listing database objects", e))?;
        let mut versions: Vec<(u64, String)> =
            objects.into_iter().filter_map(|o| object_version(&o.name).map(|v| (v, o.name))).collect();
        versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        let mut deleted = Vec::new();
        for (_, name) in versions.into_iter().skip(self.keep) {
            if Some(name.as_str()) == announced {
                continue;
            }
            self.buckets.objects.delete(&name).await.map_err(|e| DistError::nats(format!("deleting {name}"), e))?;
            tracing::info!(object = %name, "deleted old database object");
            deleted.push(name);
        }
        Ok(deleted)
    }

    /// The announcement (or why it cannot be parsed) and the KV revision to
    /// compare-and-set against (`None` when the key has never been written or was deleted).
    async fn announced_with_revision(&self) -> Result<(Option<Result<Announcement, String>>, Option<u64>), DistError> {
        let entry = self
            .buckets
            .announce
            .entry(ANNOUNCE_KEY)
            .await
            .map_err(|e| DistError::nats("reading the announcement", e))?;
        match entry {
            Some(entry) if entry.operation == Operation::Put => {
                let announcement = Announcement::from_json(&entry.value).map_err(|e| e.to_string());
                Ok((Some(announcement), Some(entry.revision)))
            }
            // A deleted key is written again with `create`, which accepts a delete marker.
            _ => Ok((None, None)),
        }
    }
}
