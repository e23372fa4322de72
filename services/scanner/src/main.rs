//! `trawl-scanner`: inventory and scan container images and hosts from the
//! command line. Argument parsing and the order of the steps live here; the
//! steps themselves are the library's (`trawl_scanner::…`) and the shared crates'.

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use trawl_image::{Credentials, LayerLimits, Platform, SourceOptions};
use trawl_policy::{FindingPolicy, IgnoreFile, DEFAULT_IGNORE_FILE};
use trawl_report::{SbomReport, ScanReport};
use trawl_scanner::analyze::{AnalyzeError, Analyzer, AnalyzerOptions, ImageAnalysis};
use trawl_scanner::cluster::ClusterTarget;
use trawl_scanner::progress::TerminalProgress;
use trawl_scanner::{exit, host, neuvector};

/// Trawl container-image scanner.
///
/// Reads an image straight from a registry, a Docker Engine API socket, an
/// OCI layout or archive, a `docker save` archive, a root filesystem
/// directory or the host itself, lists the packages installed in it and
/// matches them against a vulnerability database. Layers are streamed,
/// verified against their digests and never unpacked to disk.
///
/// Run without a command, it behaves like NeuVector's standalone scanner:
/// `SCANNER_ON_DEMAND=true SCANNER_REPOSITORY=ubuntu SCANNER_TAG=16.04
/// trawl-scanner` scans that image and writes /var/neuvector/scan_result.json;
/// `trawl-scanner -n` scans the host.
#[derive(Parser, Debug)]
#[command(name = "trawl-scanner", version, about, long_about, after_long_help = AFTER_HELP, after_help = EXIT_CODES_HELP)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    /// Print nothing but the report: no progress, only errors on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,

    /// Scan the host (NeuVector's `-n`); the same as `scan --host`.
    #[arg(short = 'n')]
    host_scan: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0   success (and no finding failed the --exit-code gate)
  1   findings failed the gate (the usual --exit-code; any value 1 or 11-255 can be chosen)
  2   usage error (bad option, bad ignore file)
  3   image or reference not found / invalid (including no image for the platform)
  4   registry refused the credentials
  5   registry or Docker engine unreachable or failing
  6   image content failed verification or safety checks (digest, corruption, limits, unsafe paths)
  7   not a container image, or an unsupported format
  8   vulnerability database missing, corrupt or unsupported
  9   results could not be written to the results directory or delivered to the cluster
  10  local I/O or internal error";

const AFTER_HELP: &str = "\
NeuVector standalone-scanner environment (read by `scan` and a bare trawl-scanner):
  SCANNER_REGISTRY           registry URL: https://host[:port]/ (http:// for
                             plain HTTP); unset: a local image via the Docker socket
  SCANNER_REPOSITORY         repository to scan (e.g. library/ubuntu)
  SCANNER_TAG                tag or sha256 digest (default latest)
  SCANNER_REGISTRY_USERNAME  registry user (TRAWL_REGISTRY_USERNAME wins)
  SCANNER_REGISTRY_PASSWORD  registry password (TRAWL_REGISTRY_PASSWORD wins)
  SCANNER_SCAN_LAYERS        true: findings grouped per layer, with its command
  SCANNER_ON_DEMAND          true: one-shot scan (standalone scans always are)
  SCANNER_DOCKER_URL         Docker Engine API: unix:///PATH or tcp://host:port
                             (else DOCKER_HOST, else unix:///var/run/docker.sock)
  CLUSTER_JOIN_ADDR          the cluster's NATS server (host or nats:// URL);
                             the result is published on trawl.results.*
  CLUSTER_JOIN_PORT          its port (default 4222)
  CLUSTER_ADVERTISED_ADDR    this scanner's address, recorded in the result
Other environment:
  TRAWL_DB, TRAWL_RESULTS_DIR, TRAWL_IGNORE_FILE, TRAWL_REGISTRY_TOKEN,
  TRAWL_LOG (log filter, e.g. debug)

Examples:
  trawl-updater build --source Debian-all.zip --source PyPI-all.zip --out trawl.db
  trawl-scanner scan --db trawl.db registry.example.com/team/app:1.4
  trawl-scanner scan docker:myapp:dev          # a local image, Docker socket
  trawl-scanner scan --host                    # this machine
  trawl-scanner scan --scan-layers oci-archive:image.tar
  trawl-scanner scan -f sarif -o trawl.sarif --exit-code 1 \\
      --severity HIGH,CRITICAL --ignore-unfixed registry.example.com/app:1.4
  trawl-scanner sbom -f spdx-json -o sbom.spdx.json docker-archive:saved.tar";

#[derive(Subcommand, Debug)]
enum Command {
    /// List the packages installed in an image or host (a software bill of materials).
    ///
    /// IMAGE_REF is one of:
    ///   HOST/REPO:TAG, HOST/REPO@sha256:…   an image in a registry
    ///   docker:NAME[:TAG]                   an image in a Docker Engine (or Podman) API
    ///   oci:DIR[:TAG]                       an OCI image layout directory
    ///   oci-archive:FILE[:TAG]              a tar of an OCI image layout
    ///   docker-archive:FILE[:REPO:TAG]      `docker save` output
    ///   dir:PATH                            a root filesystem directory
    #[command(verbatim_doc_comment)]
    Sbom(Box<SbomArgs>),

    /// Scan an image or host for known vulnerabilities.
    ///
    /// Inventories the target (IMAGE_REF as for `sbom`, --host, or the
    /// NeuVector SCANNER_* variables) and matches every package against a
    /// vulnerability database built by `trawl-updater build`. When the
    /// database has no advisories for the target's distribution release, the
    /// report says so instead of looking clean.
    ///
    /// CI gating: --severity keeps only those severities, --ignore-unfixed
    /// drops findings without a fixed version, the ignore file (.trawlignore,
    /// Trivy's format: `ID [exp:YYYY-MM-DD] [pkg:NAME] [# reason]`)
    /// suppresses reviewed ones, and --exit-code N fails the run when any
    /// finding is left.
    #[command(verbatim_doc_comment)]
    Scan(Box<ScanArgs>),
}

/// What to inventory: an image reference, the host, or NeuVector's variables.
#[derive(Args, Debug, Clone)]
struct TargetArgs {
    /// The image to read (see `trawl-scanner sbom --help` for the forms).
    image_ref: Option<String>,

    /// Scan the host's root filesystem instead of an image.
    #[arg(long, conflicts_with = "image_ref")]
    host: bool,

    /// Root filesystem for --host (e.g. /host when the host is mounted into a container).
    #[arg(long, value_name = "PATH", conflicts_with = "image_ref")]
    root: Option<PathBuf>,

    /// With --host: a directory not to walk (repeatable), e.g. a build cache full of large binaries.
    #[arg(long = "skip-dir", value_name = "DIR")]
    skip_dirs: Vec<PathBuf>,

    /// Registry URL, NeuVector style (with --repository).
    #[arg(long, env = "SCANNER_REGISTRY", value_name = "URL")]
    registry: Option<String>,

    /// Repository, NeuVector style: used when no IMAGE_REF is given.
    #[arg(long, env = "SCANNER_REPOSITORY", value_name = "REPO")]
    repository: Option<String>,

    /// Tag or digest for --repository (default latest).
    #[arg(long, env = "SCANNER_TAG", value_name = "TAG")]
    tag: Option<String>,
}

/// What is being scanned, once the arguments are resolved.
enum Target {
    Image { reference: String, plain_http: bool },
    Host { root: PathBuf, skip: Vec<PathBuf> },
}

impl TargetArgs {
    fn resolve(&self) -> Result<Target, Failure> {
        if self.host || self.root.is_some() {
            let root = self.root.clone().unwrap_or_else(|| PathBuf::from("/"));
            return Ok(Target::Host { root, skip: self.skip_dirs.clone() });
        }
        if !self.skip_dirs.is_empty() {
            return Err(usage("--skip-dir only applies to host scans (--host or --root)".into()));
        }
        if let Some(reference) = &self.image_ref {
            return Ok(Target::Image { reference: reference.clone(), plain_http: false });
        }
        if let Some(repository) = &self.repository {
            let image =
                neuvector::image_from_env(self.registry.as_deref(), repository, self.tag.as_deref()).map_err(usage)?;
            return Ok(Target::Image { reference: image.reference, plain_http: image.plain_http });
        }
        Err(usage(
            "nothing to scan: give an IMAGE_REF, --host, or SCANNER_REPOSITORY (and SCANNER_TAG) as NeuVector does"
                .into(),
        ))
    }
}

#[derive(Args, Debug)]
struct ScanArgs {
    #[command(flatten)]
    target: TargetArgs,

    /// Vulnerability database file (build one with `trawl-updater build --source …`).
    /// Default: /var/lib/trawl/trawl.db, then ~/.cache/trawl/trawl.db.
    #[arg(long, env = "TRAWL_DB", value_name = "FILE")]
    db: Option<PathBuf>,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = ScanFormat::Table)]
    format: ScanFormat,

    /// Write the report to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Also write the NeuVector-layout scan_result.json into DIR
    /// (default /var/neuvector when run NeuVector style, without a command).
    #[arg(long, env = "TRAWL_RESULTS_DIR", value_name = "DIR")]
    results_dir: Option<PathBuf>,

    /// Group findings per image layer, with the command that built each layer.
    #[arg(long, env = "SCANNER_SCAN_LAYERS")]
    scan_layers: bool,

    /// Report only these severities (comma-separated: CRITICAL,HIGH,MEDIUM,LOW,NEGLIGIBLE,UNKNOWN).
    #[arg(long, value_name = "LIST")]
    severity: Option<String>,

    /// Leave out findings that have no fixed version yet.
    #[arg(long)]
    ignore_unfixed: bool,

    /// Ignore file of accepted findings (default ./.trawlignore when it exists).
    #[arg(long, env = "TRAWL_IGNORE_FILE", value_name = "FILE")]
    ignore_file: Option<PathBuf>,

    /// Exit with N when any finding remains after the filters (CI gating; 1 is usual).
    #[arg(long, value_name = "N", default_value_t = 0)]
    exit_code: u8,

    /// One-shot scan (NeuVector's SCANNER_ON_DEMAND; Trawl's standalone scans always are).
    #[arg(long, env = "SCANNER_ON_DEMAND", hide_short_help = true)]
    on_demand: bool,

    #[command(flatten)]
    cluster: ClusterArgs,

    #[command(flatten)]
    fetch: FetchArgs,
}

/// NeuVector's cluster join, mapped onto NATS (see `trawl_scanner::cluster`).
#[derive(Args, Debug)]
struct ClusterArgs {
    /// Publish the result to the cluster's NATS server at ADDR (host or nats:// URL).
    #[arg(long, env = "CLUSTER_JOIN_ADDR", value_name = "ADDR")]
    join_addr: Option<String>,

    /// Port of the cluster's NATS server.
    #[arg(long, env = "CLUSTER_JOIN_PORT", value_name = "PORT", default_value_t = 4222)]
    join_port: u16,

    /// This scanner's address, recorded in the published result.
    #[arg(long, env = "CLUSTER_ADVERTISED_ADDR", value_name = "ADDR")]
    advertised_addr: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ScanFormat {
    /// Findings grouped by package, most severe first (coloured on a terminal).
    Table,
    /// Trawl's scan report JSON (schema in docs/scan-schema.md).
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
    /// CycloneDX 1.5 JSON: the SBOM with its vulnerabilities.
    Cyclonedx,
    /// SPDX 2.3 JSON: the SBOM.
    SpdxJson,
    /// NeuVector's scan_result.json layout, for tools written against NeuVector.
    Neuvector,
}

#[derive(Args, Debug)]
struct SbomArgs {
    #[command(flatten)]
    target: TargetArgs,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = SbomFormat::Json)]
    format: SbomFormat,

    /// Write the report to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    #[command(flatten)]
    fetch: FetchArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SbomFormat {
    /// Trawl's inventory JSON (schema in docs/sbom-schema.md).
    Json,
    /// CycloneDX 1.5 JSON.
    Cyclonedx,
    /// SPDX 2.3 JSON.
    SpdxJson,
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

    /// Registry user name (SCANNER_REGISTRY_USERNAME works too).
    #[arg(long, env = "TRAWL_REGISTRY_USERNAME")]
    username: Option<String>,

    /// Registry password or access token; prefer the environment (SCANNER_REGISTRY_PASSWORD works too).
    #[arg(long, env = "TRAWL_REGISTRY_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    /// Registry bearer token, presented as is.
    #[arg(long, env = "TRAWL_REGISTRY_TOKEN", hide_env_values = true, conflicts_with_all = ["username", "password"])]
    registry_token: Option<String>,

    /// Docker Engine API endpoint for docker: references (default: DOCKER_HOST, then unix:///var/run/docker.sock).
    #[arg(long, env = "SCANNER_DOCKER_URL", value_name = "URL")]
    docker_url: Option<String>,

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
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The NeuVector-style invocation: every setting from the environment.
#[derive(Parser, Debug)]
#[command(name = "trawl-scanner")]
struct EnvOnlyScan {
    #[command(flatten)]
    args: ScanArgs,
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
    let ui = Ui::new(cli.quiet, cli.log_format);
    init_logging(cli.log_format, cli.quiet, ui.progress.as_deref());
    // A bare `trawl-scanner` (or `-n`) is NeuVector's standalone scanner.
    let (command, neuvector_style) = match cli.command {
        Some(_) if cli.host_scan => {
            return report_failure(usage("-n stands alone (NeuVector style); with a command use `scan --host`".into()))
        }
        Some(c) => (c, false),
        None => match neuvector_invocation(cli.host_scan) {
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
        }
    });
    ui.clear();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => report_failure(failure),
    }
}

fn report_failure(failure: Failure) -> ExitCode {
    eprintln!("error: {:#}", failure.error);
    ExitCode::from(failure.code)
}

/// A bare `trawl-scanner` (or `-n`): NeuVector's standalone scanner, all from the environment.
fn neuvector_invocation(host_scan: bool) -> Result<ScanArgs, Failure> {
    let nothing_set = !host_scan && std::env::var_os("SCANNER_REPOSITORY").is_none();
    if nothing_set {
        return Err(usage(
            "no command: use `trawl-scanner scan IMAGE_REF`, `trawl-scanner sbom IMAGE_REF`, `-n` for the host, or set SCANNER_ON_DEMAND=true and SCANNER_REPOSITORY".into(),
        ));
    }
    let matches = EnvOnlyScan::command().try_get_matches_from(["trawl-scanner"]).map_err(|e| usage(e.to_string()))?;
    let mut args = EnvOnlyScan::from_arg_matches(&matches).map_err(|e| usage(e.to_string()))?.args;
    args.target.host = host_scan;
    Ok(args)
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

/// Reads the first of several environment variables that is set and not empty.
fn env_fallback(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl FetchArgs {
    fn analyzer_options(&self, force_plain_http: bool) -> Result<AnalyzerOptions, Failure> {
        let platform = Platform::parse(&self.platform).map_err(|e| usage(e.to_string()))?;
        // NeuVector's names are the fallback for Trawl's own.
        let username = self.username.clone().or_else(|| env_fallback(&["SCANNER_REGISTRY_USERNAME"]));
        let password = self.password.clone().or_else(|| env_fallback(&["SCANNER_REGISTRY_PASSWORD"]));
        let credentials = match (username, password, &self.registry_token) {
            (_, _, Some(token)) => Credentials::Bearer(token.clone()),
            (Some(username), Some(password), None) => Credentials::Basic { username, password },
            (Some(_), None, None) | (None, Some(_), None) => {
                return Err(usage("give both a registry username and a password (or neither)".into()))
            }
            (None, None, None) => Credentials::Anonymous,
        };
        if self.parallel_layers == 0 {
            return Err(usage("--parallel-layers must be at least 1".into()));
        }
        let docker_url = self
            .docker_url
            .clone()
            .or_else(|| env_fallback(&["DOCKER_HOST"]))
            .unwrap_or_else(|| SourceOptions::default().docker_url);
        Ok(AnalyzerOptions {
            source: SourceOptions {
                platform,
                credentials,
                plain_http: self.plain_http || force_plain_http,
                insecure_tls: self.insecure,
                docker_url,
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
    if let Some(cache) = env_fallback(&["XDG_CACHE_HOME"])
        .map(PathBuf::from)
        .or_else(|| env_fallback(&["HOME"]).map(|h| Path::new(&h).join(".cache")))
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
    let mut matched = trawl_vulndb::Matcher::new(&db).match_inventory(&analysis.inventory);
    for w in &matched.warnings {
        tracing::warn!("{w}");
    }
    let filtered = policy.apply(std::mem::take(&mut matched.findings), chrono::Local::now().date_naive());
    for rule in &filtered.expired {
        tracing::warn!(
            "ignore rule for {} ({}) expired on {}: its findings are reported again",
            rule.id,
            rule.origin,
            rule.expires.map(|d| d.to_string()).unwrap_or_default()
        );
    }
    let fails_gate = filtered.fails_gate();
    matched.findings = filtered.kept;
    let mut report = ScanReport::new(
        SbomReport::new(analysis.identity, analysis.inventory),
        matched,
        trawl_report::DbInfo::from(db.header()),
    );
    report.suppressed = filtered
        .suppressed
        .into_iter()
        .map(|s| trawl_report::SuppressedFinding {
            finding: s.finding,
            reason: s.rule.reason.unwrap_or_else(|| format!("ignored by {}", s.rule.origin)),
            expires: s.rule.expires.map(|d| d.to_string()),
        })
        .collect();
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
            let color = out.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
            return write_text(out, &trawl_report::table::render(report, color)).map_err(internal);
        }
        ScanFormat::Json => serde_json::to_value(report).context("serialising the report").map_err(internal)?,
        ScanFormat::Sarif => trawl_report::sarif::to_sarif(report),
        ScanFormat::Cyclonedx => trawl_report::cyclonedx::to_cyclonedx_scan(report),
        ScanFormat::SpdxJson => trawl_report::spdx::to_spdx(&report.inventory()),
        ScanFormat::Neuvector => trawl_report::neuvector::to_neuvector(report),
    };
    write_json(out, &doc).map_err(internal)
}

/// Writes NeuVector's `scan_result.json` into `dir`, atomically, so a
/// reader polling the directory never sees half a file.
fn write_results_dir(dir: &Path, report: &ScanReport) -> Result<(), Failure> {
    let results_error = |e: anyhow::Error| Failure {
        error: e.context(format!("writing results to {} (choose another with --results-dir)", dir.display())),
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

fn init_logging(format: LogFormat, quiet: bool, progress: Option<&TerminalProgress>) {
    let default = if quiet { "error" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAWL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
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
        Cli::command().debug_assert();
        EnvOnlyScan::command().debug_assert();
    }
}
