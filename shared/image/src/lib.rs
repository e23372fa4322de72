//! Image access for Trawl: from a reference to verified, decompressed layer streams.
//!
//! * [`source`] — the [`ImageSource`] interface and the reference syntax
//!   (`HOST/REPO:TAG`, `oci:DIR`, `oci-archive:FILE`, `docker-archive:FILE`, `dir:PATH`).
//! * [`registry`] — registries through `oci-client`, with auth and platform selection.
//! * [`layout`] — OCI image layouts on disk and in tar archives, and `docker save` archives.
//! * [`docker_engine`] — images held by a Docker Engine API (`docker:NAME`): Docker or
//!   Podman, over a unix socket or plain TCP, exported once and read as a `docker save` archive.
//! * [`manifest`] — manifest, index and config parsing with the checks that make them trustworthy.
//! * [`blob`] — digest- and size-verified downloads feeding a bounded,
//!   bomb-guarded decompression pipeline that the package walker reads.
//!
//! Nothing here writes layer content to disk, except [`docker_engine`], whose
//! API can only export whole images: it keeps one private temp file per image.

pub mod blob;
pub mod docker_engine;
pub mod error;
pub mod layout;
pub mod manifest;
pub mod registry;
pub mod source;

pub use blob::{BlobPump, LayerLimits};
pub use docker_engine::{DockerEngineSource, EngineEndpoint};
pub use error::ImageError;
pub use manifest::Platform;
pub use source::{Credentials, ImageRef, ImageSource, LayerDescriptor, ResolvedImage, SourceOptions};

/// Opens the image source for a parsed reference. `dir:` references are not
/// images (they have no layers) and are rejected here; callers walk them directly.
pub fn open_source(reference: &ImageRef, options: SourceOptions) -> Result<Box<dyn ImageSource>, ImageError> {
    Ok(match reference {
        ImageRef::Registry(r) => Box::new(registry::RegistrySource::new(r, options)?),
        ImageRef::OciLayout { dir, tag } => Box::new(layout::OciLayoutSource::open_dir(dir, tag.as_deref(), options)?),
        ImageRef::OciArchive { file, tag } => {
            Box::new(layout::OciLayoutSource::open_archive(file, tag.as_deref(), options)?)
        }
        ImageRef::DockerArchive { file, image } => Box::new(layout::DockerArchiveSource::open(file, image.as_deref())?),
        ImageRef::DockerDaemon(name) => Box::new(docker_engine::DockerEngineSource::new(name, &options)?),
        ImageRef::Dir(path) => {
            return Err(ImageError::Unsupported(format!("{} is a directory, not an image", path.display())))
        }
    })
}
