//! # trawl-dbdist
//!
//! Live distribution of Trawl's vulnerability database over NATS JetStream.
//!
//! The updater compiles a database once and publishes it; every scanner
//! follows the announcement and swaps to the new database between scans,
//! without a restart and without disturbing a scan in flight.
//!
//! ## Layout on the server
//!
//! * Object store bucket [`OBJECT_BUCKET`] (`TRAWL_DB`, file storage) holds the
//!   database files, one object per version named [`object_name`]`(version)`
//!   = `trawl-<version>.db`. The publisher keeps the newest few
//!   ([`DEFAULT_KEEP`]) and deletes older ones.
//! * Key-value bucket [`ANNOUNCE_BUCKET`] (`TRAWL_DB_ANNOUNCE`) holds one key,
//!   [`ANNOUNCE_KEY`] (`current`), whose value is an [`Announcement`] as JSON:
//!   `{"version", "object", "sha256", "size", "builtAt", "sources"}`.
//!
//! The object is written first and announced second, so a follower never sees
//! an announcement for an object that is not there yet. Both buckets are
//! created on first use by whichever side comes first.
//!
//! ## Why two buckets
//!
//! Objects are large and chunked; a KV watch is the cheap, ordered,
//! resumable signal. Followers watch only the small announcement and fetch
//! the object they are told to, checking its SHA-256 against the announcement
//! and then the database's own header checksum before anything is swapped.
//!
//! ## Parts
//!
//! * [`DbPublisher`] — validate, upload, announce, prune.
//! * [`DbFollower`] — watch, download (bounded), verify, swap; reports
//!   [`FollowerEvent`]s.
//! * [`connect`] — a NATS connection from a URL that may carry `user:pass`,
//!   and an optional `.creds` file, with [`redact_url`] for logging.

#![warn(missing_docs)]

mod announce;
mod buckets;
mod connect;
mod error;
mod follower;
mod publisher;

pub use announce::{object_name, object_version, sha256_hex, AnnouncedSource, Announcement};
pub use buckets::{open_buckets, Buckets};
pub use connect::{connect, redact_url};
pub use error::DistError;
pub use follower::{DbFollower, DbHandle, FollowerConfig, FollowerEvent, FollowerState, RejectReason};
pub use publisher::{DbPublisher, PublishOptions};

/// JetStream object store bucket holding the database files.
pub const OBJECT_BUCKET: &str = "TRAWL_DB";
/// JetStream key-value bucket holding the announcement.
pub const ANNOUNCE_BUCKET: &str = "TRAWL_DB_ANNOUNCE";
/// Key of the current announcement in [`ANNOUNCE_BUCKET`].
pub const ANNOUNCE_KEY: &str = "current";
/// How many database versions the publisher keeps in [`OBJECT_BUCKET`] by default.
pub const DEFAULT_KEEP: usize = 3;
