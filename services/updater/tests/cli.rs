//! The updater's command line against a real `nats-server -js`: `build`,
//! `info`, `publish --db` / `--source`, `once` (published, then unchanged),
//! `run` until SIGTERM, and credentials in the URL never echoed.

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use trawl_dbdist::{DbFollower, DbPublisher, FollowerConfig, FollowerEvent};
use trawl_testkit::NatsServer;

const BIN: &str = env!("CARGO_BIN_EXE_trawl-updater");
const DEADLINE: Duration = Duration::from_secs(60);

fn updater(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("NATS_URL").env_remove("NATS_CREDS").output().expect("run trawl-updater")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {:?}\nstdout: {}\nstderr: {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Writes an OSV advisory for lodash into `dir`.
fn advisory(dir: &Path, id: &str, fixed: &str) {
    let record = json!({"id": id, "summary": format!("{id} in lodash"),
        "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]});
    std::fs::write(dir.join(format!("{id}.json")), serde_json::to_vec(&record).unwrap()).unwrap();
}

fn announced(url: &str) -> Option<trawl_dbdist::Announcement> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        DbPublisher::connect(client).await.unwrap().announced().await.unwrap()
    })
}

#[test]
fn build_publish_once_and_info() {
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let work = tempfile::tempdir().unwrap();
    let sources = work.path().join("osv");
    std::fs::create_dir(&sources).unwrap();
    advisory(&sources, "GHSA-0001", "4.17.19");
    let src = sources.to_str().unwrap();
    let db1 = work.path().join("v1.db");

    ok(&updater(&["build", "--source", src, "--out", db1.to_str().unwrap()]));
    let info = ok(&updater(&["info", db1.to_str().unwrap()]));
    let version1: u64 = info.lines().next().unwrap().trim_start_matches("version:").trim().parse().unwrap();
    let info_json: serde_json::Value =
        serde_json::from_str(&ok(&updater(&["info", "--json", db1.to_str().unwrap()]))).unwrap();
    assert_eq!(info_json["version"], version1);

    // publish --db: announced and loadable by a follower.
    let out = ok(&updater(&["publish", "--nats", &url, "--db", db1.to_str().unwrap()]));
    assert!(out.starts_with(&format!("published version {version1} as trawl-{version1}.db")), "{out}");
    let a = announced(&url).unwrap();
    assert_eq!(a.version, version1);
    assert_eq!(a.sha256, trawl_dbdist::sha256_hex(&std::fs::read(&db1).unwrap()));

    // The same file again is not newer.
    let again = updater(&["publish", "--nats", &url, "--db", db1.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("--force"), "{}", text(&again.stderr));

    // Garbage is never published.
    let garbage = work.path().join("garbage.db");
    std::fs::write(&garbage, b"not a database").unwrap();
    let refused = updater(&["publish", "--nats", &url, "--db", garbage.to_str().unwrap(), "--force"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("not a valid database"), "{}", text(&refused.stderr));
    assert_eq!(announced(&url).unwrap().version, version1);

    // once: the sources are those of the announced database.
    let out = ok(&updater(&["once", "--nats", &url, "--source", src]));
    assert!(out.starts_with(&format!("unchanged: sources match the announced version {version1}")), "{out}");

    // A new advisory: once publishes, and a second once reports unchanged.
    advisory(&sources, "GHSA-0002", "4.17.21");
    let out = ok(&updater(&["once", "--nats", &url, "--source", src]));
    assert!(out.starts_with("published version "), "{out}");
    let a2 = announced(&url).unwrap();
    assert!(a2.version > version1);
    let out = ok(&updater(&["once", "--nats", &url, "--source", src]));
    assert!(out.starts_with(&format!("unchanged: sources match the announced version {}", a2.version)), "{out}");

    // publish --source builds, then publishes; a follower loads it.
    advisory(&sources, "GHSA-0003", "4.18.0");
    let out = ok(&updater(&["publish", "--nats", &url, "--source", src]));
    assert!(out.starts_with("published version "), "{out}");
    let a3 = announced(&url).unwrap();
    assert!(a3.version > a2.version);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let follower = DbFollower::start(async_nats::connect(&url).await.unwrap(), None, FollowerConfig::default());
        let mut events = follower.events();
        let event = tokio::time::timeout(DEADLINE, events.recv()).await.unwrap().unwrap();
        assert_eq!(event, FollowerEvent::Loaded { version: a3.version });
        assert_eq!(follower.current().unwrap().header().counts.advisories, 3);
    });
}

#[test]
fn credentials_in_the_url_are_used_and_never_printed() {
    let nats = NatsServer::start_with_config("authorization { user: trawl, password: \"s3cret-pw\" }").unwrap();
    let work = tempfile::tempdir().unwrap();
    advisory(work.path(), "GHSA-0001", "4.17.19");
    let src = work.path().to_str().unwrap();
    let good = format!("nats://trawl:s3cret-pw@127.0.0.1:{}", nats.port());
    let out = ok(&updater(&["once", "--nats", &good, "--source", src]));
    assert!(out.starts_with("published version "), "{out}");

    let bad = format!("nats://trawl:wrong-pw@127.0.0.1:{}", nats.port());
    let refused = updater(&["once", "--nats", &bad, "--source", src]);
    assert!(!refused.status.success());
    let all = text(&refused.stdout) + &text(&refused.stderr);
    assert!(!all.contains("wrong-pw"), "{all}");
    assert!(all.contains("trawl:***@"), "{all}");

    // A creds file that cannot be read, or credentials given twice, are refused up front.
    let missing =
        updater(&["once", "--nats", &nats.url(), "--nats-creds", "/nonexistent/trawl.creds", "--source", src]);
    assert!(
        text(&missing.stderr).contains("cannot read NATS credentials file /nonexistent/trawl.creds"),
        "{}",
        text(&missing.stderr)
    );
    let both = updater(&["once", "--nats", &good, "--nats-creds", "/nonexistent/trawl.creds", "--source", src]);
    assert!(text(&both.stderr).contains("use one"), "{}", text(&both.stderr));
    assert!(!text(&both.stderr).contains("s3cret-pw"));

    // NATS_URL works as well, and is not shown by --help.
    let out = Command::new(BIN).args(["once", "--source", src]).env("NATS_URL", &good).output().unwrap();
    assert!(ok(&out).starts_with("unchanged: "));
    let help = Command::new(BIN).args(["once", "--help"]).env("NATS_URL", &good).output().unwrap();
    assert!(!text(&help.stdout).contains("s3cret-pw"));
}

#[test]
fn run_publishes_then_stops_on_sigterm() {
    let nats = NatsServer::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    advisory(work.path(), "GHSA-0001", "4.17.19");
    let mut child = Command::new(BIN)
        .args(["run", "--nats", &nats.url(), "--source", work.path().to_str().unwrap(), "--interval", "1h"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first cycle's report, read from the pipe on a thread so a silent child cannot hang the test.
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let line = lines.recv_timeout(DEADLINE).expect("run printed nothing");
    assert!(line.starts_with("published version "), "{line}");
    // SAFETY: sends a signal to our own child, by its pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let (status_tx, status) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = status_tx.send(child.wait());
    });
    let status = status.recv_timeout(DEADLINE).expect("run did not stop on SIGTERM").unwrap();
    assert!(status.success(), "{status:?}");
    assert!(announced(&nats.url()).is_some());
}
