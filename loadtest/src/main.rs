//! `trawl-loadtest`: command-line entry point of Trawl's benchmark harness (see the library docs).

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use trawl_loadtest::{db_bench, image_bench, measure, runner};

/// Trawl's benchmark and load-test harness.
#[derive(Parser, Debug)]
#[command(name = "trawl-loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load test (issue 8): build a scenario's images, run NATS, the controller
    /// and scanners against them under a throttled registry, inject faults,
    /// and write a Markdown/CSV/PNG report to --out. Exits 1 when an
    /// expectation of the scenario fails.
    Run(runner::RunArgs),
    /// Image-analysis benchmark (issue 2): peak RSS, layer throughput vs gzip,
    /// end to end vs Syft and vs `skopeo copy`.
    ImageBench(image_bench::ImageBenchArgs),
    /// Vulnerability-database benchmark (issue 3): build, load, matching, and
    /// a generated production-scale database.
    DbBench(db_bench::DbBenchArgs),
    /// Internal: load a database in this fresh process and print load time,
    /// resident memory and per-package match latency as JSON.
    #[command(name = "db-probe", hide = true)]
    DbProbe {
        /// The database file.
        db: PathBuf,
    },
    /// Internal: run PROGRAM and write its wall time, CPU time and peak RSS to
    /// REPORT (the harness measures every child through this launcher).
    #[command(name = "exec-measured", hide = true)]
    ExecMeasured {
        /// Where to write the measurement line.
        report: PathBuf,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<OsString>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("start the runtime")?;
            if !runtime.block_on(runner::run(args))? {
                eprintln!("trawl-loadtest: an expectation of the scenario failed (see the report)");
                std::process::exit(1);
            }
        }
        Command::ImageBench(args) => {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
            let out = args.out.clone();
            let section = runtime.block_on(image_bench::run(args))?;
            println!("{section}");
            if let Some(out) = out {
                if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&out, &section).with_context(|| format!("write {}", out.display()))?;
                eprintln!("wrote {}", out.display());
            }
        }
        Command::DbBench(args) => {
            let section = db_bench::run(&args)?;
            println!("{section}");
            if let Some(out) = &args.out {
                std::fs::write(out, &section).with_context(|| format!("write {}", out.display()))?;
            }
        }
        Command::DbProbe { db } => {
            println!("{}", serde_json::to_string(&db_bench::probe(&db)?)?);
        }
        Command::ExecMeasured { report, command } => {
            // Kept tiny on purpose (no runtime, no allocations to speak of):
            // its memory is the floor of every peak RSS it reports.
            measure::exec_measured(&report, &command[0], &command[1..])?;
        }
    }
    Ok(())
}
