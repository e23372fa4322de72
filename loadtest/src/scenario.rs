//! Load-test scenario files: what `trawl-loadtest run SCENARIO` builds, starts and injects.
//!
//! A scenario is a TOML file (the standard ones live in `loadtest/scenarios/`):
//!
//! ```toml
//! name = "scaling"
//! description = "throughput against scanner count under a bandwidth cap"
//! timeout = "10m"                  # per run: longer is a failed run, never a hang
//!
//! [images]
//! repositories = 4                 # loadtest/app-0 … app-3
//! tags = 12                        # v0 … v11 in each
//! layers = 2                       # per image, shared base layers included
//! layer_size = "1MiB"              # incompressible payload per layer
//! shared_base_fraction = 0.5       # this share of each image's layers is a shared base
//! base_variants = 1                # how many distinct base stacks the images share
//! compression = "gzip"             # gzip | zstd | none
//! packages = { generated = 40 }    # or { path = "…/status", format = "dpkg" }
//! vulnerable_fraction = 0.25       # generated advisories hit this share of packages
//!
//! [registry]                       # the throttling proxy in front of docker-registry
//! latency = "20ms"                 # added to every request
//! bandwidth_per_connection = "1MiB" # per second, registry → scanner
//! bandwidth_total = "10MiB"        # the registry's own cap, all connections together
//!
//! [scanners]
//! counts = [1, 2, 4, 8]            # one run per count, on the same images
//! concurrency = 1                  # tasks per scanner
//! parallel_layers = 2              # layers each scan pulls at once
//! # autoscale = { strategy = "immediate", min_scanners = 1, max_scanners = 4 }
//! #   (instead of counts: the controller API's settings, scale_*_after_seconds too)
//!
//! [[faults]]                       # fault injection, at times after the crawl starts
//! at = "5s"
//! action = "kill-scanner"          # SIGKILL one scanner (it is replaced, as a Deployment would)
//! [[faults]]
//! at = "12s"
//! action = "restart-nats"
//! down_for = "2s"
//!
//! [expect]                         # checked after the runs; a miss fails the command
//! exactly_once = true              # every image scanned exactly once
//! complete = true                  # every image has a stored result (none lost)
//! no_failures = true               # no scan failed
//! speedup = { scanners = 4, over = 1, at_least = 3.5 }
//! scanners_restored_within = "10s" # after each kill-scanner fault, the count is back to the
//!                                  # pre-kill count (autoscaled: keep scale-down slower than the run)
//! ```
//!
//! Every field is checked when the file is read, with errors naming the field.
//! Sizes take `B`, `KiB`, `MiB`, `GiB` (or `KB`/`MB`/`GB`, decimal);
//! durations `ms`, `s`, `m`.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most images a scenario may ask for (a typo guard, not a limit of the harness).
pub const MAX_IMAGES: usize = 10_000;
/// Largest single layer a scenario may ask for.
pub const MAX_LAYER_SIZE: u64 = 8 << 30;

/// One scenario, read and checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name (the report's title).
    pub name: String,
    /// What it measures, for the report.
    pub description: String,
    /// Longest time one run may take, from the crawl to the last result.
    pub timeout: Duration,
    /// The image set.
    pub images: ImageSpec,
    /// The throttling proxy's settings.
    pub registry: NetworkSpec,
    /// How many scanners, or how they scale.
    pub scanners: ScannerSpec,
    /// Faults injected during each run.
    pub faults: Vec<Fault>,
    /// What must hold afterwards.
    pub expect: Expectations,
}

/// The images pushed to the registry.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Number of repositories.
    pub repositories: usize,
    /// Tags per repository (each tag a distinct image).
    pub tags: usize,
    /// Layers per image.
    pub layers: usize,
    /// Incompressible payload bytes per layer.
    pub layer_size: u64,
    /// Share of each image's layers taken from a shared base stack.
    pub shared_base_fraction: f64,
    /// Number of distinct base stacks.
    pub base_variants: usize,
    /// Layer compression.
    pub compression: LayerCompression,
    /// The package database each image carries.
    pub packages: PackageSource,
    /// Share of generated packages that an advisory in the generated database affects.
    pub vulnerable_fraction: f64,
    /// A vulnerability database file to scan with instead of the generated one.
    pub database: Option<PathBuf>,
}

impl ImageSpec {
    /// Number of images (repositories × tags).
    pub fn count(&self) -> usize {
        self.repositories * self.tags
    }

    /// Layers of each image that come from its base stack.
    pub fn shared_layers(&self) -> usize {
        // At least one layer stays the image's own, so that every image is distinct.
        ((self.layers as f64 * self.shared_base_fraction).round() as usize).min(self.layers - 1)
    }
}

/// Layer compression of the generated images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerCompression {
    /// `application/vnd.oci.image.layer.v1.tar+gzip`.
    Gzip,
    /// `…tar+zstd`.
    Zstd,
    /// Plain tar.
    None,
}

/// Where an image's package database comes from.
#[derive(Debug, Clone)]
pub enum PackageSource {
    /// A generated dpkg status with this many packages.
    Generated(usize),
    /// A real package database file, placed where its package manager keeps it.
    File {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: PackageFormat,
    },
}

/// Formats of real package databases a scenario can put into its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageFormat {
    /// Debian's `/var/lib/dpkg/status`.
    Dpkg,
    /// Alpine's `/lib/apk/db/installed`.
    Apk,
    /// RPM's `/var/lib/rpm/rpmdb.sqlite`.
    Rpm,
}

impl PackageFormat {
    /// Where the database lives in an image, and the os-release that goes with it.
    pub fn image_path(self) -> &'static str {
        match self {
            PackageFormat::Dpkg => "var/lib/dpkg/status",
            PackageFormat::Apk => "lib/apk/db/installed",
            PackageFormat::Rpm => "var/lib/rpm/rpmdb.sqlite",
        }
    }
}

/// The throttling proxy's settings: what the scanners' network to the registry looks like.
#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    /// Delay added before each request reaches the registry.
    pub latency: Duration,
    /// Bytes per second, registry → client, on each connection.
    pub bandwidth_per_connection: Option<u64>,
    /// Bytes per second, registry → clients, all connections together.
    pub bandwidth_total: Option<u64>,
}

/// How many scanners run.
#[derive(Debug, Clone)]
pub struct ScannerSpec {
    /// The scanner counts or autoscaling settings.
    pub mode: ScannerMode,
    /// Tasks one scanner works on at once.
    pub concurrency: usize,
    /// Layers one scan pulls at once.
    pub parallel_layers: usize,
    /// Whether the cluster-wide layer cache is used.
    pub layer_cache: bool,
}

/// Fixed scanner counts, or the controller's autoscaler.
#[derive(Debug, Clone)]
pub enum ScannerMode {
    /// One run per count, with exactly that many scanners started by the harness.
    Fixed(Vec<usize>),
    /// One run, the controller's `process` backend scaling scanners on queue depth.
    Autoscale(AutoscaleSpec),
}

/// Autoscaling settings: the controller API's own type (`PUT /api/v1/settings/autoscale`),
/// so a scenario spells them as an operator would.
pub type AutoscaleSpec = trawl_autoscale::strategy::AutoscaleSettings;

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// When, after the crawl starts.
    pub at: Duration,
    /// What.
    pub action: FaultAction,
}

/// The faults the harness can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// SIGKILL this many scanners; they are replaced, as a Deployment would replace a crashed pod.
    KillScanners(usize),
    /// SIGKILL nats-server and start it again on the same port and store after `down_for`.
    RestartNats {
        /// How long the server stays down.
        down_for: Duration,
    },
}

/// What must hold after the runs.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// Every image was scanned exactly once in every run.
    pub exactly_once: bool,
    /// Every image has a stored result at the end of every run.
    pub complete: bool,
    /// No scan failed.
    pub no_failures: bool,
    /// Throughput with `scanners` scanners is at least `at_least` × that with `over`.
    pub speedup: Option<Speedup>,
    /// After each `kill-scanner` fault, the scanner count is back within this long.
    pub scanners_restored_within: Option<Duration>,
}

/// A throughput ratio between two fixed-count runs.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Speedup {
    /// The larger scanner count.
    pub scanners: usize,
    /// The count it is compared with.
    pub over: usize,
    /// The least ratio accepted.
    pub at_least: f64,
}

impl Scenario {
    /// Reads and checks the scenario file `path`; relative paths in it are taken from its folder.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the scenario {} (see loadtest/scenarios/)", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Scenario::parse(&text, base).with_context(|| format!("scenario {}", path.display()))
    }

    /// Parses and checks scenario text; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Scenario> {
        let raw: RawScenario = toml::from_str(text).context("not a valid scenario file")?;
        raw.check(base)
    }

    /// Number of runs: one per fixed scanner count, or one autoscaled.
    pub fn runs(&self) -> Vec<RunPlan> {
        match &self.scanners.mode {
            ScannerMode::Fixed(counts) => counts.iter().map(|&n| RunPlan::Fixed(n)).collect(),
            ScannerMode::Autoscale(a) => vec![RunPlan::Autoscale(*a)],
        }
    }
}

/// One run of a scenario.
#[derive(Debug, Clone)]
pub enum RunPlan {
    /// This many scanners, started before the crawl.
    Fixed(usize),
    /// The autoscaler decides.
    Autoscale(AutoscaleSpec),
}

impl RunPlan {
    /// Short label for tables and file names (`4-scanners`, `autoscale`).
    pub fn label(&self) -> String {
        match self {
            RunPlan::Fixed(1) => "1-scanner".into(),
            RunPlan::Fixed(n) => format!("{n}-scanners"),
            RunPlan::Autoscale(_) => "autoscale".into(),
        }
    }
}

// ---- the file as written, before checking ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_timeout", with = "duration")]
    timeout: Duration,
    images: RawImages,
    #[serde(default)]
    registry: RawNetwork,
    scanners: RawScanners,
    #[serde(default)]
    faults: Vec<RawFault>,
    #[serde(default)]
    expect: RawExpect,
}

fn default_timeout() -> Duration {
    Duration::from_secs(600)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImages {
    repositories: usize,
    tags: usize,
    layers: usize,
    #[serde(with = "size")]
    layer_size: u64,
    #[serde(default)]
    shared_base_fraction: f64,
    #[serde(default = "one")]
    base_variants: usize,
    #[serde(default = "gzip")]
    compression: LayerCompression,
    #[serde(default)]
    packages: Option<RawPackages>,
    #[serde(default = "quarter")]
    vulnerable_fraction: f64,
    #[serde(default)]
    database: Option<PathBuf>,
}

fn one() -> usize {
    1
}
fn gzip() -> LayerCompression {
    LayerCompression::Gzip
}
fn quarter() -> f64 {
    0.25
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackages {
    #[serde(default)]
    generated: Option<usize>,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    format: Option<PackageFormat>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default, with = "opt_duration")]
    latency: Option<Duration>,
    #[serde(default, with = "opt_size")]
    bandwidth_per_connection: Option<u64>,
    #[serde(default, with = "opt_size")]
    bandwidth_total: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScanners {
    #[serde(default)]
    counts: Option<Vec<usize>>,
    #[serde(default)]
    autoscale: Option<AutoscaleSpec>,
    #[serde(default = "one")]
    concurrency: usize,
    #[serde(default = "two")]
    parallel_layers: usize,
    #[serde(default = "yes")]
    layer_cache: bool,
}

fn two() -> usize {
    2
}
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    #[serde(with = "duration")]
    at: Duration,
    action: String,
    #[serde(default)]
    count: Option<usize>,
    #[serde(default, with = "opt_duration")]
    down_for: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    exactly_once: bool,
    #[serde(default)]
    complete: bool,
    #[serde(default)]
    no_failures: bool,
    #[serde(default)]
    speedup: Option<Speedup>,
    #[serde(default, with = "opt_duration")]
    scanners_restored_within: Option<Duration>,
}

impl RawScenario {
    fn check(self, base: &Path) -> Result<Scenario> {
        let i = self.images;
        if i.repositories == 0 || i.tags == 0 {
            bail!("images: repositories and tags must be at least 1");
        }
        let count = i.repositories.saturating_mul(i.tags);
        if count > MAX_IMAGES {
            bail!("images: {count} images asked for; at most {MAX_IMAGES}");
        }
        if i.layers == 0 || i.layers > 64 {
            bail!("images.layers must be 1 to 64, not {}", i.layers);
        }
        if i.layer_size > MAX_LAYER_SIZE {
            bail!("images.layer_size must be at most 8 GiB");
        }
        if !(0.0..=1.0).contains(&i.shared_base_fraction) {
            bail!("images.shared_base_fraction must be between 0 and 1, not {}", i.shared_base_fraction);
        }
        if !(0.0..=1.0).contains(&i.vulnerable_fraction) {
            bail!("images.vulnerable_fraction must be between 0 and 1, not {}", i.vulnerable_fraction);
        }
        if i.base_variants == 0 {
            bail!("images.base_variants must be at least 1");
        }
        let packages = match i.packages {
            None => PackageSource::Generated(40),
            Some(RawPackages { generated: Some(n), path: None, format: None }) => {
                if n > 100_000 {
                    bail!("images.packages.generated: at most 100000 packages, not {n}");
                }
                PackageSource::Generated(n)
            }
            Some(RawPackages { generated: None, path: Some(path), format: Some(format) }) => {
                let path = base.join(path);
                if !path.is_file() {
                    bail!("images.packages.path: {} is not a file", path.display());
                }
                PackageSource::File { path, format }
            }
            Some(_) => bail!(
                "images.packages: give either `generated = N` or `path = \"FILE\"` with `format = \"dpkg\"|\"apk\"|\"rpm\"`"
            ),
        };
        let database = match i.database {
            Some(p) => {
                let p = base.join(p);
                if !p.is_file() {
                    bail!("images.database: {} is not a file (build one with trawl-updater build)", p.display());
                }
                Some(p)
            }
            None => None,
        };
        let images = ImageSpec {
            repositories: i.repositories,
            tags: i.tags,
            layers: i.layers,
            layer_size: i.layer_size,
            shared_base_fraction: i.shared_base_fraction,
            base_variants: i.base_variants,
            compression: i.compression,
            packages,
            vulnerable_fraction: i.vulnerable_fraction,
            database,
        };

        let registry = NetworkSpec {
            latency: self.registry.latency.unwrap_or_default(),
            bandwidth_per_connection: self.registry.bandwidth_per_connection,
            bandwidth_total: self.registry.bandwidth_total,
        };
        for (name, v) in [
            ("bandwidth_per_connection", registry.bandwidth_per_connection),
            ("bandwidth_total", registry.bandwidth_total),
        ] {
            if v == Some(0) {
                bail!("registry.{name} must be more than 0 (leave it out for no cap)");
            }
        }
        if registry.latency > Duration::from_secs(10) {
            bail!("registry.latency must be at most 10s");
        }

        let s = self.scanners;
        let mode = match (s.counts, s.autoscale) {
            (Some(counts), None) => {
                if counts.is_empty() || counts.iter().any(|&n| n == 0 || n > 64) {
                    bail!("scanners.counts: give one or more counts from 1 to 64");
                }
                ScannerMode::Fixed(counts)
            }
            (None, Some(a)) => {
                a.validate().map_err(|e| anyhow::anyhow!("scanners.autoscale: {e}"))?;
                if a.max_scanners > 64 {
                    bail!("scanners.autoscale.max_scanners: at most 64 on one machine");
                }
                ScannerMode::Autoscale(a)
            }
            _ => bail!(
                "scanners: give either `counts = [...]` or `autoscale = {{ strategy, min_scanners, max_scanners }}`"
            ),
        };
        if s.concurrency == 0 || s.concurrency > 64 || s.parallel_layers == 0 || s.parallel_layers > 64 {
            bail!("scanners.concurrency and scanners.parallel_layers must be 1 to 64");
        }
        let scanners = ScannerSpec {
            mode,
            concurrency: s.concurrency,
            parallel_layers: s.parallel_layers,
            layer_cache: s.layer_cache,
        };

        let mut faults = Vec::new();
        for (n, f) in self.faults.into_iter().enumerate() {
            let action = match f.action.as_str() {
                "kill-scanner" | "kill-scanners" => FaultAction::KillScanners(f.count.unwrap_or(1).max(1)),
                "restart-nats" => FaultAction::RestartNats { down_for: f.down_for.unwrap_or_default() },
                other => bail!("faults[{n}].action: {other:?} is not one of kill-scanner, restart-nats"),
            };
            faults.push(Fault { at: f.at, action });
        }
        faults.sort_by_key(|f| f.at);

        let expect = Expectations {
            exactly_once: self.expect.exactly_once,
            complete: self.expect.complete,
            no_failures: self.expect.no_failures,
            speedup: self.expect.speedup,
            scanners_restored_within: self.expect.scanners_restored_within,
        };
        if expect.scanners_restored_within.is_some()
            && !faults.iter().any(|f| matches!(f.action, FaultAction::KillScanners(_)))
        {
            bail!("expect.scanners_restored_within needs a kill-scanner fault");
        }
        if let (Some(sp), ScannerMode::Fixed(counts)) = (&expect.speedup, &scanners.mode) {
            if !counts.contains(&sp.scanners) || !counts.contains(&sp.over) {
                bail!(
                    "expect.speedup compares {} and {} scanners, but scanners.counts has no run for both",
                    sp.scanners,
                    sp.over
                );
            }
        } else if expect.speedup.is_some() {
            bail!("expect.speedup needs fixed scanners.counts");
        }
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("name must be non-empty letters, digits, - or _");
        }
        Ok(Scenario {
            name: self.name,
            description: self.description,
            timeout: self.timeout,
            images,
            registry,
            scanners,
            faults,
            expect,
        })
    }
}

/// Parses `1MiB`, `512KiB`, `3GB`, `100` (bytes).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().with_context(|| format!("{text:?} is not a size like 512KiB or 4MiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => bail!("{text:?}: unknown size unit {other:?}; use B, KiB, MiB, GiB, KB, MB or GB"),
    };
    if number < 0.0 || !number.is_finite() {
        bail!("{text:?} is not a size");
    }
    Ok((number * factor as f64).round() as u64)
}

/// Parses `250ms`, `5s`, `2m`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().with_context(|| format!("{text:?} is not a duration like 250ms, 5s or 2m"))?;
    let secs = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        other => bail!("{text:?}: unknown duration unit {other:?}; use ms, s or m"),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        bail!("{text:?} is not a duration from 0 to 24h");
    }
    Ok(Duration::from_secs_f64(secs))
}

macro_rules! text_field {
    ($module:ident, $opt:ident, $ty:ty, $parse:path) => {
        mod $module {
            use serde::{Deserialize, Deserializer};
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let s = String::deserialize(d)?;
                $parse(&s).map_err(|e| serde::de::Error::custom(format!("{e:#}")))
            }
        }
        mod $opt {
            use serde::{Deserialize, Deserializer};
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$ty>, D::Error> {
                match Option::<String>::deserialize(d)? {
                    Some(s) => $parse(&s).map(Some).map_err(|e| serde::de::Error::custom(format!("{e:#}"))),
                    None => Ok(None),
                }
            }
        }
    };
}
text_field!(size, opt_size, u64, super::parse_size);
text_field!(duration, opt_duration, std::time::Duration, super::parse_duration);

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "t"
        [images]
        repositories = 2
        tags = 3
        layers = 3
        layer_size = "64KiB"
        shared_base_fraction = 0.5
        [scanners]
        counts = [1, 2]
    "#;

    #[test]
    fn reads_a_minimal_scenario_with_defaults() {
        let s = Scenario::parse(MINIMAL, Path::new(".")).unwrap();
        assert_eq!(s.images.count(), 6);
        assert_eq!(s.images.layer_size, 64 << 10);
        assert_eq!(s.images.shared_layers(), 2);
        assert!(matches!(s.images.packages, PackageSource::Generated(40)));
        assert_eq!(s.runs().len(), 2);
        assert_eq!(s.runs()[1].label(), "2-scanners");
        assert_eq!(s.scanners.parallel_layers, 2);
        assert_eq!(s.timeout, Duration::from_secs(600));
    }

    #[test]
    fn every_image_keeps_one_layer_of_its_own() {
        let text = MINIMAL.replace("shared_base_fraction = 0.5", "shared_base_fraction = 1.0");
        let s = Scenario::parse(&text, Path::new(".")).unwrap();
        assert_eq!(s.images.shared_layers(), 2);
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert_eq!(parse_size("2MB").unwrap(), 2_000_000);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("MiB").is_err());
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("99999m").is_err());
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (MINIMAL.replace("tags = 3", "tags = 0"), "repositories and tags"),
            (MINIMAL.replace("layers = 3", "layers = 0"), "images.layers"),
            (MINIMAL.replace("0.5", "1.5"), "shared_base_fraction"),
            (MINIMAL.replace("counts = [1, 2]", "counts = []"), "scanners.counts"),
            (MINIMAL.replace("counts = [1, 2]", ""), "scanners: give either"),
            (MINIMAL.replace("\"64KiB\"", "\"64 furlongs\""), "unknown size unit"),
            (format!("{MINIMAL}\n[[faults]]\nat = \"1s\"\naction = \"unplug\"\n"), "faults[0].action"),
            (
                format!("{MINIMAL}\n[expect]\nspeedup = {{ scanners = 4, over = 1, at_least = 3.5 }}\n"),
                "no run for both",
            ),
            (MINIMAL.replace("name = \"t\"", "name = \"t\"\ncolour = 1"), "unknown field"),
            (
                MINIMAL.replace(
                    "[scanners]",
                    "[scanners]\nautoscale = { strategy = \"immediate\", min_scanners = 1, max_scanners = 2 }",
                ),
                "scanners: give either",
            ),
        ];
        for (text, needle) in cases {
            let err = format!("{:#}", Scenario::parse(&text, Path::new(".")).unwrap_err());
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
        }
    }

    #[test]
    fn autoscale_and_faults() {
        let text = MINIMAL.replace(
            "counts = [1, 2]",
            "autoscale = { strategy = \"immediate\", min_scanners = 1, max_scanners = 3, scale_down_after_seconds = 5 }",
        ) + "\n[[faults]]\nat = \"9s\"\naction = \"restart-nats\"\ndown_for = \"1s\"\n[[faults]]\nat = \"2s\"\naction = \"kill-scanner\"\n";
        let s = Scenario::parse(&text, Path::new(".")).unwrap();
        assert_eq!(s.runs()[0].label(), "autoscale");
        assert_eq!(s.faults[0].action, FaultAction::KillScanners(1));
        assert_eq!(s.faults[1].action, FaultAction::RestartNats { down_for: Duration::from_secs(1) });
        let bad = MINIMAL
            .replace("counts = [1, 2]", "autoscale = { strategy = \"sometimes\", min_scanners = 1, max_scanners = 3 }");
        let err = format!("{:#}", Scenario::parse(&bad, Path::new(".")).unwrap_err());
        assert!(err.contains("strategy"), "{err}");
    }

    #[test]
    fn the_standard_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                seen += 1;
            }
        }
        assert!(seen >= 4, "expected smoke, scaling, large-image and chaos in {}", dir.display());
    }
}
