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
    // Download first (I/O), then parse every source at once (CPU).
    let mut downloads = Vec::new();
    let mut paths = Vec::with_capacity(sources.len());
    for source in sources {
        if source.starts_with("http://") || source.starts_with("https://") {
            let file = download(source).await?;
            paths.push(file.path().to_path_buf());
            downloads.push(file);
        } else {
            paths.push(PathBuf::from(source));
        }
    }
    let mut ingested = tokio::task::spawn_blocking(move || Ingested::from_paths(&paths))
        .await
        .context("ingest task failed")?
        .context("reading advisory sources")?;
    // Report sources as the user named them (not the temporary download paths).
    for (info, name) in ingested.sources.iter_mut().zip(sources) {
        info.name = name.clone();
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
