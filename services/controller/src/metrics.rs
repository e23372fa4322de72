//! `/metrics` in the Prometheus text format: queue depth per lane, results
//! stored, images by status. The values are read at scrape time from the
//! stream and the storage mirror, so every replica reports the same queue.

use crate::controller::QueueStatus;
use std::fmt::Write;

/// The values one scrape shows.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The queue, when NATS answered.
    pub queue: Option<QueueStatus>,
    /// Images with a result.
    pub images_scanned: usize,
    /// Images whose scan failed.
    pub images_failed: usize,
    /// Results this replica stored.
    pub results_stored: u64,
    /// Results this replica found already stored.
    pub results_repeated: u64,
    /// Messages on the results stream that were not results.
    pub results_rejected: u64,
    /// Tasks this replica dead-lettered after MaxDeliver.
    pub tasks_reaped: u64,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders `s` as Prometheus text.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    if let Some(q) = &s.queue {
        family(
            &mut out,
            "trawl_task_stream_depth",
            "gauge",
            "Messages in the task stream (pending plus in flight): the autoscaler's task count.",
        );
        let _ = writeln!(out, "trawl_task_stream_depth {}", q.depth);
        family(&mut out, "trawl_tasks_pending", "gauge", "Tasks waiting for a scanner, by lane.");
        for (lane, d) in &q.lanes {
            let _ = writeln!(out, "trawl_tasks_pending{{lane=\"{lane}\"}} {}", d.pending);
        }
        family(
            &mut out,
            "trawl_tasks_in_flight",
            "gauge",
            "Tasks taken by a scanner and not yet acknowledged, by lane.",
        );
        for (lane, d) in &q.lanes {
            let _ = writeln!(out, "trawl_tasks_in_flight{{lane=\"{lane}\"}} {}", d.in_flight);
        }
        family(&mut out, "trawl_dead_letters", "gauge", "Dead letters kept in TRAWL_DEAD.");
        let _ = writeln!(out, "trawl_dead_letters {}", q.dead_letters);
        family(&mut out, "trawl_results_pending", "gauge", "Results waiting to be stored.");
        let _ = writeln!(out, "trawl_results_pending {}", q.results_pending);
    }
    family(&mut out, "trawl_images", "gauge", "Images in admission-control storage, by status.");
    let _ = writeln!(out, "trawl_images{{status=\"scanned\"}} {}", s.images_scanned);
    let _ = writeln!(out, "trawl_images{{status=\"failed\"}} {}", s.images_failed);
    family(&mut out, "trawl_results_stored_total", "counter", "Results this controller stored.");
    let _ = writeln!(out, "trawl_results_stored_total {}", s.results_stored);
    family(&mut out, "trawl_results_repeated_total", "counter", "Results this controller found already stored.");
    let _ = writeln!(out, "trawl_results_repeated_total {}", s.results_repeated);
    family(
        &mut out,
        "trawl_results_rejected_total",
        "counter",
        "Messages on the results stream that were not valid results.",
    );
    let _ = writeln!(out, "trawl_results_rejected_total {}", s.results_rejected);
    family(&mut out, "trawl_tasks_reaped_total", "counter", "Tasks dead-lettered after reaching MaxDeliver.");
    let _ = writeln!(out, "trawl_tasks_reaped_total {}", s.tasks_reaped);
    out
}
