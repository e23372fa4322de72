//! The load test's report: `report.md`, CSVs and charts in the output folder,
//! and the verdict on the scenario's expectations.
//!
//! Files written:
//! - `report.md`: set-up, one row per run, the expectations with PASS/MISS,
//!   the `--compare` table, links to the charts;
//! - `runs.csv`: the runs' figures, one row each;
//! - `samples.csv`: every one-second sample of every run;
//! - `scans.csv`: every scan result the harness saw (image, scanner, latency, failure);
//! - `compare.csv`: with `--compare`, every tool timing;
//! - `queue.png`, `memory.png`, and `throughput.png` when there are several fixed counts.

use crate::report::{bytes, table, verdict};
use crate::runner::{Outcome, RunResult};
use crate::scenario::{FaultAction, PackageSource, ScannerMode};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// One expectation and whether it held.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// What was measured.
    pub measured: String,
    /// Whether it held.
    pub pass: bool,
}

/// Nearest-rank percentile of sorted `values` (`NaN` when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The expectations of the scenario, checked against the runs. Runs that did not finish always fail.
pub fn checks(o: &Outcome) -> Vec<Check> {
    let n = o.images.images.len();
    let mut out = Vec::new();
    for r in &o.runs {
        if let Some(e) = &r.error {
            out.push(Check { what: format!("{}: the run finished", r.label), measured: e.clone(), pass: false });
        }
    }
    let e = &o.scenario.expect;
    if e.exactly_once {
        for r in &o.runs {
            // The controller counts the results it received per image; the
            // harness's own subscription must agree (no image seen twice).
            let once = r.stored.iter().filter(|i| i.results == 1).count();
            let more = r.stored.iter().filter(|i| i.results > 1).count();
            let seen_twice = r.scans_per_image().values().filter(|&&c| c > 1).count();
            out.push(Check {
                what: format!("{}: every image scanned exactly once", r.label),
                measured: format!(
                    "controller: {once} of {n} images with one result, {more} with more, {} without; \
                     harness: {} results, {seen_twice} images seen twice",
                    n - r.stored.len().min(n),
                    r.results.len(),
                ),
                pass: once == n && r.repeated == 0 && seen_twice == 0,
            });
        }
    }
    if e.complete {
        for r in &o.runs {
            let stored = r.stored.len();
            let seen = r.scans_per_image().len();
            let note = if r.nats_restarted {
                " (NATS restarted: the harness may miss results sent while it reconnected)"
            } else {
                ""
            };
            out.push(Check {
                what: format!("{}: every image has a stored result (no task lost)", r.label),
                measured: format!("controller {stored} of {n}, harness saw {seen} of {n}{note}"),
                pass: stored == n && (seen == n || r.nats_restarted),
            });
        }
    }
    if e.no_failures {
        for r in &o.runs {
            let failed = r.results.iter().filter(|s| s.failure.is_some()).count();
            let first =
                r.results.iter().find_map(|s| s.failure.clone()).map(|f| format!(" (first: {f})")).unwrap_or_default();
            out.push(Check {
                what: format!("{}: no scan failed", r.label),
                measured: format!("{failed} failed results, {} images stored as failed{first}", r.stored_failed),
                pass: failed == 0 && r.stored_failed == 0,
            });
        }
    }
    if let Some(within) = e.scanners_restored_within {
        for r in &o.runs {
            out.push(restored_check(r, within));
        }
    }
    if let Some(sp) = e.speedup {
        let tp = |k: usize| o.runs.iter().find(|r| r.scanners == k && r.label != "autoscale").map(|r| r.throughput(n));
        let (a, b) = (tp(sp.scanners), tp(sp.over));
        let ratio = match (a, b) {
            (Some(a), Some(b)) => a / b,
            _ => f64::NAN,
        };
        out.push(Check {
            what: format!("throughput with {} scanners ≥ {}× that with {}", sp.scanners, sp.at_least, sp.over),
            measured: format!("{ratio:.2}× ({:.3} vs {:.3} images/s)", a.unwrap_or(f64::NAN), b.unwrap_or(f64::NAN)),
            pass: ratio >= sp.at_least,
        });
    }
    out
}

/// After each kill in `r`, how long until the scanner count was back to what
/// it was just before. An autoscaled scenario using this keeps its scale-down
/// delay longer than the run, so that the count only falls by the kills.
fn restored_check(r: &RunResult, within: std::time::Duration) -> Check {
    let within = within.as_secs_f64();
    let mut parts = Vec::new();
    let mut pass = true;
    for (i, s) in r.samples.iter().enumerate() {
        let Some((target, killed)) = s.kill else { continue };
        let back = r.samples[i + 1..].iter().find(|later| later.scanners >= target).map(|later| later.t - s.t);
        let ended = r.samples.last().map_or(s.t, |l| l.t) - s.t;
        parts.push(match back {
            Some(dt) => {
                pass &= dt <= within;
                format!("{killed} killed at {:.0} s: back to {target} after {dt:.1} s", s.t)
            }
            None => {
                // A run that ended before the window closed has nothing to hold against it.
                pass &= ended < within;
                format!("{killed} killed at {:.0} s: not back to {target} when the run ended {ended:.1} s later", s.t)
            }
        });
    }
    if parts.is_empty() {
        parts.push("no scanner was killed (the run ended first?)".into());
        pass = false;
    }
    Check {
        what: format!("{}: killed scanners replaced within {within:.0} s", r.label),
        measured: parts.join("; "),
        pass,
    }
}

/// Writes every file of the report into `out`; `Ok(false)` when an expectation failed.
pub fn write(out: &Path, o: &Outcome) -> Result<bool> {
    let checks = checks(o);
    let passed = checks.iter().all(|c| c.pass);
    let s = &o.scenario;
    let n = o.images.images.len();

    crate::charts::queue_chart(&out.join("queue.png"), &format!("{}: queue depth and scanners", s.name), &o.runs)?;
    crate::charts::memory_chart(&out.join("memory.png"), &format!("{}: resident memory", s.name), &o.runs)?;
    let fixed: Vec<(usize, f64)> = match &s.scanners.mode {
        ScannerMode::Fixed(_) => {
            o.runs.iter().filter(|r| r.error.is_none()).map(|r| (r.scanners, r.throughput(n))).collect()
        }
        ScannerMode::Autoscale(_) => Vec::new(),
    };
    let throughput_png = fixed.len() > 1;
    if throughput_png {
        crate::charts::throughput_chart(
            &out.join("throughput.png"),
            &format!("{}: throughput against scanners", s.name),
            &fixed,
        )?;
    }
    write_csvs(out, o)?;

    let mut md = String::new();
    let _ = writeln!(md, "# Load test `{}`\n", s.name);
    if !s.description.is_empty() {
        let _ = writeln!(md, "{}\n", s.description);
    }
    let _ = writeln!(
        md,
        "Run {} on {}; the whole command took {:.0} s. Result: **{}**.\n",
        o.started_at,
        crate::image_bench::machine(),
        o.wall_s,
        if passed { "PASS" } else { "FAIL" }
    );
    let img = &s.images;
    let packages = match &img.packages {
        PackageSource::Generated(k) => format!("a generated dpkg database of {k} packages"),
        PackageSource::File { path, format } => format!("the real {format:?} database {}", path.display()),
    };
    let net = &s.registry;
    let rate = |r: Option<u64>| r.map(|b| format!("{}/s", bytes(b))).unwrap_or_else(|| "uncapped".into());
    let plural = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    let shared = match (img.shared_layers(), img.base_variants) {
        (0, _) => "none of them shared".to_string(),
        (k, 1) => format!("the first {} shared by every image (one base stack)", plural(k, "layer", "layers")),
        (k, v) => format!("the first {} from one of {v} base stacks", plural(k, "layer", "layers")),
    };
    let _ = writeln!(
        md,
        "**Images:** {n} ({} × {}), {} of {} incompressible bytes each ({:?}), {shared}; each with \
         {packages}. Distinct layers: {} ({}); all images' layers added up: {}.\n",
        plural(img.repositories, "repository", "repositories"),
        plural(img.tags, "tag", "tags"),
        plural(img.layers, "layer", "layers"),
        bytes(img.layer_size),
        img.compression,
        o.images.distinct_layers,
        bytes(o.images.distinct_layer_bytes),
        bytes(o.images.all_layer_bytes),
    );
    let _ = writeln!(
        md,
        "**Registry network** (throttling proxy in front of docker-registry): latency {} ms per request, \
         {} per connection, {} in all.\n",
        net.latency.as_millis(),
        rate(net.bandwidth_per_connection),
        rate(net.bandwidth_total)
    );
    let _ = writeln!(
        md,
        "**Scanners:** {}; {} each, {} per scan at once, layer cache {}.\n",
        match &s.scanners.mode {
            ScannerMode::Fixed(c) => format!("fixed counts {c:?}, one run each on the same images"),
            ScannerMode::Autoscale(a) => format!(
                "autoscaled by the controller ({} strategy, {}–{} scanners, process backend)",
                a.strategy, a.min_scanners, a.max_scanners
            ),
        },
        plural(s.scanners.concurrency, "concurrent scan", "concurrent scans"),
        plural(s.scanners.parallel_layers, "layer", "layers"),
        if s.scanners.layer_cache { "on" } else { "off" },
    );
    if !s.faults.is_empty() {
        let faults: Vec<String> = s
            .faults
            .iter()
            .map(|f| {
                let what = match f.action {
                    FaultAction::KillScanners(1) => "SIGKILL one scanner".to_string(),
                    FaultAction::KillScanners(k) => format!("SIGKILL {k} scanners"),
                    FaultAction::RestartNats { down_for } => {
                        format!("SIGKILL nats-server, restart it {:.1} s later", down_for.as_secs_f64())
                    }
                };
                format!("{what} at {:.0} s", f.at.as_secs_f64())
            })
            .collect();
        let _ = writeln!(md, "**Faults injected in every run:** {}.\n", faults.join("; "));
    }

    let _ = writeln!(md, "## Runs\n");
    let first_tp = o.runs.first().map(|r| r.throughput(n)).unwrap_or(f64::NAN);
    let rows: Vec<Vec<String>> =
        o.runs.iter().map(|r| run_row(r, n, first_tp, o.images.distinct_layer_bytes, img.layers)).collect();
    md.push_str(&table(
        &[
            "run",
            "scanners",
            "total time",
            "crawl",
            "throughput",
            "vs first run",
            "latency p50 / p95 / p99",
            "bytes pulled",
            "pulled / distinct",
            "layer-cache hits",
            "peak RSS: scanner / controller / nats",
            "results (failed)",
            "packages / findings per image",
            "outcome",
        ],
        &rows,
    ));
    let _ = writeln!(
        md,
        "\nTotal time: from the crawl request to the harness seeing the last image's first result. Latency: a task's \
         `requested_at` to its result's `finished_at` (queue wait plus scan). Bytes pulled: counted by the proxy, \
         registry → scanners, crawl included. Layer-cache hits: from the scanners' heartbeats, over all layers of all \
         scans. Peak RSS: the largest `VmHWM` of any one scanner process, of the controller and of nats-server.\n"
    );

    let _ = writeln!(md, "## Expectations\n");
    if checks.is_empty() {
        let _ = writeln!(md, "The scenario sets none.\n");
    } else {
        let rows: Vec<Vec<String>> =
            checks.iter().map(|c| vec![c.what.clone(), c.measured.clone(), verdict(c.pass).to_string()]).collect();
        md.push_str(&table(&["check", "measured", "result"], &rows));
        md.push('\n');
    }

    if let Some(c) = &o.comparison {
        let _ = writeln!(md, "## Side by side with Syft and skopeo\n");
        let _ = writeln!(
            md,
            "{} images of the set, each tool as a fresh process, one after another ({}). Ratio: the tool's wall \
             time over `trawl-scanner sbom`'s on the same image (median over images); above 1 means Trawl is faster.\n",
            c.timings.iter().map(|t| t.image.as_str()).collect::<std::collections::BTreeSet<_>>().len(),
            c.versions.join(", ")
        );
        let mut rows = Vec::new();
        for network in ["throttled", "direct"] {
            for tool in crate::compare::TOOLS {
                rows.push(vec![
                    network.to_string(),
                    format!("`{tool}`"),
                    format!("{:.2} s", c.median_wall(network, tool)),
                    format!("{:.0} MiB", c.median_rss(network, tool)),
                    if tool == "trawl sbom" { "1".into() } else { format!("{:.2}", c.ratio(network, tool)) },
                ]);
            }
        }
        md.push_str(&table(&["network", "tool", "median wall", "median peak RSS", "time / trawl sbom"], &rows));
        let _ = writeln!(md, "\nSyft catalogued {} packages in the first image.\n", c.syft_packages);
    }

    let _ = writeln!(md, "## Charts\n");
    let _ = writeln!(md, "![queue depth and scanners over time](queue.png)\n");
    if throughput_png {
        let _ = writeln!(md, "![throughput against scanners](throughput.png)\n");
    }
    let _ = writeln!(md, "![resident memory over time](memory.png)\n");
    let _ = writeln!(
        md,
        "Data: `runs.csv`, `samples.csv` (one row per second per run), `scans.csv` (every result seen){}; \
         the processes' logs are in `logs/`.",
        if o.comparison.is_some() { ", `compare.csv`" } else { "" }
    );
    std::fs::write(out.join("report.md"), &md).context("write report.md")?;
    println!("{md}");
    Ok(passed)
}

fn run_row(r: &RunResult, n: usize, first_tp: f64, distinct: u64, layers: usize) -> Vec<String> {
    let lat = r.latencies();
    let scans = r.results.len();
    let failed = r.results.iter().filter(|s| s.failure.is_some()).count();
    let layers_walked = (scans * layers).max(1);
    vec![
        r.label.clone(),
        if r.label == "autoscale" {
            format!("≤ {} ({} started)", r.scanners, r.scanners_started)
        } else {
            r.scanners.to_string()
        },
        format!("{:.1} s", r.total_s),
        format!("{:.1} s", r.crawl_s),
        format!("{:.2} images/s", r.throughput(n)),
        format!("{:.2}×", r.throughput(n) / first_tp),
        format!("{:.1} / {:.1} / {:.1} s", percentile(&lat, 50.0), percentile(&lat, 95.0), percentile(&lat, 99.0)),
        bytes(r.bytes_pulled),
        format!("{:.2}×", r.bytes_pulled as f64 / distinct.max(1) as f64),
        format!("{} ({:.0}%)", r.cache_hits, 100.0 * r.cache_hits as f64 / layers_walked as f64),
        format!(
            "{:.0} / {:.0} / {:.0} MiB",
            r.memory.peak_mib("scanner"),
            r.memory.peak_mib("controller"),
            r.memory.peak_mib("nats")
        ),
        format!("{scans} ({failed})"),
        {
            let mut p: Vec<f64> = r.stored.iter().map(|i| i.packages as f64).collect();
            let mut f: Vec<f64> = r.stored.iter().map(|i| i.findings as f64).collect();
            p.sort_by(f64::total_cmp);
            f.sort_by(f64::total_cmp);
            format!("{:.0} / {:.0} (median)", percentile(&p, 50.0), percentile(&f, 50.0))
        },
        match &r.error {
            None => "finished".into(),
            Some(e) => format!("FAILED: {e}"),
        },
    ]
}

fn write_csvs(out: &Path, o: &Outcome) -> Result<()> {
    let n = o.images.images.len();
    let mut runs = String::from(
        "run,scanners,images,total_s,crawl_s,throughput_images_per_s,latency_p50_s,latency_p95_s,latency_p99_s,\
         bytes_pulled,distinct_layer_bytes,layer_cache_hits,results,failed_results,stored_scanned,stored_failed,\
         repeated,peak_rss_scanner_mib,peak_rss_controller_mib,peak_rss_nats_mib,peak_rss_total_mib,scanners_started,error\n",
    );
    for r in &o.runs {
        let lat = r.latencies();
        let _ = writeln!(
            runs,
            "{},{},{n},{:.3},{:.3},{:.4},{:.3},{:.3},{:.3},{},{},{},{},{},{},{},{},{:.1},{:.1},{:.1},{:.1},{},{}",
            r.label,
            r.scanners,
            r.total_s,
            r.crawl_s,
            r.throughput(n),
            percentile(&lat, 50.0),
            percentile(&lat, 95.0),
            percentile(&lat, 99.0),
            r.bytes_pulled,
            o.images.distinct_layer_bytes,
            r.cache_hits,
            r.results.len(),
            r.results.iter().filter(|s| s.failure.is_some()).count(),
            r.stored_scanned,
            r.stored_failed,
            r.repeated,
            r.memory.peak_mib("scanner"),
            r.memory.peak_mib("controller"),
            r.memory.peak_mib("nats"),
            r.memory.total_rss_kib as f64 / 1024.0,
            r.scanners_started,
            csv_field(r.error.as_deref().unwrap_or("")),
        );
    }
    std::fs::write(out.join("runs.csv"), runs)?;

    let mut samples = String::from(
        "run,t_s,queue_depth,scanners,images_done,bytes_pulled,rss_total_mib,rss_largest_scanner_mib,\
         rss_controller_mib,rss_nats_mib,event\n",
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    for r in &o.runs {
        for s in &r.samples {
            let _ = writeln!(
                samples,
                "{},{:.2},{},{},{},{},{:.1},{:.1},{:.1},{:.1},{}",
                r.label,
                s.t,
                s.depth.map(|d| d.to_string()).unwrap_or_default(),
                s.scanners,
                s.completed,
                s.bytes,
                mib(s.resident.total_kib),
                mib(s.resident.scanner_kib),
                mib(s.resident.controller_kib),
                mib(s.resident.nats_kib),
                csv_field(s.event.as_deref().unwrap_or(""))
            );
        }
    }
    std::fs::write(out.join("samples.csv"), samples)?;

    let mut scans = String::from("run,image,scanner,seen_at_s,latency_s,failure\n");
    for r in &o.runs {
        for s in &r.results {
            let _ = writeln!(
                scans,
                "{},{},{},{:.3},{},{}",
                r.label,
                s.image,
                csv_field(&s.scanner),
                s.seen_at,
                s.latency.map(|l| format!("{l:.3}")).unwrap_or_default(),
                csv_field(s.failure.as_deref().unwrap_or(""))
            );
        }
    }
    std::fs::write(out.join("scans.csv"), scans)?;

    if let Some(c) = &o.comparison {
        let mut csv = String::from("network,image,tool,wall_s,user_s,sys_s,peak_rss_mib\n");
        for t in &c.timings {
            let _ = writeln!(
                csv,
                "{},{},{},{:.3},{:.3},{:.3},{:.1}",
                t.network,
                t.image,
                t.tool,
                t.run.wall.as_secs_f64(),
                t.run.user.as_secs_f64(),
                t.run.sys.as_secs_f64(),
                t.run.rss_mib()
            );
        }
        std::fs::write(out.join("compare.csv"), csv)?;
    }
    Ok(())
}

/// A CSV field, quoted when it holds a comma, quote or newline.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    /// Samples one second apart with these scanner counts, a kill of one at `kill_at`.
    fn counts(label: &str, counts: &[usize], kill_at: usize) -> RunResult {
        let samples = counts
            .iter()
            .enumerate()
            .map(|(t, &scanners)| crate::runner::Sample {
                t: t as f64,
                depth: Some(1),
                scanners,
                completed: 0,
                bytes: 0,
                resident: Default::default(),
                event: None,
                kill: (t == kill_at).then_some((counts[t.saturating_sub(1)], 1)),
            })
            .collect();
        RunResult::fixture(label, 2, samples)
    }

    #[test]
    fn a_kill_counts_as_restored_when_the_count_is_back_in_time() {
        let within = std::time::Duration::from_secs(3);
        let quick = restored_check(&counts("quick", &[2, 2, 1, 1, 2, 2], 2), within);
        assert!(quick.pass, "{}", quick.measured);
        assert!(quick.measured.contains("back to 2 after 2.0 s"), "{}", quick.measured);
        let slow = restored_check(&counts("slow", &[2, 2, 1, 1, 1, 1, 1, 2], 2), within);
        assert!(!slow.pass, "{}", slow.measured);
        let never = restored_check(&counts("never", &[2, 2, 1, 1, 1, 1, 1, 1], 2), within);
        assert!(!never.pass && never.measured.contains("not back"), "{}", never.measured);
        let ended = restored_check(&counts("ended", &[2, 2, 1, 1], 2), within);
        assert!(ended.pass, "a run that ended inside the window is not held against: {}", ended.measured);
        let none = restored_check(&counts("none", &[2, 2], 99), within);
        assert!(!none.pass, "a run without a kill cannot show a replacement");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
