//! # trawl-loadtest
//!
//! Trawl's benchmark and load-test harness. Speed and memory targets (issue 2:
//! peak RSS, layer throughput, end-to-end time against Syft and `skopeo`) are
//! checked here, against real binaries, a real registry and realistic images,
//! never by timed unit tests — timings inside `cargo test` are noisy, slow the
//! suite and fail for reasons unrelated to the code under test.
//!
//! The binary's subcommands:
//! - `image-bench`: the image-analysis benchmark (run it through
//!   `loadtest/bench-image.sh`, which builds release binaries first). Prints a
//!   Markdown section with each measure, its figure, target and PASS/MISS.
//! - `db-bench`: the vulnerability-database benchmark (issue 3; run it through
//!   `loadtest/bench-db.sh`): corpus build and load time, matching 1,000
//!   packages, and a generated 500,000-advisory database probed in a fresh
//!   process for load time, resident memory and lookup latency.
//!
//! - `run SCENARIO --out DIR`: the load test (issue 8). A scenario file
//!   (`loadtest/scenarios/`, format in [`scenario`]) says which images to
//!   generate ([`imageset`]), what network to put between the registry and
//!   the scanners ([`throttle`]), how many scanners to run or how to autoscale
//!   them, and which faults to inject; [`runner`] runs the real cluster
//!   ([`stack`]) and samples it every second; [`load_report`] and [`charts`]
//!   write the Markdown, CSV and PNG report; [`compare`] times Syft and
//!   `skopeo copy` on the same images (`--compare`).
//!
//! Every figure is the median of several rounds, and comparisons with other
//! tools are made within a round, side by side, because the machine is shared
//! and its speed drifts between minutes. The library half exists so that
//! integration tests can drive the measuring code against the real binary.

#![warn(missing_docs)]

pub mod charts;
pub mod compare;
pub mod db_bench;
pub mod image_bench;
pub mod imageset;
pub mod load_report;
pub mod measure;
pub mod pipeline;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod select;
pub mod stack;
pub mod throttle;
