//! Publishing compiled databases to scanners through NATS (`publish`, `once`,
//! `run`): the updater side of `trawl-dbdist`.
//!
//! `once` is what a nightly job runs: it reads the announcement first (so an
//! unreachable NATS fails before a long build), builds, and publishes only
//! when the advisory sources differ from those of the announced database —
//! the source digests recorded in each database header travel in the
//! announcement, so no download is needed to compare.

use anyhow::{bail, Context, Result};
use std::time::Duration;
use trawl_dbdist::{Announcement, DbPublisher, DistError, PublishOptions};
use trawl_vulndb::Database;

/// What one `once` cycle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnceOutcome {
    /// A new database was published.
    Published(Announcement),
    /// The sources are those of the announced database; nothing was published.
    Unchanged(Announcement),
}

/// Validates and publishes a database file's bytes.
pub async fn publish_bytes(client: async_nats::Client, bytes: &[u8], force: bool) -> Result<Announcement> {
    let publisher = DbPublisher::connect(client).await?;
    match publisher.publish_with(bytes, PublishOptions { force }).await {
        Err(e @ (DistError::NotNewer { .. } | DistError::BadAnnouncement(_))) => {
            Err(anyhow::Error::new(e).context("not published (pass --force to publish anyway)"))
        }
        other => Ok(other?),
    }
}

/// Builds from `sources` and publishes, unless the sources are unchanged since
/// the announced database.
pub async fn once(client: async_nats::Client, sources: &[String]) -> Result<OnceOutcome> {
    let publisher = DbPublisher::connect(client).await?;
    let (announced, force) = match publisher.announced().await {
        Ok(announced) => (announced, false),
        // The updater owns the announcement: replace one nobody can read.
        Err(DistError::BadAnnouncement(reason)) => {
            tracing::warn!(%reason, "the current announcement is malformed; it will be replaced");
            (None, true)
        }
        Err(e) => return Err(e.into()),
    };
    let (db, _) = crate::sources::build_database(sources).await?;
    let mut digests: Vec<String> = db.header().sources.iter().map(|s| s.sha256.clone()).collect();
    digests.sort();
    if let Some(announced) = &announced {
        if !digests.is_empty() && digests == announced.source_digests() {
            return Ok(OnceOutcome::Unchanged(announced.clone()));
        }
    }
    let db = bump_past(db, announced.as_ref());
    let bytes = tokio::task::spawn_blocking(move || db.to_bytes()).await.context("serialise task failed")??;
    let announcement = publisher.publish_with(&bytes, PublishOptions { force }).await?;
    Ok(OnceOutcome::Published(announcement))
}

/// The sources changed, so this database is newer than the announced one by
/// definition; a build clock behind the previous builder's must not make it
/// look older, so its version is moved just past the announced one.
fn bump_past(db: Database, announced: Option<&Announcement>) -> Database {
    match announced {
        Some(a) if db.header().version <= a.version => {
            tracing::warn!(
                built = db.header().version,
                announced = a.version,
                "build clock is behind the announced database; stamping version {}",
                a.version + 1
            );
            db.with_version(a.version + 1)
        }
        _ => db,
    }
}

/// Parses an interval such as `6h`, `30m`, `90s`, `1h30m` or `2d`.
pub fn parse_interval(text: &str) -> Result<Duration> {
    let text = text.trim();
    if text.is_empty() {
        bail!("empty interval: use e.g. 6h, 30m or 90s");
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => bail!("bad interval {text:?}: unknown unit {c:?} (use s, m, h or d)"),
        };
        if digits.is_empty() {
            bail!("bad interval {text:?}: a unit without a number");
        }
        let n: u64 = digits.parse().with_context(|| format!("bad interval {text:?}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .with_context(|| format!("interval {text:?} is too long"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        bail!("bad interval {text:?}: a number without a unit (use s, m, h or d)");
    }
    if total == 0 {
        bail!("interval {text:?} must be longer than zero");
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("6h").unwrap(), Duration::from_secs(6 * 3600));
        assert_eq!(parse_interval("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_interval("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_interval("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_interval("45s").unwrap(), Duration::from_secs(45));
        for bad in ["", "6", "h", "6x", "0s", "99999999999999999999d"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
