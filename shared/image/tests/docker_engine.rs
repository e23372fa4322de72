//! `docker:NAME` against a real Docker Engine API: Podman's `podman system service`, started
//! per test with private storage. Images are built with the testkit, saved as `docker save`
//! archives, loaded through the API, then read back through [`DockerEngineSource`].

use futures::TryStreamExt;
use trawl_image::manifest::sha256_digest;
use trawl_image::{open_source, DockerEngineSource, ImageError, ImageRef, ImageSource, SourceOptions};
use trawl_testkit::{write_docker_archive, BuiltImage, Compression, ImageBuilder, LayerBuilder, PodmanService};

/// Two layers, as a scanner sees a small Ubuntu: os-release, then a dpkg status database.
fn ubuntu_image() -> BuiltImage {
    let base = LayerBuilder::new().compression(Compression::None).dir("etc/").file(
        "etc/os-release",
        "NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"16.04\"\n",
        0o644,
    );
    let packages =
        LayerBuilder::new().compression(Compression::Gzip).dir("var/").dir("var/lib/").dir("var/lib/dpkg/").file(
            "var/lib/dpkg/status",
            "Package: libc6\nStatus: install ok installed\nVersion: 2.23-0ubuntu11\nArchitecture: amd64\n\n",
            0o644,
        );
    ImageBuilder::new()
        .layer_with_history(base, "ADD rootfs.tar /")
        .layer_with_history(packages, "RUN apt-get install -y libc6")
        .build()
        .expect("build image")
}

/// A service holding [`ubuntu_image`] as `ubuntu:16.04`, loaded through the API.
fn podman_with_ubuntu(tcp: bool) -> (PodmanService, BuiltImage) {
    let podman = if tcp { PodmanService::start_tcp() } else { PodmanService::start() }.expect("start podman");
    let image = ubuntu_image();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("ubuntu.tar");
    write_docker_archive(&archive, "ubuntu:16.04", &image).unwrap();
    let names = podman.load_docker_archive(&archive).expect("load into podman");
    assert_eq!(names, ["localhost/ubuntu:16.04"], "Podman qualifies short names with localhost/");
    (podman, image)
}

fn options(url: &str) -> SourceOptions {
    SourceOptions { docker_url: url.to_string(), ..SourceOptions::default() }
}

fn source(reference: &str, url: &str) -> Box<dyn ImageSource> {
    open_source(&ImageRef::parse(reference).unwrap(), options(url)).unwrap()
}

/// Resolves and reads every layer, checking identity against what the testkit built.
async fn assert_reads_back(source: &dyn ImageSource, reference: &str, image: &BuiltImage) {
    let resolved = source.resolve().await.unwrap();
    assert_eq!(resolved.reference, reference);
    assert_eq!(resolved.config_digest, image.config_digest);
    assert_eq!(resolved.layers.len(), image.layers.len());
    let diff_ids: Vec<_> = resolved.layers.iter().map(|l| l.diff_id.clone().unwrap()).collect();
    assert_eq!(diff_ids, image.diff_ids());
    assert_eq!(resolved.layers[1].created_by.as_deref(), Some("RUN apt-get install -y libc6"));
    for layer in &resolved.layers {
        let chunks: Vec<bytes::Bytes> = source.open_blob(layer).await.unwrap().try_collect().await.unwrap();
        let bytes = chunks.concat();
        assert_eq!(bytes.len() as u64, layer.size);
        assert_eq!(sha256_digest(&bytes), layer.digest, "blob bytes hash to the layer digest");
        // The engine exports layers uncompressed, so the blob digest is the diff id.
        assert_eq!(Some(&layer.digest), layer.diff_id.as_ref());
    }
}

/// The `podman` command line, on the service's storage, lists the image: no mock in between.
fn assert_podman_lists(podman: &PodmanService, image: &BuiltImage) {
    let out =
        podman.cli().args(["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]).output().unwrap();
    assert!(out.status.success(), "podman images: {}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    let expected = format!("localhost/ubuntu:16.04 {}", image.config_digest);
    assert!(listing.lines().any(|l| l == expected), "podman images:\n{listing}");
}

#[tokio::test]
async fn reads_an_image_from_podman_over_the_unix_socket() {
    let (podman, image) = podman_with_ubuntu(false);
    assert_podman_lists(&podman, &image);
    assert_eq!(podman.image_id("ubuntu:16.04").unwrap(), Some(image.config_digest.clone()));

    let url = podman.url();
    assert_reads_back(source("docker:ubuntu:16.04", &url).as_ref(), "docker:ubuntu:16.04", &image).await;
    // The socket path without a scheme, the `docker-daemon:` spelling, and the image ID.
    let socket = podman.socket_path().display().to_string();
    let by_path = source("docker-daemon:localhost/ubuntu:16.04", &socket);
    assert_reads_back(by_path.as_ref(), "docker:localhost/ubuntu:16.04", &image).await;
    let short_id = &image.config_digest["sha256:".len()..][..12];
    let by_id = source(&format!("docker:{short_id}"), &url);
    assert_reads_back(by_id.as_ref(), &format!("docker:{short_id}"), &image).await;
}

#[tokio::test]
async fn blobs_open_before_resolve_and_the_export_is_deleted_on_drop() {
    let (podman, image) = podman_with_ubuntu(false);
    let source = DockerEngineSource::new("ubuntu:16.04", &options(&podman.url())).unwrap();
    assert_eq!(source.export_path(), None, "nothing is contacted before first use");
    // open_blob exports (and resolves) on its own.
    let layer = trawl_image::LayerDescriptor {
        digest: image.layers[0].diff_id.clone(),
        size: image.layers[0].diff_size,
        media_type: String::new(),
        diff_id: None,
        created_by: None,
    };
    let chunks: Vec<bytes::Bytes> = source.open_blob(&layer).await.unwrap().try_collect().await.unwrap();
    assert_eq!(sha256_digest(&chunks.concat()), image.layers[0].diff_id);
    let export = source.export_path().expect("exported").to_path_buf();
    assert!(export.is_file());
    // The same export serves resolve: no second download.
    assert_eq!(source.resolve().await.unwrap().config_digest, image.config_digest);
    assert_eq!(source.export_path(), Some(export.as_path()));
    drop(source);
    assert!(!export.exists(), "{} outlived the source", export.display());
}

#[tokio::test]
async fn reads_an_image_over_plain_tcp() {
    let (podman, image) = podman_with_ubuntu(true);
    let url = podman.tcp_url().unwrap();
    assert!(url.starts_with("tcp://127.0.0.1:"));
    assert_reads_back(source("docker:ubuntu:16.04", &url).as_ref(), "docker:ubuntu:16.04", &image).await;
    let http = url.replace("tcp://", "http://");
    assert_reads_back(source("docker:ubuntu:16.04", &http).as_ref(), "docker:ubuntu:16.04", &image).await;
}

#[tokio::test]
async fn an_image_the_engine_lacks_is_not_found() {
    let (podman, _image) = podman_with_ubuntu(false);
    let err = source("docker:debian:12", &podman.url()).resolve().await.unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("docker:debian:12"), "{message}");
    assert!(message.contains(&podman.url()), "{message}");
    assert!(message.contains("pull it into that engine first, or scan it from its registry"), "{message}");
}

#[tokio::test]
async fn engine_errors_carry_the_engine_message() {
    let (podman, _image) = podman_with_ubuntu(false);
    // Valid characters, but not a reference Podman can normalise: it answers 500.
    let err = source("docker:Bad..Name", &podman.url()).resolve().await.unwrap_err();
    assert!(matches!(err, ImageError::Registry { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with(&format!("the Docker Engine API at {} returned an error", podman.url())), "{message}");
    assert!(message.contains("HTTP 500") && message.contains("invalid reference format"), "{message}");
}

#[tokio::test]
async fn an_export_over_the_cap_is_refused() {
    let (podman, _image) = podman_with_ubuntu(false);
    let source = DockerEngineSource::new("ubuntu:16.04", &options(&podman.url())).unwrap().with_max_archive_bytes(4096);
    let err = source.resolve().await.unwrap_err();
    assert!(matches!(err, ImageError::LimitExceeded { .. }), "{err:?}");
    assert!(err.to_string().contains("passed 4096 bytes"), "{err}");
    assert_eq!(source.export_path(), None);
}

#[tokio::test]
async fn a_missing_socket_is_unreachable_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("no-such-docker.sock");
    let url = format!("unix://{}", socket.display());
    let err = source("docker:ubuntu:16.04", &url).resolve().await.unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&socket.display().to_string()), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
    assert!(message.contains("is Docker running?") && message.contains("podman system service"), "{message}");
    assert!(!message.contains("--plain-http") && !message.contains('\n'), "{message}");
}

#[tokio::test]
async fn a_closed_tcp_port_is_unreachable() {
    // Bound but not listening: connections are refused, and no other test can take the port.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = reserved.local_addr().unwrap().port();
    let err = source("docker:ubuntu", &format!("tcp://127.0.0.1:{port}")).resolve().await.unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("Connection refused"), "{err}");
}

#[test]
fn tls_endpoints_are_unsupported_for_now() {
    for url in ["https://docker.example:2376", "tcp://docker.example:2376"] {
        let err = open_source(&ImageRef::parse("docker:ubuntu").unwrap(), options(url)).err().unwrap();
        assert!(matches!(err, ImageError::Unsupported(_)), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("TLS engine endpoints are not supported yet"), "{message}");
        assert!(message.contains("unix:///var/run/docker.sock") && message.contains("tcp://"), "{message}");
    }
}

#[test]
fn names_that_could_escape_the_api_path_are_invalid() {
    let err = DockerEngineSource::new("../../containers/json", &SourceOptions::default()).err().unwrap();
    assert!(matches!(err, ImageError::InvalidReference { .. }), "{err:?}");
}

#[test]
fn the_default_endpoint_is_dockers_socket() {
    let source = DockerEngineSource::new("ubuntu", &SourceOptions::default()).unwrap();
    assert_eq!(source.endpoint().to_string(), "unix:///var/run/docker.sock");
}
