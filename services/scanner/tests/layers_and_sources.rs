//! The layer walk against a real registry: whiteouts, opaque directories,
//! replaced package databases and per-layer attribution; and the same image
//! read through every source kind.

mod common;

use common::*;
use trawl_catalog::PackageType;
use trawl_testkit::{
    push, write_docker_archive, write_oci_archive, write_oci_layout, BuiltImage, Compression, ImageBuilder,
    LayerBuilder, MediaTypes,
};

/// Three layers exercising every stacking rule.
fn layered_image(media: MediaTypes) -> BuiltImage {
    let site = "usr/lib/python3/dist-packages";
    let base = debian_base(&[
        ("libc6", "2.36-9+deb12u3", Some("glibc")),
        ("libssl3", "3.0.11-1~deb12u1", Some("openssl")),
        ("oldpkg", "1.0-1", None),
    ])
    .file(format!("{site}/foo-1.0.dist-info/METADATA"), python_metadata("foo", "1.0"), 0o644)
    .file("opt/old/lib/bar-2.0.dist-info/METADATA", python_metadata("bar", "2.0"), 0o644)
    .file("app/node_modules/leftpad/package.json", npm_package_json("leftpad", "1.0.0"), 0o644);
    // Layer 2 rewrites the dpkg database (an upgrade and a removal), deletes
    // a directory and makes node_modules opaque.
    let upgrade = LayerBuilder::new()
        .compression(Compression::Zstd)
        .file(
            "var/lib/dpkg/status",
            dpkg_status(&[
                ("libc6", "2.36-9+deb12u3", Some("glibc")),
                ("libssl3", "3.0.13-1~deb12u1", Some("openssl")),
                ("newpkg", "2.0-1", None),
            ]),
            0o644,
        )
        .whiteout("opt/old")
        .opaque("app/node_modules")
        .file("app/node_modules/rightpad/package.json", npm_package_json("rightpad", "2.0.0"), 0o644);
    // Layer 3 deletes one file, leaves its neighbours, and is uncompressed.
    let cleanup = LayerBuilder::new()
        .compression(Compression::None)
        .whiteout(format!("{site}/foo-1.0.dist-info"))
        .file(format!("{site}/baz-3.0.dist-info/METADATA"), python_metadata("baz", "3.0"), 0o644);
    ImageBuilder::new()
        .media_types(media)
        .layer_with_history(base, "ADD rootfs.tar /")
        .layer_with_history(upgrade, "RUN apt-get upgrade")
        .empty_layer_history("ENV A=b")
        .layer_with_history(cleanup, "RUN pip uninstall foo")
        .build()
        .expect("build image")
}

fn expected_triples() -> Vec<(PackageType, String, String)> {
    let mut v = vec![
        (PackageType::Deb, "libc6".to_string(), "2.36-9+deb12u3".to_string()),
        (PackageType::Deb, "libssl3".into(), "3.0.13-1~deb12u1".into()),
        (PackageType::Deb, "newpkg".into(), "2.0-1".into()),
        (PackageType::Python, "baz".into(), "3.0".into()),
        (PackageType::Npm, "rightpad".into(), "2.0.0".into()),
    ];
    v.sort();
    v
}

#[tokio::test]
async fn whiteouts_opaque_dirs_and_replaced_databases_follow_the_oci_spec() {
    let registry = registry();
    let image = layered_image(MediaTypes::Oci);
    push(&registry, "test/layered", "v1", &image, None).await.unwrap();
    let analysis = analyze(&format!("{}/test/layered:v1", registry.host()), plain_http_options()).await.unwrap();
    let inv = &analysis.inventory;
    assert_eq!(triples(inv), expected_triples());

    // Distro through the etc/os-release symlink; ecosystems and purls follow it.
    assert_eq!(inv.distro.as_ref().unwrap().id, "debian");
    let libssl = package(inv, "libssl3");
    assert_eq!(libssl.ecosystem, "Debian:12");
    assert_eq!(libssl.source_name.as_deref(), Some("openssl"));
    assert_eq!(libssl.advisory_name(), "openssl");

    // Attribution: unchanged packages keep the layer that introduced them.
    let layers = image.layer_digests();
    assert_eq!(package(inv, "libc6").layer.as_deref(), Some(layers[0].as_str()));
    assert_eq!(libssl.layer.as_deref(), Some(layers[1].as_str()));
    assert_eq!(package(inv, "newpkg").layer.as_deref(), Some(layers[1].as_str()));
    assert_eq!(package(inv, "baz").layer.as_deref(), Some(layers[2].as_str()));

    // Identity and history.
    assert_eq!(analysis.identity.manifest_digest.as_deref(), Some(image.manifest_digest.as_str()));
    assert_eq!(analysis.identity.config_digest.as_deref(), Some(image.config_digest.as_str()));
    let commands: Vec<_> = analysis.identity.layers.iter().map(|l| l.created_by.clone().unwrap_or_default()).collect();
    assert_eq!(commands, vec!["ADD rootfs.tar /", "RUN apt-get upgrade", "RUN pip uninstall foo"]);
    assert!(inv.issues.is_empty(), "{:?}", inv.issues);
}

#[tokio::test]
async fn docker_v2_media_types_and_multi_platform_indexes() {
    let registry = registry();
    let amd = layered_image(MediaTypes::DockerV2);
    let arm = ImageBuilder::new()
        .media_types(MediaTypes::DockerV2)
        .platform("linux", "arm64")
        .variant("v8")
        .layer(debian_base(&[("arm-only", "1", None)]))
        .build()
        .unwrap();
    let index = trawl_testkit::IndexBuilder::new(MediaTypes::DockerV2).image(amd.clone()).image(arm).build().unwrap();
    let index_digest = push(&registry, "test/multi", "latest", &index, None).await.unwrap();
    let reference = format!("{}/test/multi:latest", registry.host());

    let analysis = analyze(&reference, plain_http_options()).await.unwrap();
    assert_eq!(triples(&analysis.inventory), expected_triples());
    assert_eq!(analysis.identity.index_digest.as_deref(), Some(index_digest.as_str()));
    assert_eq!(analysis.identity.manifest_digest.as_deref(), Some(amd.manifest_digest.as_str()));

    let mut options = plain_http_options();
    options.source.platform = trawl_image::Platform::parse("linux/arm64").unwrap();
    let arm_analysis = analyze(&reference, options).await.unwrap();
    assert_eq!(package(&arm_analysis.inventory, "arm-only").version, "1");

    let mut options = plain_http_options();
    options.source.platform = trawl_image::Platform::parse("linux/s390x").unwrap();
    let err = analyze(&reference, options).await.unwrap_err().to_string();
    assert!(err.contains("linux/amd64") && err.contains("linux/arm64/v8"), "{err}");

    // Pinning the platform manifest by digest works as well.
    let by_digest = format!("{}/test/multi@{}", registry.host(), amd.manifest_digest);
    assert_eq!(triples(&analyze(&by_digest, plain_http_options()).await.unwrap().inventory), expected_triples());
}

#[tokio::test]
async fn every_source_kind_yields_the_same_inventory() {
    let image = layered_image(MediaTypes::Oci);
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    write_oci_layout(&layout, &[("v1", &image)]).unwrap();
    let archive = dir.path().join("image.oci.tar");
    write_oci_archive(&archive, &[("v1", &image)]).unwrap();
    let docker = dir.path().join("image.docker.tar");
    write_docker_archive(&docker, "test/layered:v1", &image).unwrap();

    for reference in [
        format!("oci:{}:v1", layout.display()),
        format!("oci:{}", layout.display()),
        format!("oci-archive:{}:v1", archive.display()),
        format!("docker-archive:{}", docker.display()),
        format!("docker-archive:{}:test/layered:v1", docker.display()),
    ] {
        let analysis = analyze(&reference, Default::default()).await.unwrap_or_else(|e| panic!("{reference}: {e}"));
        assert_eq!(triples(&analysis.inventory), expected_triples(), "{reference}");
        assert_eq!(analysis.identity.config_digest.as_deref(), Some(image.config_digest.as_str()), "{reference}");
    }

    // dir: a root filesystem, as the final layer stack would look on disk.
    let root = dir.path().join("rootfs");
    let site = root.join("usr/lib/python3/dist-packages/baz-3.0.dist-info");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("METADATA"), python_metadata("baz", "3.0")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::write(
        root.join("var/lib/dpkg/status"),
        dpkg_status(&[
            ("libc6", "2.36-9+deb12u3", Some("glibc")),
            ("libssl3", "3.0.13-1~deb12u1", Some("openssl")),
            ("newpkg", "2.0-1", None),
        ]),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("app/node_modules/rightpad")).unwrap();
    std::fs::write(root.join("app/node_modules/rightpad/package.json"), npm_package_json("rightpad", "2.0.0")).unwrap();
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("usr/lib/os-release"), DEBIAN_OS_RELEASE).unwrap();
    std::os::unix::fs::symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
    let analysis = analyze(&format!("dir:{}", root.display()), Default::default()).await.unwrap();
    assert_eq!(triples(&analysis.inventory), expected_triples());
    assert_eq!(analysis.inventory.distro.unwrap().id, "debian");
}
