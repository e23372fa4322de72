//! Layer and image builders read back with independent decoders (the `tar`, `flate2` and
//! `zstd` crates), plus the small helpers.

use std::io::Read;

use sha2::{Digest, Sha256};
use trawl_testkit::{
    corpus_dir, free_port, sha256_digest, Blob, Compression, ImageBuilder, LayerBuilder, MediaTypes, DOCKER_CONFIG,
    DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, DOCKER_LAYER_ZSTD, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD,
    OCI_MANIFEST,
};

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Decompresses a layer with the decoder its magic bytes call for.
fn untar_bytes(blob: &Blob) -> Vec<u8> {
    let bytes = blob.bytes().unwrap();
    let mut out = Vec::new();
    match blob.compression {
        Compression::Gzip => {
            assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
            flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).unwrap();
        }
        Compression::Zstd => {
            assert_eq!(&bytes[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
            out = zstd::decode_all(&bytes[..]).unwrap();
        }
        Compression::None => out = bytes.to_vec(),
    }
    out
}

#[derive(Debug, PartialEq)]
struct Seen {
    path: Vec<u8>,
    kind: tar::EntryType,
    link: Option<Vec<u8>>,
    mode: u32,
    data: Vec<u8>,
}

fn entries(tar_bytes: &[u8]) -> Vec<Seen> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path_bytes().into_owned();
            let kind = e.header().entry_type();
            let link = e.link_name_bytes().map(|l| l.into_owned());
            let mode = e.header().mode().unwrap();
            assert_eq!(e.header().mtime().unwrap(), 0);
            assert_eq!(e.header().uid().unwrap(), 0);
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            Seen { path, kind, link, mode, data }
        })
        .collect()
}

#[test]
fn layer_entries_come_back_exactly() {
    let host = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(host.path(), b"from the host\n").unwrap();
    let long = format!("usr/share/{}/file.txt", "very-long-directory-name".repeat(6));
    let long_target = format!("../{}", "t".repeat(120));
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let blob = LayerBuilder::new()
            .compression(compression)
            .dir("etc/")
            .file("etc/hosts", "127.0.0.1 localhost\n", 0o644)
            .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
            .hardlink("etc/hosts.bak", "etc/hosts")
            .whiteout("etc/passwd")
            .whiteout("top-level")
            .opaque("var/lib/apt")
            .file(&long, "long", 0o600)
            .symlink("link-with-long-target", &long_target)
            .file("../../escape", "evil", 0o644)
            .file("/abs/path", "abs", 0o644)
            .file_from_disk("host/file", host.path())
            .file_from_reader("gen/zeros", 5000, 0o444, std::io::repeat(0))
            .build()
            .unwrap();

        assert_eq!(blob.media_type, compression.oci_media_type());
        assert_eq!(blob.digest, sha(&blob.bytes().unwrap()), "digest covers the stored bytes");
        assert_eq!(blob.size, blob.bytes().unwrap().len() as u64);
        let tar_bytes = untar_bytes(&blob);
        assert_eq!(blob.diff_id, sha(&tar_bytes), "diff_id covers the uncompressed tar");
        assert_eq!(blob.diff_size, tar_bytes.len() as u64);
        let mut via_reader = Vec::new();
        blob.uncompressed_reader().unwrap().read_to_end(&mut via_reader).unwrap();
        assert_eq!(via_reader, tar_bytes);

        let seen = entries(&tar_bytes);
        let paths: Vec<String> = seen.iter().map(|s| String::from_utf8_lossy(&s.path).into_owned()).collect();
        assert_eq!(
            paths,
            [
                "etc/",
                "etc/hosts",
                "etc/localtime",
                "etc/hosts.bak",
                "etc/.wh.passwd",
                ".wh.top-level",
                "var/lib/apt/.wh..wh..opq",
                long.as_str(),
                "link-with-long-target",
                "../../escape",
                "/abs/path",
                "host/file",
                "gen/zeros",
            ]
        );
        assert_eq!(seen[0].kind, tar::EntryType::Directory);
        assert_eq!(seen[1].data, b"127.0.0.1 localhost\n");
        assert_eq!(seen[2].kind, tar::EntryType::Symlink);
        assert_eq!(seen[2].link.as_deref(), Some(&b"/usr/share/zoneinfo/UTC"[..]));
        assert_eq!(seen[3].kind, tar::EntryType::Link);
        assert_eq!(seen[3].link.as_deref(), Some(&b"etc/hosts"[..]));
        assert!(seen[4].data.is_empty() && seen[4].kind == tar::EntryType::Regular);
        assert_eq!(seen[7].mode, 0o600);
        assert_eq!(seen[8].link.as_deref(), Some(long_target.as_bytes()));
        assert_eq!(seen[11].data, b"from the host\n");
        assert_eq!(seen[12].data, vec![0u8; 5000]);
        assert_eq!(seen[12].mode, 0o444);
    }
}

#[test]
fn layers_are_reproducible() {
    let build = |c| LayerBuilder::new().compression(c).file("a", "same", 0o644).build().unwrap();
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        assert_eq!(build(c).digest, build(c).digest);
    }
    // Same content, different compression: different digest, same diff_id.
    assert_ne!(build(Compression::Gzip).digest, build(Compression::Zstd).digest);
    assert_eq!(build(Compression::Gzip).diff_id, build(Compression::Zstd).diff_id);
    assert_eq!(build(Compression::None).digest, build(Compression::None).diff_id);
}

#[test]
fn short_reader_is_an_error() {
    let err = LayerBuilder::new().file_from_reader("short", 100, 0o644, &b"only ten b"[..]).build().unwrap_err();
    assert!(format!("{err:#}").contains("short"), "{err:#}");
}

#[test]
fn image_config_and_manifest_agree() {
    let shared_base = LayerBuilder::new().file("etc/os-release", "ID=alpine\n", 0o644).build().unwrap();
    let image = ImageBuilder::new()
        .platform("linux", "arm64")
        .variant("v8")
        .blob_layer(shared_base.clone(), Some("ADD base /"))
        .empty_layer_history("ENV A=1")
        .layer(LayerBuilder::new().compression(Compression::Zstd).file("app", "x", 0o755))
        .env("A=1")
        .cmd(&["/app"])
        .annotation("org.opencontainers.image.source", "https://example.invalid/app")
        .build()
        .unwrap();

    let config = image.config_json();
    assert_eq!(image.config_digest, sha256_digest(&image.config));
    assert_eq!(image.manifest_digest, sha256_digest(&image.manifest));
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["variant"], "v8");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(image.diff_ids()));
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history.iter().filter(|h| h["empty_layer"] != true).count(), image.layers.len());
    assert_eq!(history[0]["created_by"], "ADD base /");
    assert_eq!(history[1]["empty_layer"], true);
    assert!(history[2].get("created_by").is_none());
    assert!(config["config"]["Env"].as_array().unwrap().contains(&"A=1".into()));
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/app"]));

    let manifest = image.manifest_json();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], OCI_CONFIG);
    assert_eq!(manifest["config"]["digest"], image.config_digest.as_str());
    assert_eq!(manifest["config"]["size"], image.config.len());
    assert_eq!(manifest["layers"][0]["digest"], shared_base.digest.as_str());
    assert_eq!(manifest["layers"][0]["mediaType"], OCI_LAYER_GZIP);
    assert_eq!(manifest["layers"][1]["mediaType"], OCI_LAYER_ZSTD);
    assert_eq!(manifest["layers"][1]["size"], image.layers[1].size);
    assert_eq!(manifest["annotations"]["org.opencontainers.image.source"], "https://example.invalid/app");
}

#[test]
fn docker_media_types_follow_the_image() {
    let layers = [Compression::Gzip, Compression::Zstd, Compression::None];
    let mut builder = ImageBuilder::new().media_types(MediaTypes::DockerV2);
    for c in layers {
        builder = builder.layer(LayerBuilder::new().compression(c).file("f", "x", 0o644));
    }
    let image = builder.build().unwrap();
    assert_eq!(image.config_media_type, DOCKER_CONFIG);
    let types: Vec<&str> = image.layers.iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(types, [DOCKER_LAYER_GZIP, DOCKER_LAYER_ZSTD, DOCKER_LAYER_TAR]);
    assert!(ImageBuilder::new().media_types(MediaTypes::DockerV2).annotation("a", "b").build().is_err());

    // Custom layer media types are left alone; standard ones are mapped back for OCI.
    let custom = Blob::from_bytes("application/vnd.example.sbom+json", &b"{}"[..]);
    let oci = ImageBuilder::new().blob_layer(custom, None).blob_layer(image.layers[2].clone(), None).build().unwrap();
    assert_eq!(oci.layers[0].media_type, "application/vnd.example.sbom+json");
    assert_eq!(oci.layers[1].media_type, OCI_LAYER_TAR);
}

#[test]
fn images_are_reproducible() {
    let build = || {
        ImageBuilder::new()
            .layer_with_history(LayerBuilder::new().file("a", "b", 0o644), "x")
            .label("k", "v")
            .build()
            .unwrap()
    };
    assert_eq!(build().manifest_digest, build().manifest_digest);
    let later = ImageBuilder::new()
        .created("2025-06-01T00:00:00Z")
        .layer_with_history(LayerBuilder::new().file("a", "b", 0o644), "x")
        .label("k", "v")
        .build()
        .unwrap();
    assert_ne!(later.manifest_digest, build().manifest_digest);
    assert_eq!(later.layer_digests(), build().layer_digests());
}

#[test]
fn free_port_is_bindable() {
    let port = free_port().unwrap();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port is free");
}

#[test]
fn corpus_dir_points_at_the_shared_corpus() {
    let expected = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    match corpus_dir() {
        Some(dir) => {
            assert!(dir.is_dir());
            assert!(dir.ends_with("shared/corpus"), "{}", dir.display());
            assert_eq!(dir, expected.canonicalize().unwrap());
        }
        None => assert!(!expected.is_dir(), "corpus exists at {} but was not found", expected.display()),
    }
}

#[test]
fn file_backed_layers_match_in_memory_ones() {
    let dir = tempfile::tempdir().unwrap();
    let layer = || LayerBuilder::new().compression(Compression::Zstd).file("etc/motd", "hi\n", 0o644);
    let in_memory = layer().build().unwrap();
    let path = dir.path().join("layer.tar.zst");
    let on_disk = layer().build_to_file(&path).unwrap();
    assert!(matches!(on_disk.data, trawl_testkit::BlobData::File(_)));
    assert_eq!(on_disk.digest, in_memory.digest);
    assert_eq!(on_disk.diff_id, in_memory.diff_id);
    assert_eq!(std::fs::read(&path).unwrap(), in_memory.bytes().unwrap());

    // Wrapping an existing file recomputes the same identity.
    let wrapped = Blob::from_file(OCI_LAYER_ZSTD, &path, Compression::Zstd).unwrap();
    assert_eq!((wrapped.digest, wrapped.diff_id, wrapped.size), (in_memory.digest, in_memory.diff_id, in_memory.size));
}
