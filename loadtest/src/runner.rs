//! `trawl-loadtest run SCENARIO --out DIR`: the load test itself.
//!
//! 1. Build the scenario's images and push them to a real `docker-registry`;
//!    put the throttling proxy in front of it.
//! 2. For each run (one per scanner count, or one autoscaled): start a fresh
//!    nats-server, the controller and the scanners; add the registry (its
//!    proxy address) through the controller's API and crawl it.
//! 3. Every second, sample the queue depth (`GET /api/v1/queue`), the live
//!    scanner processes, the results so far and every process's memory;
//!    inject the scenario's faults on time.
//! 4. The harness subscribes to the results subject itself, so every scan is
//!    seen (and counted per image) independently of the controller that
//!    stores them; a run ends when the controller has a result for every
//!    image and the harness has seen one.
//!
//! Then [`crate::load_report`] writes the figures, CSVs and charts.

use crate::compare::{self, Comparison};
use crate::imageset::{self, ImageSet};
use crate::scenario::{FaultAction, RunPlan, Scenario};
use crate::stack::{Binaries, PeakMemory, Stack};
use crate::throttle::{Throttle, ThrottleProxy};
use anyhow::{Context, Result};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trawl_testkit::Registry;

/// Sampling period.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Name of the registry in the controller.
const REGISTRY_NAME: &str = "loadtest";

/// `trawl-loadtest run` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The scenario file (loadtest/scenarios/*.toml).
    pub scenario: PathBuf,
    /// Where the report, CSVs, charts and logs go (created; earlier contents are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also time `syft` cataloguing and `skopeo copy` pulling images of the set, side by side with Trawl.
    #[arg(long)]
    pub compare: bool,
    /// How many images `--compare` times with each tool.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub compare_images: usize,
    /// Directory of trawl-controller and trawl-scanner (default: beside this binary).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// The `syft` binary.
    #[arg(long, value_name = "PATH", default_value = "syft")]
    pub syft: PathBuf,
    /// The `skopeo` binary.
    #[arg(long, value_name = "PATH", default_value = "skopeo")]
    pub skopeo: PathBuf,
}

/// One sample of a run, taken every second.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Seconds since the crawl started.
    pub t: f64,
    /// Tasks in the stream (pending plus in flight); `None` while the API could not say (NATS down).
    pub depth: Option<u64>,
    /// Live scanner processes.
    pub scanners: usize,
    /// Images with a result seen by the harness.
    pub completed: usize,
    /// Bytes the proxy has delivered since the crawl started.
    pub bytes: u64,
    /// Resident memory of the run's processes.
    pub resident: crate::stack::Resident,
    /// A fault injected at this sample.
    pub event: Option<String>,
    /// When scanners were killed at this sample: (live scanners just before, killed).
    pub kill: Option<(usize, usize)>,
}

/// What one scan result told the harness.
#[derive(Debug, Clone)]
pub struct SeenResult {
    /// `repository:tag`.
    pub image: String,
    /// The scanner that sent it.
    pub scanner: String,
    /// Queued → finished, seconds (the task's `requested_at` to the result's `finished_at`).
    pub latency: Option<f64>,
    /// Whether the scan failed, and why.
    pub failure: Option<String>,
    /// Seconds after the crawl started at which the harness saw it.
    pub seen_at: f64,
}

/// An image record of the controller's admission-control storage, at the end of a run.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// `repository:tag` (from the digest; the set's images are all distinct).
    pub image: String,
    /// `scanned` or `failed`.
    pub status: String,
    /// Scan results the controller received for it: 1 when scanned exactly once.
    pub results: u64,
    /// Packages its report lists.
    pub packages: u64,
    /// Vulnerabilities its report lists.
    pub findings: u64,
}

/// Figures of one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// `1-scanner`, `4-scanners`, `autoscale`.
    pub label: String,
    /// The fixed scanner count, or the most scanners seen at once.
    pub scanners: usize,
    /// Crawl start → last image's result, seconds.
    pub total_s: f64,
    /// Crawl start → crawl report (every task queued), seconds.
    pub crawl_s: f64,
    /// Every result seen, in arrival order.
    pub results: Vec<SeenResult>,
    /// Images the controller counts as scanned / failed at the end.
    pub stored_scanned: u64,
    /// See `stored_scanned`.
    pub stored_failed: u64,
    /// The controller's image records at the end.
    pub stored: Vec<StoredImage>,
    /// Whether nats-server was restarted: the harness's own subscription may
    /// then have missed results published while it reconnected, and the
    /// controller's records are what counts.
    pub nats_restarted: bool,
    /// Bytes the proxy delivered during the run.
    pub bytes_pulled: u64,
    /// Layer-cache hits, from the scanners' heartbeats.
    pub cache_hits: u64,
    /// Memory peaks.
    pub memory: PeakMemory,
    /// The samples.
    pub samples: Vec<Sample>,
    /// Scanner processes started over the run.
    pub scanners_started: usize,
    /// Results the controller stored for an image it already had (`trawl_results_repeated_total`).
    pub repeated: u64,
    /// Why the run did not finish, if it did not.
    pub error: Option<String>,
}

impl RunResult {
    /// Images per second.
    pub fn throughput(&self, images: usize) -> f64 {
        images as f64 / self.total_s.max(1e-9)
    }

    /// Results seen per image.
    pub fn scans_per_image(&self) -> HashMap<&str, usize> {
        let mut m = HashMap::new();
        for r in &self.results {
            *m.entry(r.image.as_str()).or_default() += 1;
        }
        m
    }

    /// A finished run of `scanners` with the given samples and nothing else, for tests.
    #[cfg(test)]
    pub(crate) fn fixture(label: &str, scanners: usize, samples: Vec<Sample>) -> RunResult {
        RunResult {
            label: label.into(),
            scanners,
            total_s: samples.last().map_or(0.0, |s| s.t),
            crawl_s: 1.0,
            results: Vec::new(),
            stored_scanned: 0,
            stored_failed: 0,
            stored: Vec::new(),
            nats_restarted: false,
            bytes_pulled: 0,
            cache_hits: 0,
            memory: PeakMemory::default(),
            samples,
            scanners_started: scanners,
            repeated: 0,
            error: None,
        }
    }

    /// Scan latencies, seconds, sorted.
    pub fn latencies(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.results.iter().filter_map(|r| r.latency).collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

/// Everything a scenario run produced.
pub struct Outcome {
    /// The scenario.
    pub scenario: Scenario,
    /// The images.
    pub images: ImageSet,
    /// Each run.
    pub runs: Vec<RunResult>,
    /// `--compare` figures.
    pub comparison: Option<Comparison>,
    /// When it started (UTC, RFC 3339).
    pub started_at: String,
    /// Wall time of the whole command, seconds.
    pub wall_s: f64,
}

/// Runs the scenario and writes its report; `Ok(false)` when an expectation failed.
pub async fn run(args: RunArgs) -> Result<bool> {
    let begun = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let scenario = Scenario::load(&args.scenario)?;
    let bins = Binaries::find(args.bin_dir.as_deref())?;
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out).with_context(|| format!("clear {}", args.out.display()))?;
    }
    let work = args.out.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let say = |m: String| eprintln!("[{:>6.1}s] {m}", begun.elapsed().as_secs_f64());

    let registry = tokio::task::block_in_place(Registry::start).context("start docker-registry (run scripts/setup)")?;
    let generated_db = work.join("loadtest.db");
    say(format!(
        "building and pushing {} images ({} layers of {} each)",
        scenario.images.count(),
        scenario.images.layers,
        crate::report::bytes(scenario.images.layer_size)
    ));
    let images = imageset::build_and_push(&scenario.images, &registry, &generated_db, &work).await?;
    let db = scenario.images.database.clone().unwrap_or(generated_db);
    let throttle = Throttle {
        latency: scenario.registry.latency,
        per_connection: scenario.registry.bandwidth_per_connection,
        total: scenario.registry.bandwidth_total,
    };
    let upstream = format!("127.0.0.1:{}", registry.port()).parse()?;
    let proxy = ThrottleProxy::start(upstream, throttle).await?;
    say(format!(
        "pushed: {} distinct layers, {}; registry behind the proxy at {}",
        images.distinct_layers,
        crate::report::bytes(images.distinct_layer_bytes),
        proxy.host()
    ));

    let mut runs = Vec::new();
    for plan in scenario.runs() {
        let label = plan.label();
        say(format!("run {label}: starting"));
        let dir = args.out.join("logs").join(&label);
        let result = run_once(&scenario, &plan, &bins, &db, &proxy, &images, dir, &say).await?;
        say(format!(
            "run {label}: {} images in {:.1} s ({:.2} images/s){}",
            result.scans_per_image().len(),
            result.total_s,
            result.throughput(images.images.len()),
            result.error.as_deref().map(|e| format!("; FAILED: {e}")).unwrap_or_default()
        ));
        runs.push(result);
    }
    let comparison = if args.compare {
        say("comparing with syft and skopeo".into());
        Some(compare::run(&args, &bins, &db, &registry, &proxy, &images, &work).await?)
    } else {
        None
    };
    let outcome = Outcome { scenario, images, runs, comparison, started_at, wall_s: begun.elapsed().as_secs_f64() };
    let passed = crate::load_report::write(&args.out, &outcome)?;
    say(format!("report: {}", args.out.join("report.md").display()));
    Ok(passed)
}

/// Results the subscription has seen, shared with the sampling loop.
#[derive(Default)]
struct Seen {
    results: Vec<SeenResult>,
    images: BTreeMap<String, usize>,
    last_new_at: f64,
}

#[allow(clippy::too_many_arguments)]
async fn run_once(
    scenario: &Scenario,
    plan: &RunPlan,
    bins: &Binaries,
    db: &std::path::Path,
    proxy: &ThrottleProxy,
    images: &ImageSet,
    dir: PathBuf,
    say: &impl Fn(String),
) -> Result<RunResult> {
    let expected = images.images.len();
    let mut stack = Stack::start(bins, plan, &scenario.scanners, db, &dir).await?;
    let client = async_nats::connect(stack.nats.url()).await.context("connect the harness to NATS")?;
    let mut subscription = client
        .subscribe(format!("{}.>", trawl_protocol::RESULTS_SUBJECT_PREFIX))
        .await
        .context("subscribe to the results")?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let t0 = Instant::now();
    let watcher = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some(msg) = subscription.next().await {
                let Ok(result) = trawl_protocol::ScanResult::decode(&msg.payload) else { continue };
                let Some(task) = &result.task else { continue };
                // host:port/repository:tag → repository:tag
                let image = task.reference.split_once('/').map(|(_, r)| r).unwrap_or(&task.reference).to_string();
                let latency = match (
                    chrono::DateTime::parse_from_rfc3339(&task.requested_at),
                    chrono::DateTime::parse_from_rfc3339(&result.finished_at),
                ) {
                    (Ok(a), Ok(b)) => Some((b - a).num_milliseconds() as f64 / 1000.0),
                    _ => None,
                };
                let failure = result.failure.as_ref().map(|f| format!("{:?}: {}", f.kind, f.message));
                let at = t0.elapsed().as_secs_f64();
                let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                let count = s.images.entry(image.clone()).or_default();
                *count += 1;
                if *count == 1 {
                    s.last_new_at = at;
                }
                s.results.push(SeenResult {
                    image,
                    scanner: result.scanner.name.clone(),
                    latency,
                    failure,
                    seen_at: at,
                });
            }
        })
    };
    client.flush().await?;

    let url = format!("http://{}", proxy.host());
    stack
        .api
        .send(
            reqwest::Method::POST,
            "/api/v1/registries",
            serde_json::json!({"name": REGISTRY_NAME, "url": url, "insecure": true}),
        )
        .await
        .context("add the registry to the controller")?;
    let bytes_at_start = proxy.stats().bytes_down();
    let crawl = {
        let api = stack.api.clone();
        tokio::spawn(async move {
            let path = format!("/api/v1/registries/{REGISTRY_NAME}/scan?wait=true");
            let report = api.send(reqwest::Method::POST, &path, serde_json::json!({})).await;
            (Instant::now(), report)
        })
    };
    let mut crawl = Some(crawl);
    let mut crawl_s = None;

    let mut memory = PeakMemory::default();
    let mut samples = Vec::new();
    let mut beats = Heartbeats::new();
    let mut faults = scenario.faults.iter().peekable();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let mut max_scanners = 0;
    let mut nats_restarted = false;
    let mut finished_at = 0.0_f64;
    let mut error = None;
    let (mut stored_scanned, mut stored_failed) = (0, 0);
    loop {
        tick.tick().await;
        let t = t0.elapsed();
        let mut event = None;
        let mut kill = None;
        while let Some(f) = faults.next_if(|f| f.at <= t) {
            let what = match f.action {
                FaultAction::KillScanners(n) => {
                    let before = stack.scanner_pids().len();
                    let killed = stack.kill_scanners(n);
                    kill = Some((before, killed));
                    format!("killed {killed} scanner(s)")
                }
                FaultAction::RestartNats { down_for } => {
                    tokio::task::block_in_place(|| stack.restart_nats(down_for))?;
                    nats_restarted = true;
                    format!("restarted nats-server (down {:.1} s)", down_for.as_secs_f64())
                }
            };
            say(format!("  t={:.1}s: {what}", t.as_secs_f64()));
            event = Some(what);
        }
        stack.replace_dead()?;
        if let Some(h) = crawl.take_if(|h| h.is_finished()) {
            let (at, report) = h.await?;
            if let Err(e) = report {
                error = Some(format!("the crawl failed: {e:#}"));
            }
            crawl_s = Some(at.duration_since(t0).as_secs_f64());
        }
        let depth = match stack.api.get("/api/v1/queue").await {
            Ok(q) => q.get("depth").and_then(|d| d.as_u64()),
            Err(_) => None,
        };
        read_heartbeats(&stack.api, &mut beats).await;
        if let Ok(status) = stack.api.get(&format!("/api/v1/registries/{REGISTRY_NAME}")).await {
            stored_scanned = status.get("scanned").and_then(|v| v.as_u64()).unwrap_or(0);
            stored_failed = status.get("failed").and_then(|v| v.as_u64()).unwrap_or(0);
        }
        let processes = stack.processes();
        let scanners = processes.iter().filter(|(r, _)| matches!(r, crate::stack::Role::Scanner(_))).count();
        max_scanners = max_scanners.max(scanners);
        let resident = memory.sample(&processes);
        let completed = seen.lock().unwrap_or_else(|p| p.into_inner()).images.len();
        samples.push(Sample {
            t: t.as_secs_f64(),
            depth,
            scanners,
            completed,
            bytes: proxy.stats().bytes_down() - bytes_at_start,
            resident,
            event,
            kill,
        });
        let stored = (stored_scanned + stored_failed) as usize;
        if crawl.is_none() && stored >= expected && (completed >= expected || nats_restarted) {
            if completed < expected {
                // Results the harness missed while NATS was down: the controller's count is the end.
                finished_at = finished_at.max(t.as_secs_f64());
            }
            break;
        }
        if error.is_some() {
            break;
        }
        if t > scenario.timeout {
            error = Some(format!(
                "timed out after {:.0} s: the harness saw results for {completed} of {expected} images, the controller stored {stored}",
                scenario.timeout.as_secs_f64()
            ));
            break;
        }
    }
    // The heartbeats (every 5 s) lag the results: give them one interval to count the last scans.
    let seen_total = seen.lock().unwrap_or_else(|p| p.into_inner()).results.len() as u64;
    let deadline = Instant::now() + trawl_protocol::heartbeat::HEARTBEAT_INTERVAL + Duration::from_secs(2);
    while beats.values().map(|b| b.0).sum::<u64>() < seen_total && Instant::now() < deadline && error.is_none() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        read_heartbeats(&stack.api, &mut beats).await;
        memory.sample(&stack.processes());
    }
    let stored = stored_images(&stack.api, images).await.unwrap_or_else(|e| {
        error.get_or_insert(format!("reading the controller's image records: {e:#}"));
        Vec::new()
    });
    let repeated = stack.api.metrics().await.ok().and_then(|m| metric(&m, "trawl_results_repeated_total")).unwrap_or(0);
    let bytes_pulled = proxy.stats().bytes_down() - bytes_at_start;
    // Distinct scanner processes seen: the autoscaler's replacements included.
    let seen_pids = memory.by_process.keys().filter(|r| matches!(r, crate::stack::Role::Scanner(_))).count();
    let scanners_started = stack.scanners_started.max(seen_pids);
    if error.is_some() {
        std::fs::write(dir.join("controller-at-failure.log"), stack.controller_log()).ok();
    }
    tokio::task::block_in_place(|| stack.stop());
    watcher.abort();
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(RunResult {
        label: plan.label(),
        scanners: match plan {
            RunPlan::Fixed(n) => *n,
            RunPlan::Autoscale(_) => max_scanners,
        },
        total_s: seen.last_new_at.max(finished_at),
        crawl_s: crawl_s.unwrap_or(f64::NAN),
        results: seen.results,
        stored_scanned,
        stored_failed,
        stored,
        nats_restarted,
        bytes_pulled,
        cache_hits: beats.values().map(|b| b.1).sum(),
        memory,
        samples,
        scanners_started,
        repeated,
        error,
    })
}

/// The controller's records of the set's images (`GET /api/v1/images?registry=…`).
async fn stored_images(api: &crate::stack::Api, images: &ImageSet) -> Result<Vec<StoredImage>> {
    let by_digest: HashMap<&str, String> = images.images.iter().map(|i| (i.digest.as_str(), i.name())).collect();
    let list = api.get(&format!("/api/v1/images?registry={REGISTRY_NAME}")).await?;
    let records = list.as_array().context("the image list is not an array")?;
    let mut out = Vec::new();
    for r in records {
        let text = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let number = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_u64()).unwrap_or(0);
        let Some(image) = by_digest.get(text("digest").as_str()) else { continue };
        out.push(StoredImage {
            image: image.clone(),
            status: text("status"),
            results: number(r.get("results")),
            packages: number(r.get("packages")),
            findings: number(r.get("vulnerabilities").and_then(|v| v.get("total"))),
        });
    }
    Ok(out)
}

/// Per scanner id: the largest (scanned + failed, layer-cache hits) its heartbeats reported.
type Heartbeats = HashMap<String, (u64, u64)>;

/// Folds the live heartbeats into `beats`: counters only grow, and a scanner
/// that has gone keeps the last figures it sent.
async fn read_heartbeats(api: &crate::stack::Api, beats: &mut Heartbeats) {
    let Ok(serde_json::Value::Array(list)) = api.get("/api/v1/scanners").await else { return };
    for b in list {
        let id = b.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let n = |k: &str| b.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let entry = beats.entry(id).or_default();
        *entry = (entry.0.max(n("scanned") + n("failed")), entry.1.max(n("layerCacheHits")));
    }
}

/// The value of an unlabelled counter in Prometheus text.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_counter() {
        let text = "# HELP x\ntrawl_results_repeated_total_other 9\ntrawl_results_repeated_total 3\n";
        assert_eq!(super::metric(text, "trawl_results_repeated_total"), Some(3));
        assert_eq!(super::metric(text, "absent"), None);
    }
}
