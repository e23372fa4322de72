//! The controller's library half. The data flows one way:
//! registry configurations → [`registry`] (crawl: repositories, tags,
//! digests) → [`publish`] (tasks onto the `TRAWL_TASKS` work queue) →
//! scanners → [`ingest`] (results into admission-control [`storage`]) →
//! [`api`]. [`controller`] ties the steps of a crawl together; [`reaper`]
//! dead-letters tasks no scanner could finish.

pub mod api;
pub mod controller;
pub mod ingest;
pub mod metrics;
pub mod publish;
pub mod reaper;
pub mod registry;
pub mod rematch;
pub mod storage;
