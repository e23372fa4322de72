//! The updater's library half: turning advisory sources into a compiled
//! database, and publishing it to scanners through NATS. The binary adds the
//! command line.

pub mod distribute;
pub mod sources;
