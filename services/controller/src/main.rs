//! `trawl-controller`: crawls registries, queues scan tasks on JetStream,
//! stores results for admission control and serves the REST API.

use anyhow::{Context, Result};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use trawl_controller::api::{self, ApiState};
use trawl_controller::controller::Controller;
use trawl_controller::ingest::{IngestCounters, ResultIngester};
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
    /// Address the API listens on.
    #[arg(long, env = "TRAWL_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bearer token required by the API's mutating routes (unset: they are refused).
    #[arg(long, env = "TRAWL_API_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    api_token: Option<String>,
    /// Log lines as JSON.
    #[arg(long)]
    log_json: bool,
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
    trawl_protocol::definitions::ensure_all(&js).await.context("creating the JetStream objects from nats/")?;
    let storage = Storage::open(&js).await?;
    let controller = Controller::new(js.clone(), storage.clone()).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let ingest = Arc::new(IngestCounters::default());
    let ingester = ResultIngester::new(&js, storage.clone(), ingest.clone()).await?;
    let ingesting = tokio::spawn(ingester.run(stop_rx.clone()));
    let reaped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reaping = tokio::spawn(Reaper::new(client.clone(), reaped.clone()).run(stop_rx.clone()));
    tokio::spawn(schedule(controller.clone(), stop_rx.clone()));
    let rematcher = Rematcher::new(&js, storage.clone()).await?;
    tokio::spawn(follow_database(client.clone(), rematcher, stop_rx.clone()));

    let state = ApiState {
        controller,
        token: cli.api_token.filter(|t| !t.is_empty()).map(Arc::from),
        client: client.clone(),
        ingest,
        reaped,
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

/// Crawls registries with a periodic schedule when they are due.
async fn schedule(controller: Controller, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
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
