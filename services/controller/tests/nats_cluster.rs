//! The production NATS topology on loopback: three nats-servers started from
//! `nats/nats-cluster.conf` (the file the production overlay mounts; only
//! ports, routes and store directories remapped), the controller creating
//! every stream at three replicas as `TRAWL_STREAM_REPLICAS=3` asks, and
//! scans running through it — before and after the node leading the task
//! stream is SIGKILLed, with no result lost and earlier results still served.

mod common;

use common::{api_get, api_send, push_numbered, stream_counts, tail, write_db, TOKEN};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use trawl_protocol::definitions::STREAMS;
use trawl_protocol::TASKS_STREAM;
use trawl_testkit::{workspace_binary, NatsCluster, Registry, ServiceProcess};

const PASSWORDS: &[(&str, &str)] = &[
    ("TRAWL_NATS_SCANNER_PASSWORD", "scanner-cluster-pw"),
    ("TRAWL_NATS_CONTROLLER_PASSWORD", "controller-cluster-pw"),
    ("TRAWL_NATS_UPDATER_PASSWORD", "updater-cluster-pw"),
    ("TRAWL_NATS_ADMIN_PASSWORD", "admin-cluster-pw"),
    ("TRAWL_NATS_SYSTEM_PASSWORD", "system-cluster-pw"),
];

fn password(user: &str) -> &'static str {
    let var = format!("TRAWL_NATS_{}_PASSWORD", user.to_uppercase());
    PASSWORDS.iter().find(|(v, _)| *v == var).map(|(_, p)| *p).unwrap()
}

fn cluster_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../nats/nats-cluster.conf")
}

/// Fetches `/api/v1/...` until the controller answers 200 (it may answer 5xx
/// while JetStream elects new leaders), and says how long that took.
async fn until_ok(what: &str, timeout: Duration, mut call: impl AsyncFnMut() -> (u16, Value)) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let (code, body) = call().await;
        if code == 200 {
            return (body, started.elapsed());
        }
        assert!(started.elapsed() < timeout, "{what}: still {code} after {timeout:?}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until registry `local` has `total` images, all scanned and none queued.
async fn wait_scanned(http: &reqwest::Client, api: &str, total: u64, logs: impl Fn() -> String) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, status) = api_get(http, api, "/api/v1/registries/local").await;
        if status["images_total"] == total && status["queued"] == 0 && status["scanned"] == total {
            return status;
        }
        assert!(Instant::now() < deadline, "registry did not settle at {total} scanned: {status}\n{}", logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stack_logs(controller: &ServiceProcess, scanners: &[ServiceProcess]) -> String {
    let mut out = format!("--- controller\n{}\n", tail(&controller.log()));
    for (i, s) in scanners.iter().enumerate() {
        out.push_str(&format!("--- scanner {i}\n{}\n", tail(&s.log())));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_cluster_replicates_every_stream_and_scans_through_a_node_failure() {
    let mut cluster = NatsCluster::start(&cluster_config(), 3, "trawl-nats", PASSWORDS).unwrap();
    let registry = Registry::start().unwrap();
    let pushed_before = push_numbered(&registry, 20, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trawl.db");
    write_db(&db);

    // The controller logs in as `controller`, the scanners as `scanner`, each
    // given every node so that the client fails over, as in the pods.
    let port = trawl_testkit::free_port().unwrap();
    let api = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(workspace_binary("trawl-controller").unwrap());
    cmd.args([
        "--nats",
        &cluster.urls_as("controller", password("controller")),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .env("TRAWL_STREAM_REPLICAS", "3")
    .env("TRAWL_API_TOKEN", TOKEN)
    .env("TRAWL_LOG", "info,async_nats=warn");
    let mut controller = ServiceProcess::spawn("trawl-controller", cmd, &dir.path().join("controller.log")).unwrap();
    controller.wait_http_ok(([127, 0, 0, 1], port).into(), "/readyz").unwrap();
    let mut scanners = Vec::new();
    for i in 0..2 {
        let mut cmd = Command::new(workspace_binary("trawl-scanner").unwrap());
        cmd.args(["worker", "--nats", &cluster.urls_as("scanner", password("scanner")), "--db"])
            .arg(&db)
            .args(["--id", &format!("scanner-{i}"), "--concurrency", "2"])
            .env("TRAWL_LOG", "info,async_nats=warn");
        scanners
            .push(ServiceProcess::spawn("trawl-scanner", cmd, &dir.path().join(format!("scanner-{i}.log"))).unwrap());
    }
    let logs = || stack_logs(&controller, &scanners);

    // Every stream and bucket of nats/ has three replicas, all current.
    let admin = async_nats::ConnectOptions::with_user_and_password("admin".into(), password("admin").into())
        .connect(
            (0..cluster.size()).map(|i| cluster.url(i).parse::<async_nats::ServerAddr>().unwrap()).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let js = async_nats::jetstream::new(admin);
    for (name, _) in STREAMS {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = js.get_stream(name).await.unwrap().info().await.unwrap().clone();
            assert_eq!(info.config.num_replicas, 3, "{name}");
            let placement = info.cluster.clone().unwrap();
            let current = placement.replicas.iter().filter(|p| p.current && !p.offline).count();
            if placement.leader.is_some() && placement.replicas.len() == 2 && current == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "{name} never had a leader and two current peers: {placement:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // A scan through the cluster.
    let http = reqwest::Client::new();
    let registry_body = json!({"name": "local", "url": format!("http://{}", registry.host()), "insecure": true});
    let (code, answer) = api_send(&http, &api, "POST", "/api/v1/registries", Some(registry_body)).await;
    assert_eq!(code, 201, "{answer}");
    let (code, crawl) = api_send(&http, &api, "POST", "/api/v1/registries/local/scan?wait=true", None).await;
    assert_eq!((code, crawl["queued"].as_u64()), (200, Some(20)), "{crawl}");
    wait_scanned(&http, &api, 20, &logs).await;

    // SIGKILL the node that leads the task stream (the one the queue depends on).
    let leader =
        js.get_stream(TASKS_STREAM).await.unwrap().info().await.unwrap().cluster.clone().unwrap().leader.unwrap();
    let victim = cluster.index_of(&leader).unwrap();
    cluster.kill(victim);
    let killed_at = Instant::now();

    // More images, crawled and scanned by the two surviving nodes. The crawl is
    // retried while the controller reports JetStream errors during the election.
    let more: Vec<_> = (20..30).map(common::numbered_image).collect();
    for (n, image) in more.iter().enumerate() {
        trawl_testkit::push(&registry, "team-09/app", &format!("v{n}"), image, None).await.unwrap();
    }
    let (crawl, _) = until_ok("crawl after the node failure", Duration::from_secs(60), async || {
        let (code, body) = api_send(&http, &api, "POST", "/api/v1/registries/local/scan?wait=true", None).await;
        let clean = body["errors"] == json!([]);
        (if code == 200 && clean { 200 } else { code.max(500) }, body)
    })
    .await;
    assert_eq!(crawl["images"], 30, "{crawl}");
    let status = wait_scanned(&http, &api, 30, &logs).await;
    assert_eq!(status["failed"], 0, "{status}");
    let recovered = killed_at.elapsed();
    eprintln!("failover: node {leader} killed; 10 new images crawled and scanned {recovered:.1?} later");

    // Results stored before the failure are still served, each once.
    let (images, _) = until_ok("image list", Duration::from_secs(30), async || {
        api_get(&http, &api, "/api/v1/images?registry=local").await
    })
    .await;
    let images = images.as_array().unwrap();
    assert_eq!(images.len(), 30);
    for (_, _, digest) in &pushed_before {
        let record = images.iter().find(|i| i["digest"] == digest.as_str()).unwrap();
        assert_eq!((record["status"].as_str(), record["results"].as_u64()), (Some("scanned"), Some(1)), "{record}");
    }
    let (code, report) = api_get(&http, &api, &format!("/api/v1/images/{}/report", pushed_before[0].2)).await;
    assert_eq!((code, report["findings"].as_array().map(Vec::len)), (200, Some(2)), "{report}");
    assert_eq!(stream_counts(&js, TASKS_STREAM).await, (30, 0), "one task per image, all acked");

    // The killed node rejoins and catches up: three current copies again.
    cluster.restart(victim).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = js.get_stream(TASKS_STREAM).await.unwrap().info().await.unwrap().clone();
        let placement = info.cluster.clone().unwrap();
        if placement.replicas.iter().filter(|p| p.current && !p.offline).count() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted node never caught up: {placement:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(controller.is_running(), "the controller died during the failover\n{}", stack_logs(&controller, &scanners));
}
