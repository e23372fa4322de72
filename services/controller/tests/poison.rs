//! Poison images end to end: a registry holding good images next to ones no
//! scanner can scan — a corrupt layer, a layer whose bytes no longer match
//! its digest, a repository whose blobs answer 500, one rate-limited with
//! `429 Retry-After: 1`, a Helm chart — and a second registry whose password
//! the scanners have wrong. Each poison image must end as a failed record of
//! the right kind with one dead letter, transient ones only after their
//! retries, while the good images flow past them through the same queue.
//!
//! The registry cannot be told to fail, so the 500s and 429s come from a
//! [`FaultProxy`] in front of it: the controller and the scanners reach the
//! first registry only through the proxy.

mod common;

use common::{numbered_image, push_numbered, stream_counts, stream_messages, Stack};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use trawl_protocol::{DeadLetter, DEAD_STREAM, TASKS_STREAM};
use trawl_testkit::{helm_chart, Blob, FaultProxy, FaultRule, ImageBuilder, Registry, OCI_LAYER_GZIP};

/// Good images on the first registry.
const GOOD: usize = 6;
/// `max_deliver` of the task consumers (`nats/consumers/`).
const MAX_DELIVER: u64 = 5;
/// The private registry's password: the controller's, and what the scanners should have had.
const PASSWORD: &str = "right-8c1f0e6a93d2";
/// What the scanners get instead.
const WRONG_PASSWORD: &str = "wrong-5b7d24e0c9a1";
/// Everything must be over well within this.
const TIMEOUT: Duration = Duration::from_secs(50);

/// One poison image: where it is, what it is, and how it must fail.
struct Poison {
    digest: String,
    kind: &'static str,
    /// Words the failure message must contain.
    names: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_images_fail_with_their_kind_and_a_dead_letter_while_good_images_flow() {
    let started = Instant::now();
    let mut stack = Stack::start();
    let registry = &stack.registry;
    let proxy = FaultProxy::start(registry).unwrap();
    let private = Registry::start_with_basic_auth("trawl", PASSWORD).unwrap();

    let mut poison = Vec::new();

    // A layer whose digest is right but whose bytes are no gzip stream.
    let garbage =
        Blob::from_bytes(OCI_LAYER_GZIP, b"these bytes are not a gzip stream, though their digest is".to_vec());
    let corrupt_layer = garbage.digest.clone();
    let corrupt = ImageBuilder::new().label("poison", "corrupt").blob_layer(garbage, None).build().unwrap();
    let digest = trawl_testkit::push(registry, "poison/corrupt", "v1", &corrupt, None).await.unwrap();
    poison.push(Poison { digest, kind: "corrupt", names: vec!["corrupt".into(), corrupt_layer] });

    // A layer overwritten in the registry's storage after the push: same size, other bytes.
    let tampered = ImageBuilder::new()
        .label("poison", "mismatch")
        .layer(common::base_layer().file("etc/poison", "tampered with after the push\n", 0o644))
        .build()
        .unwrap();
    let tampered_layer = tampered.layers[0].clone();
    let digest = trawl_testkit::push(registry, "poison/mismatch", "v1", &tampered, None).await.unwrap();
    let mut bytes = tampered_layer.bytes().unwrap().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    registry.corrupt_blob(&tampered_layer.digest, &bytes).unwrap();
    poison.push(Poison { digest, kind: "digest-mismatch", names: vec!["mismatch".into(), tampered_layer.digest] });

    // Blobs that always answer 500, and always 429 with `Retry-After: 1`. (The scanner cannot
    // see the header — oci-client keeps no response headers in its errors — so the 429s are
    // retried after `--retry-delay`'s exponential delays, as the 500s are.)
    let down = numbered_image(1000);
    let down_digest = trawl_testkit::push(registry, "poison/unavailable", "v1", &down, None).await.unwrap();
    let unavailable = proxy.add_rule(FaultRule::status("/v2/poison/unavailable/blobs/", 500));
    let names = vec!["unavailable (HTTP 500)".into()];
    poison.push(Poison { digest: down_digest.clone(), kind: "registry-unavailable", names });
    let limited_image = numbered_image(1001);
    let limited_digest = trawl_testkit::push(registry, "poison/ratelimited", "v1", &limited_image, None).await.unwrap();
    let limited = proxy.add_rule(FaultRule::rate_limited("/v2/poison/ratelimited/blobs/", 1));
    poison.push(Poison { digest: limited_digest.clone(), kind: "rate-limited", names: vec!["rate-limited".into()] });

    // Not an image at all.
    let chart = helm_chart("poison-chart", "1.0.0", &[]).unwrap();
    let digest = trawl_testkit::push(registry, "poison/chart", "1.0.0", &chart, None).await.unwrap();
    poison.push(Poison { digest, kind: "not-an-image", names: vec!["not a container image".into(), "helm".into()] });

    // A fine image behind credentials the scanners have wrong.
    let digest = trawl_testkit::push(&private, "team/app", "v1", &numbered_image(1002), Some(("trawl", PASSWORD)))
        .await
        .unwrap();
    poison.push(Poison { digest, kind: "auth", names: vec!["refused access".into(), private.host()] });

    stack.start_controller_with_env(&[("POISON_REGISTRY_PASSWORD", PASSWORD)]);
    stack.add_registry_at("faulty", &proxy.url(), json!({})).await;
    stack
        .add_registry_at(
            "private",
            &private.url(),
            json!({"credentials": {"username": "trawl", "password_env": "POISON_REGISTRY_PASSWORD"}}),
        )
        .await;
    for _ in 0..2 {
        stack.start_scanner_with_env(
            &["--concurrency", "2", "--retry-delay", "1s"],
            &[("POISON_REGISTRY_PASSWORD", WRONG_PASSWORD)],
        );
    }
    for (name, images) in [("faulty", 5), ("private", 1)] {
        let report = crawl(&stack, name).await;
        assert_eq!((report["images"].as_u64(), report["queued"].as_u64()), (Some(images), Some(images)), "{report}");
    }

    // Once the 500 and 429 images are failing (and handed back for a retry), good images
    // arrive behind them in the same queue, and are all scanned before those are given up.
    let failing = wait_for(TIMEOUT, || async {
        (proxy.answered(unavailable) >= 1 && proxy.answered(limited) >= 1).then_some(())
    });
    assert!(failing.await.is_some(), "the 500 and 429 images were never tried\n{}", stack.logs());
    let good = push_numbered(&stack.registry, GOOD, 3).await;
    let report = crawl(&stack, "faulty").await;
    assert_eq!((report["images"].as_u64(), report["queued"].as_u64()), (Some(GOOD as u64 + 5), Some(GOOD as u64)));
    let good_digests: Vec<&str> = good.iter().map(|(_, _, d)| d.as_str()).collect();
    let records = stack.wait_images(&good_digests, TIMEOUT.saturating_sub(started.elapsed())).await;
    for record in &records {
        assert_eq!(record["status"], "scanned", "{record}");
        assert_eq!(record["vulnerabilities"]["total"], 2, "{record}");
    }
    for (rule, digest, what) in
        [(unavailable, &down_digest, "the 500 image"), (limited, &limited_digest, "the 429 image")]
    {
        assert_eq!(stack.image(digest).await, None, "{what} was given up before the good images were done");
        assert!(proxy.answered(rule) < MAX_DELIVER, "{what} was tried {} times already", proxy.answered(rule));
    }

    // Then every poison image ends failed, with its kind and a message that says what is wrong.
    let digests: Vec<&str> = poison.iter().map(|p| p.digest.as_str()).collect();
    let records = stack.wait_images(&digests, TIMEOUT.saturating_sub(started.elapsed())).await;
    for (p, record) in poison.iter().zip(&records) {
        assert_eq!(record["status"], "failed", "{}: {record}", p.kind);
        let failure = &record["failure"];
        assert_eq!(failure["kind"], p.kind, "{record}");
        let message = failure["message"].as_str().unwrap_or_default();
        for name in &p.names {
            assert!(message.to_lowercase().contains(&name.to_lowercase()), "{}: {message:?} lacks {name:?}", p.kind);
        }
        assert_no_password(message);
        let transient = matches!(p.kind, "registry-unavailable" | "rate-limited");
        let attempts = if transient { MAX_DELIVER } else { 1 };
        assert_eq!(failure["attempts"], attempts, "{}: {record}", p.kind);
    }
    // Each delivery of the rate-limited task asked again (the 429s were retried, not buried at once).
    assert!(proxy.answered(limited) >= MAX_DELIVER, "429 answered {} times", proxy.answered(limited));
    assert!(proxy.answered(unavailable) >= MAX_DELIVER, "500 answered {} times", proxy.answered(unavailable));

    // One dead letter per poison image, with the task to requeue and the same kind.
    let js = stack.jetstream().await;
    let letters = wait_for(TIMEOUT.saturating_sub(started.elapsed()), || async {
        let letters = stream_messages(&js, DEAD_STREAM).await;
        (letters.len() >= poison.len()).then_some(letters)
    })
    .await
    .unwrap_or_else(|| panic!("fewer than {} dead letters\n{}", poison.len(), stack.logs()));
    assert_eq!(letters.len(), poison.len(), "one dead letter per poison image");
    let mut kinds = BTreeMap::new();
    for (subject, payload) in &letters {
        assert_eq!(subject, "trawl.dead.bulk");
        let letter = DeadLetter::decode(payload).unwrap();
        let task = letter.task.as_ref().unwrap_or_else(|| panic!("a dead letter without its task: {letter:?}"));
        let digest = task.digest.clone().unwrap_or_else(|| panic!("a task without its digest: {task:?}"));
        assert_no_password(&letter.failure.message);
        assert!(letter.by.starts_with("scanner-"), "{letter:?}");
        kinds.insert(digest, letter.failure.kind.as_str());
    }
    let expected: BTreeMap<String, &str> = poison.iter().map(|p| (p.digest.clone(), p.kind)).collect();
    assert_eq!(kinds, expected);

    // Nothing is left in the queue, and the registries' counts add up.
    let emptied =
        wait_for(Duration::from_secs(10), || async { (stream_counts(&js, TASKS_STREAM).await.1 == 0).then_some(()) })
            .await;
    assert!(emptied.is_some(), "tasks left in {TASKS_STREAM}: {:?}", stream_counts(&js, TASKS_STREAM).await);
    let status = stack.wait_settled("faulty", GOOD as u64 + 5, Duration::from_secs(10)).await;
    assert_eq!((status["scanned"].as_u64(), status["failed"].as_u64()), (Some(GOOD as u64), Some(5)), "{status}");
    let status = stack.wait_settled("private", 1, Duration::from_secs(10)).await;
    assert_eq!(status["failed"], 1, "{status}");
    let failed: BTreeSet<String> = stack
        .get(0, "/api/v1/images?status=failed")
        .await
        .1
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["digest"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(failed, expected.keys().cloned().collect());
    // The credentials never reach a log either.
    for log in stack.controllers.iter().map(|c| c.process.log()).chain(stack.scanners.iter().map(|s| s.log())) {
        assert_no_password(&log);
    }
    assert_eq!(proxy.upstream_errors(), 0);
}

/// Crawls registry `name` now and returns the crawl report (which must list no errors).
async fn crawl(stack: &Stack, name: &str) -> serde_json::Value {
    let (code, report) = stack.send(0, "POST", &format!("/api/v1/registries/{name}/scan?wait=true"), None).await;
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["errors"], json!([]), "{report}");
    report
}

fn assert_no_password(text: &str) {
    assert!(!text.contains(PASSWORD) && !text.contains(WRONG_PASSWORD), "a password leaked: {text}");
}

/// Polls `check` until it yields a value or `timeout` passes.
async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
