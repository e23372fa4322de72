//! OCI layouts, OCI archives and docker archives, validated with skopeo and umoci, including
//! what the layers mean once applied (whiteouts, opaque dirs, links).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{layers_of, run_ok, skopeo_json};
use trawl_testkit::{
    write_docker_archive, write_oci_archive, write_oci_layout, BuiltImage, Compression, ImageBuilder, IndexBuilder,
    LayerBuilder, MediaTypes, OCI_INDEX,
};

/// A two-layer image whose second layer deletes and hides parts of the first.
fn layered_image(host_file: &Path) -> BuiltImage {
    let base = LayerBuilder::new()
        .compression(Compression::Gzip)
        .dir("etc/")
        .file("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n", 0o644)
        .file("etc/removed.conf", "gone soon\n", 0o644)
        .dir("usr/")
        .dir("usr/bin/")
        .file("usr/bin/tool", "#!/bin/sh\n", 0o755)
        .hardlink("usr/bin/tool-alias", "usr/bin/tool")
        .dir("usr/lib/")
        .file("usr/lib/libfoo.so.1", "ELF?", 0o644)
        .symlink("usr/lib/libfoo.so", "libfoo.so.1")
        .dir("var/")
        .dir("var/cache/")
        .file("var/cache/old", "stale\n", 0o644)
        .dir("var/lib/")
        .dir("var/lib/dpkg/")
        .file_from_disk("var/lib/dpkg/status", host_file);
    let top = LayerBuilder::new()
        .compression(Compression::None)
        .whiteout("etc/removed.conf")
        .dir("var/cache/")
        .opaque("var/cache")
        .file("var/cache/new", "fresh\n", 0o600);
    ImageBuilder::new()
        .layer_with_history(base, "ADD rootfs.tar.gz /")
        .empty_layer_history("ENV DEBIAN_FRONTEND=noninteractive")
        .layer_with_history(top, "RUN apt-get clean")
        .label("org.example.team", "trawl")
        .build()
        .expect("build image")
}

fn host_status_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("status");
    std::fs::write(&path, "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    path
}

/// Checks an unpacked rootfs against [`layered_image`].
fn assert_rootfs(rootfs: &Path) {
    assert_eq!(std::fs::read_to_string(rootfs.join("etc/os-release")).unwrap(), "ID=debian\nVERSION_ID=\"12\"\n");
    assert!(!rootfs.join("etc/removed.conf").exists(), "whiteout not applied");
    assert!(!rootfs.join("etc/.wh.removed.conf").exists(), "whiteout marker leaked");
    assert!(!rootfs.join("var/cache/old").exists(), "opaque dir did not hide the lower layer");
    assert_eq!(std::fs::read_to_string(rootfs.join("var/cache/new")).unwrap(), "fresh\n");
    assert_eq!(std::fs::symlink_metadata(rootfs.join("var/cache/new")).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_link(rootfs.join("usr/lib/libfoo.so")).unwrap(), Path::new("libfoo.so.1"));
    let tool = std::fs::metadata(rootfs.join("usr/bin/tool")).unwrap();
    let alias = std::fs::metadata(rootfs.join("usr/bin/tool-alias")).unwrap();
    assert_eq!(tool.ino(), alias.ino(), "hard link is not a hard link");
    assert_eq!(tool.mode() & 0o777, 0o755);
    let status = rootfs.join("var/lib/dpkg/status");
    assert!(std::fs::read_to_string(&status).unwrap().starts_with("Package: libc6\n"));
    assert_eq!(std::fs::metadata(&status).unwrap().mode() & 0o777, 0o640, "host file mode kept");
}

#[test]
fn oci_layout_is_read_by_skopeo_and_unpacked_by_umoci() {
    let tmp = tempfile::tempdir().unwrap();
    let image = layered_image(&host_status_file(tmp.path()));
    let other = ImageBuilder::new().layer(LayerBuilder::new().file("x", "y", 0o644)).build().unwrap();
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[("v1", &image), ("other", &other)]).expect("write layout");

    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "v1");
    assert_eq!(index["manifests"][1]["digest"], other.manifest_digest.as_str());
    assert!(layout.join("oci-layout").is_file());
    assert!(layout.join("blobs/sha256").join(image.layers[0].hex()).is_file());

    let reference = format!("oci:{}:v1", layout.display());
    let inspect = skopeo_json(&["inspect", &reference]);
    assert_eq!(inspect["Digest"], image.manifest_digest.as_str());
    assert_eq!(layers_of(&inspect), image.layer_digests());
    assert_eq!(inspect["Labels"]["org.example.team"], "trawl");
    let other_inspect = skopeo_json(&["inspect", &format!("oci:{}:other", layout.display())]);
    assert_eq!(other_inspect["Digest"], other.manifest_digest.as_str());

    // umoci reads the layout independently: history and tags.
    let stat: serde_json::Value =
        serde_json::from_str(&run_ok("umoci", &["stat", "--json", "--image", &format!("{}:v1", layout.display())]))
            .unwrap();
    let history = stat["history"].as_array().expect("history");
    assert_eq!(history.len(), 3);
    assert_eq!(history[0]["created_by"], "ADD rootfs.tar.gz /");
    assert_eq!(history[0]["layer"]["digest"], image.layers[0].digest.as_str());
    assert_eq!(history[1]["empty_layer"], true);
    assert_eq!(history[2]["layer"]["digest"], image.layers[1].digest.as_str());
    let tags = run_ok("umoci", &["ls", "--layout", &layout.display().to_string()]);
    assert_eq!(tags.lines().collect::<Vec<_>>(), ["v1", "other"]);

    // Applying the layers gives the filesystem the builder described.
    let bundle = tmp.path().join("bundle");
    run_ok("umoci", &["unpack", "--image", &format!("{}:v1", layout.display()), &bundle.display().to_string()]);
    assert_rootfs(&bundle.join("rootfs"));
}

#[test]
fn oci_archive_is_read_by_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let image = layered_image(&host_status_file(tmp.path()));
    let archive = tmp.path().join("image.oci.tar");
    write_oci_archive(&archive, &[("v1", &image)]).expect("write archive");

    let inspect = skopeo_json(&["inspect", &format!("oci-archive:{}", archive.display())]);
    assert_eq!(inspect["Digest"], image.manifest_digest.as_str());
    assert_eq!(layers_of(&inspect), image.layer_digests());

    // A full copy re-verifies every blob, then umoci applies the layers.
    let layout = tmp.path().join("copied");
    run_ok(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &format!("oci-archive:{}:v1", archive.display()),
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    let bundle = tmp.path().join("bundle");
    run_ok("umoci", &["unpack", "--image", &format!("{}:v1", layout.display()), &bundle.display().to_string()]);
    assert_rootfs(&bundle.join("rootfs"));
}

#[test]
fn docker_archive_is_read_by_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let image = layered_image(&host_status_file(tmp.path()));
    let archive = tmp.path().join("image.docker.tar");
    write_docker_archive(&archive, "example.com/team/app:1.0", &image).expect("write docker archive");

    // The archive's own index files, as `docker load` reads them.
    let mut files = std::collections::BTreeMap::new();
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        files.insert(path, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["example.com/team/app:1.0"]));
    let config_name = manifest[0]["Config"].as_str().unwrap();
    assert_eq!(files[config_name], image.config);
    let layer_paths = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layer_paths.len(), 2);
    for (path, diff_id) in layer_paths.iter().zip(image.diff_ids()) {
        assert_eq!(trawl_testkit::sha256_digest(&files[path.as_str().unwrap()]), diff_id);
    }
    let repositories: serde_json::Value = serde_json::from_slice(&files["repositories"]).unwrap();
    let top_id = layer_paths[1].as_str().unwrap().trim_end_matches("/layer.tar");
    assert_eq!(repositories, serde_json::json!({ "example.com/team/app": { "1.0": top_id } }));

    // The layers inside are the uncompressed tars, so skopeo sees the diff IDs.
    let inspect = skopeo_json(&["inspect", &format!("docker-archive:{}", archive.display())]);
    assert_eq!(layers_of(&inspect), image.diff_ids());
    assert_eq!(inspect["Architecture"], "amd64");

    // skopeo checks the layers against the config's diff_ids while copying.
    let layout = tmp.path().join("from-docker");
    run_ok(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &format!("docker-archive:{}:example.com/team/app:1.0", archive.display()),
            &format!("oci:{}:imported", layout.display()),
        ],
    );
    let bundle = tmp.path().join("bundle");
    run_ok("umoci", &["unpack", "--image", &format!("{}:imported", layout.display()), &bundle.display().to_string()]);
    assert_rootfs(&bundle.join("rootfs"));
}

#[test]
fn index_in_layout_resolves_per_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let amd64 = ImageBuilder::new().layer(LayerBuilder::new().file("arch", "amd64", 0o644)).build().unwrap();
    let arm64 = ImageBuilder::new()
        .platform("linux", "arm64")
        .layer(LayerBuilder::new().compression(Compression::Zstd).file("arch", "arm64", 0o644))
        .build()
        .unwrap();
    let index = IndexBuilder::new(MediaTypes::Oci).image(amd64.clone()).image(arm64.clone()).build().unwrap();
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, &[("multi", &index)]).unwrap();

    let reference = format!("oci:{}:multi", layout.display());
    let raw: serde_json::Value = serde_json::from_str(&run_ok("skopeo", &["inspect", "--raw", &reference])).unwrap();
    assert_eq!(raw["mediaType"], OCI_INDEX);
    let arm = skopeo_json(&["--override-arch", "arm64", "inspect", &reference]);
    assert_eq!(arm["Architecture"], "arm64");
    assert_eq!(layers_of(&arm), arm64.layer_digests());
    let amd = skopeo_json(&["--override-arch", "amd64", "inspect", &reference]);
    assert_eq!(layers_of(&amd), amd64.layer_digests());
}
