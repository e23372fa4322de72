//! `trawl-scanner`: inventory and scan container images and hosts from the
//! command line. The order of the steps lives here, the options in [`cli`];
//! the steps themselves are the library's (`trawl_scanner::…`) and the shared
//! crates'.

mod cli;
mod failure;

use anyhow::Context;
use clap::Parser;
use cli::{ClusterArgs, Command, FetchArgs, LogFormat, SbomArgs, SbomFormat, ScanArgs, ScanFormat, Target, WorkerArgs};
use failure::{internal, report_failure, usage, Failure};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use trawl_policy::{FindingPolicy, IgnoreFile, DEFAULT_IGNORE_FILE};
use trawl_report::{SbomReport, ScanReport};
use trawl_scanner::analyze::{Analyzer, ImageAnalysis};
use trawl_scanner::cluster::ClusterTarget;
use trawl_scanner::progress::TerminalProgress;
use trawl_scanner::{exit, host, neuvector, scan, worker};

/// Caps glibc's per-thread malloc arenas. Layers are walked on several
/// blocking threads; with one arena each, memory freed by one thread is not
/// reused by another, and peak RSS grows with the number of threads that ever
/// ran rather than with the work (measured in docs/benchmarks.md).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = cli::Cli::parse();
    // The worker is a service: no progress bars, and one info line per task by default.
    let service = matches!(cli.command, Some(Command::Worker(_)));
    let ui = if service { Ui { progress: None } } else { Ui::new(cli.quiet, cli.log_format) };
    init_logging(cli.log_format, cli.quiet, service, ui.progress.as_deref());
    // A bare `trawl-scanner` (or `-n`) is NeuVector's standalone scanner.
    let (command, neuvector_style) = match cli.command {
        Some(_) if cli.host_scan => {
            return report_failure(usage("-n stands alone (NeuVector style); with a command use `scan --host`".into()))
        }
        Some(c) => (c, false),
        None => match cli::neuvector_invocation(cli.host_scan) {
            Ok(args) => (Command::Scan(Box::new(args)), true),
            Err(f) => return report_failure(f),
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Sbom(args) => sbom(*args, &ui).await,
            Command::Scan(args) => scan(*args, neuvector_style, &ui).await,
            Command::Worker(args) => run_worker(*args).await,
        }
    });
    ui.clear();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => report_failure(failure),
    }
}

/// What the terminal shows besides the report.
struct Ui {
    progress: Option<Arc<TerminalProgress>>,
}

impl Ui {
    fn new(quiet: bool, log_format: LogFormat) -> Ui {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let show = tty && !quiet && log_format == LogFormat::Text;
        Ui { progress: show.then(TerminalProgress::new) }
    }

    fn stage(&self, message: impl Into<String>) {
        if let Some(p) = &self.progress {
            p.stage(message);
        }
    }

    fn done(&self, message: impl Into<String>) {
        if let Some(p) = &self.progress {
            p.done(message);
        }
    }

    fn clear(&self) {
        if let Some(p) = &self.progress {
            p.clear();
        }
    }
}

/// Inventories the target, drawing progress when there is a terminal.
async fn inventory(target: &Target, fetch: &FetchArgs, ui: &Ui) -> Result<ImageAnalysis, Failure> {
    let plain_http = matches!(target, Target::Image { plain_http: true, .. });
    let mut analyzer = Analyzer::new(trawl_catalog::default_catalogers(), fetch.analyzer_options(plain_http)?);
    if let Some(p) = &ui.progress {
        analyzer = analyzer.with_observer(p.clone());
    }
    let analysis = match target {
        Target::Image { reference, .. } => {
            ui.stage(format!("Resolving {reference}"));
            analyzer.analyze_reference(reference).await?
        }
        Target::Host { root, skip } => {
            ui.stage(format!("Walking the host filesystem at {}", root.display()));
            host::analyze_host(&analyzer, root, skip).await?
        }
    };
    ui.done(format!(
        "Inventoried {} packages ({} read)",
        analysis.inventory.packages.len(),
        indicatif::HumanBytes(analysis.bytes_read)
    ));
    log_issues(&analysis.inventory.issues);
    Ok(analysis)
}

/// Logs what could not be cataloged; a host scan can have thousands of
/// unreadable paths, so long lists are summarised (the report has them all).
fn log_issues(issues: &[trawl_catalog::FileIssue]) {
    const SHOWN: usize = 10;
    for issue in issues.iter().take(SHOWN) {
        tracing::warn!(path = %issue.path, cataloger = %issue.cataloger, "{}", issue.message);
    }
    if issues.len() > SHOWN {
        tracing::warn!(
            "{} more paths could not be read or cataloged; the report's `issues` lists them all",
            issues.len() - SHOWN
        );
    }
}

async fn sbom(args: SbomArgs, ui: &Ui) -> Result<u8, Failure> {
    let analysis = inventory(&args.target.resolve()?, &args.fetch, ui).await?;
    let report = SbomReport::new(analysis.identity, analysis.inventory);
    let doc = match args.format {
        SbomFormat::Json => serde_json::to_value(&report).context("serialising the report").map_err(internal)?,
        SbomFormat::Cyclonedx => trawl_report::cyclonedx::to_cyclonedx(&report),
        SbomFormat::SpdxJson => trawl_report::spdx::to_spdx(&report),
    };
    ui.clear();
    write_json(args.output.as_deref(), &doc).map_err(internal)?;
    Ok(exit::OK)
}

/// The database to use: the flag or TRAWL_DB, else the first default location that exists.
fn database_path(explicit: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let mut candidates = vec![PathBuf::from("/var/lib/trawl/trawl.db")];
    if let Some(cache) = cli::env_fallback(&["XDG_CACHE_HOME"])
        .map(PathBuf::from)
        .or_else(|| cli::env_fallback(&["HOME"]).map(|h| Path::new(&h).join(".cache")))
    {
        candidates.push(cache.join("trawl/trawl.db"));
    }
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| Failure {
        error: anyhow::anyhow!(
            "no vulnerability database: pass --db FILE or set TRAWL_DB (none at {}); build one with `trawl-updater build --source <OSV all.zip, directory or URL> --out trawl.db`",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or ")
        ),
        code: exit::DB,
    })
}

/// The finding policy from the gating flags.
fn finding_policy(args: &ScanArgs) -> Result<FindingPolicy, Failure> {
    if (2..=10).contains(&args.exit_code) {
        return Err(usage(format!(
            "--exit-code {} would be mistaken for one of Trawl's error codes (2-10): use 1 or 11-255",
            args.exit_code
        )));
    }
    let severities =
        args.severity.as_deref().map(trawl_policy::parse_severities).transpose().map_err(|e| usage(e.to_string()))?;
    let ignore_path = args.ignore_file.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_IGNORE_FILE);
        default.is_file().then_some(default)
    });
    let ignore = match ignore_path {
        Some(p) => IgnoreFile::load(&p).map_err(|e| usage(e.to_string()))?,
        None => IgnoreFile::default(),
    };
    Ok(FindingPolicy { severities, ignore_unfixed: args.ignore_unfixed, ignore })
}

async fn scan(args: ScanArgs, neuvector_style: bool, ui: &Ui) -> Result<u8, Failure> {
    // Everything that can be wrong with the invocation fails before any download.
    let target = args.target.resolve()?;
    let policy = finding_policy(&args)?;
    let db_path = database_path(args.db.clone())?;
    let db = tokio::task::spawn_blocking(move || trawl_vulndb::Database::load(&db_path))
        .await
        .map_err(|e| internal(e.into()))?
        .map_err(|e| Failure { error: e.into(), code: exit::DB })?;
    let cluster = args.cluster.join_addr.as_deref().map(|a| ClusterTarget::from_join(a, args.cluster.join_port));
    let results_dir =
        args.results_dir.clone().or_else(|| neuvector_style.then(|| PathBuf::from(neuvector::RESULTS_DIR)));

    let analysis = inventory(&target, &args.fetch, ui).await?;
    ui.stage(format!("Matching {} packages", analysis.inventory.packages.len()));
    let mut report = scan::build_report(analysis, &db);
    for w in &report.match_warnings {
        tracing::warn!("{w}");
    }
    let filtered = scan::apply_policy(&mut report, &policy, chrono::Local::now().date_naive());
    for rule in &filtered.expired {
        tracing::warn!(
            "ignore rule for {} ({}) expired on {}: its findings are reported again",
            rule.id,
            rule.origin,
            rule.expires.map(|d| d.to_string()).unwrap_or_default()
        );
    }
    if filtered.below_severity + filtered.unfixed > 0 {
        tracing::info!(
            below_severity = filtered.below_severity,
            unfixed = filtered.unfixed,
            "findings left out by --severity / --ignore-unfixed"
        );
    }
    let fails_gate = filtered.fails_gate;
    if args.scan_layers {
        report.group_by_layer();
    }
    ui.done(format!("Matched {} packages against {} advisories", report.packages.len(), report.db.advisories));
    ui.clear();

    write_scan_report(&args, &report)?;
    if let Some(dir) = &results_dir {
        write_results_dir(dir, &report)?;
    }
    if let Some(target) = &cluster {
        publish(target, &args.cluster, report).await?;
    }
    Ok(if fails_gate && args.exit_code != 0 { args.exit_code } else { exit::OK })
}

fn write_scan_report(args: &ScanArgs, report: &ScanReport) -> Result<(), Failure> {
    let out = args.output.as_deref();
    let doc = match args.format {
        ScanFormat::Table => {
            let tty = out.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
            let style = trawl_report::table::TableStyle { color: tty, width: tty.then(stdout_width).flatten() };
            return write_text(out, &trawl_report::table::render_styled(report, style)).map_err(internal);
        }
        ScanFormat::Json => serde_json::to_value(report).context("serialising the report").map_err(internal)?,
        ScanFormat::Sarif => trawl_report::sarif::to_sarif(report),
        ScanFormat::Cyclonedx => trawl_report::cyclonedx::to_cyclonedx_scan(report),
        ScanFormat::SpdxJson => trawl_report::spdx::to_spdx(report),
        ScanFormat::Neuvector => trawl_report::neuvector::to_neuvector(report),
    };
    write_json(out, &doc).map_err(internal)
}

/// Writes NeuVector's `scan_result.json` into `dir`, atomically, so a
/// reader polling the directory never sees half a file.
fn write_results_dir(dir: &Path, report: &ScanReport) -> Result<(), Failure> {
    let results_error = |e: anyhow::Error| Failure {
        error: e.context(format!(
            "writing results to {} (choose another with --results-dir or TRAWL_RESULTS_DIR)",
            dir.display()
        )),
        code: exit::RESULTS,
    };
    std::fs::create_dir_all(dir).context("creating the directory").map_err(results_error)?;
    let mut text = serde_json::to_string_pretty(&trawl_report::neuvector::to_neuvector(report))
        .context("serialising")
        .map_err(results_error)?;
    text.push('\n');
    let path = dir.join(neuvector::RESULTS_FILE);
    let mut tmp = tempfile::NamedTempFile::new_in(dir).context("creating a temporary file").map_err(results_error)?;
    tmp.write_all(text.as_bytes()).context("writing").map_err(results_error)?;
    tmp.persist(&path).map_err(|e| results_error(e.error.into()))?;
    tracing::info!(path = %path.display(), "results written");
    Ok(())
}

async fn publish(target: &ClusterTarget, cluster: &ClusterArgs, report: ScanReport) -> Result<(), Failure> {
    let scanner = trawl_protocol::ScannerInfo {
        name: host::host_name(),
        mode: "standalone".into(),
        advertised_addr: cluster.advertised_addr.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let result = trawl_protocol::ScanResult::new(scanner, report);
    match target.publish(&result).await {
        Ok(sequence) => {
            tracing::info!(server = target.server(), subject = %result.subject(), sequence, "result published");
            Ok(())
        }
        Err(e) => Err(Failure { error: e.into(), code: exit::RESULTS }),
    }
}

/// `trawl-scanner worker`: scans tasks from the queue until SIGTERM.
async fn run_worker(args: WorkerArgs) -> Result<u8, Failure> {
    let config = args.worker_config()?;
    config.validate().map_err(|e| usage(e.to_string()))?;
    // Registered before connecting, so a SIGTERM from now on drains instead of killing.
    let shutdown = worker::termination_signal().context("cannot listen for SIGTERM").map_err(internal)?;
    let db = match args.db.clone() {
        Some(path) => {
            let db = tokio::task::spawn_blocking(move || trawl_vulndb::Database::load(&path))
                .await
                .map_err(|e| internal(e.into()))?
                .map_err(|e| Failure { error: e.into(), code: exit::DB })?;
            worker::DbSource::Fixed(Arc::new(db))
        }
        None => worker::DbSource::Follow,
    };
    let nats = worker::NatsSettings { url: args.nats.clone(), creds: args.nats_creds.clone() };
    // Both errors are settings that retrying cannot fix (NATS trouble itself is retried).
    worker::run(config, nats, db, shutdown).await.map(|_| exit::OK).map_err(|e| usage(e.to_string()))
}

/// Columns of the terminal on stdout, when it is one.
fn stdout_width() -> Option<usize> {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into the valid struct passed.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

fn write_json(path: Option<&Path>, doc: &serde_json::Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(doc)?;
    text.push('\n');
    write_text(path, &text)
}

fn write_text(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            // A closed pipe (e.g. `| head`) is not an error worth reporting.
            match lock.write_all(text.as_bytes()).and_then(|_| lock.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other.context("writing to standard output"),
            }
        }
    }
}

fn init_logging(format: LogFormat, quiet: bool, service: bool, progress: Option<&TerminalProgress>) {
    let default = match (quiet, service) {
        (true, _) => "error",
        (false, true) => "warn,trawl_scanner=info,trawl_dbdist=info",
        (false, false) => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAWL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A service's log goes to files and collectors: colour codes only on a terminal.
    let ansi = !service || std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match (format, progress) {
        // Progress bars are only drawn with text logs on a terminal.
        (LogFormat::Text, Some(p)) => builder.with_writer(p.log_writer()).init(),
        (LogFormat::Text, None) => builder.with_writer(std::io::stderr).init(),
        (LogFormat::Json, _) => builder.json().with_writer(std::io::stderr).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        cli::Cli::command().debug_assert();
        cli::EnvOnlyScan::command().debug_assert();
    }
}
