//! Electing the lead controller through a NATS key-value lease.
//!
//! Several controller replicas serve the API and ingest results; exactly one
//! leads: it crawls on schedule and scales the scanners. The lease is the
//! key `lead` of `TRAWL_LEADER`, whose entries expire after the bucket's
//! max_age (10 s, in `nats/kv/TRAWL_LEADER.json`):
//!
//! * a candidate takes the lease with `create`, which succeeds only when the
//!   key is absent (never written, expired, or released);
//! * the leader renews it every [`RENEW_EVERY`] with a compare-and-set
//!   `update` on the revision it holds, so a replica that lost the lease —
//!   because it paused longer than the expiry and someone else took it —
//!   finds out at once instead of overwriting the new leader;
//! * a leader counts itself leader only while its last renewal is younger
//!   than the expiry minus a safety margin ([`Leader::is_leader`]). A new
//!   leader can only take the lease after the old entry expired, so the two
//!   never both believe they lead, even when the old one is cut off from
//!   NATS: that is what keeps a failover from scaling twice;
//! * stopping cleanly releases the lease (compare-and-set delete), so the
//!   next leader takes over within one renewal instead of one expiry.

use async_nats::jetstream::{self, kv};
use std::time::{Duration, Instant};
use trawl_protocol::buckets::{LEADER_BUCKET, LEADER_KEY};

/// How often the leader renews its lease and candidates try to take it.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

/// Why leadership could not be checked.
#[derive(Debug, thiserror::Error)]
#[error("lead-controller lease in {LEADER_BUCKET}: {0}")]
pub struct LeaderError(String);

/// One replica's side of the election.
pub struct Leader {
    kv: kv::Store,
    id: String,
    /// How long an unrenewed lease lasts (the bucket's max_age).
    lease: Duration,
    /// The lease revision this replica holds, and when it last renewed it.
    held: Option<(u64, Instant)>,
}

impl Leader {
    /// A candidate named `id` (unique per replica: it is shown as the leader).
    pub async fn new(js: &jetstream::Context, id: &str) -> Result<Leader, LeaderError> {
        let kv = js.get_key_value(LEADER_BUCKET).await.map_err(|e| LeaderError(format!("opening the bucket: {e}")))?;
        let status = kv.status().await.map_err(|e| LeaderError(format!("reading the bucket's expiry: {e}")))?;
        let lease = status.max_age();
        if lease.is_zero() {
            return Err(LeaderError("the bucket has no max_age, so a dead leader's lease would never expire".into()));
        }
        Ok(Leader { kv, id: id.to_string(), lease, held: None })
    }

    /// This replica's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Renews the lease if held, else tries to take it; returns whether this
    /// replica leads now. Call it every [`RENEW_EVERY`].
    pub async fn renew(&mut self) -> bool {
        let started = Instant::now();
        if let Some((revision, _)) = self.held {
            match self.kv.update(LEADER_KEY, self.id.clone().into(), revision).await {
                Ok(next) => {
                    self.held = Some((next, started));
                    return self.is_leader();
                }
                Err(e) => {
                    tracing::warn!(id = %self.id, "lost the lead-controller lease: {e}");
                    self.held = None;
                }
            }
        }
        if let Ok(revision) = self.kv.create(LEADER_KEY, self.id.clone().into()).await {
            tracing::info!(id = %self.id, "became the lead controller");
            self.held = Some((revision, started));
        }
        self.is_leader()
    }

    /// Whether this replica may act as leader now: it holds the lease and
    /// renewed it recently enough that it cannot have expired yet — with a
    /// third of the expiry as margin for clock drift and slow requests.
    pub fn is_leader(&self) -> bool {
        let margin = self.lease / 3;
        self.held.is_some_and(|(_, at)| at.elapsed() + margin < self.lease)
    }

    /// The id of the current leader, as the bucket says.
    pub async fn current(&self) -> Result<Option<String>, LeaderError> {
        let value = self.kv.get(LEADER_KEY).await.map_err(|e| LeaderError(format!("reading the lease: {e}")))?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Gives the lease up (on shutdown), if this replica holds it.
    pub async fn release(&mut self) {
        if let Some((revision, _)) = self.held.take() {
            match self.kv.delete_expect_revision(LEADER_KEY, Some(revision)).await {
                Ok(()) => tracing::info!(id = %self.id, "released the lead-controller lease"),
                Err(e) => tracing::warn!(id = %self.id, "could not release the lead-controller lease: {e}"),
            }
        }
    }
}
