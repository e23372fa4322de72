//! The cluster-wide layer cache: [`KvLayerCache`], a [`LayerCache`] on the
//! JetStream key-value bucket `TRAWL_LAYERS` (`nats/kv/TRAWL_LAYERS.json`,
//! created by the controller: 7-day age, 2 GiB, values ≤ 1 MiB).
//!
//! Images in a registry share most of their bytes through base layers. A
//! layer's inventory depends only on its bytes (named by its digest) and on
//! the cataloger code, so once any scanner has walked a layer, every other
//! scanner takes the inventory from here and never pulls the blob again.
//!
//! **Keys** are `<CATALOGER_VERSION>.<layer digest hex>` (the version
//! escaped with [`escape_key`]), so a scanner upgrade that changes what
//! catalogers produce starts a fresh set of keys and the old ones age out.
//!
//! **Values** ([`encode_entry`]) are [`ENTRY_HEADER`] followed by
//! zstd-compressed MessagePack with field names (as results are encoded) of
//! the inventory, with a schema name, the cataloger version, a hash of the
//! cataloger set and the layer digest. Reading is defensive because any
//! scanner may write the bucket: decompression is bounded
//! ([`MAX_DECODED_BYTES`]), and anything that does not decode, or was made
//! for another layer or other catalogers, is a miss — a bad entry costs one
//! re-walk, never a failed scan or a panic. Inventories that encode to more
//! than [`MAX_ENTRY_BYTES`] are not cached.
//!
//! **Claims.** Scans of images sharing a base layer start at the same
//! moment (a registry crawl queues them together), and with a plain
//! get-then-put every one of them would miss and pull the layer. So a
//! scanner that misses first *claims* the walk: it creates the key
//! `<key>.claim` (an atomic create, so exactly one scanner wins) and
//! refreshes it every [`CLAIM_REFRESH`] while it walks. The others wait
//! for the inventory to appear, and walk the layer themselves only if the
//! claim is released without one (the walk failed, or was not cacheable),
//! stops being refreshed for [`CLAIM_STALE`] (its scanner died: one waiter
//! takes the claim over), or they have waited [`MAX_PEER_WAIT`]. Every
//! operation is a get or a put on the bucket (create, update and delete
//! are puts with headers), which is all the scanner role may do there.

use crate::analyze::{Claim, ClaimGuard, LayerCache};
use async_nats::jetstream::{self, kv};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use trawl_catalog::{CatalogerSet, LayerInventory, CATALOGER_VERSION};
use trawl_protocol::buckets::{escape_key, LAYERS_BUCKET};

/// The first bytes of every entry: format and version of what follows.
pub const ENTRY_HEADER: &[u8] = b"TRAWL-LAYER-1\n";
/// `schema` of an entry's MessagePack body.
pub const ENTRY_SCHEMA: &str = "trawl.layer-inventory";
/// Largest entry written: the bucket takes 1 MiB per message, headers included.
pub const MAX_ENTRY_BYTES: usize = 1_000_000;
/// Largest decompressed entry body read; anything bigger is a miss.
pub const MAX_DECODED_BYTES: usize = 64 << 20;
/// How often a scanner walking a claimed layer renews its claim.
pub const CLAIM_REFRESH: Duration = Duration::from_secs(2);
/// A claim not renewed for this long belongs to a scanner that is gone.
pub const CLAIM_STALE: Duration = Duration::from_secs(10);
/// Longest a scanner waits for another one's walk before walking the layer itself.
pub const MAX_PEER_WAIT: Duration = Duration::from_secs(10 * 60);
/// zstd level: entries are written once and read many times; small beats fast here.
const ZSTD_LEVEL: i32 = 6;
/// First and longest pause between looks at a claimed layer.
const POLL_FIRST: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_millis(500);

/// Why a layer inventory could not be cached (never fatal: the scan goes on).
#[derive(Debug, thiserror::Error)]
pub enum LayerCacheError {
    /// The digest is not `algorithm:hex`, so it makes no key.
    #[error("{0:?} is not a layer digest the cache can key")]
    InvalidDigest(String),
    /// MessagePack encoding failed.
    #[error("encoding the layer inventory: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// zstd compression failed.
    #[error("compressing the layer inventory: {0}")]
    Compress(#[source] std::io::Error),
    /// The entry would not fit in the bucket.
    #[error("the layer inventory takes {size} bytes compressed, more than the {limit} bytes of a cache entry")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// [`MAX_ENTRY_BYTES`].
        limit: usize,
    },
    /// The bucket refused or did not acknowledge the put.
    #[error("storing in {LAYERS_BUCKET}: {0}")]
    Store(#[from] kv::PutError),
    /// The bucket could not be opened.
    #[error("opening {LAYERS_BUCKET}: {0}")]
    Open(#[from] jetstream::context::KeyValueError),
}

/// Why a stored entry was not used (a miss).
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// It does not start with [`ENTRY_HEADER`]: another format or version, or garbage.
    #[error("not a layer-cache entry of this format")]
    Header,
    /// The compressed body does not say its size, or says more than [`MAX_DECODED_BYTES`].
    #[error("the body's size is unknown or above {MAX_DECODED_BYTES} bytes")]
    Size,
    /// The body is not valid zstd data.
    #[error("decompressing: {0}")]
    Decompress(#[source] std::io::Error),
    /// The body is not the expected MessagePack.
    #[error("decoding: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// A valid entry, made for something else.
    #[error("made for another {0}")]
    Mismatch(&'static str),
}

/// An entry as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryOut<'a> {
    schema: &'a str,
    cataloger_version: &'a str,
    catalogers: u64,
    layer: &'a str,
    inventory: &'a LayerInventory,
}

/// An entry as read back.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryIn {
    schema: String,
    cataloger_version: String,
    catalogers: u64,
    layer: String,
    inventory: LayerInventory,
}

/// The key of a layer's inventory: `<CATALOGER_VERSION escaped>.<digest hex>`;
/// `None` for a digest that is not `algorithm:lowercase-hex`.
pub fn layer_key(layer_digest: &str) -> Option<String> {
    let (algorithm, hex) = layer_digest.split_once(':')?;
    let algorithm_ok = !algorithm.is_empty() && algorithm.bytes().all(|b| b.is_ascii_alphanumeric());
    let hex_ok = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (algorithm_ok && hex_ok).then(|| format!("{}.{hex}", escape_key(CATALOGER_VERSION)))
}

/// The key a scanner creates while it walks a layer (see the module docs).
fn claim_key(layer_digest: &str) -> Option<String> {
    layer_key(layer_digest).map(|key| format!("{key}.claim"))
}

/// A stable 64-bit hash (FNV-1a) of a cataloger set's fingerprint, stored in
/// entries so that scanners with different catalogers never share one.
pub fn catalogers_hash(catalogers: &CatalogerSet) -> u64 {
    catalogers
        .fingerprint()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Encodes the entry for `layer_digest` made with the cataloger set hashed as `catalogers`.
pub fn encode_entry(
    layer_digest: &str,
    catalogers: u64,
    inventory: &LayerInventory,
) -> Result<Vec<u8>, LayerCacheError> {
    let entry = EntryOut {
        schema: ENTRY_SCHEMA,
        cataloger_version: CATALOGER_VERSION,
        catalogers,
        layer: layer_digest,
        inventory,
    };
    let packed = rmp_serde::to_vec_named(&entry)?;
    let compressed = zstd::bulk::compress(&packed, ZSTD_LEVEL).map_err(LayerCacheError::Compress)?;
    let mut out = Vec::with_capacity(ENTRY_HEADER.len() + compressed.len());
    out.extend_from_slice(ENTRY_HEADER);
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// Decodes an entry, checking it was made for `layer_digest` by the same
/// cataloger version and set; never reads more than [`MAX_DECODED_BYTES`].
pub fn decode_entry(bytes: &[u8], layer_digest: &str, catalogers: u64) -> Result<LayerInventory, EntryError> {
    let body = bytes.strip_prefix(ENTRY_HEADER).ok_or(EntryError::Header)?;
    // zstd::bulk::compress records the content size in the frame: decompress
    // into exactly that much, after checking it against the bound.
    let size = zstd::zstd_safe::get_frame_content_size(body).ok().flatten().ok_or(EntryError::Size)?;
    let size = usize::try_from(size).ok().filter(|&s| s <= MAX_DECODED_BYTES).ok_or(EntryError::Size)?;
    let packed = zstd::bulk::decompress(body, size).map_err(EntryError::Decompress)?;
    let entry: EntryIn = rmp_serde::from_slice(&packed)?;
    if entry.schema != ENTRY_SCHEMA {
        return Err(EntryError::Mismatch("schema"));
    }
    if entry.cataloger_version != CATALOGER_VERSION || entry.catalogers != catalogers {
        return Err(EntryError::Mismatch("cataloger version"));
    }
    if entry.layer != layer_digest {
        return Err(EntryError::Mismatch("layer"));
    }
    Ok(entry.inventory)
}

/// The layer cache in the `TRAWL_LAYERS` bucket, shared by every scanner of the cluster.
#[derive(Clone)]
pub struct KvLayerCache {
    store: kv::Store,
    catalogers: u64,
    owner: String,
    peer_wait: Duration,
}

impl KvLayerCache {
    /// Opens the bucket (created by the controller; never created here).
    /// `catalogers` must be the analyzer's; `owner` (the worker id) is
    /// written into claims for people reading the bucket.
    pub async fn open(
        js: &jetstream::Context,
        catalogers: &CatalogerSet,
        owner: &str,
    ) -> Result<KvLayerCache, LayerCacheError> {
        Ok(KvLayerCache::new(js.get_key_value(LAYERS_BUCKET).await?, catalogers, owner))
    }

    /// A cache on an open `TRAWL_LAYERS` store.
    pub fn new(store: kv::Store, catalogers: &CatalogerSet, owner: &str) -> KvLayerCache {
        KvLayerCache {
            store,
            catalogers: catalogers_hash(catalogers),
            owner: owner.to_string(),
            peer_wait: MAX_PEER_WAIT,
        }
    }

    /// The same cache, waiting at most `wait` for another scanner's walk of a layer.
    pub fn with_peer_wait(mut self, wait: Duration) -> KvLayerCache {
        self.peer_wait = wait;
        self
    }

    /// The cached inventory of `layer_digest`, if there is a usable one (why not is logged at debug).
    async fn lookup(&self, layer_digest: &str) -> Option<LayerInventory> {
        let key = layer_key(layer_digest)?;
        match self.store.get(key.as_str()).await {
            Ok(Some(bytes)) => match decode_entry(&bytes, layer_digest, self.catalogers) {
                Ok(inventory) => Some(inventory),
                Err(e) => {
                    tracing::debug!(layer = layer_digest, key, "unusable layer-cache entry (a miss): {e}");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(layer = layer_digest, "layer cache not readable (a miss): {e}");
                None
            }
        }
    }

    /// What a claim holds: who walks the layer, since when (for people; never parsed).
    fn claim_body(&self) -> Vec<u8> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        serde_json::json!({ "by": self.owner, "at": at }).to_string().into_bytes()
    }

    /// Keeps the claim `key` (now at `revision`) alive until the guard drops, then deletes it.
    fn hold(&self, key: String, revision: u64) -> ClaimGuard {
        let released = CancellationToken::new();
        let (this, watch) = (self.clone(), released.clone());
        tokio::spawn(async move {
            let mut revision = revision;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CLAIM_REFRESH) => {
                        match this.store.update(key.as_str(), this.claim_body().into(), revision).await {
                            Ok(next) => revision = next,
                            Err(e) => {
                                // Taken over (we looked dead) or unreachable: the waiters decide by themselves.
                                tracing::debug!(key, "cannot renew a layer claim: {e}");
                                return;
                            }
                        }
                    }
                    _ = watch.cancelled() => break,
                }
            }
            // Only our own revision: a claim taken over since is someone else's.
            if let Err(e) = this.store.delete_expect_revision(key.as_str(), Some(revision)).await {
                tracing::debug!(key, "cannot release a layer claim (it goes stale by itself): {e}");
            }
        });
        ClaimGuard::new(released.drop_guard())
    }

    /// Claims the walk of `layer_digest`, or waits for whoever has.
    async fn claim_walk(&self, layer_digest: &str) -> Claim {
        let Some(key) = claim_key(layer_digest) else { return Claim::Walk(None) };
        match self.store.create(key.as_str(), self.claim_body().into()).await {
            Ok(revision) => return Claim::Walk(Some(self.hold(key, revision))),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::debug!(key, "cannot claim a layer walk: {e}");
                return Claim::Walk(None);
            }
        }
        tracing::debug!(layer = layer_digest, "another scanner is walking this layer: waiting for its inventory");
        let started = Instant::now();
        let mut poll = POLL_FIRST;
        // The claim's revision changes at every renewal; one that stops changing is stale.
        let mut seen: Option<(u64, Instant)> = None;
        while started.elapsed() < self.peer_wait {
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(POLL_MAX);
            if let Some(inventory) = self.lookup(layer_digest).await {
                return Claim::Walked(inventory);
            }
            match self.store.entry(key.as_str()).await {
                Ok(Some(entry)) if entry.operation == kv::Operation::Put => match seen {
                    Some((revision, since)) if revision == entry.revision && since.elapsed() >= CLAIM_STALE => {
                        // Its scanner stopped renewing it: take the walk over (one waiter wins).
                        if let Ok(revision) =
                            self.store.update(key.as_str(), self.claim_body().into(), entry.revision).await
                        {
                            tracing::debug!(key, "took over a stale layer claim");
                            return Claim::Walk(Some(self.hold(key, revision)));
                        }
                    }
                    Some((revision, _)) if revision == entry.revision => {}
                    _ => seen = Some((entry.revision, Instant::now())),
                },
                Ok(_) => {
                    // Released. The inventory is put before the release, so look once more.
                    return match self.lookup(layer_digest).await {
                        Some(inventory) => Claim::Walked(inventory),
                        None => Claim::Walk(None),
                    };
                }
                Err(e) => {
                    tracing::debug!(key, "cannot read a layer claim: {e}");
                    return Claim::Walk(None);
                }
            }
        }
        tracing::debug!(layer = layer_digest, "gave up waiting for another scanner's walk");
        Claim::Walk(None)
    }
}

impl LayerCache for KvLayerCache {
    fn get<'a>(&'a self, layer_digest: &'a str) -> BoxFuture<'a, Option<LayerInventory>> {
        Box::pin(self.lookup(layer_digest))
    }

    fn put<'a>(
        &'a self,
        layer_digest: &'a str,
        inventory: &'a LayerInventory,
    ) -> BoxFuture<'a, Result<(), LayerCacheError>> {
        Box::pin(async move {
            let key = layer_key(layer_digest).ok_or_else(|| LayerCacheError::InvalidDigest(layer_digest.into()))?;
            let value = encode_entry(layer_digest, self.catalogers, inventory)?;
            if value.len() > MAX_ENTRY_BYTES {
                return Err(LayerCacheError::TooLarge { size: value.len(), limit: MAX_ENTRY_BYTES });
            }
            self.store.put(key.as_str(), value.into()).await?;
            Ok(())
        })
    }

    fn claim<'a>(&'a self, layer_digest: &'a str) -> BoxFuture<'a, Claim> {
        Box::pin(self.claim_walk(layer_digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_catalog::{FileOutcome, FileRecord};

    fn inventory() -> LayerInventory {
        LayerInventory {
            files: vec![FileRecord {
                path: "var/lib/dpkg/status".into(),
                cataloger: "dpkg".into(),
                outcome: FileOutcome::Found { packages: vec![], distro: None, warnings: vec!["w".into()] },
            }],
            whiteouts: vec!["etc/gone".into()],
            opaque_dirs: vec!["opt".into()],
            symlinks: vec![("etc/os-release".into(), "usr/lib/os-release".into())],
            entries: 12,
            bytes: 3456,
        }
    }

    #[test]
    fn keys_follow_the_cataloger_version_and_the_digest_hex() {
        let digest = format!("sha256:{}", "0a".repeat(32));
        assert_eq!(layer_key(&digest), Some(format!("{}.{}", escape_key(CATALOGER_VERSION), "0a".repeat(32))));
        assert_eq!(claim_key(&digest), Some(format!("{}.{}.claim", escape_key(CATALOGER_VERSION), "0a".repeat(32))));
        for bad in ["", "sha256", "sha256:", ":ab", "sha256:AB", "sha256:ab.cd", "sha256:ab>", "sha 256:ab"] {
            assert_eq!(layer_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn entries_round_trip_and_anything_else_is_a_miss() {
        let digest = format!("sha256:{}", "0a".repeat(32));
        let inv = inventory();
        let bytes = encode_entry(&digest, 7, &inv).unwrap();
        assert!(bytes.starts_with(ENTRY_HEADER));
        let back = decode_entry(&bytes, &digest, 7).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&inv).unwrap());

        assert!(matches!(decode_entry(&bytes, "sha256:other", 7), Err(EntryError::Mismatch("layer"))));
        assert!(matches!(decode_entry(&bytes, &digest, 8), Err(EntryError::Mismatch("cataloger version"))));
        assert!(matches!(decode_entry(b"garbage", &digest, 7), Err(EntryError::Header)));
        let mut truncated = bytes.clone();
        truncated.truncate(bytes.len() - 3);
        assert!(decode_entry(&truncated, &digest, 7).is_err());
        let mut not_zstd = ENTRY_HEADER.to_vec();
        not_zstd.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff]);
        assert!(decode_entry(&not_zstd, &digest, 7).is_err());
        // Valid zstd, not the expected MessagePack.
        let mut not_msgpack = ENTRY_HEADER.to_vec();
        not_msgpack.extend(zstd::bulk::compress(b"\xc1\xc1\xc1", 3).unwrap());
        assert!(matches!(decode_entry(&not_msgpack, &digest, 7), Err(EntryError::Decode(_))));
    }

    #[test]
    fn a_bomb_is_refused_before_it_is_decompressed() {
        let digest = format!("sha256:{}", "0a".repeat(32));
        // 65 MiB of zeros compress to a few KiB: the frame says its size, which is over the bound.
        let mut bomb = ENTRY_HEADER.to_vec();
        bomb.extend(zstd::bulk::compress(&vec![0u8; MAX_DECODED_BYTES + (1 << 20)], 3).unwrap());
        assert!(bomb.len() < 100_000);
        assert!(matches!(decode_entry(&bomb, &digest, 7), Err(EntryError::Size)));
        // A stream without a content size is refused too.
        let mut unsized_body = ENTRY_HEADER.to_vec();
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut encoder, b"abc").unwrap();
        unsized_body.extend(encoder.finish().unwrap());
        assert!(matches!(decode_entry(&unsized_body, &digest, 7), Err(EntryError::Size)));
    }

    #[test]
    fn the_cataloger_hash_is_stable_and_tells_sets_apart() {
        let all = trawl_catalog::default_catalogers();
        assert_eq!(catalogers_hash(&all), catalogers_hash(&trawl_catalog::default_catalogers()));
        assert_ne!(catalogers_hash(&all), catalogers_hash(&CatalogerSet::new(Vec::new())));
    }
}
