//! The command line: every option, environment variable and help text of
//! `trawl-scanner`, and how they resolve into what to scan and how to fetch it.

use crate::failure::{usage, Failure};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use trawl_image::{Credentials, LayerLimits, Platform, SourceOptions};
use trawl_scanner::analyze::AnalyzerOptions;
use trawl_scanner::{host, neuvector};

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
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Print nothing but the report: no progress, only errors on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Scan the host (NeuVector's `-n`); the same as `scan --host`.
    #[arg(short = 'n')]
    pub host_scan: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The exit-code table printed under `--help` (kept in step with the README).
pub const EXIT_CODES_HELP: &str = "\
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

/// The environment and examples printed under `--help`.
pub const AFTER_HELP: &str = "\
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
  trawl-scanner sbom -f spdx-json -o sbom.spdx.json docker-archive:saved.tar
  NATS_URL=nats://trawl-nats:4222 trawl-scanner worker --concurrency 4";

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
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

    /// Scan images from the cluster's task queue: the distributed worker.
    ///
    /// Pulls scan tasks from the TRAWL_TASKS stream (the high lane before
    /// the bulk lane), scans each image from its registry and publishes the
    /// full result on trawl.results.* for the controller. Registry settings
    /// come from the TRAWL_REGISTRIES bucket; the credentials they name
    /// (environment variables, files) are read from this process. Failures
    /// are retried with backoff when they may pass, else recorded as a
    /// failed result and a dead letter on trawl.dead.<lane>.
    ///
    /// The streams, consumers and buckets are the controller's to create;
    /// the worker waits for them. Without --db it matches with the database
    /// published in NATS (trawl-updater publish), swapping in new versions
    /// between scans, and takes no task before one is loaded.
    ///
    /// SIGTERM or SIGINT: no new tasks, scans in flight get --drain-timeout
    /// to finish, unfinished tasks go back to the queue, exit 0.
    #[command(verbatim_doc_comment)]
    Worker(Box<WorkerArgs>),
}

/// What to inventory: an image reference, the host, or NeuVector's variables.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// The image to read (see `trawl-scanner sbom --help` for the forms).
    pub image_ref: Option<String>,

    /// Scan the host's root filesystem instead of an image.
    #[arg(long, conflicts_with = "image_ref")]
    pub host: bool,

    /// Root filesystem for --host (default /, or /proc/1/root inside a container
    /// sharing the host's PID namespace; e.g. /host for a mounted host).
    #[arg(long, value_name = "PATH", conflicts_with = "image_ref")]
    pub root: Option<PathBuf>,

    /// With --host: a directory not to walk (repeatable), e.g. a build cache full of large binaries.
    #[arg(long = "skip-dir", value_name = "DIR")]
    pub skip_dirs: Vec<PathBuf>,

    /// Registry URL, NeuVector style (with --repository).
    #[arg(long, env = "SCANNER_REGISTRY", value_name = "URL")]
    pub registry: Option<String>,

    /// Repository, NeuVector style: used when no IMAGE_REF is given.
    #[arg(long, env = "SCANNER_REPOSITORY", value_name = "REPO")]
    pub repository: Option<String>,

    /// Tag or digest for --repository (default latest).
    #[arg(long, env = "SCANNER_TAG", value_name = "TAG")]
    pub tag: Option<String>,
}

/// What is being scanned, once the arguments are resolved.
pub enum Target {
    /// An image reference; `plain_http` when a NeuVector registry URL said `http://`.
    Image { reference: String, plain_http: bool },
    /// A root filesystem scanned as a host, with extra directories to skip.
    Host { root: PathBuf, skip: Vec<PathBuf> },
}

impl TargetArgs {
    /// What to scan: `--host`/`--root`, an IMAGE_REF, or the NeuVector variables, in that order.
    pub fn resolve(&self) -> Result<Target, Failure> {
        if self.host || self.root.is_some() {
            let root = self.root.clone().unwrap_or_else(host::default_root);
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

/// Options of `scan` (and of a bare, NeuVector-style run).
#[derive(Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Vulnerability database file (build one with `trawl-updater build --source …`).
    /// Default: /var/lib/trawl/trawl.db, then ~/.cache/trawl/trawl.db.
    #[arg(long, env = "TRAWL_DB", value_name = "FILE")]
    pub db: Option<PathBuf>,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = ScanFormat::Table)]
    pub format: ScanFormat,

    /// Write the report to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write the NeuVector-layout scan_result.json into DIR
    /// (default /var/neuvector when run NeuVector style, without a command).
    #[arg(long, env = "TRAWL_RESULTS_DIR", value_name = "DIR")]
    pub results_dir: Option<PathBuf>,

    /// Group findings per image layer, with the command that built each layer.
    #[arg(long, env = "SCANNER_SCAN_LAYERS")]
    pub scan_layers: bool,

    /// Report only these severities (comma-separated: CRITICAL,HIGH,MEDIUM,LOW,NEGLIGIBLE,UNKNOWN).
    #[arg(long, value_name = "LIST")]
    pub severity: Option<String>,

    /// Leave out findings that have no fixed version yet.
    #[arg(long)]
    pub ignore_unfixed: bool,

    /// Ignore file of accepted findings (default ./.trawlignore when it exists).
    #[arg(long, env = "TRAWL_IGNORE_FILE", value_name = "FILE")]
    pub ignore_file: Option<PathBuf>,

    /// Exit with N when any finding remains after the filters (CI gating; 1 is usual).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub exit_code: u8,

    /// One-shot scan (NeuVector's SCANNER_ON_DEMAND; Trawl's standalone scans always are).
    #[arg(long, env = "SCANNER_ON_DEMAND", hide_short_help = true)]
    pub on_demand: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// NeuVector's cluster join, mapped onto NATS (see `trawl_scanner::cluster`).
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Publish the result to the cluster's NATS server at ADDR (host or nats:// URL), into its admission-control storage.
    #[arg(long, visible_alias = "nats", env = "CLUSTER_JOIN_ADDR", value_name = "ADDR")]
    pub join_addr: Option<String>,

    /// Port of the cluster's NATS server.
    #[arg(long, env = "CLUSTER_JOIN_PORT", value_name = "PORT", default_value_t = 4222)]
    pub join_port: u16,

    /// This scanner's address, recorded in the published result.
    #[arg(long, env = "CLUSTER_ADVERTISED_ADDR", value_name = "ADDR")]
    pub advertised_addr: Option<String>,
}

/// Options of `worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// NATS server URL(s), comma-separated (nats://[user:pass@]host:4222).
    #[arg(long, env = "NATS_URL", value_name = "URL", hide_env_values = true)]
    pub nats: String,

    /// NATS credentials file (JWT and NKey seed) instead of user:pass in the URL.
    #[arg(long, env = "NATS_CREDS", value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,

    /// Tasks scanned at once.
    #[arg(long, env = "TRAWL_WORKER_CONCURRENCY", value_name = "N", default_value_t = 2)]
    pub concurrency: usize,

    /// A fixed vulnerability database file (default: follow the one published in NATS).
    #[arg(long, env = "TRAWL_WORKER_DB", value_name = "FILE")]
    pub db: Option<PathBuf>,

    /// This worker's unique id (heartbeat key; default HOST-PID-RANDOM).
    #[arg(long, env = "TRAWL_WORKER_ID", value_name = "ID")]
    pub id: Option<String>,

    /// First retry delay of a transient failure, doubled per delivery (at most 10m).
    #[arg(long, env = "TRAWL_WORKER_RETRY_DELAY", value_name = "DURATION", default_value = "30s", value_parser = trawl_scanner::worker::parse_duration)]
    pub retry_delay: std::time::Duration,

    /// Longest time one scan may take.
    #[arg(long, env = "TRAWL_WORKER_SCAN_TIMEOUT", value_name = "DURATION", default_value = "30m", value_parser = trawl_scanner::worker::parse_duration)]
    pub scan_timeout: std::time::Duration,

    /// After SIGTERM, how long scans in flight may take to finish before their tasks are handed back.
    #[arg(long, env = "TRAWL_WORKER_DRAIN_TIMEOUT", value_name = "DURATION", default_value = "25s", value_parser = trawl_scanner::worker::parse_duration)]
    pub drain_timeout: std::time::Duration,

    /// Platform to pick from multi-platform images (OS/ARCH[/VARIANT]).
    #[arg(long, env = "TRAWL_WORKER_PLATFORM", default_value = "linux/amd64")]
    pub platform: String,

    /// Largest uncompressed size of one layer, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 32 * 1024)]
    pub max_layer_size: u64,

    /// Largest decompression ratio accepted for layers above 64 MiB uncompressed.
    #[arg(long, value_name = "RATIO", default_value_t = 200)]
    pub max_compression_ratio: u64,

    /// Layers downloaded and walked at once, per scan.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub parallel_layers: usize,

    /// Do not use the cluster's layer cache (TRAWL_LAYERS): pull and walk every layer of every image.
    ///
    /// By default a layer any scanner has walked is taken from the cache instead of its registry.
    /// TRAWL_WORKER_LAYER_CACHE=false does the same as this flag.
    #[arg(
        long = "no-layer-cache",
        env = "TRAWL_WORKER_LAYER_CACHE",
        action = clap::ArgAction::SetFalse,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub layer_cache: bool,

    /// Benchmarks only: answer every task at once with a successful, empty report (no pull, no
    /// matching), to measure the queue's own overhead. Every image touched shows as scanned.
    #[arg(long, hide = true)]
    pub noop_scan: bool,

    /// Serve Prometheus metrics (GET /metrics) and a health check (GET /healthz) on this address.
    ///
    /// HOST:PORT (127.0.0.1:9090, [::]:9090) or :PORT for every IPv4 interface; port 0 picks a free
    /// one. The address bound is logged ("metrics listening on …"). Off unless given.
    #[arg(long, env = "TRAWL_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

impl WorkerArgs {
    /// The worker's settings (its database and NATS connection aside).
    pub fn worker_config(&self) -> Result<trawl_scanner::worker::WorkerConfig, Failure> {
        let host = host::host_name();
        let id = self.id.clone().unwrap_or_else(|| trawl_scanner::worker::default_id(&host));
        if self.parallel_layers == 0 {
            return Err(usage("--parallel-layers must be at least 1".into()));
        }
        let mut analyzer = AnalyzerOptions {
            limits: LayerLimits {
                max_uncompressed: self.max_layer_size.saturating_mul(1 << 20),
                max_ratio: self.max_compression_ratio,
                ..Default::default()
            },
            parallel_layers: self.parallel_layers,
            ..Default::default()
        };
        analyzer.source.platform = Platform::parse(&self.platform).map_err(|e| usage(e.to_string()))?;
        Ok(trawl_scanner::worker::WorkerConfig {
            host,
            concurrency: self.concurrency,
            retry_delay: self.retry_delay,
            scan_timeout: self.scan_timeout,
            drain_timeout: self.drain_timeout,
            analyzer,
            layer_cache: self.layer_cache,
            noop_scan: self.noop_scan,
            metrics_listen: self.metrics_listen.clone(),
            ..trawl_scanner::worker::WorkerConfig::new(id)
        })
    }
}

/// Report formats of `scan`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanFormat {
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

/// Options of `sbom`.
#[derive(Args, Debug)]
pub struct SbomArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = SbomFormat::Json)]
    pub format: SbomFormat,

    /// Write the report to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// Report formats of `sbom`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbomFormat {
    /// Trawl's inventory JSON (schema in docs/sbom-schema.md).
    Json,
    /// CycloneDX 1.5 JSON.
    Cyclonedx,
    /// SPDX 2.3 JSON.
    SpdxJson,
}

/// How images are fetched (shared by every command that reads images).
#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Platform to pick from multi-platform images (OS/ARCH[/VARIANT]).
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,

    /// Talk plain HTTP to the registry (local registries).
    #[arg(long)]
    pub plain_http: bool,

    /// Accept invalid TLS certificates from the registry.
    #[arg(long)]
    pub insecure: bool,

    /// Registry user name (SCANNER_REGISTRY_USERNAME works too).
    #[arg(long, env = "TRAWL_REGISTRY_USERNAME")]
    pub username: Option<String>,

    /// Registry password or access token; prefer the environment (SCANNER_REGISTRY_PASSWORD works too).
    #[arg(long, env = "TRAWL_REGISTRY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// Registry bearer token, presented as is.
    #[arg(long, env = "TRAWL_REGISTRY_TOKEN", hide_env_values = true, conflicts_with_all = ["username", "password"])]
    pub registry_token: Option<String>,

    /// Docker Engine API endpoint for docker: references (default: DOCKER_HOST, then unix:///var/run/docker.sock).
    #[arg(long, env = "SCANNER_DOCKER_URL", value_name = "URL")]
    pub docker_url: Option<String>,

    /// Largest uncompressed size of one layer, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 32 * 1024)]
    pub max_layer_size: u64,

    /// Largest decompression ratio accepted for layers above 64 MiB uncompressed.
    #[arg(long, value_name = "RATIO", default_value_t = 200)]
    pub max_compression_ratio: u64,

    /// Layers downloaded and walked at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub parallel_layers: usize,
}

/// How log records are written.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The NeuVector-style invocation: every setting from the environment.
#[derive(Parser, Debug)]
#[command(name = "trawl-scanner")]
pub struct EnvOnlyScan {
    #[command(flatten)]
    pub args: ScanArgs,
}

/// A bare `trawl-scanner` (or `-n`): NeuVector's standalone scanner, all from the environment.
pub fn neuvector_invocation(host_scan: bool) -> Result<ScanArgs, Failure> {
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

/// Reads the first of several environment variables that is set and not empty.
pub fn env_fallback(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl FetchArgs {
    /// Analyzer settings from the fetch options; NeuVector's credential variables are the fallback.
    pub fn analyzer_options(&self, force_plain_http: bool) -> Result<AnalyzerOptions, Failure> {
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
