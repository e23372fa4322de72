//! The controller's API on its own (a real nats-server, no scanners):
//! authentication of mutations, validation, secrets never returned, and the
//! storage of results too large for a key-value entry.

mod common;

use common::{Stack, TOKEN};
use serde_json::{json, Value};

async fn raw(stack: &Stack, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{path}", stack.controllers[0].url),
    );
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_need_the_token_and_bad_configurations_are_refused() {
    let mut stack = Stack::start();
    stack.start_controller();
    let body = json!({"name": "local", "url": format!("http://{}", stack.registry.host()), "insecure": true,
        "credentials": {"username": "ci", "password_env": "SURELY_UNSET_REGISTRY_PASSWORD"}})
    .to_string();

    for token in [None, Some("wrong-token")] {
        let (code, answer) = raw(&stack, "POST", "/api/v1/registries", token, Some(&body)).await;
        assert_eq!(code, 401, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("TRAWL_API_TOKEN"), "{answer}");
    }
    let (code, _) = raw(&stack, "POST", "/api/v1/scan", None, Some(r#"{"reference": "x/y:1"}"#)).await;
    assert_eq!(code, 401);
    let (code, _) = raw(&stack, "GET", "/api/v1/registries", None, None).await;
    assert_eq!(code, 200, "reads are open");

    let (code, created) = raw(&stack, "POST", "/api/v1/registries", Some(TOKEN), Some(&body)).await;
    assert_eq!(code, 201, "{created}");
    // The configuration names its secret; it never holds or returns one.
    assert_eq!(created["credentials"], json!({"username": "ci", "password_env": "SURELY_UNSET_REGISTRY_PASSWORD"}));
    assert_eq!((created["images_total"].as_u64(), created["queued"].as_u64()), (Some(0), Some(0)));
    let (code, _) = raw(&stack, "POST", "/api/v1/registries", Some(TOKEN), Some(&body)).await;
    assert_eq!(code, 409);

    for (bad, field) in [
        (r#"{"name": "Bad Name", "url": "https://r"}"#, "name"),
        (r#"{"name": "r", "url": "http://r:5000"}"#, "insecure"),
        (r#"{"name": "r"}"#, "url"),
        ("not json {", "body"),
    ] {
        let (code, answer) = raw(&stack, "POST", "/api/v1/registries", Some(TOKEN), Some(bad)).await;
        assert_eq!(code, 400, "{bad}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(field), "{bad}: {answer}");
    }
    let big = format!(r#"{{"name": "r", "url": "https://r", "tags": ["{}"]}}"#, "x".repeat(100_000));
    let (code, _) = raw(&stack, "POST", "/api/v1/registries", Some(TOKEN), Some(&big)).await;
    assert_eq!(code, 413, "bodies are bounded");

    // The crawl of a registry whose credentials this controller cannot read says which variable.
    let (code, answer) = raw(&stack, "POST", "/api/v1/registries/local/scan?wait=true", Some(TOKEN), None).await;
    assert_eq!(code, 502, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("SURELY_UNSET_REGISTRY_PASSWORD"), "{answer}");

    let (code, answer) = raw(&stack, "GET", "/api/v1/registries/nope", None, None).await;
    assert_eq!(code, 404, "{answer}");
    let (code, answer) = raw(&stack, "GET", "/api/v1/images/sha256:0000", None, None).await;
    assert_eq!(code, 404, "{answer}");
    let (code, answer) = raw(&stack, "POST", "/api/v1/scan", Some(TOKEN), Some(r#"{"reference": "::"}"#)).await;
    assert_eq!(code, 400, "{answer}");

    let (code, _) = raw(&stack, "DELETE", "/api/v1/registries/local", Some(TOKEN), None).await;
    assert_eq!(code, 204);
    let (code, _) = raw(&stack, "GET", "/api/v1/registries/local", None, None).await;
    assert_eq!(code, 404);

    let (code, queue) = raw(&stack, "GET", "/api/v1/queue", None, None).await;
    assert_eq!((code, queue["depth"].as_u64()), (200, Some(0)), "{queue}");
    let metrics = reqwest::get(format!("{}/metrics", stack.controllers[0].url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("trawl_task_stream_depth 0"), "{metrics}");
    assert!(metrics.contains("trawl_tasks_pending{lane=\"high\"} 0"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_too_large_for_a_key_value_entry_goes_to_the_object_store() {
    let nats = trawl_testkit::NatsServer::start().unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    trawl_protocol::definitions::ensure_all(&js).await.unwrap();
    let storage = trawl_controller::storage::Storage::open(&js).await.unwrap();
    storage.wait_synced().await;

    // Many packages with incompressible names: well over 1 MiB compressed.
    let packages: Vec<trawl_catalog::Package> = (0..80_000u64)
        .map(|i| {
            let noise =
                format!("{:016x}{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i.wrapping_mul(0xc2b2_ae3d_27d4_eb4f));
            trawl_catalog::Package::new(trawl_catalog::PackageType::Npm, format!("pkg-{noise}"), "1.0.0")
        })
        .collect();
    let digest = format!("sha256:{:064x}", 42);
    let identity = trawl_report::ImageIdentity { manifest_digest: Some(digest.clone()), ..Default::default() };
    let inventory = trawl_catalog::Inventory { distro: None, packages, issues: Vec::new() };
    let db = trawl_vulndb::Database::build(Vec::new(), vec![], 0).with_version(3);
    let matched = trawl_vulndb::Matcher::new(&db).match_inventory(&inventory);
    let sbom = trawl_report::SbomReport::new(identity, inventory);
    let report = trawl_report::ScanReport::new(sbom, matched, trawl_report::DbInfo::from(db.header()));
    let scanner = trawl_protocol::ScannerInfo {
        name: "t".into(),
        mode: "worker".into(),
        advertised_addr: None,
        version: "0".into(),
    };
    let result = trawl_protocol::ScanResult::new(scanner, report);
    let payload = result.encode().unwrap();
    assert!(payload.len() > trawl_protocol::buckets::INLINE_REPORT_LIMIT, "{} bytes", payload.len());

    storage.store_result(&result, &payload).await.unwrap();
    let record = storage.record(&digest).await.unwrap().unwrap();
    assert_eq!(record.report, Some(trawl_controller::storage::ReportLocation::Object));
    assert_eq!(record.report_bytes, payload.len());
    let back = storage.result(&record).await.unwrap().unwrap();
    assert_eq!(back.report.unwrap().packages.len(), 80_000);
}
