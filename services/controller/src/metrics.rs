//! The controller's Prometheus metrics (`/metrics`), with the `prometheus`
//! crate and names by its conventions.
//!
//! Two kinds, kept apart on purpose:
//! * **counters** of what this replica did (tasks published, results
//!   stored, tasks reaped, scaling events) are incremented where it happens;
//!   `rate()` over them is per replica, `sum()` is the cluster's;
//! * **gauges** of shared state (the queue, admission-control storage, the
//!   scanner count, leadership, the database) are read at scrape time from
//!   the stream, the storage mirror and the autoscaler, so every replica
//!   reports the same queue — query them with `max()`, not `sum()`.
//!
//! `docs/monitoring.md` lists every metric; the Grafana dashboard and alert
//! rules in `k8s/monitoring/` use these names.

use prometheus::{Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// Every metric the controller exports, on its own registry.
#[derive(Clone)]
pub struct ControllerMetrics {
    registry: Registry,
    /// Tasks published (new, not deduplicated), by lane.
    pub tasks_published: IntCounterVec,
    /// Results stored as new or newer records, by status (`scanned`, `failed`).
    pub results_stored: IntCounterVec,
    /// Results that repeated a stored one.
    pub results_repeated: IntCounter,
    /// Messages on the results stream that were not valid results.
    pub results_rejected: IntCounter,
    /// Tasks dead-lettered after MaxDeliver.
    pub tasks_reaped: IntCounter,
    /// Scanner count changes made by this replica, by direction and reason.
    pub scaling_events: IntCounterVec,
    /// Messages in the task stream.
    pub task_stream_depth: IntGauge,
    /// Pending plus in flight, by lane.
    pub task_queue_depth: IntGaugeVec,
    /// Waiting for a scanner, by lane.
    pub tasks_pending: IntGaugeVec,
    /// Taken and not yet acknowledged, by lane.
    pub tasks_in_flight: IntGaugeVec,
    /// Dead letters kept.
    pub dead_letters: IntGauge,
    /// Results waiting to be stored.
    pub results_pending: IntGauge,
    /// Images in storage, by status.
    pub images: IntGaugeVec,
    /// Scanners the backend was asked for.
    pub scanners_desired: IntGauge,
    /// Scanners the backend runs.
    pub scanners_current: IntGauge,
    /// Scanners the backend reports ready.
    pub scanners_ready: IntGauge,
    /// Scanners with a fresh heartbeat.
    pub scanners_live: IntGauge,
    /// 1 while another actor keeps resetting the scanner count.
    pub autoscale_overridden: IntGauge,
    /// 1 for the strategy in force.
    pub autoscale_strategy: IntGaugeVec,
    /// 1 while this replica leads.
    pub controller_leader: IntGauge,
    /// Version of the database this controller follows.
    pub vulndb_version: IntGauge,
    /// Seconds since that database was built.
    pub vulndb_age_seconds: Gauge,
    /// The database's build time (Unix seconds), kept to compute the age at scrape time.
    pub vulndb_built: IntGauge,
}

impl ControllerMetrics {
    /// Creates and registers every metric.
    pub fn new() -> ControllerMetrics {
        let registry = Registry::new();
        // Names and help texts are constants: registration cannot fail
        // except on a duplicate name, a bug caught by the first test run.
        fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
            r.register(Box::new(m.clone())).expect("metric names are unique");
            m
        }
        let counter = |name: &str, help: &str| reg(&registry, IntCounter::new(name, help).expect("valid metric"));
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(&registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let gauge = |name: &str, help: &str| reg(&registry, IntGauge::new(name, help).expect("valid metric"));
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(&registry, IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let m = ControllerMetrics {
            tasks_published: counter_vec(
                "trawl_tasks_published_total",
                "Scan tasks this controller queued (duplicates of queued tasks not counted), by lane.",
                &["lane"],
            ),
            results_stored: counter_vec(
                "trawl_results_stored_total",
                "Results this controller stored as a new or newer image record, by status.",
                &["status"],
            ),
            results_repeated: counter(
                "trawl_results_repeated_total",
                "Results this controller found already stored (redeliveries, older databases).",
            ),
            results_rejected: counter(
                "trawl_results_rejected_total",
                "Messages on the results stream that were not valid results.",
            ),
            tasks_reaped: counter(
                "trawl_tasks_reaped_total",
                "Tasks this controller dead-lettered after they reached MaxDeliver.",
            ),
            scaling_events: counter_vec(
                "trawl_scaling_events_total",
                "Scanner count changes this controller made as leader, by direction and reason.",
                &["direction", "reason"],
            ),
            task_stream_depth: gauge(
                "trawl_task_stream_depth",
                "Messages in the task stream (pending plus in flight): the autoscaler's task count.",
            ),
            task_queue_depth: gauge_vec("trawl_task_queue_depth", "Tasks pending plus in flight, by lane.", &["lane"]),
            tasks_pending: gauge_vec("trawl_tasks_pending", "Tasks waiting for a scanner, by lane.", &["lane"]),
            tasks_in_flight: gauge_vec(
                "trawl_tasks_in_flight",
                "Tasks taken by a scanner and not yet acknowledged, by lane.",
                &["lane"],
            ),
            dead_letters: gauge("trawl_dead_letters", "Dead letters kept in TRAWL_DEAD."),
            results_pending: gauge("trawl_results_pending", "Results waiting to be stored."),
            images: gauge_vec("trawl_images", "Images in admission-control storage, by status.", &["status"]),
            scanners_desired: gauge(
                "trawl_scanners_desired",
                "Scanners the scale backend was asked for (as the lead controller last read it).",
            ),
            scanners_current: gauge("trawl_scanners_current", "Scanners the scale backend runs."),
            scanners_ready: gauge("trawl_scanners_ready", "Scanners the scale backend reports ready."),
            scanners_live: gauge("trawl_scanners_live", "Scanners with a heartbeat younger than 30 s."),
            autoscale_overridden: gauge(
                "trawl_autoscale_overridden",
                "1 while another actor keeps resetting the scanner count and autoscaling has stopped fighting it.",
            ),
            autoscale_strategy: gauge_vec(
                "trawl_autoscale_strategy",
                "1 for the autoscale strategy in force.",
                &["strategy"],
            ),
            controller_leader: gauge("trawl_controller_leader", "1 while this controller replica leads."),
            vulndb_version: gauge(
                "trawl_vulndb_version",
                "Version of the vulnerability database in use (0: none yet).",
            ),
            vulndb_age_seconds: reg(
                &registry,
                Gauge::new("trawl_vulndb_age_seconds", "Seconds since the vulnerability database in use was built.")
                    .expect("valid metric"),
            ),
            vulndb_built: IntGauge::new("trawl_vulndb_built", "not exported").expect("valid metric"),
            registry,
        };
        // Labels known up front are exported at zero, so queries and alerts see them before the first event.
        for lane in trawl_protocol::Lane::ALL {
            m.tasks_published.with_label_values(&[lane.name()]);
        }
        for status in ["scanned", "failed"] {
            m.results_stored.with_label_values(&[status]);
        }
        m
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding our own families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        ControllerMetrics::new()
    }
}
