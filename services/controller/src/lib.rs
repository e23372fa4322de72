//! The controller's library half. The data flows one way:
//! registry configurations → [`registry`] (crawl: repositories, tags,
//! digests) → [`publish`] (tasks onto the `TRAWL_TASKS` work queue) →
//! scanners → [`ingest`] (results into admission-control [`storage`]) →
//! [`api`]. [`controller`] ties the steps of a crawl together; [`reaper`]
//! dead-letters tasks no scanner could finish; [`rematch`] re-evaluates
//! stored inventories against a new database. [`leader`] elects the one
//! replica that crawls on schedule and runs [`autoscale`].

pub mod api;
pub mod autoscale;
pub mod controller;
pub mod ingest;
pub mod leader;
pub mod metrics;
pub mod publish;
pub mod reaper;
pub mod registry;
pub mod rematch;
pub mod storage;
