//! Crawling a registry: repositories, tags and manifest digests.
//!
//! The controller needs to know, for each configured registry, which images
//! exist and which digest each tag points at *now*, so that it can queue a
//! scan task per new digest. This module answers that over the Distribution
//! API (`/v2/_catalog`, `/v2/<name>/tags/list`, `HEAD /v2/<name>/manifests/<tag>`)
//! without pulling any blob:
//!
//! - [`RegistryClient`] speaks to one registry: anonymous, basic or bearer-token
//!   auth as the registry asks, pagination, bounded retries, bounded bodies.
//! - [`ImageFilter`] compiles the configuration's include and exclude globs.
//! - [`crawl`] puts them together into a [`CrawlOutcome`]: resolved images plus
//!   the per-repository problems that did not stop the crawl.
//!
//! Registries are treated as untrusted: a slow, looping or hostile one can
//! fail a crawl but not hang it or exhaust the controller's memory.

mod client;
mod crawl;
mod error;
mod filter;
mod parse;

pub use client::{
    RegistryClient, ResolvedTag, RetryPolicy, DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE, MANIFEST_MEDIA_TYPES,
};
pub use crawl::{crawl, CrawlOutcome, CrawlProblem};
pub use error::CrawlError;
pub use filter::ImageFilter;
