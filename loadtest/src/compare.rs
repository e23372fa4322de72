//! `--compare`: Trawl, Syft and `skopeo copy` on the same images, in the same run.
//!
//! For a few images of the set, one after another, each tool runs as a
//! fresh process measured by the harness's launcher (wall time, CPU, peak
//! RSS): `trawl-scanner sbom` (pull and inventory, Syft's job),
//! `trawl-scanner scan` (plus matching against the run's database),
//! `syft scan registry:…` (with an empty cache) and `skopeo copy` into a
//! `dir:` (pull only: the floor any scanner pays). Each image is done twice:
//! through the throttling proxy, where the scenario's network dominates, and
//! straight from the registry, where the tools' own work does. Ratios are
//! taken per image, tool against `trawl-scanner sbom`, then the median.

use crate::image_bench::{run_skopeo, run_syft, CHILD_TIMEOUT};
use crate::imageset::ImageSet;
use crate::measure::{median, version_line, ChildRun, Meter};
use crate::runner::RunArgs;
use crate::stack::Binaries;
use crate::throttle::ThrottleProxy;
use anyhow::Result;
use std::path::Path;
use std::process::{Command, Stdio};
use trawl_testkit::Registry;

/// The tools, in the order they run on each image.
pub const TOOLS: [&str; 4] = ["trawl sbom", "trawl scan", "syft", "skopeo copy"];

/// One tool on one image over one network.
#[derive(Debug, Clone)]
pub struct Timing {
    /// `throttled` (through the proxy) or `direct`.
    pub network: &'static str,
    /// `repository:tag`.
    pub image: String,
    /// One of [`TOOLS`].
    pub tool: &'static str,
    /// What it cost.
    pub run: ChildRun,
}

/// All timings, with the tool versions.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Every measurement.
    pub timings: Vec<Timing>,
    /// `syft version` and `skopeo --version`.
    pub versions: Vec<String>,
    /// Packages syft reported for the first image (for the reader: the tools saw the same image).
    pub syft_packages: usize,
}

impl Comparison {
    /// Median wall time of `tool` over `network`, seconds.
    pub fn median_wall(&self, network: &str, tool: &str) -> f64 {
        median(&self.select(network, tool).map(|t| t.run.wall.as_secs_f64()).collect::<Vec<_>>())
    }

    /// Median peak RSS of `tool` over `network`, MiB.
    pub fn median_rss(&self, network: &str, tool: &str) -> f64 {
        median(&self.select(network, tool).map(|t| t.run.rss_mib()).collect::<Vec<_>>())
    }

    /// Median over images of `tool`'s wall time / `trawl sbom`'s on the same image.
    pub fn ratio(&self, network: &str, tool: &str) -> f64 {
        let ratios: Vec<f64> = self
            .select(network, tool)
            .filter_map(|t| {
                let base = self.select(network, "trawl sbom").find(|b| b.image == t.image)?;
                Some(t.run.wall.as_secs_f64() / base.run.wall.as_secs_f64().max(1e-9))
            })
            .collect();
        median(&ratios)
    }

    fn select<'a>(&'a self, network: &'a str, tool: &'a str) -> impl Iterator<Item = &'a Timing> + 'a {
        self.timings.iter().filter(move |t| t.network == network && t.tool == tool)
    }
}

/// Times every tool on `args.compare_images` images, through `proxy` and straight from `registry`.
pub async fn run(
    args: &RunArgs,
    bins: &Binaries,
    db: &Path,
    registry: &Registry,
    proxy: &ThrottleProxy,
    images: &ImageSet,
    work: &Path,
) -> Result<Comparison> {
    let meter = Meter::current()?;
    let versions = vec![
        version_line(Command::new(&args.syft).arg("version"), "Version:").map(|v| format!("syft {v}"))?,
        version_line(Command::new(&args.skopeo).arg("--version"), "")?,
    ];
    // Images spread over the repositories, not the first tags of one.
    let step = (images.images.len() / args.compare_images.max(1)).max(1);
    let chosen: Vec<_> = images.images.iter().step_by(step).take(args.compare_images).collect();
    let mut timings = Vec::new();
    let mut syft_packages = 0;
    let networks = [("throttled", proxy.host()), ("direct", registry.host())];
    tokio::task::block_in_place(|| -> Result<()> {
        for (round, image) in chosen.iter().enumerate() {
            for (network, host) in &networks {
                let reference = format!("{host}/{}", image.name());
                let out = work.join("compare-out.json");
                for tool in TOOLS {
                    let run = match tool {
                        "trawl sbom" => meter.run(
                            Command::new(&bins.scanner)
                                .args(["sbom", "--plain-http", &reference, "-o"])
                                .arg(&out)
                                .env("TRAWL_LOG", "warn"),
                            Stdio::null(),
                            CHILD_TIMEOUT,
                        )?,
                        "trawl scan" => meter.run(
                            Command::new(&bins.scanner)
                                .args(["scan", "--plain-http", "--format", "json", &reference, "--db"])
                                .arg(db)
                                .arg("-o")
                                .arg(&out)
                                .env("TRAWL_LOG", "warn"),
                            Stdio::null(),
                            CHILD_TIMEOUT,
                        )?,
                        "syft" => {
                            let (run, packages) = run_syft(&meter, &args.syft, &reference, work, round)?;
                            if syft_packages == 0 {
                                syft_packages = packages;
                            }
                            run
                        }
                        _ => run_skopeo(&meter, &args.skopeo, &reference, work, round)?,
                    };
                    timings.push(Timing { network, image: image.name(), tool, run });
                }
            }
        }
        Ok(())
    })?;
    Ok(Comparison { timings, versions, syft_packages })
}
