//! Vulnerability-database benchmark (issue 3): build time of the whole OSV
//! corpus, load time, matching a 1,000-package inventory, and a generated
//! production-scale database (500,000 advisories): load time, resident
//! memory and per-package lookup latency.
//!
//! The large database is loaded in a fresh child process (`db-probe`), so
//! its resident-memory figure is the database's own and not the generator's.

use crate::measure::median;
use crate::report::{table, verdict};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use trawl_catalog::{Inventory, Package, PackageType};
use trawl_vulndb::osv::OsvRecord;
use trawl_vulndb::{Database, Ingested, Matcher};

/// Options of `trawl-loadtest db-bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct DbBenchArgs {
    /// The shared corpus directory (holding `osv/` and `osv-raw/`).
    #[arg(long, default_value = "../shared/corpus")]
    pub corpus: PathBuf,
    /// Repetitions of each timed step (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Advisories in the generated database.
    #[arg(long, default_value_t = 500_000)]
    pub generated: usize,
    /// Write the Markdown section here too.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// What `db-probe` measures in its own process.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Probe {
    /// Wall time of `Database::load`, ms.
    pub load_ms: f64,
    /// Resident memory after loading, MiB.
    pub rss_mib: f64,
    /// Peak resident memory during loading, MiB.
    pub peak_rss_mib: f64,
    /// Per-package match latency (lookup and range evaluation), µs.
    pub p50_us: f64,
    /// 99th percentile of the same.
    pub p99_us: f64,
    /// Packages matched.
    pub lookups: usize,
}

/// Runs the benchmark and returns its Markdown section.
pub fn run(args: &DbBenchArgs) -> Result<String> {
    let sources = corpus_sources(&args.corpus)?;
    let work = tempfile::tempdir()?;

    // (1) Build the whole corpus: ingest, compile, encode and write.
    let mut build_secs = Vec::new();
    let db_path = work.path().join("corpus.db");
    let mut advisories = 0;
    for _ in 0..args.runs {
        let start = Instant::now();
        let db = build(&sources)?;
        db.write(&db_path)?;
        build_secs.push(start.elapsed().as_secs_f64());
        advisories = db.header().counts.advisories;
    }

    // (2) Load it.
    let mut load_ms = Vec::new();
    let mut db = None;
    for _ in 0..args.runs {
        let start = Instant::now();
        let loaded = Database::load(&db_path)?;
        load_ms.push(start.elapsed().as_secs_f64() * 1e3);
        db = Some(loaded);
    }
    let db = db.context("no runs")?;

    // (3) Match 1,000 packages: half with advisories, half without.
    let inventory = thousand_packages(&db);
    let mut match_ms = Vec::new();
    let mut findings = 0;
    for _ in 0..args.runs.max(20) {
        let start = Instant::now();
        let result = Matcher::new(&db).match_inventory(&inventory);
        match_ms.push(start.elapsed().as_secs_f64() * 1e3);
        findings = result.findings.len();
    }

    // (4) Production scale, generated; probed in a fresh process.
    let big_path = work.path().join("generated.db");
    let gen_start = Instant::now();
    let big = Database::build(generate(args.generated), vec![], 0);
    big.write(&big_path)?;
    let gen_secs = gen_start.elapsed().as_secs_f64();
    let big_size = std::fs::metadata(&big_path)?.len();
    drop(big);
    let mut probes = Vec::new();
    for _ in 0..args.runs.min(3) {
        probes.push(probe_in_child(&big_path)?);
    }
    let pick = |f: fn(&Probe) -> f64| median(&probes.iter().map(f).collect::<Vec<_>>());

    let build_s = median(&build_secs);
    let load = median(&load_ms);
    let matching = median(&match_ms);
    let (big_load, big_rss, big_peak, p50, p99) =
        (pick(|p| p.load_ms), pick(|p| p.rss_mib), pick(|p| p.peak_rss_mib), pick(|p| p.p50_us), pick(|p| p.p99_us));
    let rows = vec![
        vec![
            format!("corpus build ({advisories} advisories, {} sources)", sources.len()),
            format!("{build_s:.2} s"),
            "≤ 3 s".into(),
            verdict(build_s <= 3.0).into(),
        ],
        vec!["corpus DB load".into(), format!("{load:.1} ms"), "≤ 100 ms".into(), verdict(load <= 100.0).into()],
        vec![
            format!("match 1,000 packages ({findings} findings)"),
            format!("{matching:.2} ms"),
            "≤ 5 ms".into(),
            verdict(matching <= 5.0).into(),
        ],
        vec![
            format!("generated DB load ({} advisories, {:.0} MiB file)", args.generated, big_size as f64 / 1048576.0),
            format!("{:.2} s", big_load / 1e3),
            "≤ 2 s".into(),
            verdict(big_load <= 2000.0).into(),
        ],
        vec![
            "generated DB resident memory after load (peak during load)".into(),
            format!("{big_rss:.0} MiB ({big_peak:.0} MiB)"),
            "≤ 600 MiB resident".into(),
            verdict(big_rss <= 600.0).into(),
        ],
        vec![
            "per-package lookup + match, p50 / p99".into(),
            format!("{p50:.1} µs / {p99:.1} µs"),
            "p99 ≤ 50 µs".into(),
            verdict(p99 <= 50.0).into(),
        ],
    ];
    let section = format!(
        "## Vulnerability database (issue 3)\n\nMeasured {} on {}; medians of {} runs (probe: {} runs, each in a fresh process); generating the {}-advisory database took {gen_secs:.1} s (not a target).\n\nCommand: `loadtest/bench-db.sh` (release build of `trawl-loadtest db-bench --runs {}`).\n\n{}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        crate::image_bench::machine(),
        args.runs,
        probes.len(),
        args.generated,
        args.runs,
        table(&["measure", "figure", "target", "verdict"], &rows)
    );
    Ok(section)
}

fn corpus_sources(corpus: &Path) -> Result<Vec<PathBuf>> {
    if !corpus.join("osv").is_dir() {
        bail!("{} has no osv/ folder: pass --corpus DIR (the shared corpus beside the clone)", corpus.display());
    }
    let mut sources: Vec<PathBuf> = std::fs::read_dir(corpus.join("osv"))?
        .filter_map(Result::ok)
        .map(|e| e.path().join("all.zip"))
        .filter(|p| p.is_file())
        .collect();
    sources.sort();
    sources.push(corpus.join("osv-raw"));
    Ok(sources)
}

/// Ingests every source and compiles, exactly as `trawl-updater build` does.
fn build(sources: &[PathBuf]) -> Result<Database> {
    let all = Ingested::from_paths(sources)?;
    let skipped = all.skipped.len() as u64;
    Ok(Database::build(all.records, all.sources, skipped))
}

/// 500 packages that have advisories (at a version from their ranges) and 500 that do not.
fn thousand_packages(db: &Database) -> Inventory {
    let mut packages = Vec::with_capacity(1000);
    for (eco, name, version) in db.sample_entries(500) {
        let kind = match eco.split(':').next().unwrap_or("") {
            "Debian" | "Ubuntu" => PackageType::Deb,
            "Alpine" => PackageType::Apk,
            "AlmaLinux" => PackageType::Rpm,
            "PyPI" => PackageType::Python,
            "Go" => PackageType::Go,
            "crates.io" => PackageType::Cargo,
            "npm" => PackageType::Npm,
            "Maven" => PackageType::Maven,
            "RubyGems" => PackageType::Gem,
            _ => PackageType::Composer,
        };
        let mut p = Package::new(kind, name.clone(), version.clone());
        if kind == PackageType::Deb || kind == PackageType::Apk {
            p.source_name = Some(name);
            p.source_version = Some(version);
        }
        p.ecosystem = eco;
        packages.push(p);
    }
    for i in 0..(1000 - packages.len()) {
        let mut p = Package::new(PackageType::Python, format!("not-vulnerable-{i}"), "1.0.0");
        p.ecosystem = "PyPI".into();
        packages.push(p);
    }
    Inventory { distro: None, packages, issues: vec![] }
}

/// Deterministic synthetic advisories with the shape of real OSV data:
/// several ecosystems, package names shared by many advisories (a few very
/// popular ones), one to three affected packages each, realistic text sizes.
pub fn generate(n: usize) -> impl Iterator<Item = OsvRecord> {
    const ECOSYSTEMS: [&str; 8] =
        ["PyPI", "npm", "Go", "Maven", "Debian:12", "Ubuntu:22.04:LTS", "AlmaLinux:9", "crates.io"];
    let mut state: u64 = 0x5eed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n).map(move |i| {
        let affected_count = 1 + (next() % 3) as usize;
        let affected: Vec<serde_json::Value> = (0..affected_count)
            .map(|_| {
                let eco = ECOSYSTEMS[(next() % ECOSYSTEMS.len() as u64) as usize];
                // Zipf-like: most advisories hit a small set of packages.
                let pkg = if next() % 4 == 0 { next() % 500 } else { next() % 150_000 };
                let (a, b, c) = (next() % 20, next() % 30, next() % 50);
                let version = |x: u64, y: u64, z: u64| match eco {
                    "Debian:12" | "Ubuntu:22.04:LTS" => format!("{x}.{y}.{z}-1"),
                    "AlmaLinux:9" => format!("{x}.{y}.{z}-1.el9"),
                    _ => format!("{x}.{y}.{z}"),
                };
                serde_json::json!({
                    "package": {"ecosystem": eco, "name": format!("package-{pkg}")},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": version(a, 0, 0)}, {"fixed": version(a, b, c + 1)}]}]
                })
            })
            .collect();
        let record = serde_json::json!({
            "id": format!("GEN-{i:07}"),
            "aliases": [format!("CVE-2099-{i:07}")],
            "summary": format!("Generated advisory {i}: a flaw in input handling that allows a remote attacker to cause harm"),
            "published": "2024-01-01T00:00:00Z",
            "modified": "2024-06-01T00:00:00Z",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
            "references": [{"type": "ADVISORY", "url": format!("https://example.invalid/advisories/GEN-{i:07}")}],
            "affected": affected,
        });
        serde_json::from_value(record).expect("generated records are valid OSV")
    })
}

fn probe_in_child(db: &Path) -> Result<Probe> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe).arg("db-probe").arg(db).output()?;
    if !out.status.success() {
        bail!("db-probe failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The `db-probe` subcommand: load `db` in this fresh process, then time
/// 100,000 per-package matches; prints a [`Probe`] as JSON.
pub fn probe(db_path: &Path) -> Result<Probe> {
    let start = Instant::now();
    let db = Database::load(db_path)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let (rss_mib, peak_rss_mib) = rss_now_and_peak()?;
    let inventory = thousand_packages(&db);
    let matcher = Matcher::new(&db);
    let mut problems = Default::default();
    let mut samples = Vec::with_capacity(100_000);
    for round in 0..100 {
        for p in &inventory.packages {
            let t = Instant::now();
            let found = matcher.match_package(p, &mut problems);
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            if round == 0 {
                std::hint::black_box(found);
            }
        }
    }
    samples.sort_by(f64::total_cmp);
    let pct = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    Ok(Probe { load_ms, rss_mib, peak_rss_mib, p50_us: pct(0.5), p99_us: pct(0.99), lookups: samples.len() })
}

fn rss_now_and_peak() -> Result<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Result<f64> {
        let line =
            status.lines().find(|l| l.starts_with(name)).with_context(|| format!("{name} in /proc/self/status"))?;
        let kib: f64 = line.split_whitespace().nth(1).context("value")?.parse()?;
        Ok(kib / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}
