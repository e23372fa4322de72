//! Named files of a layout, whether it is a directory or an indexed tar:
//! whole reads for small documents (size-capped) and chunked async streams
//! for blobs.
//!
//! Callers build names only from fixed strings and validated digests (OCI) or
//! from names the tar index normalises (docker archives), so a name can never
//! reach outside the layout.

use super::tar_index::TarIndex;
use crate::error::ImageError;
use crate::source::BlobStream;
use futures::StreamExt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// Chunk size for streamed blobs: large enough for few syscalls, small
/// enough that the pump's bounded channel keeps memory flat.
pub(crate) const CHUNK: usize = 64 << 10;

/// A blocking reader over one file, with its size.
pub(crate) type SizedReader = (Box<dyn Read + Send>, u64);

/// Where a layout's files live.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// An OCI layout directory.
    Dir(PathBuf),
    /// A tar archive, indexed once.
    Archive(Arc<TarIndex>),
}

impl Store {
    /// The directory or archive, for messages.
    pub(crate) fn location(&self) -> String {
        match self {
            Store::Dir(dir) => dir.display().to_string(),
            Store::Archive(index) => index.path().display().to_string(),
        }
    }

    /// Opens `name` for blocking reads; `Ok(None)` when it does not exist.
    pub(crate) fn open_sync(&self, name: &str) -> Result<Option<SizedReader>, ImageError> {
        match self {
            Store::Dir(dir) => {
                let path = dir.join(name);
                let shown = path.display().to_string();
                let file = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(ImageError::io(shown, e)),
                };
                let meta = file.metadata().map_err(|e| ImageError::io(&shown, e))?;
                // A fifo or device here would block or stream forever.
                if !meta.is_file() {
                    return Err(ImageError::malformed(
                        format!("OCI layout {}", dir.display()),
                        format!("{name} is not a regular file"),
                    ));
                }
                Ok(Some((Box::new(file), meta.len())))
            }
            Store::Archive(index) => match index.locate(name)? {
                None => Ok(None),
                Some(span) => Ok(Some((Box::new(index.open_member(span)?), span.size))),
            },
        }
    }

    /// Reads all of `name` (blocking) if it is at most `cap` bytes;
    /// `Ok(None)` when it does not exist. `what` names it in errors.
    pub(crate) fn read_document(&self, name: &str, cap: u64, what: &str) -> Result<Option<Vec<u8>>, ImageError> {
        let Some((reader, size)) = self.open_sync(name)? else {
            return Ok(None);
        };
        let too_big = |size: u64| ImageError::LimitExceeded {
            what: what.to_string(),
            reason: format!("{size} bytes, more than {cap}"),
            flag: "--max-document-size",
        };
        if size > cap {
            return Err(too_big(size));
        }
        // Read one byte past the cap: a file that grew since `metadata` must not slip through.
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        reader
            .take(cap.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| ImageError::io(format!("{what} in {}", self.location()), e))?;
        if out.len() as u64 > cap {
            return Err(too_big(out.len() as u64));
        }
        Ok(Some(out))
    }

    /// Streams `name` asynchronously in [`CHUNK`]-sized pieces; `Ok(None)`
    /// when it does not exist.
    pub(crate) async fn open_stream(&self, name: &str) -> Result<Option<BlobStream>, ImageError> {
        match self {
            Store::Dir(dir) => {
                let path = dir.join(name);
                let shown = path.display().to_string();
                let file = match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(ImageError::io(shown, e)),
                };
                let meta = file.metadata().await.map_err(|e| ImageError::io(&shown, e))?;
                if !meta.is_file() {
                    return Err(ImageError::malformed(
                        format!("OCI layout {}", dir.display()),
                        format!("{name} is not a regular file"),
                    ));
                }
                Ok(Some(ReaderStream::with_capacity(file, CHUNK).boxed()))
            }
            Store::Archive(index) => {
                let Some(span) = index.locate(name)? else {
                    return Ok(None);
                };
                let shown = index.path().display().to_string();
                let mut file = tokio::fs::File::open(index.path()).await.map_err(|e| ImageError::io(&shown, e))?;
                file.seek(std::io::SeekFrom::Start(span.offset)).await.map_err(|e| ImageError::io(&shown, e))?;
                Ok(Some(ReaderStream::with_capacity(file.take(span.size), CHUNK).boxed()))
            }
        }
    }
}

/// Runs blocking file work off the async runtime's worker threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(ImageError::Unsupported(format!("reading the image files failed: {e}"))))
}
