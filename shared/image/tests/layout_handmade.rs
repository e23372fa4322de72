//! File-based image sources against layouts and archives written by hand in
//! the test, for the cases tools will not produce: several platforms, hostile
//! digests, artifacts, missing or tampered content, Docker ≥ 25 archives with
//! several images. Where skopeo is installed it double-checks that the
//! hand-written fixtures are valid.

mod layout_support;

use layout_support::{desc, gzip, have, layer_tar, read_layer, run, save_entry, LayoutWriter};
use std::path::Path;
use trawl_image::layout::{DockerArchiveSource, OciLayoutSource, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR};
use trawl_image::manifest::{sha256_digest, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use trawl_image::{ImageError, ImageSource, Platform, SourceOptions};

fn options(platform: &str) -> SourceOptions {
    SourceOptions { platform: Platform::parse(platform).unwrap(), ..SourceOptions::default() }
}

/// A layout tagged `multi` (an index of amd64 + arm64) and `amd` (the amd64
/// manifest alone). Returns (amd64 manifest, arm64 manifest, index).
fn multi_platform_layout(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut w = LayoutWriter::new(dir);
    let amd = w.image("amd64", &[layer_tar(&[("etc/os-release", b"ID=debian\n")])]);
    let arm =
        w.image("arm64", &[layer_tar(&[("etc/os-release", b"ID=alpine\n")]), layer_tar(&[("bin/tool", b"\x7fELF")])]);
    let index = w.index(&[(&amd, "amd64"), (&arm, "arm64")]);
    w.tag(OCI_INDEX, &index, Some("multi")).tag(OCI_MANIFEST, &amd, Some("amd")).finish();
    (amd, arm, index)
}

#[tokio::test]
async fn multi_platform_layout_selects_the_requested_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let (amd, arm, index) = multi_platform_layout(&dir);
    let archive = tmp.path().join("layout.tar");
    run("tar", &["-cf", archive.to_str().unwrap(), "-C", dir.to_str().unwrap(), "."]);

    let sources: Vec<Box<dyn ImageSource>> = vec![
        Box::new(OciLayoutSource::open_dir(&dir, Some("multi"), options("linux/arm64")).unwrap()),
        Box::new(OciLayoutSource::open_archive(&archive, Some("multi"), options("linux/arm64")).unwrap()),
    ];
    for source in &sources {
        let img = source.resolve().await.unwrap();
        assert_eq!(img.config.architecture, "arm64");
        assert_eq!(img.manifest_digest, sha256_digest(&arm));
        assert_eq!(img.index_digest, Some(sha256_digest(&index)));
        assert_eq!(img.layers.len(), 2);
        assert_eq!(img.layers[1].created_by.as_deref(), Some("step 1 on arm64"));
        for layer in &img.layers {
            let tar = read_layer(source.as_ref(), layer).await.unwrap();
            assert_eq!(Some(sha256_digest(&tar)), layer.diff_id);
        }
    }

    // The default platform (linux/amd64), and the amd64 manifest by its own tag.
    let img =
        OciLayoutSource::open_dir(&dir, Some("multi"), SourceOptions::default()).unwrap().resolve().await.unwrap();
    assert_eq!(img.manifest_digest, sha256_digest(&amd));
    let img = OciLayoutSource::open_dir(&dir, Some("amd"), options("linux/arm64")).unwrap().resolve().await.unwrap();
    assert_eq!((img.manifest_digest, img.index_digest), (sha256_digest(&amd), None));

    let err =
        OciLayoutSource::open_dir(&dir, Some("multi"), options("linux/s390x")).unwrap().resolve().await.unwrap_err();
    assert!(matches!(err, ImageError::NoMatchingPlatform { .. }), "{err}");
    assert!(err.to_string().contains("available: linux/amd64, linux/arm64"), "{err}");

    if have("skopeo") {
        // skopeo agrees on the fixture, and its own archive of the whole index resolves too.
        let l = dir.display();
        let raw: serde_json::Value =
            serde_json::from_str(&run("skopeo", &["inspect", "--override-arch", "arm64", &format!("oci:{l}:multi")]))
                .unwrap();
        // skopeo reports the top-level (index) digest and the chosen platform's details.
        assert_eq!(raw["Digest"].as_str(), Some(sha256_digest(&index).as_str()));
        assert_eq!(raw["Architecture"].as_str(), Some("arm64"));
        assert_eq!(raw["Layers"].as_array().map(Vec::len), Some(2));
        let copied = tmp.path().join("skopeo.tar");
        run(
            "skopeo",
            &["copy", "-q", "--all", &format!("oci:{l}:multi"), &format!("oci-archive:{}:multi", copied.display())],
        );
        let img =
            OciLayoutSource::open_archive(&copied, None, options("linux/arm64")).unwrap().resolve().await.unwrap();
        assert_eq!(img.manifest_digest, sha256_digest(&arm));
    }
}

#[tokio::test]
async fn platform_manifests_listed_directly_in_index_json() {
    let tmp = tempfile::tempdir().unwrap();
    let w = LayoutWriter::new(tmp.path());
    let amd = w.image("amd64", &[layer_tar(&[("a", b"1")])]);
    let arm = w.image("arm64", &[layer_tar(&[("b", b"2")])]);
    let entry = |m: &[u8], arch: &str| {
        let mut d = desc(OCI_MANIFEST, m);
        d["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
        d
    };
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry(&amd, "amd64"), entry(&arm, "arm64")]});
    std::fs::write(tmp.path().join("index.json"), index.to_string()).unwrap();
    let img = OciLayoutSource::open_dir(tmp.path(), None, options("linux/arm64")).unwrap().resolve().await.unwrap();
    assert_eq!(img.manifest_digest, sha256_digest(&arm));
}

/// Writes `index.json` with one raw entry.
fn index_with(dir: &Path, entry: serde_json::Value) {
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

async fn resolve_dir(dir: &Path, tag: Option<&str>) -> Result<trawl_image::ResolvedImage, ImageError> {
    OciLayoutSource::open_dir(dir, tag, SourceOptions::default())?.resolve().await
}

#[tokio::test]
async fn hostile_digests_never_become_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let w = LayoutWriter::new(tmp.path());
    // A file an escaping digest would reach, to be sure it is not read.
    std::fs::write(tmp.path().join("secret"), "{}").unwrap();
    for digest in ["sha256:../../secret", "sha256:../secret", "sha512:abcd", "sha256:ABCDEF"] {
        index_with(tmp.path(), serde_json::json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": 2}));
        let err = resolve_dir(tmp.path(), None).await.unwrap_err();
        assert!(matches!(err, ImageError::Malformed { .. }), "{digest}: {err}");
    }
    // An unsafe layer digest inside a manifest is refused as well.
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    w.blob(config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:../../secret", "size": 2}],
    }))
    .unwrap();
    w.blob(&manifest);
    index_with(tmp.path(), desc(OCI_MANIFEST, &manifest));
    let err = resolve_dir(tmp.path(), None).await.unwrap_err();
    assert!(matches!(err, ImageError::Malformed { .. }), "{err}");
}

#[tokio::test]
async fn non_image_artifacts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = LayoutWriter::new(tmp.path());
    let config = br#"{"name":"chart","version":"1.0.0"}"#;
    let chart = gzip(b"chart");
    w.blob(config);
    w.blob(&chart);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.cncf.helm.config.v1+json", config),
        "layers": [desc("application/vnd.cncf.helm.chart.content.v1.tar+gzip", &chart)],
    }))
    .unwrap();
    w.blob(&manifest);
    w.tag(OCI_MANIFEST, &manifest, Some("chart")).finish();
    let err = resolve_dir(tmp.path(), Some("chart")).await.unwrap_err();
    assert!(matches!(err, ImageError::NotAnImage { .. }) && err.to_string().contains("Helm chart"), "{err}");
}

#[tokio::test]
async fn missing_malformed_and_oversized_layout_content() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = LayoutWriter::new(tmp.path());
    let manifest = w.image("amd64", &[layer_tar(&[("a", b"1")])]);
    w.tag(OCI_MANIFEST, &manifest, Some("t")).finish();
    let img = resolve_dir(tmp.path(), Some("t")).await.unwrap();

    // A layer blob missing from the layout: resolve works, opening the blob fails clearly.
    std::fs::remove_file(w.blob_path(&img.layers[0].digest)).unwrap();
    let source = OciLayoutSource::open_dir(tmp.path(), Some("t"), SourceOptions::default()).unwrap();
    let err = source.open_blob(&img.layers[0]).await.err().unwrap();
    assert!(matches!(err, ImageError::Malformed { .. }) && err.to_string().contains("missing"), "{err}");
    // A missing config fails the resolve.
    std::fs::remove_file(w.blob_path(&img.config_digest)).unwrap();
    let err = resolve_dir(tmp.path(), Some("t")).await.unwrap_err();
    assert!(err.to_string().contains(&format!("blob {} is referenced but missing", img.config_digest)), "{err}");

    // Documents bigger than the cap.
    let small = SourceOptions { max_document_bytes: 64, ..SourceOptions::default() };
    let err = OciLayoutSource::open_dir(tmp.path(), Some("t"), small).unwrap().resolve().await.unwrap_err();
    assert!(matches!(err, ImageError::LimitExceeded { .. }), "{err}");

    // A manifest whose bytes do not match its digest.
    std::fs::write(w.blob_path(&img.manifest_digest), b"{}").unwrap();
    let err = resolve_dir(tmp.path(), Some("t")).await.unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");

    // Malformed index.json, missing or unsupported oci-layout, missing directory.
    std::fs::write(tmp.path().join("index.json"), b"{not json").unwrap();
    let err = resolve_dir(tmp.path(), Some("t")).await.unwrap_err();
    assert!(matches!(err, ImageError::Malformed { .. }), "{err}");
    std::fs::write(tmp.path().join("oci-layout"), br#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    let err = resolve_dir(tmp.path(), Some("t")).await.unwrap_err();
    assert!(matches!(err, ImageError::Unsupported(_)), "{err}");
    std::fs::remove_file(tmp.path().join("oci-layout")).unwrap();
    let err = resolve_dir(tmp.path(), Some("t")).await.unwrap_err();
    assert!(err.to_string().contains("not an OCI image layout"), "{err}");
    let gone = tmp.path().join("gone");
    let err = resolve_dir(&gone, None).await.unwrap_err();
    assert!(matches!(&err, ImageError::Io { path, .. } if path == gone.to_str().unwrap()), "{err}");
}

/// The config JSON for a docker archive image.
fn docker_config(arch: &str, layers: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "ADD base"}, {"created_by": "ENV x=1", "empty_layer": true}, {"created_by": "RUN a"}, {"created_by": "RUN b"}],
    }))
    .unwrap()
}

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

/// A `docker save` archive with two images: `alpine:3.18` in the Docker ≥ 25
/// layout (content-addressed blobs) and `example.com/app:1` (+ `:latest`)
/// in the classic layout, with a symlinked repeated layer, a gzip layer named
/// by digest and a gzip layer that is not.
fn docker_archive(path: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
    let base = layer_tar(&[("etc/os-release", b"ID=alpine\nVERSION_ID=3.18.4\n")]);
    let a_config = docker_config("amd64", &[&base]);
    let a_config_name = format!("blobs/sha256/{}", hex(&sha256_digest(&a_config)));
    let base_name = format!("blobs/sha256/{}", hex(&sha256_digest(&base)));

    let app1 = layer_tar(&[("app/one", b"1")]);
    let app2 = layer_tar(&[("app/two", b"2")]);
    let b_layers = vec![base.clone(), app1.clone(), app2.clone()];
    let b_config = docker_config("amd64", &[&base, &app1, &app2]);
    let b_config_name = format!("{}.json", hex(&sha256_digest(&b_config)));
    let app1_gz = gzip(&app1);
    let app1_name = format!("blobs/sha256/{}", hex(&sha256_digest(&app1_gz)));
    let app2_gz = gzip(&app2);

    let listing = serde_json::json!([
        save_entry(&a_config_name, &["alpine:3.18"], std::slice::from_ref(&base_name)),
        save_entry(
            &b_config_name,
            &["example.com/app:1", "example.com/app:latest"],
            &["0001/layer.tar".to_string(), app1_name.clone(), "0003/layer.tar.gz".to_string()]
        ),
    ]);

    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o444);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    add(&base_name, &base);
    add(&a_config_name, &a_config);
    add(&b_config_name, &b_config);
    add(&app1_name, &app1_gz);
    add("0003/layer.tar.gz", &app2_gz);
    add("manifest.json", &serde_json::to_vec(&listing).unwrap());
    let mut link = tar::Header::new_ustar();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    b.append_link(&mut link, "0001/layer.tar", format!("../{base_name}")).unwrap();
    b.finish().unwrap();
    (b_config, b_layers)
}

#[tokio::test]
async fn docker_archive_with_several_images_and_layer_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("saved.tar");
    let (b_config, b_layers) = docker_archive(&path);
    if have("skopeo") {
        run("skopeo", &["inspect", &format!("docker-archive:{}:example.com/app:1", path.display())]);
    }

    let err = DockerArchiveSource::open(&path, None).unwrap().resolve().await.unwrap_err();
    assert!(matches!(err, ImageError::InvalidReference { .. }), "{err}");
    assert!(err.to_string().contains("alpine:3.18, example.com/app:1, example.com/app:latest"), "{err}");
    for missing in ["alpine:3.19", "@2"] {
        let err = DockerArchiveSource::open(&path, Some(missing)).unwrap().resolve().await.unwrap_err();
        assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    }

    for name in ["alpine:3.18", "docker.io/library/alpine:3.18", "@0"] {
        let img = DockerArchiveSource::open(&path, Some(name)).unwrap().resolve().await.unwrap();
        assert_eq!(img.layers.len(), 1, "{name}");
        assert_eq!(img.layers[0].created_by.as_deref(), None, "history longer than layers: not paired");
    }

    for name in ["example.com/app:1", "example.com/app", "@1"] {
        let source = DockerArchiveSource::open(&path, Some(name)).unwrap();
        let img = source.resolve().await.unwrap();
        assert_eq!(img.media_type, DOCKER_MANIFEST);
        assert_eq!(img.config_digest, sha256_digest(&b_config));
        assert_eq!(img.index_digest, None);
        let kinds: Vec<&str> = img.layers.iter().map(|l| l.media_type.as_str()).collect();
        assert_eq!(kinds, [DOCKER_LAYER_TAR, DOCKER_LAYER_GZIP, DOCKER_LAYER_GZIP]);
        // Uncompressed: the diff id. Compressed: the digest of the stored blob.
        assert_eq!(img.layers[0].digest, sha256_digest(&b_layers[0]));
        assert_eq!(img.layers[1].digest, sha256_digest(&gzip(&b_layers[1])));
        assert_eq!(img.layers[2].digest, sha256_digest(&gzip(&b_layers[2])));
        assert_eq!(img.layers[2].created_by.as_deref(), Some("RUN b"));
        for (layer, expected) in img.layers.iter().zip(&b_layers) {
            assert_eq!(layer.diff_id, Some(sha256_digest(expected)));
            assert_eq!(&read_layer(&source, layer).await.unwrap(), expected);
        }
    }
}

#[tokio::test]
async fn docker_archive_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("saved.tar");
    let (b_config, _) = docker_archive(&path);

    // Swap one byte of the content-named config: a digest mismatch.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(b_config.len()).position(|w| w == b_config.as_slice()).unwrap();
    bytes[at + 2] ^= 0x01;
    let tampered = tmp.path().join("tampered.tar");
    std::fs::write(&tampered, &bytes).unwrap();
    let err = DockerArchiveSource::open(&tampered, Some("example.com/app:1")).unwrap().resolve().await.unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");

    // Broken manifest.json, a layer count that disagrees with the config, a missing layer.
    let config = docker_config("amd64", &[b"x"]);
    let cases: [(&str, serde_json::Value); 3] = [
        ("manifest.json is not valid", serde_json::json!({"not": "a list"})),
        ("1 diff_ids", serde_json::json!([save_entry("c.json", &[], &["a.tar".into(), "b.tar".into()])])),
        ("layer gone.tar is listed but missing", serde_json::json!([save_entry("c.json", &[], &["gone.tar".into()])])),
    ];
    for (expected, listing) in cases {
        let bad = tmp.path().join("bad.tar");
        layout_support::write_tar(
            &bad,
            &[
                ("manifest.json".into(), serde_json::to_vec(&listing).unwrap()),
                ("c.json".into(), config.clone()),
                ("a.tar".into(), b"x".to_vec()),
                ("b.tar".into(), b"y".to_vec()),
            ],
        );
        let err = DockerArchiveSource::open(&bad, None).unwrap().resolve().await.unwrap_err();
        assert!(matches!(err, ImageError::Malformed { .. }) && err.to_string().contains(expected), "{err}");
    }
}
