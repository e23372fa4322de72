//! The cluster-wide layer cache against a real nats-server (set up from the
//! `nats/` definitions, as the controller does) and a real docker-registry:
//! in the library (a layer seen before is not pulled again, results are
//! identical, bad entries are misses, concurrent scans pull a shared layer
//! once, a dead scanner's claim is taken over) and in the worker binary (the
//! heartbeat counts hits and bytes pulled; `--no-layer-cache` and its
//! variable turn it off; `--noop-scan` answers without pulling anything).

mod common;

use async_nats::jetstream;
use async_nats::HeaderMap;
use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use trawl_catalog::Inventory;
use trawl_protocol::buckets::{LAYERS_BUCKET, REGISTRIES_BUCKET};
use trawl_protocol::task::CONTENT_TYPE_MSGPACK;
use trawl_protocol::{definitions, Lane, RegistryConfig, ScanResult, ScanTask, ScannerHeartbeat, RESULTS_STREAM};
use trawl_protocol::{SCANNERS_BUCKET, TASKS_STREAM};
use trawl_scanner::analyze::{Analyzer, ImageAnalysis};
use trawl_scanner::layer_cache::{layer_key, KvLayerCache, ENTRY_HEADER};
use trawl_testkit::{noise, push, Blob, BuiltImage, ImageBuilder, LayerBuilder, NatsServer, Registry};

/// A nats-server with the `nats/` objects and a registry.
struct Cluster {
    nats: NatsServer,
    registry: Registry,
    js: jetstream::Context,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let nats = NatsServer::start().expect("start nats-server (run scripts/setup)");
        let registry = registry();
        let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        definitions::ensure_all(&js).await.unwrap();
        Cluster { nats, registry, js, dir: tempfile::tempdir().unwrap() }
    }

    /// The scanner's cache on this cluster's bucket.
    async fn cache(&self) -> Arc<KvLayerCache> {
        Arc::new(KvLayerCache::open(&self.js, &trawl_catalog::default_catalogers(), "test").await.unwrap())
    }

    /// Pushes `image` as `repo:tag`; returns its reference.
    async fn push(&self, repo: &str, tag: &str, image: &BuiltImage) -> String {
        push(&self.registry, repo, tag, image, None).await.unwrap();
        format!("{}/{repo}:{tag}", self.registry.host())
    }

    async fn analyze(&self, reference: &str, cache: Option<Arc<KvLayerCache>>) -> ImageAnalysis {
        let mut analyzer = Analyzer::new(trawl_catalog::default_catalogers(), plain_http_options());
        if let Some(cache) = cache {
            analyzer = analyzer.with_layer_cache(cache);
        }
        analyzer.analyze_reference(reference).await.unwrap_or_else(|e| panic!("analysing {reference}: {e}"))
    }

    async fn put_raw(&self, key: &str, value: Vec<u8>) {
        let kv = self.js.get_key_value(LAYERS_BUCKET).await.unwrap();
        kv.put(key, value.into()).await.unwrap();
    }

    /// Registers the registry as `local` for workers.
    async fn register(&self) {
        let mut config = RegistryConfig::new("local", &self.registry.url());
        config.insecure = true;
        let registries = self.js.get_key_value(REGISTRIES_BUCKET).await.unwrap();
        registries.put("local", serde_json::to_vec(&config).unwrap().into()).await.unwrap();
    }

    /// Starts `trawl-scanner worker` with id `id`, `extra` flags and `env`.
    fn worker(&self, id: &str, extra: &[&str], env: &[(&str, &str)]) -> Worker {
        spawn_worker(&self.nats.url(), self.dir.path(), id, extra, env)
    }

    /// A worker matching with a small database file.
    fn worker_with_db(&self, id: &str, extra: &[&str], env: &[(&str, &str)]) -> Worker {
        let db = small_db(self.dir.path());
        self.worker(id, &[&["--db", db.to_str().unwrap()], extra].concat(), env)
    }

    /// Queues `task` as the controller does.
    async fn queue(&self, task: &ScanTask) {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", CONTENT_TYPE_MSGPACK);
        headers.insert("Nats-Msg-Id", task.msg_id().as_str());
        let payload = task.encode().unwrap();
        self.js.publish_with_headers(task.lane.subject(), headers, payload.into()).await.unwrap().await.unwrap();
    }

    async fn depth(&self, stream: &str) -> Option<u64> {
        Some(self.js.get_stream(stream).await.ok()?.cached_info().state.messages)
    }

    /// Waits for `n` results and returns them in order.
    async fn results(&self, n: u64, worker: &Worker) -> Vec<ScanResult> {
        eventually(&format!("{n} results"), worker, || async move {
            (self.depth(RESULTS_STREAM).await? >= n).then_some(())
        })
        .await;
        let stream = self.js.get_stream(RESULTS_STREAM).await.unwrap();
        let first = stream.cached_info().state.first_sequence;
        let mut out = Vec::new();
        for seq in first..first + n {
            let m = stream.get_raw_message(seq).await.unwrap();
            out.push(ScanResult::decode(&m.payload).expect("a valid result"));
        }
        out
    }

    /// Waits for a heartbeat of `id` that counts `scanned` scans (heartbeats come every 5 s).
    async fn heartbeat_after(&self, id: &str, scanned: u64, worker: &Worker) -> ScannerHeartbeat {
        let kv = self.js.get_key_value(SCANNERS_BUCKET).await.unwrap();
        eventually(&format!("a heartbeat counting {scanned} scans"), worker, || {
            let kv = kv.clone();
            async move {
                let beat: ScannerHeartbeat = serde_json::from_slice(&kv.get(id).await.ok()??).ok()?;
                (beat.scanned >= scanned).then_some(beat)
            }
        })
        .await
    }
}

/// L1: a Debian base with two packages and `filler` bytes of noise.
fn base_layer(filler: usize) -> Blob {
    debian_base(&[("libssl3", "3.0.11-1~deb12u1", Some("openssl")), ("zlib1g", "1:1.2.13.dfsg-1", Some("zlib"))])
        .file("usr/share/base.bin", noise(1, filler), 0o644)
        .build()
        .unwrap()
}

/// L2: requests 2.25.1.
fn python_layer() -> Blob {
    LayerBuilder::new()
        .file(
            "usr/lib/python3/dist-packages/requests-2.25.1.dist-info/METADATA",
            python_metadata("requests", "2.25.1"),
            0o644,
        )
        .build()
        .unwrap()
}

/// L3: an npm package, and a whiteout of a base file (stacking must still apply it).
fn npm_layer() -> Blob {
    LayerBuilder::new()
        .file("usr/lib/node_modules/left-pad/package.json", npm_package_json("left-pad", "1.3.0"), 0o644)
        .whiteout("usr/share/base.bin")
        .build()
        .unwrap()
}

fn image(layers: &[&Blob]) -> BuiltImage {
    layers.iter().fold(ImageBuilder::new(), |b, l| b.blob_layer((*l).clone(), Some("ADD layer /"))).build().unwrap()
}

fn same_inventory(a: &Inventory, b: &Inventory) {
    assert_eq!(serde_json::to_value(a).unwrap(), serde_json::to_value(b).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_seen_before_is_not_pulled_again_and_results_are_identical() {
    let cluster = Cluster::start().await;
    let (l1, l2, l3) = (base_layer(256 << 10), python_layer(), npm_layer());
    let a = cluster.push("team/a", "1", &image(&[&l1, &l2])).await;
    let b = cluster.push("team/b", "1", &image(&[&l1, &l3])).await;
    let cache = cluster.cache().await;

    let first = cluster.analyze(&a, Some(cache.clone())).await;
    assert_eq!((first.layer_cache_hits, first.bytes_read), (0, l1.size + l2.size));
    let second = cluster.analyze(&b, Some(cache.clone())).await;
    assert_eq!(second.layer_cache_hits, 1, "L1 comes from the cache");
    assert_eq!(second.bytes_read, l3.size, "only L3 is pulled");

    let uncached = cluster.analyze(&b, None).await;
    assert_eq!((uncached.layer_cache_hits, uncached.bytes_read), (0, l1.size + l3.size));
    same_inventory(&second.inventory, &uncached.inventory);
    same_inventory(&first.inventory, &cluster.analyze(&a, None).await.inventory);
    // Packages keep the layer that introduced them, cached or not.
    assert_eq!(package(&second.inventory, "zlib1g").layer.as_deref(), Some(l1.digest.as_str()));
    assert_eq!(package(&second.inventory, "left-pad").layer.as_deref(), Some(l3.digest.as_str()));

    let again = cluster.analyze(&a, Some(cache)).await;
    assert_eq!((again.layer_cache_hits, again.bytes_read), (2, 0), "nothing is pulled for a known image");
    same_inventory(&again.inventory, &first.inventory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_or_foreign_entry_is_a_miss_not_a_failure() {
    let cluster = Cluster::start().await;
    let (l1, l2) = (base_layer(64 << 10), python_layer());
    let a = cluster.push("team/a", "1", &image(&[&l1, &l2])).await;
    // The image of L1 alone: every lookup it makes is the one under test.
    let b = cluster.push("team/base", "1", &image(&[&l1])).await;
    let cache = cluster.cache().await;
    let expected = cluster.analyze(&b, None).await.inventory;
    cluster.analyze(&a, Some(cache.clone())).await;
    let key = layer_key(&l1.digest).unwrap();

    let kv = cluster.js.get_key_value(LAYERS_BUCKET).await.unwrap();
    let l2_entry = kv.get(layer_key(&l2.digest).unwrap()).await.unwrap().expect("L2 is cached");
    let mut with_header = ENTRY_HEADER.to_vec();
    with_header.extend(noise(3, 4096));
    let mut zstd_bomb = ENTRY_HEADER.to_vec();
    zstd_bomb.extend(zstd::bulk::compress(&vec![0u8; 80 << 20], 1).unwrap());
    let garbage = [
        noise(2, 4096),
        Vec::new(),
        with_header,
        zstd_bomb,
        // A valid entry, but for another layer (moved by hand, or by a hostile scanner).
        l2_entry.to_vec(),
    ];
    for (i, value) in garbage.into_iter().enumerate() {
        cluster.put_raw(&key, value).await;
        let analysis = cluster.analyze(&b, Some(cache.clone())).await;
        assert_eq!(analysis.layer_cache_hits, 0, "garbage {i} is a miss");
        assert_eq!(analysis.bytes_read, l1.size, "garbage {i}: L1 is pulled again");
        same_inventory(&analysis.inventory, &expected);
    }
    // The last walk replaced the bad entry.
    let analysis = cluster.analyze(&b, Some(cache)).await;
    assert_eq!((analysis.layer_cache_hits, analysis.bytes_read), (1, 0));
    same_inventory(&analysis.inventory, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scans_pull_a_shared_layer_once() {
    let cluster = Cluster::start().await;
    let (l1, l2, l3) = (base_layer(1 << 20), python_layer(), npm_layer());
    let a = cluster.push("team/a", "1", &image(&[&l1, &l2])).await;
    let b = cluster.push("team/b", "1", &image(&[&l1, &l3])).await;
    // Two scanners, each with its own connection, as two workers would be.
    let other = jetstream::new(async_nats::connect(cluster.nats.url()).await.unwrap());
    let theirs = Arc::new(KvLayerCache::open(&other, &trawl_catalog::default_catalogers(), "other").await.unwrap());
    let mine = cluster.cache().await;
    let (first, second) = tokio::join!(cluster.analyze(&a, Some(mine)), cluster.analyze(&b, Some(theirs)));
    assert_eq!(first.bytes_read + second.bytes_read, l1.size + l2.size + l3.size, "L1 pulled once");
    assert_eq!(first.layer_cache_hits + second.layer_cache_hits, 1);
    same_inventory(&second.inventory, &cluster.analyze(&b, None).await.inventory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_of_a_scanner_that_died_is_taken_over() {
    let cluster = Cluster::start().await;
    let (l1, l2) = (base_layer(16 << 10), python_layer());
    let a = cluster.push("team/a", "1", &image(&[&l1, &l2])).await;
    // A claim nobody renews: its scanner died mid-walk.
    cluster.put_raw(&format!("{}.claim", layer_key(&l1.digest).unwrap()), b"{\"by\":\"gone\"}".to_vec()).await;
    let started = Instant::now();
    let analysis = cluster.analyze(&a, Some(cluster.cache().await)).await;
    let waited = started.elapsed();
    assert_eq!((analysis.layer_cache_hits, analysis.bytes_read), (0, l1.size + l2.size));
    assert!(waited >= trawl_scanner::layer_cache::CLAIM_STALE, "waited {waited:?} for the claim");
    assert!(waited < trawl_scanner::layer_cache::CLAIM_STALE + Duration::from_secs(10), "waited {waited:?}");
    // Walked and cached by the scanner that took over.
    let again = cluster.analyze(&a, Some(cluster.cache().await)).await;
    assert_eq!(again.layer_cache_hits, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_pulls_a_shared_base_layer_once_and_its_heartbeat_says_so() {
    let cluster = Cluster::start().await;
    cluster.register().await;
    let (base, l2, l3) = (base_layer(2 << 20), python_layer(), npm_layer());
    let (one, two) = (image(&[&base, &l2]), image(&[&base, &l3]));
    for (repo, image) in [("team/one", &one), ("team/two", &two)] {
        let reference = cluster.push(repo, "1", image).await;
        cluster.queue(&ScanTask::new("local", &reference, Some(&image.manifest_digest), Lane::Bulk, "sweep")).await;
    }

    let worker = cluster.worker_with_db("w-cache", &[], &[]);
    let results = cluster.results(2, &worker).await;
    for result in &results {
        let report = result.report.as_ref().unwrap_or_else(|| panic!("{:?}: {}", result.failure, worker.log()));
        let zlib = report.packages.iter().find(|p| p.name == "zlib1g").expect("the base layer's packages");
        assert_eq!(zlib.layer.as_deref(), Some(base.digest.as_str()));
        assert!(report.findings.iter().any(|f| f.id == "CVE-2099-0003"), "matched as usual");
    }
    let beat = cluster.heartbeat_after("w-cache", 2, &worker).await;
    assert!(beat.layer_cache_hits >= 1, "{beat:?}");
    assert_eq!(beat.bytes_pulled, base.size + l2.size + l3.size, "the base layer is pulled once: {beat:?}");
    assert!(worker.log().contains("layer_cache=true"), "{}", worker.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_layer_cache_the_worker_pulls_every_layer() {
    let cluster = Cluster::start().await;
    cluster.register().await;
    let (base, l2, l3) = (base_layer(256 << 10), python_layer(), npm_layer());
    let mut tasks = Vec::new();
    for (repo, image) in [("team/one", image(&[&base, &l2])), ("team/two", image(&[&base, &l3]))] {
        let reference = cluster.push(repo, "1", &image).await;
        tasks.push(ScanTask::new("local", &reference, Some(&image.manifest_digest), Lane::Bulk, "sweep"));
    }
    // The variable, as a deployment would set it (the flag is the same setting).
    cluster.queue(&tasks[0]).await;
    let worker = cluster.worker_with_db("w-nocache", &[], &[("TRAWL_WORKER_LAYER_CACHE", "false")]);
    cluster.results(1, &worker).await;
    let beat = cluster.heartbeat_after("w-nocache", 1, &worker).await;
    assert_eq!((beat.layer_cache_hits, beat.bytes_pulled), (0, base.size + l2.size), "{beat:?}");
    assert!(worker.log().contains("layer_cache=false"), "{}", worker.log());
    // Acknowledged before the worker goes, so that the next one does not get it again.
    eventually("the task acknowledged", &worker, || async { (cluster.depth(TASKS_STREAM).await? == 0).then_some(()) })
        .await;
    drop(worker);
    cluster.queue(&tasks[1]).await;
    let worker = cluster.worker_with_db("w-noflag", &["--no-layer-cache"], &[]);
    cluster.results(2, &worker).await;
    let beat = cluster.heartbeat_after("w-noflag", 1, &worker).await;
    assert_eq!((beat.layer_cache_hits, beat.bytes_pulled), (0, base.size + l3.size), "{beat:?}");
    assert!(worker.log().contains("layer_cache=false"), "{}", worker.log());
    let kv = cluster.js.get_key_value(LAYERS_BUCKET).await.unwrap();
    assert!(kv.get(layer_key(&base.digest).unwrap()).await.unwrap().is_none(), "nothing was cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_scan_answers_a_task_for_an_image_that_does_not_exist() {
    let cluster = Cluster::start().await;
    let digest = format!("sha256:{}", "ab".repeat(32));
    let reference = format!("{}/nobody/nothing:1", cluster.registry.host());
    // No registry configuration either, and no database: nothing of it is needed.
    let task = ScanTask::new("nowhere", &reference, Some(&digest), Lane::High, "bench");
    cluster.queue(&task).await;

    let worker = cluster.worker("w-noop", &["--noop-scan"], &[]);
    let results = cluster.results(1, &worker).await;
    let result = &results[0];
    assert!(result.failure.is_none(), "{:?}", result.failure);
    assert_eq!(result.task.as_ref(), Some(&task));
    assert_eq!(result.subject(), format!("trawl.results.image.{}", "ab".repeat(32)));
    let report = result.report.as_ref().expect("a report");
    assert_eq!(report.image.manifest_digest.as_deref(), Some(digest.as_str()));
    assert_eq!((report.image.reference.as_str(), report.image.source.as_str()), (reference.as_str(), "noop"));
    assert!(report.packages.is_empty() && report.findings.is_empty());
    assert_eq!(report.schema, trawl_report::SCAN_SCHEMA);
    // The report is a valid scan document: it survives the JSON round trip the API serves.
    let json = serde_json::to_value(report).unwrap();
    assert_eq!(json["image"]["manifestDigest"], digest.as_str(), "{json}");
    eventually("the task acknowledged", &worker, || async { (cluster.depth(TASKS_STREAM).await? == 0).then_some(()) })
        .await;
    let beat = cluster.heartbeat_after("w-noop", 1, &worker).await;
    assert_eq!((beat.bytes_pulled, beat.layer_cache_hits), (0, 0));
}

/// `nats/nats-server.conf` as a test server runs it: test passwords, no `store_dir` (the harness passes `-sd`).
fn production_config() -> String {
    let text = include_str!("../../../nats/nats-server.conf");
    let mut text: String =
        text.lines().filter(|l| !l.trim_start().starts_with("store_dir:")).collect::<Vec<_>>().join("\n");
    for role in ["SCANNER", "CONTROLLER", "UPDATER", "ADMIN", "SYSTEM"] {
        text = text.replace(&format!("$TRAWL_NATS_{role}_PASSWORD"), &format!("\"{}-test-pw\"", role.to_lowercase()));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scanner_role_may_do_everything_the_cache_does() {
    let nats = NatsServer::start_with_config(&production_config()).expect("nats-server starts from nats/");
    let registry = registry();
    let login = |user: &'static str| {
        let url = nats.url();
        async move {
            let (tx, violations) = tokio::sync::mpsc::unbounded_channel();
            let client = async_nats::ConnectOptions::with_user_and_password(user.into(), format!("{user}-test-pw"))
                .event_callback(move |event| {
                    let tx = tx.clone();
                    async move {
                        if let async_nats::Event::ServerError(e) = event {
                            let _ = tx.send(e.to_string());
                        }
                    }
                })
                .connect(url)
                .await
                .unwrap();
            (jetstream::new(client), violations)
        }
    };
    let (controller, _) = login("controller").await;
    definitions::ensure_all(&controller).await.unwrap();
    let (scanner, mut violations) = login("scanner").await;

    let (l1, l2) = (base_layer(16 << 10), python_layer());
    push(&registry, "team/a", "1", &image(&[&l1, &l2]), None).await.unwrap();
    let reference = format!("{}/team/a:1", registry.host());
    let cache =
        || async { Arc::new(KvLayerCache::open(&scanner, &trawl_catalog::default_catalogers(), "w").await.unwrap()) };
    let analyze = |cache: Arc<KvLayerCache>| {
        let reference = reference.clone();
        async move {
            Analyzer::new(trawl_catalog::default_catalogers(), plain_http_options())
                .with_layer_cache(cache)
                .analyze_reference(&reference)
                .await
                .unwrap()
        }
    };
    // Two at once: claims are created, waited on and released; then every layer is a hit.
    let (first, second) = tokio::join!(analyze(cache().await), analyze(cache().await));
    assert_eq!(first.layer_cache_hits + second.layer_cache_hits, 2, "each layer walked once");
    assert_eq!(analyze(cache().await).await.layer_cache_hits, 2);
    let kv = scanner.get_key_value(LAYERS_BUCKET).await.unwrap();
    let claim = format!("{}.claim", layer_key(&l1.digest).unwrap());
    let deadline = Instant::now() + WORKER_DEADLINE;
    while kv.get(claim.as_str()).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the claim is released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(violations.try_recv().is_err(), "no permissions violation");
}
