//! # trawl-testkit
//!
//! Everything Trawl's integration tests need to run *real* components, with no mocks:
//!
//! - **Servers.** [`NatsServer`] runs a real `nats-server -js`, [`NatsCluster`] a
//!   JetStream cluster of them from a deployment's configuration file, [`Registry`] a real
//!   `docker-registry` (CNCF distribution), each on a free `127.0.0.1` port with its state in a
//!   private temp dir; [`PodmanService`] a real `podman system service` (the Docker Engine API)
//!   on a private unix socket, optionally also on a loopback port, with private image storage. A registry can require HTTP basic auth, or bearer tokens from a real
//!   in-process [`TokenServer`] (the Docker token flow of Docker Hub, GHCR and Harbor).
//!   `start()` returns once the server answers its health endpoint (polled
//!   with a deadline, never a fixed sleep) or fails with the server's own output. Servers are
//!   SIGKILLed on drop, and — through `PR_SET_PDEATHSIG` — also when the test binary dies
//!   without running destructors. Binaries come from `NATS_SERVER_BIN` / `DOCKER_REGISTRY_BIN` /
//!   `PODMAN_BIN` or `PATH`.
//! - **Images.** [`LayerBuilder`] writes a layer tar entry by entry (files, dirs, symlinks,
//!   hard links, whiteouts, opaque markers, host files streamed in) compressed with gzip, zstd
//!   or nothing. [`ImageBuilder`] assembles layers into an OCI (or Docker schema 2) image whose
//!   config has matching `rootfs.diff_ids` and `history`; [`IndexBuilder`] makes a
//!   multi-platform index; [`helm_chart`] a Helm OCI artifact; [`LargeImageBuilder`] a
//!   benchmark-size image streamed to disk. Output is reproducible: same input, same digests.
//! - **Delivery.** [`push`] uploads an image or index over the registry HTTP API;
//!   [`write_oci_layout`], [`write_oci_archive`] and [`write_docker_archive`] produce the
//!   on-disk formats `skopeo`, `umoci` and `docker load` read;
//!   [`PodmanService::load_docker_archive`] loads an image into a Docker Engine API.
//! - **Data.** [`corpus_dir`] finds the shared corpus of real package databases and advisories
//!   next to the repository, or tells the test to skip.
//!
//! Why real servers: the scanner's hard cases (auth challenges, digest mismatches, redelivery
//! after a broker crash, JetStream recovery) live in the servers' behaviour, which a mock only
//! restates. The tests of this crate check its output with independent tools (`skopeo`,
//! `umoci`) for the same reason.
//!
//! Server fixtures are synchronous (usable from `#[test]` and `#[tokio::test]` alike); pushes
//! are async and need a Tokio runtime.
//!
//! ```no_run
//! use trawl_testkit::{push, Compression, ImageBuilder, LayerBuilder, Registry};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let registry = Registry::start()?;
//! let image = ImageBuilder::new()
//!     .layer_with_history(
//!         LayerBuilder::new().dir("etc/").file("etc/os-release", "ID=alpine\n", 0o644),
//!         "ADD rootfs.tar /",
//!     )
//!     .layer(LayerBuilder::new().compression(Compression::Zstd).whiteout("etc/os-release"))
//!     .build()?;
//! let digest = push(&registry, "library/app", "1.0", &image, None).await?;
//! assert_eq!(digest, image.manifest_digest);
//! // `docker://{registry.host()}/library/app:1.0` is now pullable by the scanner.
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod archive;
mod fault_proxy;
mod image;
mod large;
mod layer;
mod nats;
mod nats_cluster;
mod podman;
mod process;
mod push;
mod registry;
mod samples;
mod service;
mod token;

use std::net::TcpListener;
use std::path::PathBuf;

pub use archive::{write_docker_archive, write_oci_archive, write_oci_layout};
pub use fault_proxy::{FaultProxy, FaultRule, RuleId};
pub use image::{
    helm_chart, Artifact, BuiltImage, BuiltIndex, ImageBuilder, IndexBuilder, MediaTypes, Platform, DEFAULT_CREATED,
    DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, HELM_CHART_CONTENT, HELM_CONFIG, OCI_CONFIG, OCI_INDEX,
    OCI_MANIFEST,
};
pub use large::{LargeImageBuilder, RandomReader};
pub use layer::{
    sha256_digest, Blob, BlobData, Compression, LayerBuilder, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, DOCKER_LAYER_ZSTD,
    OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD,
};
pub use nats::NatsServer;
pub use nats_cluster::NatsCluster;
pub use podman::PodmanService;
pub use push::{push, push_blob, push_manifest, RegistryEndpoint};
pub use registry::Registry;
pub use samples::{nats_server_binary, sample_advisories, sample_images, SampleImage};
pub use service::{workspace_binary, ServiceProcess};
pub use token::{token_claims, Grant, TokenRequest, TokenServer, TOKEN_ISSUER, TOKEN_LIFETIME_SECS, TOKEN_SERVICE};

/// Debian 12's os-release, as the fixtures' Debian layers carry it.
pub const DEBIAN_12_OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

/// `len` bytes of xorshift output from `seed`: gzip cannot shrink them, as
/// it cannot shrink the binaries that make most of a real layer's size, so
/// layer sizes in tests and benchmarks mean what they say.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Blocks until standard input closes: how the shell-facing fixture
/// programs (`trawl-testkit sample-registry`, the load-test image sets) know
/// their caller is done, so their servers die with them.
pub fn serve_until_stdin_closes() {
    use std::io::BufRead;
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
}

/// A TCP port on `127.0.0.1` that was free a moment ago (bound to port 0, then released).
///
/// Another process may grab it before it is used; the server fixtures retry on a bind
/// conflict.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// `N` distinct free ports: all listeners are held until every port is chosen.
pub(crate) fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    let listeners = (0..N).map(|_| TcpListener::bind(("127.0.0.1", 0))).collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// `n` distinct free ports, like [`free_ports`] for a count known only at run time.
pub(crate) fn free_ports_vec(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n).map(|_| TcpListener::bind(("127.0.0.1", 0))).collect::<std::io::Result<Vec<_>>>()?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// The shared corpus (`<workspace root>/../shared/corpus`: real package databases, advisories,
/// version vectors), or `None` — after printing one skip message to stderr — when this
/// checkout has none beside it.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    match dir.canonicalize() {
        Ok(dir) if dir.is_dir() => Some(dir),
        _ => {
            eprintln!("skipping: shared corpus not found at {} (clone the repository beside shared/)", dir.display());
            None
        }
    }
}
