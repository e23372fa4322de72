//! The scanner's library half: image and host analysis (reference →
//! manifest → layers → inventory), terminal progress, the NeuVector
//! standalone-scanner conventions and result delivery to a cluster. Shared by
//! the standalone commands and, later, the distributed worker; the binary
//! (`src/bin/trawl-scanner/`: options in `cli.rs`, the steps in `main.rs`) is
//! thin glue around it.

pub mod analyze;
pub mod cluster;
pub mod exit;
pub mod host;
pub mod neuvector;
pub mod progress;
