//! File-based image sources against fixtures made by the real tools: umoci
//! writes an OCI layout, skopeo converts it to an OCI archive and a
//! `docker save`-format archive. Skipped (with a message) when a tool is missing.

mod layout_support;

use layout_support::{have, read_layer, run, tar_names};
use std::path::{Path, PathBuf};
use trawl_image::layout::{DockerArchiveSource, OciLayoutSource, DOCKER_LAYER_TAR};
use trawl_image::manifest::{sha256_digest, DOCKER_MANIFEST, OCI_MANIFEST};
use trawl_image::{open_source, ImageError, ImageRef, ImageSource, SourceOptions};

/// A two-layer image (`/etc/os-release`, then `/hello.txt`) tagged `t` in an
/// umoci-written layout at `ROOT/layout`.
fn umoci_image(root: &Path) -> PathBuf {
    std::fs::create_dir_all(root.join("src1/etc")).unwrap();
    std::fs::write(root.join("src1/etc/os-release"), "ID=alpine\nVERSION_ID=3.18.4\n").unwrap();
    std::fs::create_dir_all(root.join("src2")).unwrap();
    std::fs::write(root.join("src2/hello.txt"), "hello").unwrap();
    let layout = root.join("layout");
    let l = layout.to_str().unwrap();
    let image = format!("{l}:t");
    run("umoci", &["init", "--layout", l]);
    run("umoci", &["new", "--image", &image]);
    run("umoci", &["config", "--image", &image, "--architecture", "amd64", "--os", "linux"]);
    run("umoci", &["insert", "--image", &image, root.join("src1/etc").to_str().unwrap(), "/etc"]);
    run("umoci", &["insert", "--image", &image, root.join("src2/hello.txt").to_str().unwrap(), "/hello.txt"]);
    layout
}

fn tools() -> bool {
    have("umoci") && have("skopeo")
}

fn clean(name: &str) -> &str {
    name.trim_start_matches("./").trim_start_matches('/')
}

#[tokio::test]
async fn umoci_layout_and_skopeo_archives_resolve_and_verify() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(tmp.path());
    let l = layout.display();
    let oci_archive = tmp.path().join("image-oci.tar");
    let docker_archive = tmp.path().join("image-docker.tar");
    run("skopeo", &["copy", "-q", &format!("oci:{l}:t"), &format!("oci-archive:{}:t", oci_archive.display())]);
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci:{l}:t"),
            &format!("docker-archive:{}:example.com/team/app:v1", docker_archive.display()),
        ],
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&run("skopeo", &["inspect", &format!("oci:{l}:t")])).unwrap();
    let skopeo_digest = inspected["Digest"].as_str().unwrap().to_string();

    let refs = [
        format!("oci:{l}:t"),
        format!("oci:{l}"),
        format!("oci-archive:{}:t", oci_archive.display()),
        format!("oci-archive:{}", oci_archive.display()),
        format!("docker-archive:{}:example.com/team/app:v1", docker_archive.display()),
        format!("docker-archive:{}", docker_archive.display()),
    ];
    let mut config_digests = Vec::new();
    for r in &refs {
        let source = open_source(&ImageRef::parse(r).unwrap(), SourceOptions::default()).unwrap();
        let img = source.resolve().await.unwrap_or_else(|e| panic!("{r}: {e}"));
        assert_eq!(img.reference, *r);
        assert_eq!((img.config.os.as_str(), img.config.architecture.as_str()), ("linux", "amd64"), "{r}");
        assert_eq!(img.layers.len(), 2, "{r}");
        assert_eq!(img.config.rootfs.diff_ids.len(), 2, "{r}");
        config_digests.push(img.config_digest.clone());
        if r.starts_with("docker-archive:") {
            assert_eq!(img.media_type, DOCKER_MANIFEST);
            assert!(img.manifest_digest.starts_with("sha256:") && img.manifest_digest != skopeo_digest);
        } else {
            assert_eq!(img.media_type, OCI_MANIFEST);
            assert_eq!(img.manifest_digest, skopeo_digest, "{r}");
        }
        assert_eq!(img.index_digest, None);
        let expected_files = ["etc/os-release", "hello.txt"];
        for (i, layer) in img.layers.iter().enumerate() {
            let diff_id = &img.config.rootfs.diff_ids[i];
            assert_eq!(layer.diff_id.as_ref(), Some(diff_id), "{r}");
            assert_eq!(layer.created_by.as_deref(), Some("umoci insert"), "{r}");
            if r.starts_with("docker-archive:") {
                // skopeo writes uncompressed layers: the stored bytes are the diff.
                assert_eq!(&layer.digest, diff_id);
                assert_eq!(layer.media_type, DOCKER_LAYER_TAR);
            }
            let tar = read_layer(source.as_ref(), layer).await.unwrap_or_else(|e| panic!("{r} layer {i}: {e}"));
            assert_eq!(&sha256_digest(&tar), diff_id, "{r} layer {i}");
            assert!(
                tar_names(&tar).iter().any(|n| clean(n) == expected_files[i]),
                "{r} layer {i}: {:?}",
                tar_names(&tar)
            );
        }
    }
    assert!(config_digests.windows(2).all(|w| w[0] == w[1]), "{config_digests:?}");
}

#[tokio::test]
async fn docker_archive_blobs_open_before_resolve_and_manifest_digest_is_stable() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(tmp.path());
    let archive = tmp.path().join("d.tar");
    run(
        "skopeo",
        &["copy", "-q", &format!("oci:{}:t", layout.display()), &format!("docker-archive:{}:app:1", archive.display())],
    );
    let first = DockerArchiveSource::open(&archive, Some("app:1")).unwrap().resolve().await.unwrap();
    // A fresh source has not resolved yet; open_blob must still find the layer.
    let fresh = DockerArchiveSource::open(&archive, Some("docker.io/library/app:1")).unwrap();
    let tar = read_layer(&fresh, &first.layers[1]).await.unwrap();
    assert_eq!(sha256_digest(&tar), first.config.rootfs.diff_ids[1]);
    assert_eq!(fresh.resolve().await.unwrap().manifest_digest, first.manifest_digest);
}

#[tokio::test]
async fn tampered_blobs_are_digest_mismatches() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(tmp.path());
    let img = OciLayoutSource::open_dir(&layout, Some("t"), SourceOptions::default()).unwrap().resolve().await.unwrap();
    let blob = |digest: &str| layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));

    // A layer blob with one flipped byte: resolve still works, the pump catches it.
    let layer_path = blob(&img.layers[0].digest);
    let mut bytes = std::fs::read(&layer_path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&layer_path, &bytes).unwrap();
    // Also as an archive, written by tar(1) with `./` names.
    let archive = tmp.path().join("tampered.tar");
    run("tar", &["-cf", archive.to_str().unwrap(), "-C", layout.to_str().unwrap(), "."]);
    let sources: Vec<Box<dyn ImageSource>> = vec![
        Box::new(OciLayoutSource::open_dir(&layout, Some("t"), SourceOptions::default()).unwrap()),
        Box::new(OciLayoutSource::open_archive(&archive, Some("t"), SourceOptions::default()).unwrap()),
    ];
    for source in &sources {
        let resolved = source.resolve().await.unwrap();
        let err = read_layer(source.as_ref(), &resolved.layers[0]).await.unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        read_layer(source.as_ref(), &resolved.layers[1]).await.unwrap();
    }

    // A tampered config is caught while resolving.
    let config_path = blob(&img.config_digest);
    let mut config = std::fs::read(&config_path).unwrap();
    config[1] ^= 0x01;
    std::fs::write(&config_path, &config).unwrap();
    let err =
        OciLayoutSource::open_dir(&layout, Some("t"), SourceOptions::default()).unwrap().resolve().await.unwrap_err();
    assert!(matches!(&err, ImageError::DigestMismatch { what, .. } if what.contains("config")), "{err}");
}

#[tokio::test]
async fn tags_are_required_when_a_layout_holds_several_images() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(tmp.path());
    run("umoci", &["tag", "--image", &format!("{}:t", layout.display()), "t2"]);

    let err = OciLayoutSource::open_dir(&layout, None, SourceOptions::default()).unwrap().resolve().await.unwrap_err();
    assert!(matches!(err, ImageError::InvalidReference { .. }), "{err}");
    assert!(err.to_string().contains("t, t2"), "{err}");

    let err = OciLayoutSource::open_dir(&layout, Some("nope"), SourceOptions::default())
        .unwrap()
        .resolve()
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("t, t2"), "{err}");

    let img =
        OciLayoutSource::open_dir(&layout, Some("t2"), SourceOptions::default()).unwrap().resolve().await.unwrap();
    assert_eq!(img.layers.len(), 2);
}

#[tokio::test]
async fn compressed_wrong_kind_and_missing_archives_are_clear_errors() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(tmp.path());
    let archive = tmp.path().join("image.tar");
    run(
        "skopeo",
        &["copy", "-q", &format!("oci:{}:t", layout.display()), &format!("oci-archive:{}:t", archive.display())],
    );

    let gz = tmp.path().join("image.tar.gz");
    std::fs::write(&gz, layout_support::gzip(&std::fs::read(&archive).unwrap())).unwrap();
    let err = OciLayoutSource::open_archive(&gz, None, SourceOptions::default()).err().unwrap();
    assert!(matches!(err, ImageError::Unsupported(_)) && err.to_string().contains("decompress it first"), "{err}");
    let err = DockerArchiveSource::open(&gz, None).err().unwrap();
    assert!(err.to_string().contains("gzip-compressed"), "{err}");

    // An OCI archive given as a docker archive says what it is.
    let err = DockerArchiveSource::open(&archive, None).unwrap().resolve().await.unwrap_err();
    assert!(matches!(err, ImageError::Malformed { .. }) && err.to_string().contains("use oci-archive:"), "{err}");
    // The layout directory given as an archive, and the archive as a directory.
    assert!(OciLayoutSource::open_archive(&layout, None, SourceOptions::default()).is_err());
    let err = OciLayoutSource::open_dir(&archive, None, SourceOptions::default()).err().unwrap();
    assert!(matches!(err, ImageError::InvalidReference { .. }), "{err}");

    let missing = tmp.path().join("missing.tar");
    for err in [
        OciLayoutSource::open_archive(&missing, None, SourceOptions::default()).err().unwrap(),
        OciLayoutSource::open_dir(&missing, None, SourceOptions::default()).err().unwrap(),
        DockerArchiveSource::open(&missing, None).err().unwrap(),
    ] {
        assert!(matches!(&err, ImageError::Io { path, .. } if path == missing.to_str().unwrap()), "{err}");
    }
}
