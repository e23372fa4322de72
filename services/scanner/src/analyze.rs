//! Image analysis: reference → manifest → layers → inventory.
//!
//! Each layer is downloaded, verified, decompressed and walked as one
//! stream; several layers run at once (bounded), and their inventories are
//! stacked in order afterwards. Nothing is unpacked to disk, so memory stays
//! flat however large the image is: per layer in flight it is one channel of
//! chunks, one decompressor window and what the catalogers keep.
//!
//! An analyzer may be given a [`LayerCache`] (the worker's is the
//! cluster-wide [`crate::layer_cache::KvLayerCache`]). Images share most of
//! their bytes through base layers, and a layer's inventory depends only on
//! its bytes and the cataloger code, so a layer any scanner has walked is
//! never downloaded again: on a hit its blob is not even opened. Stacking
//! runs on the same per-layer inventories either way, so results are the same
//! with and without a cache.

use crate::layer_cache::LayerCacheError;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use trawl_catalog::{
    CatalogContext, CatalogerSet, DirWalker, FileIssue, FileOutcome, Inventory, LayerInventory, LayerStack,
    LayerWalker, WalkError,
};
use trawl_image::blob::BlobProgress;
use trawl_image::blob::{decompress, image_error_from_io};
use trawl_image::{
    BlobPump, ImageError, ImageRef, ImageSource, LayerDescriptor, LayerLimits, ResolvedImage, SourceOptions,
};
use trawl_report::{ImageIdentity, LayerInfo};

/// Why an analysis failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// Getting or verifying the image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A layer's archive is unsafe or unreadable.
    #[error("layer {layer}: {source}")]
    Layer {
        /// Layer digest.
        layer: String,
        /// What went wrong.
        #[source]
        source: WalkError,
    },
    /// Local I/O (scratch space, reading a directory).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl AnalyzeError {
    /// The underlying image error, if this failure is one.
    pub fn image_error(&self) -> Option<&ImageError> {
        match self {
            AnalyzeError::Image(e) => Some(e),
            AnalyzeError::Layer { source: WalkError::Read(io), .. } => image_error_from_io(io),
            _ => None,
        }
    }
}

/// Settings for analysis.
#[derive(Debug, Clone)]
pub struct AnalyzerOptions {
    /// How images are fetched.
    pub source: SourceOptions,
    /// Decompression safety limits per layer.
    pub limits: LayerLimits,
    /// Layers processed at once.
    pub parallel_layers: usize,
    /// Largest file a cataloger may copy to scratch space (rpm databases).
    pub scratch_limit: u64,
}

impl Default for AnalyzerOptions {
    fn default() -> Self {
        AnalyzerOptions {
            source: SourceOptions::default(),
            limits: LayerLimits::default(),
            parallel_layers: 2,
            scratch_limit: 1 << 30,
        }
    }
}

/// The result of analysing one image.
#[derive(Debug)]
pub struct ImageAnalysis {
    /// Identity of what was scanned.
    pub identity: ImageIdentity,
    /// The package inventory.
    pub inventory: Inventory,
    /// Compressed bytes downloaded or read (layers taken from the cache are not).
    pub bytes_read: u64,
    /// Layers whose inventory came from the layer cache instead of their blob.
    pub layer_cache_hits: u64,
    /// Layers looked up in the layer cache and not found there, so walked (0 without a cache).
    pub layer_cache_misses: u64,
}

/// A store of layer inventories keyed by layer digest, shared by analyses
/// (and, for the worker, by every scanner of the cluster).
///
/// It is an optimisation only: [`LayerCache::get`] answers `None` for
/// anything it cannot read, and the analyzer ignores a failed
/// [`LayerCache::put`], so a cache that breaks never fails a scan. An
/// implementation must only return an inventory produced by the same
/// cataloger code as the analyzer's, for exactly that layer digest.
pub trait LayerCache: Send + Sync {
    /// The cached inventory of the layer `layer_digest`, if there is a valid one.
    fn get<'a>(&'a self, layer_digest: &'a str) -> BoxFuture<'a, Option<LayerInventory>>;

    /// Stores the inventory of a layer whose walk fully succeeded.
    fn put<'a>(
        &'a self,
        layer_digest: &'a str,
        inventory: &'a LayerInventory,
    ) -> BoxFuture<'a, Result<(), LayerCacheError>>;

    /// Called after a miss, before the layer is pulled: when another scanner
    /// is walking the same layer right now, waits (bounded) for its
    /// inventory, so concurrent scans of images sharing a base layer pull it
    /// once; otherwise tells this scanner to walk it, holding whatever marks
    /// the walk as taken until the returned guard drops. The default never
    /// waits.
    fn claim<'a>(&'a self, _layer_digest: &'a str) -> BoxFuture<'a, Claim> {
        Box::pin(async { Claim::Walk(None) })
    }
}

/// What to do about a layer the cache did not hold ([`LayerCache::claim`]).
pub enum Claim {
    /// Walk it; the guard, if any, keeps the walk claimed until it drops.
    Walk(Option<ClaimGuard>),
    /// Another scanner walked it meanwhile: its inventory.
    Walked(LayerInventory),
}

/// Holds a [`LayerCache::claim`] on a layer: dropping it releases the claim
/// (after the inventory was put, or when the walk failed or was abandoned).
pub struct ClaimGuard {
    _release: Box<dyn Send + Sync>,
}

impl ClaimGuard {
    /// A guard that releases the claim when `release` is dropped.
    pub fn new(release: impl Send + Sync + 'static) -> ClaimGuard {
        ClaimGuard { _release: Box::new(release) }
    }
}

/// Whether a walked layer's inventory may be cached: only when every wanted
/// file was cataloged. A file that failed may have failed because of this
/// scanner (its scratch space, its limits) rather than the layer, and a
/// cached failure would be served to every other scanner for days.
pub fn cacheable(inventory: &LayerInventory) -> bool {
    !inventory.files.iter().any(|f| matches!(f.outcome, FileOutcome::Failed(_)))
}

/// One layer's contribution to an analysis.
struct LayerResult {
    inventory: LayerInventory,
    /// Compressed bytes read for it (0 on a cache hit).
    bytes: u64,
    cached: bool,
}

/// Hears about an analysis as it goes, e.g. to draw progress bars. Every
/// method has an empty default, so an observer implements only what it shows.
pub trait AnalysisObserver: Send + Sync {
    /// The image was resolved to a manifest; its layers are about to be read.
    fn resolved(&self, _image: &ResolvedImage) {}
    /// Layer `index` (bottom first) started downloading; `progress` counts its bytes.
    fn layer_started(&self, _index: usize, _layer: &LayerDescriptor, _progress: Arc<BlobProgress>) {}
    /// Layer `index` was read and walked (successfully or not).
    fn layer_finished(&self, _index: usize, _layer: &LayerDescriptor) {}
}

/// The observer used when nobody watches.
struct Unobserved;
impl AnalysisObserver for Unobserved {}

/// Turns images into inventories.
#[derive(Clone)]
pub struct Analyzer {
    catalogers: CatalogerSet,
    options: AnalyzerOptions,
    observer: Arc<dyn AnalysisObserver>,
    layer_cache: Option<Arc<dyn LayerCache>>,
}

impl Analyzer {
    /// An analyzer with the given catalogers and options.
    pub fn new(catalogers: CatalogerSet, options: AnalyzerOptions) -> Self {
        Analyzer { catalogers, options, observer: Arc::new(Unobserved), layer_cache: None }
    }

    /// The same analyzer, taking layer inventories from `cache` when it has
    /// them and putting the ones it walks there.
    pub fn with_layer_cache(mut self, cache: Arc<dyn LayerCache>) -> Self {
        self.layer_cache = Some(cache);
        self
    }

    /// The same analyzer, reporting its progress to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn AnalysisObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Analyses whatever `reference` names: an image or a directory.
    pub async fn analyze_reference(&self, reference: &str) -> Result<ImageAnalysis, AnalyzeError> {
        let parsed = ImageRef::parse(reference)?;
        if let ImageRef::Dir(path) = &parsed {
            let path = path.clone();
            let this = self.clone();
            let reference = reference.to_string();
            return tokio::task::spawn_blocking(move || this.analyze_dir(&reference, &path, &[]))
                .await
                .map_err(|e| AnalyzeError::Io(std::io::Error::other(e)))?;
        }
        let source = trawl_image::open_source(&parsed, self.options.source.clone())?;
        let mut analysis = self.analyze_image(source.as_ref()).await?;
        analysis.identity.source = source_kind(&parsed).into();
        Ok(analysis)
    }

    /// Analyses a resolved image source.
    pub async fn analyze_image(&self, source: &dyn ImageSource) -> Result<ImageAnalysis, AnalyzeError> {
        let image = source.resolve().await?;
        self.observer.resolved(&image);
        // Owned descriptors keep the futures free of higher-ranked borrows,
        // so an analysis can run inside a spawned task.
        let walked: Vec<Result<LayerResult, AnalyzeError>> = stream::iter(image.layers.clone())
            .enumerate()
            .map(|(index, layer)| async move {
                let result = self.layer_inventory(source, index, &layer).await;
                self.observer.layer_finished(index, &layer);
                result
            })
            .buffered(self.options.parallel_layers.max(1))
            .collect()
            .await;
        let mut stack = LayerStack::new();
        let (mut bytes_read, mut layer_cache_hits, mut layer_cache_misses) = (0, 0, 0);
        // Stacked bottom first whatever the source of each inventory, so the
        // result does not depend on which layers the cache held.
        for (layer, result) in image.layers.iter().zip(walked) {
            let layer_result = result?;
            bytes_read += layer_result.bytes;
            layer_cache_hits += u64::from(layer_result.cached);
            layer_cache_misses += u64::from(self.layer_cache.is_some() && !layer_result.cached);
            stack.push(Some(&layer.digest), &layer_result.inventory);
        }
        Ok(ImageAnalysis {
            identity: identity_of(&image),
            inventory: stack.finish(),
            bytes_read,
            layer_cache_hits,
            layer_cache_misses,
        })
    }

    /// One layer's inventory: from the cache when it has it, else walked
    /// (and then cached, when the walk fully succeeded).
    async fn layer_inventory(
        &self,
        source: &dyn ImageSource,
        index: usize,
        layer: &LayerDescriptor,
    ) -> Result<LayerResult, AnalyzeError> {
        let hit = |inventory| Ok(LayerResult { inventory, bytes: 0, cached: true });
        let Some(cache) = &self.layer_cache else {
            let (inventory, bytes) = self.walk_layer(source, index, layer).await?;
            return Ok(LayerResult { inventory, bytes, cached: false });
        };
        if let Some(inventory) = cache.get(&layer.digest).await {
            return hit(inventory);
        }
        // Held until the inventory is put (or the walk fails: `?` drops it too).
        let _claim = match cache.claim(&layer.digest).await {
            Claim::Walked(inventory) => return hit(inventory),
            Claim::Walk(guard) => guard,
        };
        let (inventory, bytes) = self.walk_layer(source, index, layer).await?;
        if cacheable(&inventory) {
            if let Err(e) = cache.put(&layer.digest, &inventory).await {
                tracing::debug!(layer = %layer.digest, "layer inventory not cached: {e}");
            }
        } else {
            tracing::debug!(layer = %layer.digest, "layer inventory not cached: a file in it could not be cataloged");
        }
        Ok(LayerResult { inventory, bytes, cached: false })
    }

    /// Downloads, verifies and walks one layer.
    async fn walk_layer(
        &self,
        source: &dyn ImageSource,
        index: usize,
        layer: &LayerDescriptor,
    ) -> Result<(LayerInventory, u64), AnalyzeError> {
        let stream = source.open_blob(layer).await?;
        let (pump, raw) = BlobPump::start_with(stream, layer, !source.verifies_digests());
        let progress = pump.progress.clone();
        self.observer.layer_started(index, layer, progress.clone());
        let catalogers = self.catalogers.clone();
        let limits = self.options.limits;
        let scratch_limit = self.options.scratch_limit;
        let digest = layer.digest.clone();
        let walked = tokio::task::spawn_blocking(move || -> Result<LayerInventory, AnalyzeError> {
            let (_, tar_stream) = decompress(raw, &digest, limits, progress)?;
            let ctx = CatalogContext::new(scratch_limit)?;
            LayerWalker::new(&catalogers, &ctx)
                .walk(tar_stream)
                .map_err(|source| AnalyzeError::Layer { layer: digest, source })
        })
        .await
        .map_err(|e| AnalyzeError::Io(std::io::Error::other(e)))?;
        // The blob's own verdict (digest, size) explains a failure better than
        // whatever the decompressor tripped on, so it takes precedence.
        let verdict = pump.finish().await;
        match (walked, verdict) {
            (Ok(inv), Ok(bytes)) => Ok((inv, bytes)),
            (_, Err(blob_err @ (ImageError::DigestMismatch { .. } | ImageError::SizeMismatch { .. }))) => {
                Err(blob_err.into())
            }
            (Err(walk_err), _) => Err(lift_image_error(walk_err)),
            (Ok(_), Err(blob_err)) => Err(blob_err.into()),
        }
    }

    /// Analyses a root filesystem on disk. `skip` lists absolute paths not to descend into.
    pub fn analyze_dir(&self, reference: &str, root: &Path, skip: &[PathBuf]) -> Result<ImageAnalysis, AnalyzeError> {
        let meta = std::fs::metadata(root).map_err(|e| ImageError::io(root.display().to_string(), e))?;
        if !meta.is_dir() {
            return Err(ImageError::Unsupported(format!("{} is not a directory", root.display())).into());
        }
        let ctx = CatalogContext::new(self.options.scratch_limit)?;
        let skip: Vec<&Path> = skip.iter().map(PathBuf::as_path).collect();
        let (layer, unreadable) = DirWalker::new(&self.catalogers, &ctx).walk(root, &skip);
        let mut stack = LayerStack::new();
        stack.push(None, &layer);
        let mut inventory = stack.finish();
        inventory.issues.extend(unreadable.into_iter().map(|(path, message)| FileIssue {
            path,
            layer: None,
            cataloger: "walker".into(),
            message: format!("not readable: {message}"),
        }));
        Ok(ImageAnalysis {
            identity: ImageIdentity { reference: reference.to_string(), source: "dir".into(), ..Default::default() },
            inventory,
            bytes_read: layer.bytes,
            layer_cache_hits: 0,
            layer_cache_misses: 0,
        })
    }
}

/// Surfaces an image error (limit, corruption) carried inside a walk error.
fn lift_image_error(e: AnalyzeError) -> AnalyzeError {
    if let AnalyzeError::Layer { source: WalkError::Read(io), layer } = e {
        return match io.into_inner().map(|inner| inner.downcast::<ImageError>()) {
            Some(Ok(image_err)) => AnalyzeError::Image(*image_err),
            Some(Err(other)) => AnalyzeError::Image(ImageError::CorruptLayer { layer, reason: other.to_string() }),
            None => AnalyzeError::Image(ImageError::CorruptLayer { layer, reason: "unreadable archive".into() }),
        };
    }
    e
}

fn source_kind(r: &ImageRef) -> &'static str {
    match r {
        ImageRef::Registry(_) => "registry",
        ImageRef::OciLayout { .. } => "oci-layout",
        ImageRef::OciArchive { .. } => "oci-archive",
        ImageRef::DockerArchive { .. } => "docker-archive",
        ImageRef::DockerDaemon(_) => "docker-daemon",
        ImageRef::Dir(_) => "dir",
    }
}

fn identity_of(image: &ResolvedImage) -> ImageIdentity {
    ImageIdentity {
        reference: image.reference.clone(),
        source: String::new(),
        manifest_digest: Some(image.manifest_digest.clone()),
        index_digest: image.index_digest.clone(),
        config_digest: Some(image.config_digest.clone()),
        media_type: Some(image.media_type.clone()),
        platform: (!image.config.os.is_empty()).then(|| format!("{}/{}", image.config.os, image.config.architecture)),
        created: image.config.created.clone(),
        layers: image
            .layers
            .iter()
            .map(|l| LayerInfo {
                digest: l.digest.clone(),
                diff_id: l.diff_id.clone(),
                size: l.size,
                created_by: l.created_by.clone(),
            })
            .collect(),
        labels: image.config.config.labels.clone(),
    }
}
