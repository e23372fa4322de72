//! The scanner's library half: image and host analysis (reference →
//! manifest → layers → inventory), the cluster-wide layer cache, matching
//! into a report, terminal progress, the NeuVector standalone-scanner
//! conventions, result delivery to a cluster, and the distributed worker
//! that scans tasks from the queue.
//! Shared by the standalone commands and the worker; the binary
//! (`src/bin/trawl-scanner/`: options in `cli.rs`, the steps in `main.rs`) is
//! thin glue around it.

pub mod analyze;
pub mod cluster;
pub mod exit;
pub mod host;
pub mod layer_cache;
pub mod neuvector;
pub mod progress;
pub mod scan;
pub mod worker;
