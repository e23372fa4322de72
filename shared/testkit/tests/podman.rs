//! The Podman fixture: a real `podman system service` serving the Docker Engine API, checked
//! with skopeo's `docker-daemon:` transport (an independent Docker API client) and the
//! `podman` command line.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use common::skopeo_json;
use trawl_testkit::{write_docker_archive, BuiltImage, ImageBuilder, LayerBuilder, PodmanService};

fn small_image() -> BuiltImage {
    ImageBuilder::new()
        .layer_with_history(
            LayerBuilder::new().dir("etc/").file("etc/os-release", "ID=ubuntu\nVERSION_ID=\"16.04\"\n", 0o644),
            "ADD rootfs.tar /",
        )
        .layer(LayerBuilder::new().file(
            "var/lib/dpkg/status",
            "Package: libc6\nStatus: install ok installed\n\n",
            0o644,
        ))
        .build()
        .expect("build image")
}

fn load(podman: &PodmanService, image: &BuiltImage, repo_tag: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("image.tar");
    write_docker_archive(&archive, repo_tag, image).unwrap();
    podman.load_docker_archive(&archive).expect("load the archive")
}

/// `GET path` over HTTP/1.0 on TCP; returns the status code.
fn tcp_get_status(port: u16, path: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad response {response}"))
}

#[test]
fn loaded_images_are_served_through_the_docker_api() {
    let podman = PodmanService::start().unwrap();
    assert!(podman.url().starts_with("unix:///") && podman.url().ends_with("/podman.sock"));
    let image = small_image();
    assert_eq!(load(&podman, &image, "ubuntu:16.04"), ["localhost/ubuntu:16.04"]);

    // Podman stores the short name under localhost/ and finds it by the short name too.
    let id = Some(image.config_digest.clone());
    assert_eq!(podman.image_id("ubuntu:16.04").unwrap(), id);
    assert_eq!(podman.image_id("localhost/ubuntu:16.04").unwrap(), id);
    assert_eq!(podman.image_id(&image.config_digest).unwrap(), id);
    assert_eq!(podman.image_id("docker.io/library/ubuntu:16.04").unwrap(), None);
    podman.tag("ubuntu:16.04", "docker.io/library/ubuntu", "16.04").unwrap();
    assert_eq!(podman.image_id("docker.io/library/ubuntu:16.04").unwrap(), id);
    assert_eq!(podman.image_id("ubuntu:18.04").unwrap(), None);

    // An independent Docker API client sees the same image.
    let inspect = skopeo_json(&["inspect", "--daemon-host", &podman.url(), "docker-daemon:localhost/ubuntu:16.04"]);
    let layers: Vec<String> =
        inspect["Layers"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect();
    assert_eq!(layers, image.diff_ids());

    // So does the podman command line on the same private storage.
    let out =
        podman.cli().args(["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    for name in ["localhost/ubuntu:16.04", "docker.io/library/ubuntu:16.04"] {
        assert!(listing.lines().any(|l| l == format!("{name} {}", image.config_digest)), "{listing}");
    }
}

#[test]
fn the_tcp_listener_serves_the_same_storage() {
    let podman = PodmanService::start_tcp().unwrap();
    let port = podman.tcp_port().unwrap();
    assert_eq!(podman.tcp_url(), Some(format!("tcp://127.0.0.1:{port}")));
    assert_eq!(tcp_get_status(port, "/_ping"), 200);
    assert_eq!(tcp_get_status(port, "/images/ubuntu:16.04/json"), 404);
    load(&podman, &small_image(), "ubuntu:16.04");
    assert_eq!(tcp_get_status(port, "/images/ubuntu:16.04/json"), 200);
    assert!(PodmanService::start().unwrap().tcp_url().is_none());
}

#[test]
fn a_broken_archive_is_reported_with_podmans_message() {
    let podman = PodmanService::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("not-an-image.tar");
    std::fs::write(&archive, vec![0u8; 2048]).unwrap();
    let err = podman.load_docker_archive(&archive).unwrap_err();
    assert!(format!("{err:#}").contains("HTTP 500"), "{err:#}");
}

#[test]
fn the_service_dies_with_the_fixture() {
    let podman = PodmanService::start().unwrap();
    let pid = podman.pid().unwrap();
    let socket = podman.socket_path().to_path_buf();
    assert!(socket.exists());
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(podman);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "podman {pid} outlived the fixture");
    assert!(!socket.exists(), "the private directory outlived the fixture");
}
