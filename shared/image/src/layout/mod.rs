//! Images stored as files: OCI image layouts — a directory (`oci:DIR[:TAG]`)
//! or a tar of one (`oci-archive:FILE[:TAG]`) — and `docker save` archives
//! (`docker-archive:FILE[:REPO:TAG]`).
//!
//! Archives are never extracted: the `tar_index` module scans a tar once, remembering
//! where each member's bytes lie, and documents and blobs are then read by
//! seeking into the file, so a multi-gigabyte archive costs neither disk
//! space nor memory. Small documents (index, manifests, configs) are
//! size-capped and verified against their digests here; layer blobs are
//! streamed raw in 64 KiB chunks and verified by the caller ([`crate::blob`]).
//! Every digest is validated before it becomes a file name, and archive member
//! names are normalised, so hostile input cannot reach outside the image.

mod docker_archive;
mod oci;
mod store;
mod tar_index;

pub use docker_archive::{DockerArchiveSource, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, OCI_LAYER_ZSTD};
pub use oci::{OciLayoutSource, REF_NAME_ANNOTATION};
