//! `nats/nats-server.conf` against a real nats-server: the file is a valid
//! configuration, and each role can do its job and nothing else.
//!
//! The server runs the file itself, with two changes the harness needs: the
//! password variables are replaced by test passwords (the admin's by a bcrypt
//! hash, as operators may configure it), and `store_dir` is dropped because
//! the harness passes `-sd` and nats-server refuses a store directory given
//! twice. Ports come from the command line, which overrides the file.
//!
//! A refusal is proven twice: the operation fails, and the server reports a
//! permissions violation naming the subject (`-ERR`, seen through the
//! client's event callback). Operations expected to fail run with short
//! timeouts and concurrently, so the refusals cost about one timeout in all.

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event, HeaderMap, ServerError};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use tokio::sync::mpsc;
use trawl_dbdist::{DbFollower, DbPublisher, FollowerConfig, FollowerEvent};
use trawl_protocol::definitions::{ensure_all, STREAMS};
use trawl_protocol::{ScanTask, ScannerHeartbeat};
use trawl_testkit::NatsServer;
use trawl_vulndb::Database;

const CONFIG: &str = include_str!("../../../nats/nats-server.conf");
const CONFIG_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../nats/nats-server.conf");

/// (user, password variable, test password).
const USERS: [(&str, &str, &str); 5] = [
    ("scanner", "TRAWL_NATS_SCANNER_PASSWORD", "scanner-test-pw"),
    ("controller", "TRAWL_NATS_CONTROLLER_PASSWORD", "controller-test-pw"),
    ("updater", "TRAWL_NATS_UPDATER_PASSWORD", "updater-test-pw"),
    ("admin", "TRAWL_NATS_ADMIN_PASSWORD", "admin-test-pw"),
    ("system", "TRAWL_NATS_SYSTEM_PASSWORD", "system-test-pw"),
];

/// How long an operation that should succeed may take.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long a refused request waits for the answer that never comes.
const REFUSED_AFTER: Duration = Duration::from_secs(2);

fn password(user: &str) -> &'static str {
    USERS.iter().find(|(u, _, _)| *u == user).map(|(_, _, p)| *p).unwrap()
}

/// The configuration as the test server runs it.
fn harness_config() -> String {
    let lines: Vec<&str> = CONFIG.lines().collect();
    let kept: Vec<&str> = lines.iter().copied().filter(|l| !l.trim_start().starts_with("store_dir:")).collect();
    assert_eq!(lines.len() - kept.len(), 1, "the file sets store_dir exactly once");
    let mut text = kept.join("\n");
    for (user, var, pw) in USERS {
        let value = if user == "admin" { bcrypt::hash(pw, 4).unwrap() } else { pw.to_string() };
        let reference = format!("${var}");
        assert!(text.contains(&reference), "{reference} is used");
        text = text.replace(&reference, &format!("\"{value}\""));
    }
    assert!(!text.contains("$TRAWL_NATS_"), "every password variable is known to this test");
    text
}

fn start_server() -> NatsServer {
    NatsServer::start_with_config(&harness_config()).expect("nats-server starts from nats/nats-server.conf")
}

/// A logged-in client and the server errors (permission violations) it receives.
struct Login {
    client: Client,
    js: jetstream::Context,
    /// A JetStream context for operations expected to be refused.
    js_refused: jetstream::Context,
    errors: mpsc::UnboundedReceiver<String>,
}

impl Login {
    async fn new(nats: &NatsServer, user: &str) -> Login {
        let (tx, errors) = mpsc::unbounded_channel();
        let client = ConnectOptions::with_user_and_password(user.into(), password(user).into())
            .request_timeout(Some(REFUSED_AFTER))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let Event::ServerError(ServerError::Other(text)) = event {
                        let _ = tx.send(text);
                    }
                }
            })
            .connect(nats.url())
            .await
            .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
        let mut js = jetstream::new(client.clone());
        js.set_timeout(DEADLINE);
        let mut js_refused = jetstream::new(client.clone());
        js_refused.set_timeout(REFUSED_AFTER);
        Login { client, js, js_refused, errors }
    }

    /// Waits until the server has reported a permissions violation for each
    /// of `expected` (`Publish to "subject"`, `Subscription to "subject"`).
    async fn expect_violations(&mut self, expected: &[String]) {
        let mut missing: Vec<String> = expected.iter().map(|e| e.to_lowercase()).collect();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !missing.is_empty() {
            let Ok(Some(error)) = tokio::time::timeout_at(deadline, self.errors.recv()).await else {
                panic!("no permissions violation reported for {missing:?}; seen: {seen:?}");
            };
            let lower = error.to_lowercase();
            assert!(lower.contains("permissions violation"), "unexpected server error: {error}");
            missing.retain(|m| !lower.contains(m.as_str()));
            seen.push(error);
        }
    }

    /// Fails when the server reported any error so far: everything this
    /// client did was allowed. The server answers commands in order, so a
    /// deliberately refused publish is a sentinel: once its violation is in,
    /// any earlier one would have been too.
    async fn expect_no_violation(&mut self) {
        const SENTINEL: &str = "trawl-permissions-test.sentinel";
        self.client.publish(SENTINEL, "".into()).await.unwrap();
        self.client.flush().await.unwrap();
        let error = within("the sentinel's permissions violation", self.errors.recv()).await.unwrap();
        assert!(error.contains(SENTINEL), "unexpected server error: {error}");
    }
}

fn publish_to(subject: &str) -> String {
    format!("publish to \"{subject}\"")
}

fn subscription_to(subject: &str) -> String {
    format!("subscription to \"{subject}\"")
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut).await.unwrap_or_else(|_| panic!("{what} timed out"))
}

fn task_headers(task: &ScanTask) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", trawl_protocol::task::CONTENT_TYPE_MSGPACK);
    headers.insert("Nats-Msg-Id", task.msg_id().as_str());
    headers
}

/// The controller sets the cluster up from nats/ and queues `task`.
async fn set_up_cluster(controller: &Login, task: &ScanTask) {
    within("ensure_all", ensure_all(&controller.js)).await.expect("the controller creates every object of nats/");
    controller
        .js
        .publish_with_headers(task.lane.subject(), task_headers(task), task.encode().unwrap().into())
        .await
        .unwrap()
        .await
        .expect("the controller queues a task");
}

async fn stream_messages(login: &Login, stream: &str) -> u64 {
    login.js.get_stream(stream).await.unwrap().info().await.unwrap().state.messages
}

fn database(version: u64) -> Vec<u8> {
    let record = serde_json::from_value(json!({
        "id": "GHSA-0001", "aliases": ["CVE-2020-0001"], "summary": "lodash prototype pollution",
        "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.19"}]}]}]
    }))
    .unwrap();
    Database::build([record], vec![], 0).with_version(version).to_bytes().unwrap()
}

async fn expect_loaded(events: &mut tokio::sync::broadcast::Receiver<FollowerEvent>, version: u64) {
    loop {
        let event = within("the follower's next event", events.recv()).await.unwrap();
        match event {
            FollowerEvent::Unavailable { .. } => continue,
            other => {
                assert_eq!(other, FollowerEvent::Loaded { version }, "the scanner loads v{version}");
                return;
            }
        }
    }
}

#[test]
fn nats_server_accepts_the_file_and_requires_every_password() {
    let bin = trawl_testkit::nats_server_binary()
        .or_else(|| std::env::var_os("NATS_SERVER_BIN").map(Into::into))
        .unwrap_or_else(|| "nats-server".into());
    let check = |skip: Option<&str>| {
        let mut cmd = Command::new(&bin);
        cmd.args(["-t", "-c", CONFIG_PATH]);
        for (_, var, pw) in USERS {
            cmd.env_remove(var);
            if Some(var) != skip {
                cmd.env(var, pw);
            }
        }
        let out = cmd.output().expect("run nats-server -t");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, stderr) = check(None);
    assert!(ok, "nats-server -t rejects nats/nats-server.conf:\n{stderr}");
    for (_, var, _) in USERS {
        let (ok, stderr) = check(Some(var));
        assert!(!ok && stderr.contains(var), "the file must not load without {var}:\n{stderr}");
    }
}

#[test]
fn the_controller_may_manage_every_stream_of_nats() {
    let start = CONFIG.find("CONTROLLER_PERMISSIONS = {").expect("a controller block");
    let block = &CONFIG[start..start + CONFIG[start..].find("\n}\n").expect("the block ends")];
    for (name, _) in STREAMS {
        for pattern in [
            format!("$JS.API.STREAM.*.{name}\""),
            format!("$JS.API.STREAM.*.*.{name}\""),
            format!("$JS.API.DIRECT.GET.{name}\""),
            format!("$JS.API.DIRECT.GET.{name}.>\""),
            format!("$JS.API.CONSUMER.*.{name}\""),
            format!("$JS.API.CONSUMER.*.{name}.>\""),
            format!("$JS.API.CONSUMER.*.*.{name}.>\""),
            format!("$JS.ACK.{name}.>\""),
            format!("$JS.FC.{name}.>\""),
        ] {
            assert!(block.contains(&pattern), "the controller's permissions lack {pattern} (a new file in nats/?)");
        }
    }
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_are_refused() {
    let nats = start_server();
    for (user, pw) in [("scanner", "wrong"), ("controller", password("scanner")), ("nobody", "x"), ("admin", "")] {
        let refused = ConnectOptions::with_user_and_password(user.into(), pw.into()).connect(nats.url()).await;
        let err = refused.err().unwrap_or_else(|| panic!("{user} with a wrong password logged in"));
        assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation, "{user}: {err}");
    }
    let anonymous = async_nats::connect(nats.url()).await.expect_err("a client without credentials is refused");
    assert_eq!(anonymous.kind(), ConnectErrorKind::AuthorizationViolation);

    // Every configured user logs in; admin's password is a bcrypt hash here.
    let admin = Login::new(&nats, "admin").await;
    admin.js.query_account().await.expect("JetStream is enabled in the TRAWL account");
    // Payload limit: above every stream's 1 MiB max_msg_size (see the file).
    assert_eq!(admin.client.server_info().max_payload, 2 << 20);
    let system = Login::new(&nats, "system").await;
    let pong = system.client.request("$SYS.REQ.SERVER.PING", "".into()).await.expect("the system account answers");
    assert!(String::from_utf8_lossy(&pong.payload).contains("\"server\""));
}

#[tokio::test]
async fn controller_and_scanner_work_the_queue() {
    let nats = start_server();
    let mut controller = Login::new(&nats, "controller").await;
    let mut scanner = Login::new(&nats, "scanner").await;
    let admin = Login::new(&nats, "admin").await;
    let task = ScanTask::new(
        "local",
        "127.0.0.1:5000/library/debian:12",
        Some("sha256:ab12"),
        trawl_protocol::Lane::High,
        "on-demand",
    );
    set_up_cluster(&controller, &task).await;
    let registry = json!({"name": "local", "url": "http://127.0.0.1:5000"}).to_string();
    let registries = controller.js.get_key_value("TRAWL_REGISTRIES").await.unwrap();
    registries.put("local", registry.clone().into()).await.expect("the controller writes registry configurations");

    // The scanner binds to its lane consumers without touching the stream, takes the task, acks it.
    let high: PullConsumer = scanner.js.get_consumer_from_stream("scanners-high", "TRAWL_TASKS").await.unwrap();
    let _bulk: PullConsumer = scanner.js.get_consumer_from_stream("scanners-bulk", "TRAWL_TASKS").await.unwrap();
    let mut batch = high.fetch().max_messages(1).expires(DEADLINE).messages().await.unwrap();
    let msg = within("fetching the task", batch.next()).await.expect("a task").unwrap();
    let content_type = msg.headers.as_ref().and_then(|h| h.get("Content-Type")).map(|v| v.as_str().to_string());
    assert_eq!(ScanTask::decode(&msg.payload, content_type.as_deref()).unwrap(), task);
    msg.ack_with(AckKind::Progress).await.expect("in-progress ack");
    msg.double_ack().await.expect("the server confirms the scanner's ack");
    assert_eq!(stream_messages(&controller, "TRAWL_TASKS").await, 0, "the acked task left the work queue");

    // Results and dead letters, stored by JetStream.
    let ack = scanner.js.publish("trawl.results.image.x", "result".into()).await.unwrap().await.unwrap();
    assert_eq!(ack.stream, "TRAWL_RESULTS");
    let ack = scanner.js.publish("trawl.dead.bulk", "{}".into()).await.unwrap().await.unwrap();
    assert_eq!(ack.stream, "TRAWL_DEAD");

    // Heartbeats and the layer cache: put, get, delete.
    let heartbeat = serde_json::to_vec(&ScannerHeartbeat { id: "scanner-1".into(), ..Default::default() }).unwrap();
    for (bucket, key, value) in
        [("TRAWL_SCANNERS", "scanner-1", heartbeat), ("TRAWL_LAYERS", "v1.0123abcd", b"layer inventory".to_vec())]
    {
        let kv = scanner.js.get_key_value(bucket).await.unwrap();
        kv.put(key, value.clone().into()).await.unwrap_or_else(|e| panic!("{bucket} put: {e}"));
        assert_eq!(kv.get(key).await.unwrap().as_deref(), Some(&value[..]), "{bucket} get");
        kv.delete(key).await.unwrap_or_else(|e| panic!("{bucket} delete: {e}"));
        assert_eq!(kv.get(key).await.unwrap(), None, "{bucket} after delete");
    }

    // Registry configurations: read, and list (watch/keys).
    let registries = scanner.js.get_key_value("TRAWL_REGISTRIES").await.unwrap();
    assert_eq!(registries.get("local").await.unwrap().as_deref(), Some(registry.as_bytes()));
    let keys: Vec<String> = within("listing registries", registries.keys().await.unwrap().try_collect()).await.unwrap();
    assert_eq!(keys, ["local"]);
    scanner.expect_no_violation().await;

    // The controller takes the result off its consumer.
    let results: PullConsumer = controller.js.get_consumer_from_stream("controller", "TRAWL_RESULTS").await.unwrap();
    let mut batch = results.fetch().max_messages(1).expires(DEADLINE).messages().await.unwrap();
    let msg = within("fetching the result", batch.next()).await.expect("a result").unwrap();
    assert_eq!(&msg.payload[..], b"result");
    msg.double_ack().await.unwrap();

    // Max-delivery advisories reach the controller's queue group (admin plays the server);
    // a plain subscription is refused.
    let advisories = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.TRAWL_TASKS.*";
    let mut reaper = controller.client.queue_subscribe(advisories, "trawl-controller".into()).await.unwrap();
    controller.expect_no_violation().await;
    admin
        .client
        .publish("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.TRAWL_TASKS.scanners-high", "{}".into())
        .await
        .unwrap();
    admin.client.flush().await.unwrap();
    within("the advisory", reaper.next()).await.expect("the controller receives the advisory");
    let _plain = controller.client.subscribe(advisories).await.unwrap();
    controller.expect_violations(&[subscription_to(advisories)]).await;

    // max_payload is above the 1 MiB bucket limit, so the stream decides: a value of
    // exactly 1 MiB is stored, one byte more is refused by JetStream (10054), and the
    // connection lives on.
    let reports = controller.js.get_key_value("TRAWL_REPORTS").await.unwrap();
    reports.put("sha256.ab12", vec![7u8; 1 << 20].into()).await.expect("a value at the bucket limit fits");
    let err = reports.put("sha256.cd34", vec![7u8; (1 << 20) + 1].into()).await.expect_err("over the bucket limit");
    assert!(format!("{err:?}").contains("10054"), "the stream's limit answers, not the connection's: {err:?}");
    controller.js.get_stream("KV_TRAWL_REPORTS").await.expect("the connection is still usable");
    controller.expect_no_violation().await;
    scanner.expect_no_violation().await;
}

#[tokio::test]
async fn the_scanner_is_refused_everything_else() {
    let nats = start_server();
    let controller = Login::new(&nats, "controller").await;
    let mut scanner = Login::new(&nats, "scanner").await;
    let task = ScanTask::new("local", "127.0.0.1:5000/app:1", None, trawl_protocol::Lane::Bulk, "sweep");
    set_up_cluster(&controller, &task).await;
    let images = controller.js.get_key_value("TRAWL_IMAGES").await.unwrap();
    images.put("sha256.ab12", "{\"status\":\"scanned\"}".into()).await.unwrap();
    // Opened with the short timeout, so that the refused put below fails fast.
    let registries =
        scanner.js_refused.get_key_value("TRAWL_REGISTRIES").await.expect("the scanner may open TRAWL_REGISTRIES");

    let (c, js) = (&scanner.client, &scanner.js_refused);
    let forged = ScanTask::new("local", "evil/image:1", None, trawl_protocol::Lane::High, "forged");
    let refused = tokio::join!(
        async { js.publish("trawl.tasks.high", forged.encode().unwrap().into()).await?.await.map(drop) },
        async { js.delete_stream("TRAWL_TASKS").await.map(drop) },
        async { c.request("$JS.API.STREAM.PURGE.TRAWL_TASKS", "".into()).await.map(drop) },
        async { js.get_stream("TRAWL_TASKS").await.map(drop) },
        async { c.request("$JS.API.CONSUMER.CREATE.TRAWL_TASKS.mine", "".into()).await.map(drop) },
        async { c.request("$JS.API.CONSUMER.DELETE.TRAWL_TASKS.scanners-high", "".into()).await.map(drop) },
        async { c.request("$JS.API.CONSUMER.MSG.NEXT.TRAWL_RESULTS.controller", "".into()).await.map(drop) },
        async { js.get_key_value("TRAWL_IMAGES").await.map(drop) },
        async {
            c.request("$JS.API.DIRECT.GET.KV_TRAWL_IMAGES.$KV.TRAWL_IMAGES.sha256.ab12", "".into()).await.map(drop)
        },
        async { js.get_key_value("TRAWL_REPORTS").await.map(drop) },
        async { registries.put("local", "{\"url\":\"http://evil\"}".into()).await.map(drop) },
    );
    let outcomes: [(&str, bool); 11] = [
        ("publish a task", refused.0.is_err()),
        ("delete TRAWL_TASKS", refused.1.is_err()),
        ("purge TRAWL_TASKS", refused.2.is_err()),
        ("stream info of TRAWL_TASKS", refused.3.is_err()),
        ("create a consumer on TRAWL_TASKS", refused.4.is_err()),
        ("delete a lane consumer", refused.5.is_err()),
        ("pull the controller's results", refused.6.is_err()),
        ("open TRAWL_IMAGES", refused.7.is_err()),
        ("direct get from TRAWL_IMAGES", refused.8.is_err()),
        ("open TRAWL_REPORTS", refused.9.is_err()),
        ("put into TRAWL_REGISTRIES", refused.10.is_err()),
    ];
    for (what, failed) in outcomes {
        assert!(failed, "the scanner could {what}");
    }
    // Snooping by subscription: admission-control writes, the task lanes.
    let _images = c.subscribe("$KV.TRAWL_IMAGES.>").await.unwrap();
    let _tasks = c.subscribe("trawl.tasks.>").await.unwrap();
    scanner
        .expect_violations(&[
            publish_to("trawl.tasks.high"),
            publish_to("$JS.API.STREAM.DELETE.TRAWL_TASKS"),
            publish_to("$JS.API.STREAM.PURGE.TRAWL_TASKS"),
            publish_to("$JS.API.STREAM.INFO.TRAWL_TASKS"),
            publish_to("$JS.API.CONSUMER.CREATE.TRAWL_TASKS.mine"),
            publish_to("$JS.API.CONSUMER.DELETE.TRAWL_TASKS.scanners-high"),
            publish_to("$JS.API.CONSUMER.MSG.NEXT.TRAWL_RESULTS.controller"),
            publish_to("$JS.API.STREAM.INFO.KV_TRAWL_IMAGES"),
            publish_to("$JS.API.DIRECT.GET.KV_TRAWL_IMAGES.$KV.TRAWL_IMAGES.sha256.ab12"),
            publish_to("$JS.API.STREAM.INFO.KV_TRAWL_REPORTS"),
            publish_to("$KV.TRAWL_REGISTRIES.local"),
            subscription_to("$KV.TRAWL_IMAGES.>"),
            subscription_to("trawl.tasks.>"),
        ])
        .await;

    // Nothing changed: the queued task is still the only one, the lanes and records are intact.
    let mut tasks = controller.js.get_stream("TRAWL_TASKS").await.unwrap();
    assert_eq!(tasks.info().await.unwrap().state.messages, 1);
    assert!(tasks.get_last_raw_message_by_subject("trawl.tasks.high").await.is_err(), "no forged task");
    let _: PullConsumer = controller
        .js
        .get_consumer_from_stream("scanners-high", "TRAWL_TASKS")
        .await
        .expect("the lane consumer survived the scanner's delete");
    assert!(images.get("sha256.ab12").await.unwrap().is_some());
    let kv = controller.js.get_key_value("TRAWL_REGISTRIES").await.unwrap();
    assert_eq!(kv.get("local").await.unwrap(), None);
}

#[tokio::test]
async fn the_updater_publishes_the_database_and_scanners_follow_it() {
    let nats = start_server();
    let mut updater = Login::new(&nats, "updater").await;
    let mut scanner = Login::new(&nats, "scanner").await;

    // The updater comes first: it creates both buckets itself, publishes, then prunes.
    let publisher =
        DbPublisher::connect(updater.client.clone()).await.expect("the updater opens (creates) the buckets");
    let publisher = publisher.with_keep(1);
    publisher.publish(&database(1)).await.expect("the updater publishes v1");
    let follower = DbFollower::start(scanner.client.clone(), None, FollowerConfig::default());
    let mut events = follower.events();
    expect_loaded(&mut events, 1).await;
    let announcement = publisher.publish(&database(2)).await.expect("the updater publishes v2");
    expect_loaded(&mut events, 2).await;
    assert_eq!(follower.current().unwrap().header().version, 2);
    assert_eq!(publisher.announced().await.unwrap(), Some(announcement));
    let objects: Vec<String> =
        publisher.buckets().objects.list().await.unwrap().map_ok(|o| o.name).try_collect().await.unwrap();
    assert_eq!(objects, ["trawl-2.db"], "v1 was pruned (list, delete, purge)");
    drop(follower);
    updater.expect_no_violation().await;
    scanner.expect_no_violation().await;

    // The controller's set-up afterwards leaves the updater's buckets usable.
    let controller = Login::new(&nats, "controller").await;
    within("ensure_all", ensure_all(&controller.js)).await.expect("ensure_all over the updater's buckets");

    // Nothing else; and the scanner cannot publish a database. (One round of refusals.)
    let (c, js) = (&updater.client, &updater.js_refused);
    let (sc, sjs) = (&scanner.client, &scanner.js_refused);
    let task = ScanTask::new("local", "evil/image:1", None, trawl_protocol::Lane::High, "forged");
    let refused = tokio::join!(
        async { js.publish("trawl.tasks.high", task.encode().unwrap().into()).await?.await.map(drop) },
        async { js.publish("trawl.results.image.x", "r".into()).await?.await.map(drop) },
        async { js.get_stream("TRAWL_TASKS").await.map(drop) },
        async { js.get_key_value("TRAWL_REGISTRIES").await.map(drop) },
        async { c.request("$JS.API.STREAM.DELETE.OBJ_TRAWL_DB", "".into()).await.map(drop) },
        async { sjs.publish("$KV.TRAWL_DB_ANNOUNCE.current", "{}".into()).await?.await.map(drop) },
        async { sjs.publish("$O.TRAWL_DB.C.x", "chunk".into()).await?.await.map(drop) },
        async { sc.request("$JS.API.STREAM.PURGE.OBJ_TRAWL_DB", "".into()).await.map(drop) },
    );
    assert!(refused.0.is_err(), "the updater could queue a task");
    assert!(refused.1.is_err(), "the updater could publish a result");
    assert!(refused.2.is_err(), "the updater could read the task stream");
    assert!(refused.3.is_err(), "the updater could open TRAWL_REGISTRIES");
    assert!(refused.4.is_err(), "the updater could delete the database bucket");
    assert!(refused.5.is_err() && refused.6.is_err() && refused.7.is_err(), "the scanner could write the database");
    updater
        .expect_violations(&[
            publish_to("trawl.tasks.high"),
            publish_to("trawl.results.image.x"),
            publish_to("$JS.API.STREAM.INFO.TRAWL_TASKS"),
            publish_to("$JS.API.STREAM.INFO.KV_TRAWL_REGISTRIES"),
            publish_to("$JS.API.STREAM.DELETE.OBJ_TRAWL_DB"),
        ])
        .await;
    scanner
        .expect_violations(&[
            publish_to("$KV.TRAWL_DB_ANNOUNCE.current"),
            publish_to("$O.TRAWL_DB.C.x"),
            publish_to("$JS.API.STREAM.PURGE.OBJ_TRAWL_DB"),
        ])
        .await;
    assert_eq!(stream_messages(&controller, "TRAWL_TASKS").await, 0);
    assert_eq!(stream_messages(&controller, "TRAWL_RESULTS").await, 0);
    assert_eq!(publisher.announced().await.unwrap().map(|a| a.version), Some(2), "the announcement is intact");
}
