//! Generator for large images (benchmarks): layers streamed to disk, never held in memory.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::image::{BuiltImage, ImageBuilder, MediaTypes};
use crate::layer::{Compression, LayerBuilder};

/// Builds an image of `layers` layers of about `layer_size` uncompressed bytes each, written to
/// files as they are generated (a 1 GiB image needs a few MiB of memory).
///
/// Each layer holds `large/layer-NNNN/random.bin` (pseudo-random, incompressible) and
/// `large/layer-NNNN/text.txt` (repetitive text, compresses well) split by
/// [`LargeImageBuilder::random_fraction`], plus a small `etc/layer-NNNN` marker. Content is a
/// pure function of the seed and layer index, so digests are reproducible.
///
/// Cost on the 2-core CI machine, release build, 1 GiB: ~4 s with zstd, ~13 s with gzip
/// (level 1); pushing it to a local [`crate::Registry`] takes ~4 s. Debug builds are far
/// slower (unoptimised compressors), so generate benchmark-size images from release code.
///
/// Blobs are [`crate::BlobData::File`]s; unless [`LargeImageBuilder::dir`] is given they live in
/// a temp dir removed when the last clone of the image's blobs is dropped.
pub struct LargeImageBuilder {
    layers: usize,
    layer_size: u64,
    compression: Compression,
    level: i32,
    random_fraction: f64,
    seed: u64,
    dir: Option<PathBuf>,
    media_types: MediaTypes,
}

impl LargeImageBuilder {
    /// `layers` layers of `layer_size` bytes of file content each; gzip at level 1 by default.
    pub fn new(layers: usize, layer_size: u64) -> Self {
        Self {
            layers,
            layer_size,
            compression: Compression::Gzip,
            level: 1,
            random_fraction: 0.5,
            seed: 0x7472_6177_6c21,
            dir: None,
            media_types: MediaTypes::Oci,
        }
    }

    /// Layer compression (at level 1, the fastest, unless [`LargeImageBuilder::level`] is set).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Compression level (see [`LayerBuilder::level`]).
    pub fn level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// Share of each layer that is incompressible (0.0–1.0, default 0.5).
    pub fn random_fraction(mut self, fraction: f64) -> Self {
        self.random_fraction = fraction.clamp(0.0, 1.0);
        self
    }

    /// Seed for the generated content (different seeds give different digests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Writes the layer files into `dir` (kept after the image is dropped) instead of a temp dir.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// OCI (default) or Docker media types.
    pub fn media_types(mut self, media_types: MediaTypes) -> Self {
        self.media_types = media_types;
        self
    }

    /// Generates the layers and assembles the image.
    pub fn build(self) -> Result<BuiltImage> {
        let (dir, keep) = match &self.dir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new().prefix("trawl-large-image-").tempdir()?;
                (t.path().to_path_buf(), Some(Arc::new(t)))
            }
        };
        let level = self.level;
        let mut image = ImageBuilder::new().media_types(self.media_types);
        for i in 0..self.layers {
            let random = (self.layer_size as f64 * self.random_fraction) as u64;
            let text = self.layer_size - random;
            let seed = self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let layer = LayerBuilder::new()
                .compression(self.compression)
                .level(level)
                .dir("large/")
                .dir(format!("large/layer-{i:04}/"))
                .file_from_reader(format!("large/layer-{i:04}/random.bin"), random, 0o644, RandomReader::new(seed))
                .file_from_reader(format!("large/layer-{i:04}/text.txt"), text, 0o644, TextReader::new(i))
                .file(format!("etc/layer-{i:04}"), format!("layer {i} seed {seed:#x}\n"), 0o644);
            let path = dir.join(format!("layer-{i:04}.tar{}", extension(self.compression)));
            let mut blob = layer.build_to_file(&path)?;
            if let Some(k) = &keep {
                blob = blob.keep_alive(k.clone());
            }
            image = image.blob_layer(blob, Some(&format!("generated layer {i} ({} bytes)", self.layer_size)));
        }
        image.build()
    }
}

fn extension(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => ".gz",
        Compression::Zstd => ".zst",
        Compression::None => "",
    }
}

/// Endless xorshift64* bytes: fast and, for compressors, incompressible
/// (`.take(n)` for a payload of `n` bytes that never sits in memory).
pub struct RandomReader {
    state: u64,
}

impl RandomReader {
    /// The stream for `seed`: the same bytes for the same seed.
    pub fn new(seed: u64) -> Self {
        Self { state: seed | 1 }
    }
}

impl Read for RandomReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            chunk.copy_from_slice(&self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let len = rest.len();
        rest.copy_from_slice(&self.state.to_le_bytes()[..len]);
        Ok(buf.len())
    }
}

/// Endless numbered lines of log-like text: compresses well but not trivially.
struct TextReader {
    layer: usize,
    line: u64,
    pending: Vec<u8>,
    pos: usize,
}

impl TextReader {
    fn new(layer: usize) -> Self {
        Self { layer, line: 0, pending: Vec::new(), pos: 0 }
    }
}

impl Read for TextReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.pending.len() {
            self.pending.clear();
            self.pos = 0;
            for _ in 0..64 {
                self.line += 1;
                let l = self.line;
                self.pending.extend_from_slice(
                    format!(
                        "layer {} line {l:>10}: package-{} version {}.{}.{} installed from repository main\n",
                        self.layer,
                        l % 997,
                        l % 7,
                        l % 13,
                        l % 101
                    )
                    .as_bytes(),
                );
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
