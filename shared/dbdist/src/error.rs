//! The crate's error type.

use trawl_vulndb::DbError;

/// Boxed cause from the NATS client (its error types differ per call).
pub(crate) type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why publishing, following or connecting failed.
///
/// Each message already includes its cause (so a log line with `%error` is
/// complete); causes are therefore not also exposed as `source()`, which would
/// print them twice in a `{:#}` chain.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The bytes are not a valid database; nothing was published.
    #[error("refusing to publish: not a valid database: {0}")]
    InvalidDatabase(DbError),
    /// The database is not newer than the announced one (use force to override).
    #[error("database version {version} is not newer than the announced version {announced}; refusing to publish it without force")]
    NotNewer {
        /// Version of the database offered.
        version: u64,
        /// Version currently announced.
        announced: u64,
    },
    /// Another publisher changed the announcement between our check and our write.
    #[error("the announcement changed while publishing (another publisher?); nothing was announced, try again")]
    Conflict,
    /// The announcement in the bucket is not valid JSON of the expected shape.
    #[error("the current announcement is malformed: {0}")]
    BadAnnouncement(String),
    /// The NATS URL or credentials are unusable.
    #[error("invalid NATS connection settings: {0}")]
    Config(String),
    /// A NATS or JetStream operation failed.
    #[error("NATS: {what}: {cause}")]
    Nats {
        /// What was being done.
        what: String,
        /// The client's error.
        cause: Cause,
    },
}

impl DistError {
    /// Wraps a NATS client error with what was being done.
    pub(crate) fn nats(what: impl Into<String>, source: impl Into<Cause>) -> DistError {
        DistError::Nats { what: what.into(), cause: source.into() }
    }
}
