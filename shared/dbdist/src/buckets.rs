//! Opening (or creating) the two buckets.
//!
//! Existing buckets are used as they are: an operator (or a later `nats/`
//! definition) may have created them with other limits or replicas, and
//! re-creating with our defaults would fail on a config mismatch. Only a
//! missing bucket is created, and a creation race with another process is
//! resolved by getting the winner's bucket.

use crate::error::DistError;
use crate::{ANNOUNCE_BUCKET, ANNOUNCE_HISTORY, OBJECT_BUCKET};
use async_nats::jetstream::{self, kv, object_store, stream::StorageType};

/// The object store and the announcement KV, ready to use.
#[derive(Clone)]
pub struct Buckets {
    /// JetStream context they were opened with.
    pub jetstream: jetstream::Context,
    /// [`OBJECT_BUCKET`]: the database files.
    pub objects: object_store::ObjectStore,
    /// [`ANNOUNCE_BUCKET`]: the announcement.
    pub announce: kv::Store,
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buckets").field("objects", &OBJECT_BUCKET).field("announce", &ANNOUNCE_BUCKET).finish()
    }
}

/// Gets both buckets, creating whichever is missing.
pub async fn open_buckets(client: async_nats::Client) -> Result<Buckets, DistError> {
    let js = jetstream::new(client);
    let objects = match js.get_object_store(OBJECT_BUCKET).await {
        Ok(store) => store,
        Err(_) => {
            let created = js
                .create_object_store(object_store::Config {
                    bucket: OBJECT_BUCKET.to_string(),
                    description: Some("Trawl vulnerability databases, one object per version".to_string()),
                    storage: StorageType::File,
                    ..Default::default()
                })
                .await;
            match created {
                Ok(store) => store,
                // Lost a creation race, or the get failed for a passing reason: one more get.
                Err(create_err) => js.get_object_store(OBJECT_BUCKET).await.map_err(|_| {
                    DistError::nats(format!("creating object store bucket {OBJECT_BUCKET}"), create_err)
                })?,
            }
        }
    };
    let announce = match js.get_key_value(ANNOUNCE_BUCKET).await {
        Ok(store) => store,
        Err(_) => {
            let created = js
                .create_key_value(kv::Config {
                    bucket: ANNOUNCE_BUCKET.to_string(),
                    description: "Trawl vulnerability database announcements".to_string(),
                    history: ANNOUNCE_HISTORY,
                    storage: StorageType::File,
                    ..Default::default()
                })
                .await;
            match created {
                Ok(store) => store,
                Err(create_err) => js
                    .get_key_value(ANNOUNCE_BUCKET)
                    .await
                    .map_err(|_| DistError::nats(format!("creating key-value bucket {ANNOUNCE_BUCKET}"), create_err))?,
            }
        }
    };
    Ok(Buckets { jetstream: js, objects, announce })
}
