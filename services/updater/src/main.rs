//! `trawl-updater`: compile OSV advisories into Trawl's vulnerability database
//! and publish it to scanners through NATS JetStream.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use trawl_dbdist::Announcement;
use trawl_updater::distribute::{self, OnceOutcome};
use trawl_vulndb::Database;

/// Trawl vulnerability database updater.
///
/// Compiles OSV advisories (the OSV bucket's `<Ecosystem>/all.zip` archives,
/// directories of OSV JSON, single files; local paths or http(s) URLs) into
/// one database file that `trawl-scanner scan --db` reads, and publishes it
/// to scanners through NATS JetStream (`publish`, `once`, `run`).
#[derive(Parser, Debug)]
#[command(name = "trawl-updater", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compile advisories into a database file.
    Build {
        /// Advisory source (repeatable): an OSV all.zip, a directory of OSV JSON, a JSON file, or an http(s) URL of one.
        #[arg(long = "source", short, required = true, value_name = "PATH|URL")]
        sources: Vec<String>,
        /// Where to write the database.
        #[arg(long, short, default_value = "trawl.db")]
        out: PathBuf,
    },
    /// Publish a database to scanners: a built file (--db), or build from sources first.
    Publish {
        #[command(flatten)]
        nats: NatsArgs,
        /// Database file to publish (from `trawl-updater build`).
        #[arg(long, value_name = "FILE", conflicts_with = "sources", required_unless_present = "sources")]
        db: Option<PathBuf>,
        /// Advisory source to build from (repeatable), as for `build`.
        #[arg(long = "source", short, value_name = "PATH|URL")]
        sources: Vec<String>,
        /// Publish even if the version is not newer than the announced one (scanners still only load newer ones).
        #[arg(long)]
        force: bool,
    },
    /// Build from sources and publish, unless the sources are unchanged since the announced database (for a nightly job).
    Once {
        #[command(flatten)]
        nats: NatsArgs,
        /// Advisory source (repeatable), as for `build`.
        #[arg(long = "source", short, required = true, value_name = "PATH|URL")]
        sources: Vec<String>,
    },
    /// Run `once` every --interval until SIGTERM or Ctrl-C.
    Run {
        #[command(flatten)]
        nats: NatsArgs,
        /// Advisory source (repeatable), as for `build`.
        #[arg(long = "source", short, required = true, value_name = "PATH|URL")]
        sources: Vec<String>,
        /// Time between cycles: e.g. 6h, 30m, 1h30m, 90s.
        #[arg(long, default_value = "6h", value_parser = distribute::parse_interval)]
        interval: Duration,
    },
    /// Show a database file's header: version, build time, sources and counts.
    Info {
        /// The database file.
        db: PathBuf,
        /// Print the header as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where NATS is and how to authenticate.
#[derive(Args, Debug)]
struct NatsArgs {
    /// NATS server URL(s), comma-separated; may carry user:password@ or token@.
    #[arg(long, env = "NATS_URL", hide_env_values = true, value_name = "URL")]
    nats: String,
    /// NATS credentials file (JWT and NKey seed).
    #[arg(long, env = "NATS_CREDS", hide_env_values = true, value_name = "FILE")]
    nats_creds: Option<PathBuf>,
}

impl NatsArgs {
    async fn connect(&self) -> Result<async_nats::Client> {
        Ok(trawl_dbdist::connect(&self.nats, self.nats_creds.as_deref(), "trawl-updater").await?)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TRAWL_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(10);
        }
    };
    let result = runtime.block_on(run(cli));
    // A build abandoned on SIGTERM may still hold a blocking thread: do not wait for it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn print_published(a: &Announcement) {
    println!("published version {} as {} ({} bytes, sha256 {})", a.version, a.object, a.size, a.sha256);
}

fn print_outcome(outcome: &OnceOutcome) {
    match outcome {
        OnceOutcome::Published(a) => print_published(a),
        OnceOutcome::Unchanged(a) => {
            println!("unchanged: sources match the announced version {} ({}); nothing published", a.version, a.object)
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The `run` loop: a cycle, then the interval, until a signal. A failed cycle
/// is retried sooner (after at most a minute) so that a brief NATS or source
/// outage does not cost a whole interval; a signal abandons a cycle at once,
/// which is safe because the announcement is written last, in one step.
async fn run_loop(nats: &NatsArgs, sources: &[String], interval: Duration) -> Result<()> {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut client: Option<async_nats::Client> = None;
    eprintln!("running every {}s against {}", interval.as_secs(), trawl_dbdist::redact_url(&nats.nats));
    loop {
        let cycle = async {
            let c = match &client {
                Some(c) => c.clone(),
                None => {
                    let c = nats.connect().await?;
                    client = Some(c.clone());
                    c
                }
            };
            distribute::once(c, sources).await
        };
        let wait = tokio::select! {
            result = cycle => match result {
                Ok(outcome) => {
                    print_outcome(&outcome);
                    interval
                }
                Err(e) => {
                    let retry = interval.min(Duration::from_secs(60));
                    eprintln!("error: {e:#}; retrying in {}s", retry.as_secs());
                    retry
                }
            },
            _ = &mut shutdown => break,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut shutdown => break,
        }
    }
    eprintln!("shutting down");
    if let Some(client) = client {
        // Nothing is pending after a cycle (publishes wait for acks); flush is cheap insurance.
        let _ = client.flush().await;
    }
    Ok(())
}

async fn read_db_file(path: &Path) -> Result<Vec<u8>> {
    tokio::fs::read(path).await.with_context(|| format!("reading {}", path.display()))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build { sources, out } => {
            let started = std::time::Instant::now();
            let (db, ingested) = trawl_updater::sources::build_database(&sources).await?;
            db.write(&out).with_context(|| format!("writing {}", out.display()))?;
            let c = &db.header().counts;
            eprintln!(
                "wrote {}: version {}, {} advisories for {} packages in {} ecosystems ({} withdrawn, {} malformed skipped) in {:.2}s",
                out.display(),
                db.header().version,
                c.advisories,
                c.packages,
                db.header().ecosystems.len(),
                c.withdrawn,
                c.skipped,
                started.elapsed().as_secs_f64()
            );
            for s in ingested.skipped.iter().take(20) {
                eprintln!("  skipped {}: {}", s.location, s.reason);
            }
            if ingested.skipped.len() > 20 {
                eprintln!("  … and {} more skipped", ingested.skipped.len() - 20);
            }
            Ok(())
        }
        Command::Publish { nats, db, sources, force } => {
            let client = nats.connect().await?;
            let bytes = match db {
                Some(path) => read_db_file(&path).await?,
                None => {
                    let (db, _) = trawl_updater::sources::build_database(&sources).await?;
                    tokio::task::spawn_blocking(move || db.to_bytes()).await.context("serialise task failed")??
                }
            };
            let announcement = distribute::publish_bytes(client, &bytes, force).await?;
            print_published(&announcement);
            Ok(())
        }
        Command::Once { nats, sources } => {
            let client = nats.connect().await?;
            let outcome = distribute::once(client, &sources).await?;
            print_outcome(&outcome);
            Ok(())
        }
        Command::Run { nats, sources, interval } => run_loop(&nats, &sources, interval).await,
        Command::Info { db, json } => {
            let header = Database::read_header(&db)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "format": header.format,
                        "version": header.version,
                        "builtAt": header.built_at,
                        "sources": header.sources.iter().map(|s| serde_json::json!({"name": s.name, "sha256": s.sha256, "records": s.records})).collect::<Vec<_>>(),
                        "counts": {"advisories": header.counts.advisories, "packages": header.counts.packages, "affected": header.counts.affected, "withdrawn": header.counts.withdrawn, "skipped": header.counts.skipped},
                        "ecosystems": header.ecosystems,
                    }))?
                );
            } else {
                println!("version:    {}", header.version);
                println!("built at:   {}", header.built_at);
                println!("format:     {}", header.format);
                println!(
                    "counts:     {} advisories, {} packages, {} affected entries, {} withdrawn, {} skipped",
                    header.counts.advisories,
                    header.counts.packages,
                    header.counts.affected,
                    header.counts.withdrawn,
                    header.counts.skipped
                );
                let mut ecosystems = header.ecosystems.clone();
                ecosystems.sort();
                println!("ecosystems: {}", ecosystems.join(", "));
                for s in &header.sources {
                    println!("source:     {} ({} records, sha256 {})", s.name, s.records, s.sha256);
                }
            }
            Ok(())
        }
    }
}
