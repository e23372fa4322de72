//! Turning a layer blob into a trustworthy, bounded, uncompressed byte stream.
//!
//! The network side runs as an async task ([`BlobPump`]) that hashes every
//! byte, checks the size against the descriptor and forwards chunks through a
//! small bounded channel; the parsing side is a blocking [`Read`] pipeline
//! (channel → decompressor → [`BombGuard`]) that the tar walker consumes on a
//! blocking thread. The channel's bound is what keeps memory flat: a slow
//! walker applies back-pressure to the download instead of buffering it.
//!
//! A blob is only trusted once the pump reports its digest matched, which
//! happens after its last byte — callers must await [`BlobPump::finish`]
//! before using what the walker produced.

use crate::error::ImageError;
use crate::source::{BlobStream, LayerDescriptor};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Chunks buffered between download and decompression. Chunks are copied
/// out of the HTTP client's read buffers (see [`pump`]), so this bounds the
/// queued bytes to a few chunks of at most a few dozen KiB each.
const CHANNEL_CHUNKS: usize = 4;

/// Safety limits for decompressing one layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerLimits {
    /// Most uncompressed bytes one layer may expand to.
    pub max_uncompressed: u64,
    /// Most uncompressed bytes per compressed byte, once past `ratio_floor`.
    pub max_ratio: u64,
    /// Uncompressed size below which the ratio is not checked (small layers
    /// of zeros legitimately compress extremely well).
    pub ratio_floor: u64,
}

impl Default for LayerLimits {
    fn default() -> Self {
        LayerLimits { max_uncompressed: 32 << 30, max_ratio: 200, ratio_floor: 64 << 20 }
    }
}

/// Counters shared between the pump and the decompression side.
#[derive(Debug, Default)]
pub struct BlobProgress {
    /// Compressed bytes received so far.
    pub received: AtomicU64,
}

/// The async half: downloads, hashes and size-checks one blob.
pub struct BlobPump {
    handle: JoinHandle<Result<u64, ImageError>>,
    /// Live counters (bytes received), e.g. for progress bars.
    pub progress: Arc<BlobProgress>,
}

impl BlobPump {
    /// Starts pumping `stream` for `layer`; returns the pump and the blocking
    /// reader that receives the raw bytes. Must be called inside a Tokio runtime.
    pub fn start(stream: BlobStream, layer: &LayerDescriptor) -> (BlobPump, ChannelReader) {
        Self::start_with(stream, layer, true)
    }

    /// Like [`BlobPump::start`]; with `hash` false the digest is not computed
    /// here because the source already verifies it (the registry client does),
    /// so each byte is hashed once. Sizes are always checked.
    pub fn start_with(stream: BlobStream, layer: &LayerDescriptor, hash: bool) -> (BlobPump, ChannelReader) {
        let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
        let progress = Arc::new(BlobProgress::default());
        let layer = layer.clone();
        let counters = progress.clone();
        let handle = tokio::spawn(async move { pump(stream, layer, tx, counters, hash).await });
        (BlobPump { handle, progress: progress.clone() }, ChannelReader { rx, current: Bytes::new() })
    }

    /// Waits for the whole blob; `Ok(size)` only if its size and digest matched.
    pub async fn finish(self) -> Result<u64, ImageError> {
        match self.handle.await {
            Ok(r) => r,
            Err(e) => Err(ImageError::Unsupported(format!("blob download task failed: {e}"))),
        }
    }
}

async fn pump(
    mut stream: BlobStream,
    layer: LayerDescriptor,
    tx: mpsc::Sender<Bytes>,
    progress: Arc<BlobProgress>,
    hash: bool,
) -> Result<u64, ImageError> {
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut consumer_alive = true;
    let what = format!("layer {}", layer.digest);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| match e.into_inner().map(|inner| inner.downcast::<ImageError>()) {
            Some(Ok(typed)) => *typed,
            Some(Err(other)) => {
                ImageError::CorruptLayer { layer: layer.digest.clone(), reason: format!("download failed: {other}") }
            }
            None => ImageError::CorruptLayer { layer: layer.digest.clone(), reason: "download failed".into() },
        })?;
        received += chunk.len() as u64;
        // A blob longer than its descriptor is wrong however it ends; stop
        // now rather than stream an unbounded body.
        if layer.size > 0 && received > layer.size {
            return Err(ImageError::SizeMismatch { what, expected: layer.size, actual: received });
        }
        if hash {
            hasher.update(&chunk);
        }
        progress.received.store(received, Ordering::Relaxed);
        // If the walker stopped early (it failed), keep hashing to the end so
        // the caller learns whether the blob itself was corrupt.
        // Copy out of the HTTP client's read buffer: a small slice of a large
        // buffer would otherwise keep the whole buffer alive while queued.
        if consumer_alive && tx.send(Bytes::copy_from_slice(&chunk)).await.is_err() {
            consumer_alive = false;
        }
    }
    drop(tx);
    if layer.size > 0 && received != layer.size {
        return Err(ImageError::SizeMismatch { what, expected: layer.size, actual: received });
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if hash && actual != layer.digest {
        return Err(ImageError::DigestMismatch { what, expected: layer.digest.clone(), actual });
    }
    Ok(received)
}

/// Blocking reader over the pump's channel. Use only on a blocking thread.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                // Closed: either the end of the blob or a pump error, which
                // the caller learns from `BlobPump::finish`.
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Compression detected from a blob's first bytes (media types lie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (possibly several members).
    Gzip,
    /// zstd (possibly several frames).
    Zstd,
    /// A plain tar.
    None,
}

/// Wraps `raw` in the right decompressor (by magic bytes) and a [`BombGuard`].
pub fn decompress<R: Read + Send + 'static>(
    raw: R,
    layer_digest: &str,
    limits: LayerLimits,
    progress: Arc<BlobProgress>,
) -> Result<(Compression, Box<dyn Read + Send>), ImageError> {
    let mut buffered = BufReader::with_capacity(64 << 10, raw);
    let head = buffered
        .fill_buf()
        .map_err(|e| ImageError::CorruptLayer { layer: layer_digest.into(), reason: e.to_string() })?;
    let (kind, reader): (Compression, Box<dyn Read + Send>) = if head.starts_with(&[0x1f, 0x8b]) {
        (Compression::Gzip, Box::new(flate2::bufread::MultiGzDecoder::new(buffered)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let dec = zstd::stream::read::Decoder::with_buffer(buffered)
            .map_err(|e| ImageError::CorruptLayer { layer: layer_digest.into(), reason: e.to_string() })?;
        (Compression::Zstd, Box::new(dec))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) || head.starts_with(b"BZh") {
        return Err(ImageError::Unsupported(format!(
            "layer {layer_digest} is xz- or bzip2-compressed; OCI images use gzip or zstd"
        )));
    } else {
        (Compression::None, Box::new(buffered))
    };
    Ok((kind, Box::new(BombGuard { inner: reader, produced: 0, limits, progress, layer: layer_digest.to_string() })))
}

/// Stops decompression that grows past the configured size or ratio limits.
pub struct BombGuard<R> {
    inner: R,
    produced: u64,
    limits: LayerLimits,
    progress: Arc<BlobProgress>,
    layer: String,
}

impl<R: Read> Read for BombGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(|e| {
            // Decoder errors mean corrupt compressed data; keep them typed.
            if e.get_ref().is_some_and(|inner| inner.is::<ImageError>()) {
                e
            } else {
                io::Error::other(ImageError::CorruptLayer { layer: self.layer.clone(), reason: e.to_string() })
            }
        })?;
        self.produced += n as u64;
        if self.produced > self.limits.max_uncompressed {
            return Err(io::Error::other(ImageError::LimitExceeded {
                what: format!("layer {}", self.layer),
                reason: format!("expands to more than {} bytes", self.limits.max_uncompressed),
                flag: "--max-layer-size",
            }));
        }
        if self.produced > self.limits.ratio_floor {
            let compressed = self.progress.received.load(Ordering::Relaxed).max(1);
            if self.produced / compressed > self.limits.max_ratio {
                return Err(io::Error::other(ImageError::LimitExceeded {
                    what: format!("layer {}", self.layer),
                    reason: format!(
                        "decompression ratio above {}:1 ({} bytes from {} compressed) looks like a decompression bomb",
                        self.limits.max_ratio, self.produced, compressed
                    ),
                    flag: "--max-compression-ratio",
                }));
            }
        }
        Ok(n)
    }
}

/// Extracts an [`ImageError`] carried inside an `io::Error`, if any.
pub fn image_error_from_io(e: &io::Error) -> Option<&ImageError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<ImageError>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn descriptor(bytes: &[u8]) -> LayerDescriptor {
        LayerDescriptor {
            digest: crate::manifest::sha256_digest(bytes),
            size: bytes.len() as u64,
            media_type: String::new(),
            diff_id: None,
            created_by: None,
        }
    }

    fn stream_of(bytes: Vec<u8>, chunk: usize) -> BlobStream {
        let chunks: Vec<io::Result<Bytes>> = bytes.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures::stream::iter(chunks).boxed()
    }

    async fn read_all(
        stream: BlobStream,
        layer: LayerDescriptor,
        limits: LayerLimits,
    ) -> (io::Result<Vec<u8>>, Result<u64, ImageError>) {
        let (pump, reader) = BlobPump::start(stream, &layer);
        let progress = pump.progress.clone();
        let digest = layer.digest.clone();
        let read = tokio::task::spawn_blocking(move || {
            let (_, mut r) = decompress(reader, &digest, limits, progress).map_err(io::Error::other)?;
            let mut out = Vec::new();
            r.read_to_end(&mut out)?;
            Ok(out)
        })
        .await
        .unwrap();
        (read, pump.finish().await)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[tokio::test]
    async fn gzip_and_zstd_round_trip_with_verified_digest() {
        let data = b"hello layer".repeat(1000);
        for blob in [gzip(&data), zstd::encode_all(&data[..], 3).unwrap(), data.clone()] {
            let (read, verdict) = read_all(stream_of(blob.clone(), 7), descriptor(&blob), LayerLimits::default()).await;
            assert_eq!(read.unwrap(), data);
            assert_eq!(verdict.unwrap(), blob.len() as u64);
        }
    }

    #[tokio::test]
    async fn tampered_and_truncated_blobs_are_rejected() {
        let blob = gzip(b"content");
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let (_, verdict) = read_all(stream_of(tampered, 5), descriptor(&blob), LayerLimits::default()).await;
        assert!(matches!(verdict, Err(ImageError::DigestMismatch { .. })), "{verdict:?}");
        let (_, verdict) =
            read_all(stream_of(blob[..blob.len() - 3].to_vec(), 5), descriptor(&blob), LayerLimits::default()).await;
        assert!(matches!(verdict, Err(ImageError::SizeMismatch { .. })), "{verdict:?}");
        let mut longer = blob.clone();
        longer.extend_from_slice(b"junk");
        let (_, verdict) = read_all(stream_of(longer, 5), descriptor(&blob), LayerLimits::default()).await;
        assert!(matches!(verdict, Err(ImageError::SizeMismatch { .. })), "{verdict:?}");
    }

    #[tokio::test]
    async fn decompression_bombs_are_stopped() {
        let zeros = vec![0u8; 8 << 20];
        let blob = gzip(&zeros);
        let limits = LayerLimits { max_uncompressed: 1 << 40, max_ratio: 50, ratio_floor: 1 << 20 };
        let (read, _) = read_all(stream_of(blob.clone(), 4096), descriptor(&blob), limits).await;
        let err = read.unwrap_err();
        assert!(err.to_string().contains("decompression bomb"), "{err}");
        let limits = LayerLimits { max_uncompressed: 1 << 20, max_ratio: 1 << 30, ratio_floor: 1 << 40 };
        let (read, _) = read_all(stream_of(blob.clone(), 4096), descriptor(&blob), limits).await;
        assert!(matches!(image_error_from_io(&read.unwrap_err()), Some(ImageError::LimitExceeded { .. })));
    }

    #[tokio::test]
    async fn corrupt_gzip_is_a_typed_error() {
        let mut blob = gzip(&b"abc".repeat(10000));
        for b in blob.iter_mut().skip(20).take(30) {
            *b = 0xff;
        }
        let (read, _) = read_all(stream_of(blob.clone(), 64), descriptor(&blob), LayerLimits::default()).await;
        let err = read.unwrap_err();
        assert!(matches!(image_error_from_io(&err), Some(ImageError::CorruptLayer { .. })), "{err}");
    }
}
