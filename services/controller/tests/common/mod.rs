//! The distributed system on one machine, for the controller's integration
//! tests: a real nats-server, a real docker-registry holding generated
//! images, and the real `trawl-controller` and `trawl-scanner worker`
//! binaries as child processes, driven through the controller's API.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use trawl_testkit::{workspace_binary, BuiltImage, ImageBuilder, LayerBuilder, NatsServer, Registry, ServiceProcess};
use trawl_vulndb::osv::OsvRecord;
use trawl_vulndb::Database;

/// The API token every test controller is started with.
pub const TOKEN: &str = "test-token-0123456789";

const DEBIAN_OS_RELEASE: &str =
    "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";

/// A Debian 12 layer whose dpkg status holds openssl (one fixable finding in
/// [`write_db`]) and zlib (one unfixed critical finding).
pub fn base_layer() -> LayerBuilder {
    let status = [("libssl3", "3.0.11-1~deb12u1", "openssl"), ("zlib1g", "1:1.2.13.dfsg-1", "zlib"), ("bash", "5.2.15-2", "bash")]
        .iter()
        .map(|(n, v, s)| {
            format!("Package: {n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\nSource: {s}\nDescription: test\n\n")
        })
        .collect::<String>();
    LayerBuilder::new().dir("etc").file("etc/os-release", DEBIAN_OS_RELEASE, 0o644).dir("var/lib/dpkg").file(
        "var/lib/dpkg/status",
        status,
        0o644,
    )
}

/// Image `n`: the shared base layer, made distinct by a label.
pub fn numbered_image(n: usize) -> BuiltImage {
    ImageBuilder::new().label("test.trawl.number", &n.to_string()).layer(base_layer()).build().unwrap()
}

/// A vulnerability database (version 1) with two advisories matching [`base_layer`].
pub fn write_db(path: &Path) {
    std::fs::write(path, database(1, &[])).unwrap();
}

/// The database of [`write_db`] at `version`, with `extra` OSV records, as bytes.
pub fn database(version: u64, extra: &[Value]) -> Vec<u8> {
    let records: Vec<OsvRecord> = [
        json!({"id": "DSA-9999-1", "aliases": ["CVE-2099-0001"], "summary": "openssl: example flaw",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]}]}]}),
        json!({"id": "CVE-2099-0003", "summary": "zlib: inflate overflow, not fixed yet",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "zlib"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]}),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    Database::build(records, vec![], 0).with_version(version).to_bytes().unwrap()
}

/// Pushes `count` numbered images, `per_repo` tags to a repository; returns (repository, tag, digest).
pub async fn push_numbered(registry: &Registry, count: usize, per_repo: usize) -> Vec<(String, String, String)> {
    let mut pushed = Vec::new();
    for n in 0..count {
        let repo = format!("team-{:02}/app", n / per_repo);
        let tag = format!("v{}", n % per_repo);
        let digest = trawl_testkit::push(registry, &repo, &tag, &numbered_image(n), None).await.unwrap();
        pushed.push((repo, tag, digest));
    }
    pushed
}

/// A controller process and its API address.
pub struct ControllerProcess {
    /// The process.
    pub process: ServiceProcess,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

/// NATS, a registry, a database file, and the processes started so far.
pub struct Stack {
    /// The NATS server.
    pub nats: NatsServer,
    /// The registry.
    pub registry: Registry,
    /// Logs and the database.
    pub dir: tempfile::TempDir,
    /// The database file scanners use.
    pub db: PathBuf,
    /// Controllers started.
    pub controllers: Vec<ControllerProcess>,
    /// Scanner workers started.
    pub scanners: Vec<ServiceProcess>,
    http: reqwest::Client,
}

impl Stack {
    /// Starts NATS and a registry and writes the database.
    pub fn start() -> Stack {
        Stack::with_registry(Registry::start().unwrap())
    }

    /// Like [`Stack::start`], with a registry of the caller's.
    pub fn with_registry(registry: Registry) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("trawl.db");
        write_db(&db);
        Stack {
            nats: NatsServer::start().unwrap(),
            registry,
            dir,
            db,
            controllers: Vec::new(),
            scanners: Vec::new(),
            http: reqwest::Client::new(),
        }
    }

    /// Starts a controller and waits until it is ready; returns its index.
    pub fn start_controller(&mut self) -> usize {
        self.start_controller_with_env(&[])
    }

    /// Like [`Stack::start_controller`], with extra environment (e.g. registry passwords).
    pub fn start_controller_with_env(&mut self, env: &[(&str, &str)]) -> usize {
        let port = trawl_testkit::free_port().unwrap();
        let mut cmd = Command::new(workspace_binary("trawl-controller").unwrap());
        cmd.args(["--nats", &self.nats.url(), "--listen", &format!("127.0.0.1:{port}")])
            .env("TRAWL_API_TOKEN", TOKEN)
            .env("TRAWL_LOG", "info,async_nats=warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let i = self.controllers.len();
        let log = self.dir.path().join(format!("controller-{i}.log"));
        let mut process = ServiceProcess::spawn("trawl-controller", cmd, &log).unwrap();
        process.wait_http_ok(([127, 0, 0, 1], port).into(), "/readyz").unwrap();
        self.controllers.push(ControllerProcess { process, url: format!("http://127.0.0.1:{port}") });
        i
    }

    /// Starts a scanner worker with `extra` arguments; returns its index.
    pub fn start_scanner(&mut self, extra: &[&str]) -> usize {
        self.start_scanner_with_env(extra, &[])
    }

    /// Starts a scanner worker with `extra` arguments and environment; returns its index.
    pub fn start_scanner_with_env(&mut self, extra: &[&str], env: &[(&str, &str)]) -> usize {
        let i = self.scanners.len();
        let mut cmd = Command::new(workspace_binary("trawl-scanner").unwrap());
        cmd.args(["worker", "--nats", &self.nats.url(), "--db"])
            .arg(&self.db)
            .args(["--id", &format!("scanner-{i}")])
            .args(extra)
            .env("TRAWL_LOG", "info,async_nats=warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = self.dir.path().join(format!("scanner-{i}.log"));
        self.scanners.push(ServiceProcess::spawn("trawl-scanner", cmd, &log).unwrap());
        i
    }

    /// `GET` on controller `c`.
    pub async fn get(&self, c: usize, path: &str) -> (u16, Value) {
        api_get(&self.http, &self.controllers[c].url, path).await
    }

    /// An authorised `POST` (or `method`) with a JSON body on controller `c`.
    pub async fn send(&self, c: usize, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        api_send(&self.http, &self.controllers[c].url, method, path, body).await
    }

    /// Adds the stack's registry as `name` through controller 0.
    pub async fn add_registry(&self, name: &str, extra: Value) {
        let mut body = json!({"name": name, "url": format!("http://{}", self.registry.host()), "insecure": true});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, answer) = self.send(0, "POST", "/api/v1/registries", Some(body)).await;
        assert_eq!(status, 201, "{answer}");
    }

    /// Adds a registry at `url` (plain HTTP) as `name` through controller 0, with `extra` fields.
    pub async fn add_registry_at(&self, name: &str, url: &str, extra: Value) {
        let mut body = json!({"name": name, "url": url, "insecure": true});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, answer) = self.send(0, "POST", "/api/v1/registries", Some(body)).await;
        assert_eq!(status, 201, "{answer}");
    }

    /// The stored record of image `digest` through controller 0, if there is one.
    pub async fn image(&self, digest: &str) -> Option<Value> {
        let (status, record) = self.get(0, &format!("/api/v1/images/{digest}")).await;
        (status == 200).then_some(record)
    }

    /// Waits until every image of `digests` has a stored record (or panics after `timeout`
    /// with the logs); returns the records in the same order.
    pub async fn wait_images(&self, digests: &[&str], timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut records = Vec::with_capacity(digests.len());
            for digest in digests {
                match self.image(digest).await {
                    Some(record) => records.push(record),
                    None => break,
                }
            }
            if records.len() == digests.len() {
                return records;
            }
            if Instant::now() > deadline {
                let missing = &digests[records.len()..];
                panic!("no record for {missing:?} within {timeout:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until registry `name` has no queued images left (or panics after `timeout` with the logs).
    pub async fn wait_settled(&self, name: &str, expected_total: u64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, status) = self.get(0, &format!("/api/v1/registries/{name}")).await;
            if status["images_total"] == expected_total && status["queued"] == 0 {
                return status;
            }
            if Instant::now() > deadline {
                panic!("registry {name} did not settle within {timeout:?}: {status}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, c) in self.controllers.iter().enumerate() {
            out.push_str(&format!("--- controller {i}\n{}\n", tail(&c.process.log())));
        }
        for (i, s) in self.scanners.iter().enumerate() {
            out.push_str(&format!("--- scanner {i}\n{}\n", tail(&s.log())));
        }
        out
    }

    /// A JetStream context on the stack's server.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(async_nats::connect(self.nats.url()).await.unwrap())
    }
}

/// `GET` on the API at `base` (`http://127.0.0.1:PORT`): status and JSON body (null if none).
pub async fn api_get(http: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    let r = http.get(format!("{base}{path}")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null))
}

/// An authorised `method` request with an optional JSON body on the API at `base`.
pub async fn api_send(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http.request(method, format!("{base}{path}")).header("Authorization", format!("Bearer {TOKEN}"));
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null))
}

/// The last 6000 bytes of a log.
pub fn tail(log: &str) -> &str {
    let start = log.len().saturating_sub(6000);
    let start = (start..log.len()).find(|&i| log.is_char_boundary(i)).unwrap_or(log.len());
    &log[start..]
}

/// Messages a stream has ever stored (its last sequence) and holds now.
pub async fn stream_counts(js: &async_nats::jetstream::Context, stream: &str) -> (u64, u64) {
    let mut s = js.get_stream(stream).await.unwrap();
    let info = s.info().await.unwrap();
    (info.state.last_sequence, info.state.messages)
}

/// Every message a stream holds, in order: (subject, payload). For limits streams
/// such as `TRAWL_DEAD` (reading a work-queue stream this way does not take its messages).
pub async fn stream_messages(js: &async_nats::jetstream::Context, stream: &str) -> Vec<(String, Vec<u8>)> {
    let mut s = js.get_stream(stream).await.unwrap();
    let state = s.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        if state.messages == 0 {
            break;
        }
        // A deleted message leaves a gap in the sequence.
        if let Ok(m) = s.get_raw_message(seq).await {
            out.push((m.subject.to_string(), m.payload.to_vec()));
        }
    }
    out
}
