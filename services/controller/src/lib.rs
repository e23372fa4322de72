//! The controller's library half. The data flows one way:
//! registry configurations → [`registry`] (crawl: repositories, tags,
//! digests) → task publishing onto the `TRAWL_TASKS` work queue → (scanners)
//! → results ingested into admission-control storage → the API.

pub mod registry;
