//! `trawl-scanner`: inventory and scan container images from the command line.

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use trawl_image::{Credentials, LayerLimits, Platform, SourceOptions};
use trawl_report::SbomReport;
use trawl_scanner::analyze::{AnalyzeError, Analyzer, AnalyzerOptions};
use trawl_scanner::exit;

/// Trawl container-image scanner.
///
/// Reads an image straight from a registry, an OCI layout or archive, a
/// `docker save` archive or a root filesystem directory, and lists the
/// packages installed in it. Layers are streamed, verified against their
/// digests and never unpacked to disk.
#[derive(Parser, Debug)]
#[command(name = "trawl-scanner", version, about, long_about = None, after_help = EXIT_CODES_HELP)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    /// Print nothing but the report (errors still go to stderr).
    #[arg(long, short, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0   success
  2   usage error
  3   image or reference not found / invalid (including no image for the platform)
  4   registry refused the credentials
  5   registry unreachable or failing
  6   image content failed verification or safety checks (digest, corruption, limits, unsafe paths)
  7   not a container image, or an unsupported format
  8   vulnerability database missing, corrupt or unsupported
  10  local I/O or internal error";

#[derive(Subcommand, Debug)]
enum Command {
    /// List the packages installed in an image (a software bill of materials).
    ///
    /// IMAGE_REF is one of:
    ///   HOST/REPO:TAG, HOST/REPO@sha256:…   an image in a registry
    ///   oci:DIR[:TAG]                       an OCI image layout directory
    ///   oci-archive:FILE[:TAG]              a tar of an OCI image layout
    ///   docker-archive:FILE[:REPO:TAG]      `docker save` output
    ///   dir:PATH                            a root filesystem directory
    #[command(verbatim_doc_comment)]
    Sbom(SbomArgs),

    /// Scan an image for known vulnerabilities.
    ///
    /// Inventories IMAGE_REF (same references as `sbom`) and matches every
    /// package against a vulnerability database built by
    /// `trawl-updater build`. When the database has no advisories for the
    /// image's distribution release, the report says so instead of looking clean.
    #[command(verbatim_doc_comment)]
    Scan(ScanArgs),
}

#[derive(Args, Debug)]
struct ScanArgs {
    /// The image to scan (see `trawl-scanner sbom --help`).
    image_ref: String,

    /// Vulnerability database file (build one with `trawl-updater build --source …`).
    #[arg(long, env = "TRAWL_DB", value_name = "FILE")]
    db: Option<PathBuf>,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = ScanFormat::Table)]
    format: ScanFormat,

    /// Write the report to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    #[command(flatten)]
    fetch: FetchArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ScanFormat {
    /// Findings grouped by package, most severe first (coloured on a terminal).
    Table,
    /// Trawl's scan report JSON (schema in docs/scan-schema.md).
    Json,
}

#[derive(Args, Debug)]
struct SbomArgs {
    /// The image to inventory (see above).
    image_ref: String,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = SbomFormat::Json)]
    format: SbomFormat,

    /// Write the report to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    #[command(flatten)]
    fetch: FetchArgs,
}

/// How images are fetched (shared by every command that reads images).
#[derive(Args, Debug)]
struct FetchArgs {
    /// Platform to pick from multi-platform images (OS/ARCH[/VARIANT]).
    #[arg(long, default_value = "linux/amd64")]
    platform: String,

    /// Talk plain HTTP to the registry (local registries).
    #[arg(long)]
    plain_http: bool,

    /// Accept invalid TLS certificates from the registry.
    #[arg(long)]
    insecure: bool,

    /// Registry user name.
    #[arg(long, env = "TRAWL_REGISTRY_USERNAME")]
    username: Option<String>,

    /// Registry password or access token (prefer the environment variable).
    #[arg(long, env = "TRAWL_REGISTRY_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    /// Registry bearer token, presented as is.
    #[arg(long, env = "TRAWL_REGISTRY_TOKEN", hide_env_values = true, conflicts_with_all = ["username", "password"])]
    registry_token: Option<String>,

    /// Largest uncompressed size of one layer, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 32 * 1024)]
    max_layer_size: u64,

    /// Largest decompression ratio accepted for layers above 64 MiB uncompressed.
    #[arg(long, value_name = "RATIO", default_value_t = 200)]
    max_compression_ratio: u64,

    /// Layers downloaded and walked at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    parallel_layers: usize,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SbomFormat {
    /// Trawl's inventory JSON (schema in docs/sbom-schema.md).
    Json,
    /// CycloneDX 1.5 JSON.
    Cyclonedx,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

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
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sbom(args) => sbom(args).await,
            Command::Scan(args) => scan(args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// An error with the exit code it maps to.
struct Failure {
    error: anyhow::Error,
    code: u8,
}

impl From<AnalyzeError> for Failure {
    fn from(e: AnalyzeError) -> Self {
        let code = match e.image_error() {
            Some(ie) => exit::for_image_error(ie),
            None => match e {
                AnalyzeError::Layer { .. } => exit::BAD_CONTENT,
                _ => exit::INTERNAL,
            },
        };
        Failure { error: e.into(), code }
    }
}

fn internal(e: anyhow::Error) -> Failure {
    Failure { error: e, code: exit::INTERNAL }
}

fn usage(msg: String) -> Failure {
    Failure { error: anyhow::anyhow!(msg), code: exit::USAGE }
}

impl FetchArgs {
    fn analyzer_options(&self) -> Result<AnalyzerOptions, Failure> {
        let platform = Platform::parse(&self.platform).map_err(|e| usage(e.to_string()))?;
        let credentials = match (&self.username, &self.password, &self.registry_token) {
            (_, _, Some(token)) => Credentials::Bearer(token.clone()),
            (Some(u), Some(p), None) => Credentials::Basic { username: u.clone(), password: p.clone() },
            (Some(_), None, None) | (None, Some(_), None) => {
                return Err(usage("give both --username and --password (or neither)".into()))
            }
            (None, None, None) => Credentials::Anonymous,
        };
        if self.parallel_layers == 0 {
            return Err(usage("--parallel-layers must be at least 1".into()));
        }
        Ok(AnalyzerOptions {
            source: SourceOptions {
                platform,
                credentials,
                plain_http: self.plain_http,
                insecure_tls: self.insecure,
                ..Default::default()
            },
            limits: LayerLimits {
                max_uncompressed: self.max_layer_size.saturating_mul(1 << 20),
                max_ratio: self.max_compression_ratio,
                ..Default::default()
            },
            parallel_layers: self.parallel_layers,
            ..Default::default()
        })
    }
}

async fn sbom(args: SbomArgs) -> Result<u8, Failure> {
    let options = args.fetch.analyzer_options()?;
    let analyzer = Analyzer::new(trawl_catalog::default_catalogers(), options);
    let analysis = analyzer.analyze_reference(&args.image_ref).await?;
    for issue in &analysis.inventory.issues {
        tracing::warn!(path = %issue.path, cataloger = %issue.cataloger, "{}", issue.message);
    }
    let report = SbomReport::new(analysis.identity, analysis.inventory);
    let doc = match args.format {
        SbomFormat::Json => serde_json::to_value(&report).context("serialising the report").map_err(internal)?,
        SbomFormat::Cyclonedx => trawl_report::cyclonedx::to_cyclonedx(&report),
    };
    write_output(args.output.as_deref(), &doc).map_err(internal)?;
    Ok(exit::OK)
}

async fn scan(args: ScanArgs) -> Result<u8, Failure> {
    let Some(db_path) = args.db.clone() else {
        return Err(Failure {
            error: anyhow::anyhow!(
                "no vulnerability database: pass --db FILE or set TRAWL_DB (build one with `trawl-updater build --source <OSV all.zip, directory or URL> --out trawl.db`)"
            ),
            code: exit::DB,
        });
    };
    // Load the database before pulling anything: a bad database should fail fast.
    let db = tokio::task::spawn_blocking(move || trawl_vulndb::Database::load(&db_path))
        .await
        .map_err(|e| internal(e.into()))?
        .map_err(|e| Failure { error: e.into(), code: exit::DB })?;
    let options = args.fetch.analyzer_options()?;
    let analyzer = Analyzer::new(trawl_catalog::default_catalogers(), options);
    let analysis = analyzer.analyze_reference(&args.image_ref).await?;
    let matched = trawl_vulndb::Matcher::new(&db).match_inventory(&analysis.inventory);
    for w in &matched.warnings {
        tracing::warn!("{w}");
    }
    let report = trawl_report::ScanReport::new(
        SbomReport::new(analysis.identity, analysis.inventory),
        matched,
        trawl_report::DbInfo::from(db.header()),
    );
    match args.format {
        ScanFormat::Json => {
            let doc = serde_json::to_value(&report).context("serialising the report").map_err(internal)?;
            write_output(args.output.as_deref(), &doc).map_err(internal)?;
        }
        ScanFormat::Table => {
            let color = args.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
            write_text(args.output.as_deref(), &trawl_report::table::render(&report, color)).map_err(internal)?;
        }
    }
    Ok(exit::OK)
}

fn write_output(path: Option<&std::path::Path>, doc: &serde_json::Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(doc)?;
    text.push('\n');
    write_text(path, &text)
}

fn write_text(path: Option<&std::path::Path>, text: &str) -> anyhow::Result<()> {
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

fn init_logging(format: LogFormat, quiet: bool) {
    let default = if quiet { "error" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAWL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
