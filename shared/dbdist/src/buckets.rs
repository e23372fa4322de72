//! Opening (or creating) the two buckets.
//!
//! Existing buckets are used as they are: an operator (or a later `nats/`
//! definition) may have created them with other limits or replicas, and
//! re-creating with our defaults would fail on a config mismatch. Only a
//! missing bucket is created, and a creation race with another process is
//! resolved by getting the winner's bucket.

use crate::error::DistError;
use crate::{ANNOUNCE_BUCKET, OBJECT_BUCKET};
use async_nats::jetstream::{self, kv, object_store};

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

/// Gets both buckets, creating whichever is missing from its `nats/`
/// definition (the same file the controller and `nats stream add --config`
/// use, so there is one source of truth for their limits).
pub async fn open_buckets(client: async_nats::Client) -> Result<Buckets, DistError> {
    let js = jetstream::new(client);
    let objects = match js.get_object_store(OBJECT_BUCKET).await {
        Ok(store) => store,
        Err(_) => {
            create_from_definition(&js, &format!("OBJ_{OBJECT_BUCKET}")).await;
            js.get_object_store(OBJECT_BUCKET)
                .await
                .map_err(|e| DistError::nats(format!("opening object store bucket {OBJECT_BUCKET}"), e))?
        }
    };
    let announce = match js.get_key_value(ANNOUNCE_BUCKET).await {
        Ok(store) => store,
        Err(_) => {
            create_from_definition(&js, &format!("KV_{ANNOUNCE_BUCKET}")).await;
            js.get_key_value(ANNOUNCE_BUCKET)
                .await
                .map_err(|e| DistError::nats(format!("opening key-value bucket {ANNOUNCE_BUCKET}"), e))?
        }
    };
    Ok(Buckets { jetstream: js, objects, announce })
}

/// Creates the stream behind a bucket as `nats/` defines it. A failure is
/// only logged: another process may have won a creation race, and the get
/// that follows reports what is really wrong.
async fn create_from_definition(js: &jetstream::Context, stream: &str) {
    let created = match trawl_protocol::definitions::stream_config(stream) {
        Ok(config) => js.create_stream(config).await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = created {
        tracing::debug!(stream, "creating the bucket from its nats/ definition: {e}");
    }
}
