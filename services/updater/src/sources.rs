//! Advisory sources as users name them: local paths (`all.zip`, directories,
//! JSON files) and http(s) URLs, which are downloaded to a temporary file first.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use trawl_vulndb::{Database, Ingested};

/// Largest download accepted for one source (OSV's biggest all.zip is a few hundred MiB).
const MAX_DOWNLOAD: u64 = 4 << 30;

/// Compiles a database from the given sources (paths or URLs).
pub async fn build_database(sources: &[String]) -> Result<(Database, Ingested)> {
    if sources.is_empty() {
        bail!("no advisory source given: pass --source PATH|URL (an OSV all.zip, a directory of OSV JSON, or a JSON file)");
    }
    let mut ingested = Ingested::default();
    let mut downloads = Vec::new();
    for source in sources {
        let path = if source.starts_with("http://") || source.starts_with("https://") {
            let file = download(source).await?;
            let path = file.path().to_path_buf();
            downloads.push(file);
            path
        } else {
            PathBuf::from(source)
        };
        let name = source.clone();
        let ingest_path = path.clone();
        // Parsing is CPU-bound: keep it off the async threads.
        let mut part = tokio::task::spawn_blocking(move || {
            let mut part = Ingested::default();
            part.add_path(&ingest_path).map(|_| part)
        })
        .await
        .context("ingest task failed")?
        .with_context(|| format!("reading advisory source {name}"))?;
        if let Some(info) = part.sources.last_mut() {
            info.name = source.clone();
        }
        ingested.records.append(&mut part.records);
        ingested.sources.append(&mut part.sources);
        ingested.skipped.append(&mut part.skipped);
    }
    drop(downloads);
    let records = std::mem::take(&mut ingested.records);
    let sources = ingested.sources.clone();
    let skipped = ingested.skipped.len() as u64;
    let db = tokio::task::spawn_blocking(move || Database::build(records, sources, skipped))
        .await
        .context("build task failed")?;
    Ok((db, ingested))
}

/// Downloads `url` into a temporary file (the name keeps a `.zip` extension when the URL has one).
async fn download(url: &str) -> Result<tempfile::NamedTempFile> {
    let suffix = if url.ends_with(".zip") { ".zip" } else { ".json" };
    let mut file = tempfile::Builder::new().prefix("trawl-osv-").suffix(suffix).tempfile()?;
    let mut response = reqwest::get(url).await.with_context(|| format!("downloading {url}"))?;
    if !response.status().is_success() {
        bail!("downloading {url}: HTTP {}", response.status());
    }
    let mut written: u64 = 0;
    while let Some(chunk) = response.chunk().await.with_context(|| format!("downloading {url}"))? {
        written += chunk.len() as u64;
        if written > MAX_DOWNLOAD {
            bail!("downloading {url}: larger than {MAX_DOWNLOAD} bytes");
        }
        std::io::Write::write_all(&mut file, &chunk)?;
    }
    Ok(file)
}
