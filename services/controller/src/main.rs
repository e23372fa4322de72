//! `trawl-controller`: crawls registries, queues scan tasks on JetStream,
//! stores results for admission control and serves the REST API.

use anyhow::{Context, Result};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use trawl_autoscale::backend::kubernetes::KubernetesScaler;
use trawl_autoscale::backend::process::{ProcessCommand, ProcessScaler};
use trawl_autoscale::backend::ScaleBackend;
use trawl_autoscale::strategy::AutoscaleSettings;
use trawl_controller::api::{self, ApiState};
use trawl_controller::autoscale::{AutoscaleMetrics, Autoscaling, PublishedStatus, SettingsStore};
use trawl_controller::controller::Controller;
use trawl_controller::ingest::ResultIngester;
use trawl_controller::metrics::ControllerMetrics;
use trawl_controller::reaper::Reaper;
use trawl_controller::rematch::Rematcher;
use trawl_controller::storage::Storage;
use trawl_protocol::registry::Schedule;

// Decoding and re-encoding thousands of stored reports at once (re-matching)
// is allocation-bound, and glibc's malloc serialises on its arena locks
// across threads; mimalloc's per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Trawl controller.
///
/// Creates the JetStream streams, consumers and buckets from the `nats/`
/// definitions, crawls the configured registries into scan tasks, stores
/// the scanners' results in admission-control storage and serves the API
/// (docs/api.md). Changes through the API need TRAWL_API_TOKEN.
#[derive(Parser, Debug)]
#[command(name = "trawl-controller", version, about)]
struct Cli {
    /// NATS server URL(s), comma-separated; may carry user:password@.
    #[arg(long, env = "NATS_URL", hide_env_values = true, value_name = "URL")]
    nats: String,
    /// NATS credentials file (JWT and NKey seed).
    #[arg(long, env = "NATS_CREDS", hide_env_values = true, value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// Copies JetStream keeps of every stream and bucket: 1 on a single
    /// nats-server, 3 on a three-node cluster (at most the cluster's size).
    /// Existing streams are brought to this count at start-up.
    #[arg(long, env = "TRAWL_STREAM_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=trawl_protocol::definitions::MAX_REPLICAS as i64))]
    stream_replicas: u8,
    /// Address the API listens on.
    #[arg(long, env = "TRAWL_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bearer token required by the API's mutating routes (unset: they are refused).
    #[arg(long, env = "TRAWL_API_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    api_token: Option<String>,
    /// Log lines as JSON.
    #[arg(long)]
    log_json: bool,
    /// This replica's name in the lead-controller election (default: host name and process id).
    #[arg(long, env = "TRAWL_CONTROLLER_ID", value_name = "ID")]
    id: Option<String>,
    /// How the lead controller changes the scanner count: `kubernetes` (the
    /// scanner Deployment's scale subresource), `process` (local
    /// `trawl-scanner worker` processes) or `none`.
    #[arg(long, env = "TRAWL_SCALE_BACKEND", default_value = "none", value_parser = ["none", "process", "kubernetes"])]
    scale_backend: String,
    /// Autoscale strategy until one is stored through the API: delayed, immediate, proportional, disabled.
    #[arg(long, env = "TRAWL_AUTOSCALE_STRATEGY", default_value = "delayed")]
    autoscale_strategy: trawl_autoscale::strategy::Strategy,
    /// Fewest scanners, until stored through the API.
    #[arg(long, env = "TRAWL_MIN_SCANNERS", default_value_t = 1)]
    min_scanners: u32,
    /// Most scanners, until stored through the API.
    #[arg(long, env = "TRAWL_MAX_SCANNERS", default_value_t = 10)]
    max_scanners: u32,
    /// `process` backend: the scanner program (default: `trawl-scanner` beside this binary).
    #[arg(long, env = "TRAWL_SCANNER_PROGRAM", value_name = "PATH")]
    scanner_program: Option<PathBuf>,
    /// `process` backend: extra arguments after `worker --id <id>-scanner-{index}`
    /// (repeatable, or space-separated in the variable; `{index}` is replaced).
    #[arg(
        long = "scanner-arg",
        env = "TRAWL_SCANNER_ARGS",
        value_name = "ARG",
        allow_hyphen_values = true,
        value_delimiter = ' '
    )]
    scanner_args: Vec<String>,
    /// `kubernetes` backend: namespace of the scanner Deployment (default: the controller's own).
    #[arg(long, env = "TRAWL_K8S_NAMESPACE")]
    k8s_namespace: Option<String>,
    /// `kubernetes` backend: name of the scanner Deployment.
    #[arg(long, env = "TRAWL_K8S_DEPLOYMENT", default_value = "trawl-scanner")]
    k8s_deployment: String,
    /// `process` backend: the NATS URL the scanners use (their own user); default: --nats.
    #[arg(long, env = "TRAWL_SCANNER_NATS_URL", hide_env_values = true, value_name = "URL")]
    scanner_nats: Option<String>,
    /// `process` backend: where each scanner's output goes (`scanner-<index>.log`).
    #[arg(long, env = "TRAWL_SCANNER_LOG_DIR", value_name = "DIR", default_value = ".")]
    scanner_log_dir: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAWL_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(10);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let client = trawl_dbdist::connect(&cli.nats, cli.nats_creds.as_deref(), "trawl-controller").await?;
    let js = async_nats::jetstream::new(client.clone());
    let replicas = Some(usize::from(cli.stream_replicas));
    trawl_protocol::definitions::ensure_all_with_replicas(&js, replicas)
        .await
        .with_context(|| format!("creating the JetStream objects from nats/ with {} replicas", cli.stream_replicas))?;
    let storage = Storage::open(&js).await?;
    let metrics = ControllerMetrics::new();
    let controller = Controller::new(js.clone(), storage.clone(), metrics.tasks_published.clone()).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let ingester = ResultIngester::new(&js, storage.clone(), metrics.clone()).await?;
    let ingesting = tokio::spawn(ingester.run(stop_rx.clone()));
    let reaping = tokio::spawn(Reaper::new(client.clone(), metrics.tasks_reaped.clone()).run(stop_rx.clone()));
    let rematcher = Rematcher::new(&js, storage.clone()).await?;
    tokio::spawn(follow_database(client.clone(), rematcher, metrics.clone(), stop_rx.clone()));

    let defaults = AutoscaleSettings {
        strategy: cli.autoscale_strategy,
        min_scanners: cli.min_scanners,
        max_scanners: cli.max_scanners,
        ..Default::default()
    };
    defaults.validate().context("--autoscale-strategy/--min-scanners/--max-scanners")?;
    let settings = SettingsStore::open(&js, defaults).await?;
    let id = cli.id.clone().unwrap_or_else(default_id);
    let backend = scale_backend(&cli).await?;
    let autoscale = Arc::new(AutoscaleMetrics::default());
    let autoscaling = Autoscaling::new(
        &js,
        &id,
        settings.clone(),
        backend.clone(),
        controller.clone(),
        autoscale.clone(),
        metrics.scaling_events.clone(),
    )
    .await?;
    let electing = tokio::spawn(autoscaling.run(stop_rx.clone()));
    tokio::spawn(schedule(controller.clone(), autoscale.clone(), stop_rx.clone()));

    let state = ApiState {
        controller,
        token: cli.api_token.filter(|t| !t.is_empty()).map(Arc::from),
        client: client.clone(),
        metrics,
        settings,
        status: PublishedStatus::open(&js).await?,
        autoscale,
    };
    if state.token.is_none() {
        tracing::warn!("TRAWL_API_TOKEN is not set: the API is read-only");
    }
    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("listening on {}", cli.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(api = %format!("http://{addr}/api/v1"), metrics = %format!("http://{addr}/metrics"), nats = %trawl_dbdist::redact_url(&cli.nats), "controller started");
    let mut stop = stop_rx.clone();
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = stop.changed() => {}
            }
        })
        .await
        .context("serving the API")?;
    let _ = stop_tx.send(true);
    // With NATS gone, draining the connection would wait for ever: bound the goodbye.
    // Releasing the lease first lets another replica lead within seconds.
    let _ = tokio::time::timeout(Duration::from_secs(5), electing).await;
    // Local scanners finish or hand back their tasks (the worker's own drain
    // bound applies); a Deployment's pods stay.
    if let Some(backend) = &backend {
        backend.shutdown(Duration::from_secs(20)).await;
    }
    let finish = async {
        let _ = ingesting.await;
        let _ = reaping.await;
        let _ = client.drain().await;
    };
    if tokio::time::timeout(Duration::from_secs(5), finish).await.is_err() {
        tracing::warn!("NATS did not answer while stopping; exiting anyway (unacked results are redelivered)");
    }
    tracing::info!("controller stopped");
    Ok(())
}

/// Follows the database the updater publishes and re-matches stored
/// inventories against each new version.
async fn follow_database(
    client: async_nats::Client,
    rematcher: Rematcher,
    metrics: ControllerMetrics,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let follower = trawl_dbdist::DbFollower::start(client, None, trawl_dbdist::FollowerConfig::default());
    let mut events = follower.events();
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = stop.changed() => return,
        };
        match event {
            Ok(trawl_dbdist::FollowerEvent::Loaded { version }) => {
                tracing::info!(version, "new vulnerability database");
                if let Some(db) = follower.current() {
                    let header = db.header();
                    metrics.vulndb_version.set(i64::try_from(header.version).unwrap_or(i64::MAX));
                    if let Ok(built) = chrono::DateTime::parse_from_rfc3339(&header.built_at) {
                        metrics.vulndb_built.set(built.timestamp());
                    }
                    let _ = rematcher.on_new_database(db).await;
                }
            }
            Ok(trawl_dbdist::FollowerEvent::Rejected { version, reason }) => {
                tracing::warn!(version, "announced database refused: {reason}");
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Crawls registries with a periodic schedule when they are due — on the
/// lead controller only, so replicas do not crawl the same registry at once.
async fn schedule(
    controller: Controller,
    autoscale: Arc<AutoscaleMetrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if !autoscale.leader.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        let due: Vec<(String, u64)> = controller.storage().read(|m| {
            m.registries
                .values()
                .filter_map(|c| match c.schedule {
                    Schedule::Periodic { interval_seconds } => Some((c.name.clone(), interval_seconds)),
                    Schedule::Manual => None,
                })
                .collect()
        });
        for (name, interval) in due {
            let last = controller.last_crawl(&name).await;
            let elapsed = last
                .and_then(|l| chrono::DateTime::parse_from_rfc3339(&l.started_at).ok())
                .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds().max(0) as u64);
            if elapsed.is_none_or(|e| e >= interval) {
                if let Err(e) = controller.sweep(&name).await {
                    tracing::warn!(registry = %name, "scheduled crawl failed: {e}");
                }
            }
        }
    }
}

/// Host name and process id: unique per replica, readable in the API.
fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "controller".into());
    format!("{host}-{}", std::process::id())
}

/// The scale backend `--scale-backend` names.
async fn scale_backend(cli: &Cli) -> Result<Option<Arc<dyn ScaleBackend>>> {
    match cli.scale_backend.as_str() {
        "process" => {
            let program = match &cli.scanner_program {
                Some(p) => p.clone(),
                None => std::env::current_exe()
                    .context("finding this binary's directory for trawl-scanner (or pass --scanner-program)")?
                    .with_file_name("trawl-scanner"),
            };
            // The replica's id in the scanner ids: after a failover the new
            // leader's scanners never share an id with the old one's draining ones.
            let id = cli.id.clone().unwrap_or_else(default_id);
            let mut args: Vec<String> = vec!["worker".into(), "--id".into(), format!("{id}-scanner-{{index}}")];
            args.extend(cli.scanner_args.iter().filter(|a| !a.is_empty()).cloned());
            let nats = cli.scanner_nats.clone().unwrap_or_else(|| cli.nats.clone());
            std::fs::create_dir_all(&cli.scanner_log_dir)
                .with_context(|| format!("creating --scanner-log-dir {}", cli.scanner_log_dir.display()))?;
            tracing::info!(program = %program.display(), "scale backend: local scanner processes");
            let mut command = ProcessCommand::new(program, cli.scanner_log_dir.clone());
            command.args = args;
            // The URL travels in the environment, not the command line `ps` shows.
            command.env = vec![("NATS_URL".into(), nats)];
            // The controller's own secrets stay with it.
            command.env_remove = ["TRAWL_API_TOKEN", "NATS_CREDS", "TRAWL_SCANNER_NATS_URL"].map(String::from).to_vec();
            Ok(Some(Arc::new(ProcessScaler::new(command))))
        }
        "kubernetes" => {
            let scaler = KubernetesScaler::in_cluster_or_kubeconfig(cli.k8s_namespace.as_deref(), &cli.k8s_deployment)
                .await
                .context("connecting to the Kubernetes API for --scale-backend kubernetes")?;
            tracing::info!(
                namespace = scaler.namespace(),
                deployment = scaler.deployment(),
                "scale backend: the scanner Deployment's scale subresource"
            );
            Ok(Some(Arc::new(scaler)))
        }
        _ => Ok(None),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
