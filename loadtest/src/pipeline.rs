//! Trawl's layer pipeline run in-process on a blob file, whole or cut short
//! after a given stage, so its throughput can be compared with `gzip -dc` and
//! a shortfall traced to the stage that causes it.

use anyhow::{Context, Result};
use futures::StreamExt;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::io::ReaderStream;
use trawl_catalog::{CatalogContext, CatalogerSet, FileOutcome, LayerWalker};
use trawl_image::blob::decompress;
use trawl_image::{BlobPump, LayerDescriptor, LayerLimits};

/// Bytes per chunk read from the blob file: about what an HTTP body yields,
/// so the pump and its channel see the same traffic as in a registry pull.
const CHUNK: usize = 64 << 10;

/// How far down the pipeline a run goes; each stage includes the ones before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Read the blob through `BlobPump` (sha256 + size check) and discard it.
    Verify,
    /// … and gunzip it.
    Decompress,
    /// … and parse the tar with `LayerWalker`, with no catalogers.
    Walk,
    /// … with the default catalogers: the full layer pipeline.
    Catalog,
}

impl Stage {
    /// Every stage, shortest first.
    pub const ALL: [Stage; 4] = [Stage::Verify, Stage::Decompress, Stage::Walk, Stage::Catalog];

    /// A short human label.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Verify => "read + sha256 (BlobPump)",
            Stage::Decompress => "+ gunzip (decompress)",
            Stage::Walk => "+ tar walk, no catalogers",
            Stage::Catalog => "+ default catalogers (full pipeline)",
        }
    }
}

/// What one pipeline run did.
#[derive(Debug, Clone, Copy)]
pub struct PipelineRun {
    /// Time from opening the file to the pump's verdict.
    pub elapsed: Duration,
    /// Packages the catalogers found (0 before [`Stage::Catalog`]).
    pub packages: usize,
    /// Files handed to a cataloger.
    pub files_cataloged: usize,
}

/// Runs the layer pipeline on `blob` (its `digest` and `size` as a manifest
/// would give them) up to `stage`, exactly as the scanner wires it: async
/// pump, blocking decompress + walk, then the pump's digest verdict.
pub async fn run_layer(
    blob: &Path,
    digest: &str,
    size: u64,
    stage: Stage,
    catalogers: &CatalogerSet,
) -> Result<PipelineRun> {
    let descriptor = LayerDescriptor {
        digest: digest.to_string(),
        size,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        diff_id: None,
        created_by: None,
    };
    let catalogers = match stage {
        Stage::Catalog => catalogers.clone(),
        _ => CatalogerSet::new(Vec::new()),
    };
    let start = Instant::now();
    let file = tokio::fs::File::open(blob).await.with_context(|| format!("open {}", blob.display()))?;
    let (pump, raw) = BlobPump::start(ReaderStream::with_capacity(file, CHUNK).boxed(), &descriptor);
    let progress = pump.progress.clone();
    let layer = descriptor.digest.clone();
    let walked = tokio::task::spawn_blocking(move || -> Result<(usize, usize)> {
        let mut raw = raw;
        if stage == Stage::Verify {
            io::copy(&mut raw, &mut io::sink())?;
            return Ok((0, 0));
        }
        let (_, mut tar) = decompress(raw, &layer, LayerLimits::default(), progress)?;
        if stage == Stage::Decompress {
            io::copy(&mut tar, &mut io::sink())?;
            return Ok((0, 0));
        }
        let ctx = CatalogContext::new(1 << 30)?;
        let inventory = LayerWalker::new(&catalogers, &ctx).walk(&mut tar as &mut dyn Read)?;
        let packages = inventory
            .files
            .iter()
            .map(|f| match &f.outcome {
                FileOutcome::Found { packages, .. } => packages.len(),
                FileOutcome::Failed(_) => 0,
            })
            .sum();
        Ok((packages, inventory.files.len()))
    })
    .await
    .context("pipeline thread panicked")?;
    let verdict = pump.finish().await;
    let elapsed = start.elapsed();
    let (packages, files_cataloged) = walked?;
    verdict.context("blob verification")?;
    Ok(PipelineRun { elapsed, packages, files_cataloged })
}
