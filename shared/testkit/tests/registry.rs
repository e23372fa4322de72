//! The registry fixture and the pusher, validated with skopeo (an independent client that
//! verifies every digest it downloads).

mod common;

use std::net::TcpStream;

use common::{layers_of, run, run_ok, skopeo_json};
use trawl_testkit::{
    helm_chart, push, BuiltImage, Compression, ImageBuilder, IndexBuilder, LargeImageBuilder, LayerBuilder, MediaTypes,
    Registry, HELM_CHART_CONTENT, HELM_CONFIG, OCI_INDEX,
};

fn two_layer_image(media_types: MediaTypes) -> BuiltImage {
    ImageBuilder::new()
        .media_types(media_types)
        .layer_with_history(
            LayerBuilder::new().compression(Compression::Gzip).dir("etc/").file(
                "etc/os-release",
                "ID=alpine\nVERSION_ID=3.19.1\n",
                0o644,
            ),
            "ADD rootfs.tar /",
        )
        .empty_layer_history("ENV LANG=C.UTF-8")
        .layer_with_history(
            LayerBuilder::new().compression(Compression::Zstd).file("app/run.sh", "#!/bin/sh\necho hi\n", 0o755),
            "COPY run.sh /app/",
        )
        .build()
        .expect("build image")
}

fn copy_to_dir(src: &str, extra: &[&str]) -> (std::process::Output, tempfile::TempDir) {
    let dest = tempfile::tempdir().unwrap();
    let dest_ref = format!("dir:{}", dest.path().display());
    let mut args = vec!["--insecure-policy", "copy", "--src-tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(src);
    args.push(&dest_ref);
    (run("skopeo", &args), dest)
}

#[tokio::test]
async fn pushed_image_is_accepted_and_verified_by_skopeo() {
    let registry = Registry::start().expect("start registry");
    let image = two_layer_image(MediaTypes::Oci);
    let digest = push(&registry, "library/app", "1.0", &image, None).await.expect("push");
    assert_eq!(digest, image.manifest_digest);

    let reference = format!("docker://{}/library/app:1.0", registry.host());
    let inspect = skopeo_json(&["inspect", "--tls-verify=false", &reference]);
    assert_eq!(inspect["Digest"], image.manifest_digest.as_str());
    assert_eq!(layers_of(&inspect), image.layer_digests());
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Os"], "linux");

    // The raw manifest and config are byte-identical to what was built.
    let raw = run_ok("skopeo", &["inspect", "--raw", "--tls-verify=false", &reference]);
    assert_eq!(raw.as_bytes(), &image.manifest[..]);
    let config = run_ok("skopeo", &["inspect", "--config", "--raw", "--tls-verify=false", &reference]);
    assert_eq!(config.as_bytes(), &image.config[..]);

    // skopeo copy downloads every blob and checks its digest.
    let (out, dest) = copy_to_dir(&reference, &[]);
    assert!(out.status.success(), "skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));
    for layer in &image.layers {
        let copied = std::fs::read(dest.path().join(layer.hex())).expect("layer copied");
        assert_eq!(copied, layer.bytes().unwrap());
    }

    // Pushing again skips existing blobs and yields the same digest.
    let again = push(&registry.url(), "library/app", "1.0-again", &image, None).await.expect("re-push");
    assert_eq!(again, digest);
}

#[tokio::test]
async fn docker_v2_media_types_round_trip() {
    let registry = Registry::start().expect("start registry");
    let image = ImageBuilder::new()
        .media_types(MediaTypes::DockerV2)
        .layer(LayerBuilder::new().file("hello", "world", 0o644))
        .build()
        .unwrap();
    push(&registry, "docker/hello", "latest", &image, None).await.expect("push");
    let reference = format!("docker://{}/docker/hello:latest", registry.host());
    let raw: serde_json::Value =
        serde_json::from_str(&run_ok("skopeo", &["inspect", "--raw", "--tls-verify=false", &reference])).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(raw["config"]["mediaType"], "application/vnd.docker.container.image.v1+json");
    assert_eq!(raw["layers"][0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip");
    let (out, _dest) = copy_to_dir(&reference, &[]);
    assert!(out.status.success(), "skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn basic_auth_registry_requires_credentials() {
    let registry = Registry::start_with_basic_auth("scanner", "s3cr3t pass").expect("start registry");
    assert_eq!(registry.credentials(), Some(("scanner", "s3cr3t pass")));

    // Anonymous GET /v2/ is challenged.
    let resp = reqwest::get(format!("{}/v2/", registry.url())).await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
    let challenge = resp.headers().get("www-authenticate").expect("challenge").to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Basic"), "{challenge}");

    let image = two_layer_image(MediaTypes::Oci);
    let anonymous = push(&registry, "private/app", "v1", &image, None).await;
    assert!(anonymous.is_err(), "anonymous push must be rejected");
    let wrong = push(&registry, "private/app", "v1", &image, Some(("scanner", "nope"))).await;
    assert!(wrong.is_err(), "push with a wrong password must be rejected");

    push(&registry, "private/app", "v1", &image, registry.credentials()).await.expect("authenticated push");

    let reference = format!("docker://{}/private/app:v1", registry.host());
    let denied = run("skopeo", &["inspect", "--tls-verify=false", "--no-creds", &reference]);
    assert!(!denied.status.success(), "anonymous inspect must fail");
    let inspect = skopeo_json(&["inspect", "--tls-verify=false", "--creds", "scanner:s3cr3t pass", &reference]);
    assert_eq!(inspect["Digest"], image.manifest_digest.as_str());
}

#[tokio::test]
async fn corrupt_blob_is_detected_by_skopeo() {
    let registry = Registry::start().expect("start registry");
    let image = two_layer_image(MediaTypes::Oci);
    push(&registry, "corrupt/app", "1", &image, None).await.expect("push");

    let victim = &image.layers[0];
    let stored = registry.blob_path(&victim.digest).unwrap();
    assert_eq!(std::fs::read(&stored).unwrap(), victim.bytes().unwrap(), "blob stored where the kit expects");
    let mut tampered = victim.bytes().unwrap().to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    registry.corrupt_blob(&victim.digest, &tampered).expect("corrupt");
    let absent = format!("sha256:{}", "0".repeat(64));
    assert!(registry.corrupt_blob(&absent, b"x").is_err(), "only stored blobs can be corrupted");

    let reference = format!("docker://{}/corrupt/app:1", registry.host());
    let (out, _dest) = copy_to_dir(&reference, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "skopeo copy must fail on a corrupt blob");
    assert!(stderr.to_lowercase().contains("digest"), "expected a digest error, got: {stderr}");
}

#[tokio::test]
async fn index_push_resolves_per_platform() {
    let registry = Registry::start().expect("start registry");
    let amd64 = ImageBuilder::new()
        .platform("linux", "amd64")
        .layer(LayerBuilder::new().file("arch", "amd64\n", 0o644))
        .build()
        .unwrap();
    let arm64 = ImageBuilder::new()
        .platform("linux", "arm64")
        .variant("v8")
        .layer(LayerBuilder::new().file("arch", "arm64\n", 0o644))
        .build()
        .unwrap();
    let index = IndexBuilder::new(MediaTypes::Oci).image(amd64.clone()).image(arm64.clone()).build().unwrap();
    let digest = push(&registry, "multi/app", "1", &index, None).await.expect("push index");
    assert_eq!(digest, index.digest);

    let reference = format!("docker://{}/multi/app:1", registry.host());
    let raw: serde_json::Value =
        serde_json::from_str(&run_ok("skopeo", &["inspect", "--raw", "--tls-verify=false", &reference])).unwrap();
    assert_eq!(raw["mediaType"], OCI_INDEX);
    let manifests = raw["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    assert_eq!(manifests[1]["digest"], arm64.manifest_digest.as_str());
    assert_eq!(manifests[1]["platform"]["architecture"], "arm64");
    assert_eq!(manifests[1]["platform"]["variant"], "v8");

    // skopeo reports the digest of the top-level manifest (the index) but resolves the
    // platform's image for everything else.
    let arm = skopeo_json(&["--override-arch", "arm64", "inspect", "--tls-verify=false", &reference]);
    assert_eq!(arm["Digest"], index.digest.as_str());
    assert_eq!(arm["Architecture"], "arm64");
    assert_eq!(layers_of(&arm), arm64.layer_digests());
    let amd = skopeo_json(&["--override-arch", "amd64", "inspect", "--tls-verify=false", &reference]);
    assert_eq!(amd["Architecture"], "amd64");
    assert_eq!(layers_of(&amd), amd64.layer_digests());
    assert_ne!(layers_of(&amd), layers_of(&arm));
    let by_digest = format!("docker://{}/multi/app@{}", registry.host(), arm64.manifest_digest);
    let child = skopeo_json(&["inspect", "--tls-verify=false", &by_digest]);
    assert_eq!(child["Digest"], arm64.manifest_digest.as_str());

    // Children are also addressable by digest, and a Docker manifest list works the same way.
    let list = IndexBuilder::new(MediaTypes::DockerV2)
        .image(ImageBuilder::new().media_types(MediaTypes::DockerV2).build().unwrap())
        .build()
        .unwrap();
    push(&registry, "multi/docker", "1", &list, None).await.expect("push manifest list");
    let raw: serde_json::Value = serde_json::from_str(&run_ok(
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", &format!("docker://{}/multi/docker:1", registry.host())],
    ))
    .unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json");
}

#[tokio::test]
async fn helm_chart_artifact_is_pushed() {
    let registry = Registry::start().expect("start registry");
    let chart = helm_chart("nginx", "1.2.3", &[("templates/deployment.yaml", b"kind: Deployment\n")]).unwrap();
    push(&registry, "charts/nginx", "1.2.3", &chart, None).await.expect("push chart");
    let reference = format!("docker://{}/charts/nginx:1.2.3", registry.host());
    let raw: serde_json::Value =
        serde_json::from_str(&run_ok("skopeo", &["inspect", "--raw", "--tls-verify=false", &reference])).unwrap();
    assert_eq!(raw["config"]["mediaType"], HELM_CONFIG);
    assert_eq!(raw["layers"][0]["mediaType"], HELM_CHART_CONTENT);
    let (out, dest) = copy_to_dir(&reference, &[]);
    assert!(out.status.success(), "skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.path().join(&chart.config_digest[7..])).unwrap()).unwrap();
    assert_eq!(config["name"], "nginx");
    assert_eq!(config["version"], "1.2.3");
}

#[tokio::test]
async fn file_backed_large_image_is_streamed_up() {
    let registry = Registry::start().expect("start registry");
    let image = LargeImageBuilder::new(3, 3 << 20).compression(Compression::Zstd).build().expect("generate");
    assert_eq!(image.layers.len(), 3);
    for layer in &image.layers {
        assert!(matches!(layer.data, trawl_testkit::BlobData::File(_)));
        assert!(layer.diff_size > 3 << 20);
        // Half the content is incompressible.
        assert!(layer.size > (3 << 20) / 2, "layer unexpectedly small: {}", layer.size);
    }
    push(&registry, "bench/large", "1", &image, None).await.expect("push");
    let reference = format!("docker://{}/bench/large:1", registry.host());
    let (out, _dest) = copy_to_dir(&reference, &[]);
    assert!(out.status.success(), "skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));

    // Same parameters, same digests; the file-backed blobs vanish with the image.
    let again = LargeImageBuilder::new(3, 3 << 20).compression(Compression::Zstd).build().unwrap();
    assert_eq!(again.manifest_digest, image.manifest_digest);
    let trawl_testkit::BlobData::File(path) = again.layers[0].data.clone() else { unreachable!() };
    assert!(path.exists());
    drop(again);
    assert!(!path.exists(), "temp blob files are removed with the image");
}

#[test]
fn registry_process_dies_with_the_fixture() {
    let registry = Registry::start().expect("start registry");
    let pid = registry.pid().unwrap();
    let port = registry.port();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(registry);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "registry pid {pid} still exists");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still accepts connections");
}
