//! NeuVector's standalone-scanner environment through the real binary:
//! the guide's own `docker run` variables (against Podman's Docker API, the
//! stand-in for a mounted docker.sock), registry variables with credentials,
//! layered results, and the cluster join publishing results to a real
//! nats-server.

mod common;

use common::*;
use futures::StreamExt;
use std::path::Path;
use trawl_testkit::{write_docker_archive, NatsServer, PodmanService, Registry};

const UNAUTHORIZED: i32 = 4;
const UNREACHABLE: i32 = 5;
const RESULTS_FAILED: i32 = 9;

/// Loads the fixture into a fresh Podman service as `ubuntu:16.04`.
fn podman_with_fixture(dir: &Path) -> (PodmanService, trawl_testkit::BuiltImage) {
    let podman = PodmanService::start().expect("start podman system service (run scripts/setup)");
    let image = fixture_image();
    let archive = dir.join("ubuntu.tar");
    write_docker_archive(&archive, "ubuntu:16.04", &image).unwrap();
    podman.load_docker_archive(&archive).unwrap();
    (podman, image)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn the_guides_command_scans_a_local_image_into_the_results_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (podman, image) = podman_with_fixture(dir.path());
    let results = dir.path().join("var-neuvector");
    // docker run --rm -e SCANNER_REPOSITORY=ubuntu -e SCANNER_TAG=16.04 -e SCANNER_ON_DEMAND=true
    //   -v /var/run/docker.sock:/var/run/docker.sock -v /var/neuvector:/var/neuvector neuvector/scanner
    // The two volumes become SCANNER_DOCKER_URL and TRAWL_RESULTS_DIR here; the image's baked-in DB is TRAWL_DB.
    let out = scanner_command()
        .env("SCANNER_REPOSITORY", "ubuntu")
        .env("SCANNER_TAG", "16.04")
        .env("SCANNER_ON_DEMAND", "true")
        .env("SCANNER_DOCKER_URL", podman.url())
        .env("TRAWL_RESULTS_DIR", &results)
        .env("TRAWL_DB", small_db(dir.path()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("docker:ubuntu:16.04"), "{table}");
    assert!(table.contains("Total: 3 vulnerabilities"), "{table}");
    let nv = read_json(&results.join("scan_result.json"));
    let report = &nv["report"];
    assert_eq!(report["repository"], "ubuntu");
    assert_eq!(report["tag"], "16.04");
    assert_eq!(report["image_id"].as_str().unwrap(), image.config_digest.trim_start_matches("sha256:"));
    assert_eq!(report["vulnerabilities"].as_array().unwrap().len(), 3);
    assert_eq!(report["labels"]["org.opencontainers.image.source"], "https://example.com/team/app");
    let written = std::fs::read_to_string(results.join("scan_result.json")).unwrap();
    assert!(!written.contains(FIXTURE_SECRET) && !table.contains(FIXTURE_SECRET), "image Env leaked into a report");
}

#[test]
fn docker_sources_read_podman_and_a_missing_socket_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (podman, image) = podman_with_fixture(dir.path());
    let out = run_scanner(&["sbom", "--docker-url", &podman.url(), "docker:ubuntu:16.04"]);
    let report = json_of(&out);
    assert_eq!(report["image"]["reference"], "docker:ubuntu:16.04");
    assert_eq!(report["image"]["source"], "docker-daemon");
    assert_eq!(report["image"]["configDigest"], image.config_digest.as_str());
    assert_eq!(report["packages"].as_array().unwrap().len(), 4);

    let missing = dir.path().join("no-such.sock");
    let out = scanner_command()
        .args(["sbom", "docker:ubuntu:16.04"])
        .env("SCANNER_DOCKER_URL", format!("unix://{}", missing.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(UNREACHABLE), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(&missing.display().to_string()), "{stderr}");
    assert!(errors[0].contains("SCANNER_DOCKER_URL"), "the error says what to do: {stderr}");
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn registry_variables_with_credentials_scan_and_never_echo_the_password() {
    let registry = Registry::start_with_basic_auth("ci", "s3cr3t-pw").unwrap();
    let (_, _reference) = push_fixture(&registry, "team/app", "1.4").await;
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    let results = dir.path().join("results");
    let run = |password: &str| {
        scanner_command()
            .env("SCANNER_REGISTRY", format!("http://{}/", registry.host()))
            .env("SCANNER_REPOSITORY", "team/app")
            .env("SCANNER_TAG", "1.4")
            .env("SCANNER_REGISTRY_USERNAME", "ci")
            .env("SCANNER_REGISTRY_PASSWORD", password)
            .env("SCANNER_ON_DEMAND", "true")
            .env("TRAWL_RESULTS_DIR", &results)
            .env("TRAWL_DB", &db)
            .output()
            .unwrap()
    };
    let out = run("s3cr3t-pw");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let written = std::fs::read_to_string(results.join("scan_result.json")).unwrap();
    let nv: serde_json::Value = serde_json::from_str(&written).unwrap();
    // NeuVector reports the registry as a URL.
    let reported = nv["report"]["registry"].as_str().unwrap();
    assert!(reported.trim_end_matches('/').ends_with(&registry.host()), "{reported}");
    assert_eq!(nv["report"]["repository"], "team/app");
    for text in [String::from_utf8_lossy(&out.stdout).into_owned(), stderr_of(&out), written] {
        assert!(!text.contains("s3cr3t-pw"), "the password leaked: {text}");
    }

    let out = run("wrong-pw");
    assert_eq!(out.status.code(), Some(UNAUTHORIZED), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("wrong-pw"));
}

#[tokio::test]
async fn scan_layers_groups_findings_by_the_layer_that_added_them() {
    let registry = registry();
    let (image, reference) = push_fixture(&registry, "app/layers", "v1").await;
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    let scan = |value: &str| {
        scanner_command()
            .args(["scan", "--plain-http", "--format", "json", &reference])
            .env("TRAWL_DB", &db)
            .env("SCANNER_SCAN_LAYERS", value)
            .output()
            .unwrap()
    };
    let report = json_of(&scan("true"));
    let layers = report["layers"].as_array().expect("layers with SCANNER_SCAN_LAYERS=true");
    assert_eq!(layers.len(), 2);
    let ids = |l: &serde_json::Value| {
        let mut v: Vec<String> =
            l["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(layers[0]["digest"].as_str(), Some(image.layers[0].digest.as_str()));
    assert_eq!(ids(&layers[0]), ["CVE-2099-0001", "CVE-2099-0003"]);
    assert_eq!(layers[1]["createdBy"], PIP_INSTALL);
    assert_eq!(ids(&layers[1]), ["CVE-2099-0002"]);

    assert!(json_of(&scan("false")).get("layers").is_none(), "SCANNER_SCAN_LAYERS=false means no layers");

    // The table shows each layer with its command.
    let out = scanner_command()
        .args(["scan", "--plain-http", "--scan-layers", &reference])
        .env("TRAWL_DB", &db)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("pip install requests==2.25.1"), "{table}");
}

#[tokio::test]
async fn cluster_join_publishes_the_result_to_the_results_stream() {
    let registry = registry();
    let (image, reference) = push_fixture(&registry, "app/joined", "v1").await;
    let nats = NatsServer::start().unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.create_stream(trawl_protocol::results_stream_config().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    let scan = |port: u16| {
        scanner_command()
            .args(["scan", "--plain-http", "--format", "json", &reference])
            .env("TRAWL_DB", &db)
            .env("CLUSTER_JOIN_ADDR", "127.0.0.1")
            .env("CLUSTER_JOIN_PORT", port.to_string())
            .env("CLUSTER_ADVERTISED_ADDR", "scanner-7.example:18402")
            .output()
            .unwrap()
    };
    let out = scan(nats.port());
    let printed = json_of(&out);

    // The stream holds exactly one result, on the image's subject, and it is the report that was printed.
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("check".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch =
        consumer.fetch().max_messages(10).expires(std::time::Duration::from_secs(2)).messages().await.unwrap();
    let msg = batch.next().await.expect("one result").unwrap();
    assert!(batch.next().await.is_none(), "exactly one result");
    let digest_hex = image.manifest_digest.trim_start_matches("sha256:");
    assert_eq!(msg.subject.as_str(), format!("trawl.results.image.{digest_hex}"));
    let result = trawl_protocol::ScanResult::decode(&msg.payload).unwrap();
    assert_eq!(result.scanner.advertised_addr.as_deref(), Some("scanner-7.example:18402"));
    assert_eq!(result.scanner.mode, "standalone");
    assert_eq!(result.report.as_ref().unwrap().findings.len(), 3);
    assert_eq!(serde_json::to_value(&result.report.as_ref().unwrap().findings).unwrap(), printed["findings"]);
    msg.ack().await.unwrap();

    // No stream captures the subject: the run fails with exit 9 after printing, and says why.
    js.delete_stream(trawl_protocol::RESULTS_STREAM).await.unwrap();
    let out = scan(nats.port());
    assert_eq!(out.status.code(), Some(RESULTS_FAILED), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("no results stream"), "{}", stderr_of(&out));
    assert!(!out.stdout.is_empty(), "the report is still printed");

    // Nobody listening at the join address.
    let out = scan(trawl_testkit::free_port().unwrap());
    assert_eq!(out.status.code(), Some(RESULTS_FAILED));
    assert!(
        stderr_of(&out).contains("cannot connect to the cluster's NATS server at 127.0.0.1:"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_bare_invocation_with_nothing_to_do_is_a_usage_error() {
    let out = scanner_command().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("SCANNER_REPOSITORY"), "{}", stderr_of(&out));
    // An empty repository is named as the problem.
    let out = scanner_command().env("SCANNER_ON_DEMAND", "true").env("SCANNER_REPOSITORY", " ").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("SCANNER_REPOSITORY is empty"), "{}", stderr_of(&out));
}

#[test]
fn a_results_dir_that_cannot_be_written_is_exit_9_after_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    trawl_testkit::write_oci_layout(&layout, &[("v1", &fixture_image())]).unwrap();
    let not_a_dir = dir.path().join("plain-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let out = scanner_command()
        .args(["scan", "--results-dir"])
        .arg(&not_a_dir)
        .arg(format!("oci:{}:v1", layout.display()))
        .env("TRAWL_DB", small_db(dir.path()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(RESULTS_FAILED), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    assert!(stderr.contains("writing results to") && stderr.contains("TRAWL_RESULTS_DIR"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Total: 3 vulnerabilities"), "the report is printed first");
}
