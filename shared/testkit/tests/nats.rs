//! The NATS fixture, checked over the raw client protocol and the monitoring endpoint.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use trawl_testkit::NatsServer;

/// Connects to `url` and returns the server's `INFO` line.
fn read_info(url: &str) -> (String, BufReader<TcpStream>) {
    let addr = url.strip_prefix("nats://").expect("nats:// url");
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("read INFO");
    assert!(line.starts_with("INFO {"), "unexpected greeting: {line}");
    (line, reader)
}

/// `GET path` on the monitoring endpoint, returning the body.
fn monitor_get(monitor_url: &str, path: &str) -> String {
    let addr = monitor_url.strip_prefix("http://").unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"), "GET {path}: {resp}");
    resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}

/// Creates a file-backed JetStream stream through the raw JS API and waits for the reply.
fn create_stream(url: &str, name: &str) {
    let (_, mut reader) = read_info(url);
    let config = format!(r#"{{"name":"{name}","subjects":["{name}.>"],"storage":"file"}}"#);
    let mut stream = reader.get_ref().try_clone().unwrap();
    write!(
        stream,
        "CONNECT {{\"verbose\":false,\"headers\":true}}\r\nSUB _INBOX.create 1\r\nPUB $JS.API.STREAM.CREATE.{name} _INBOX.create {}\r\n{config}\r\n",
        config.len()
    )
    .unwrap();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read until the API reply");
        if line.starts_with("PING") {
            stream.write_all(b"PONG\r\n").unwrap();
        } else if line.starts_with("MSG _INBOX.create") {
            let mut payload = String::new();
            reader.read_line(&mut payload).unwrap();
            assert!(payload.contains("\"config\""), "stream create failed: {payload}");
            assert!(!payload.contains("\"error\""), "stream create failed: {payload}");
            return;
        } else {
            assert!(!line.starts_with("-ERR"), "server error: {line}");
        }
    }
}

fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn starts_with_jetstream_and_speaks_the_protocol() {
    let server = NatsServer::start().expect("start nats-server");
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    let (info, _) = read_info(&server.url());
    assert!(info.contains("\"jetstream\":true"), "INFO lacks jetstream: {info}");
    assert!(info.contains(&format!("\"port\":{}", server.port())), "{info}");
    let varz = monitor_get(&server.monitor_url(), "/varz");
    assert!(varz.contains("\"jetstream\""), "{varz}");
    assert!(server.store_dir().is_dir());
    // The pid is the server itself, not a wrapper script, so kill() reaches it.
    let exe = std::fs::read_link(format!("/proc/{}/exe", server.pid().unwrap())).unwrap();
    assert!(exe.ends_with("nats-server"), "pid belongs to {}", exe.display());
}

#[test]
fn restart_keeps_port_and_jetstream_store() {
    let mut server = NatsServer::start().expect("start nats-server");
    let url = server.url();
    let monitor = server.monitor_url();
    let first_pid = server.pid().unwrap();
    create_stream(&url, "ORDERS");
    assert!(monitor_get(&monitor, "/jsz").contains("\"streams\": 1"), "{}", monitor_get(&monitor, "/jsz"));

    server.kill();
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    assert!(!pid_exists(first_pid), "killed nats-server {first_pid} still exists");
    assert!(TcpStream::connect(url.strip_prefix("nats://").unwrap()).is_err(), "port still open after kill");

    server.restart().expect("restart");
    assert_eq!(server.url(), url, "restart must keep the port");
    assert_eq!(server.monitor_url(), monitor);
    let second_pid = server.pid().unwrap();
    assert_ne!(second_pid, first_pid);
    let (info, _) = read_info(&url);
    assert!(info.contains("\"jetstream\":true"), "{info}");
    // The stream was recovered from the same store directory.
    let jsz = monitor_get(&monitor, "/jsz");
    assert!(jsz.contains("\"streams\": 1"), "stream lost across restart: {jsz}");

    // Restarting a running server works too.
    server.restart().expect("restart while running");
    assert!(!pid_exists(second_pid));
    read_info(&url);
}

#[test]
fn drop_leaves_no_process() {
    let server = NatsServer::start().expect("start nats-server");
    let pid = server.pid().unwrap();
    let store = server.store_dir();
    assert!(pid_exists(pid));
    drop(server);
    assert!(!pid_exists(pid), "nats-server {pid} outlived its fixture");
    assert!(!store.exists(), "store dir outlived its fixture");
}

#[test]
fn extra_config_is_applied() {
    let server = NatsServer::start_with_config("max_payload: 65536\n").expect("start nats-server");
    let (info, _) = read_info(&server.url());
    assert!(info.contains("\"max_payload\":65536"), "{info}");
}

#[test]
fn startup_failure_reports_server_output() {
    // An invalid config makes nats-server exit at once; the error must carry its message.
    let err = NatsServer::start_with_config("this is { not valid").expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("nats-server exited"), "{msg}");
    assert!(msg.to_lowercase().contains("parse") || msg.contains("error"), "no server output in: {msg}");
}

/// Whether `pid` is gone or a zombie (dead, waiting for a reaper that may be slow in containers).
fn pid_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn server_outlives_the_thread_that_started_it() {
    // A server shared between tests (e.g. in a static) is often started on one test's thread.
    let server = std::thread::spawn(|| NatsServer::start().expect("start nats-server")).join().unwrap();
    let (info, _) = read_info(&server.url());
    assert!(info.contains("\"jetstream\":true"));
}

const ABORT_CHILD_ENV: &str = "TRAWL_TESTKIT_ABORT_CHILD";

/// Helper run as a child process by `server_dies_when_the_test_process_aborts`; a no-op otherwise.
#[test]
fn abort_child() {
    if std::env::var_os(ABORT_CHILD_ENV).is_none() {
        return;
    }
    let server = NatsServer::start().expect("start nats-server");
    println!("NATS_PID={}", server.pid().unwrap());
    println!("NATS_DIR={}", server.store_dir().parent().unwrap().display());
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    std::process::abort(); // no destructors run
}

#[test]
fn server_dies_when_the_test_process_aborts() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["abort_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(ABORT_CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child was supposed to abort");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.split("NATS_PID=").nth(1))
        .map(str::trim)
        .unwrap_or_else(|| panic!("child printed no pid: {stdout} {}", String::from_utf8_lossy(&out.stderr)))
        .parse()
        .unwrap();
    // The kernel delivers the death signal asynchronously: poll with a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !pid_dead(pid) {
        assert!(std::time::Instant::now() < deadline, "nats-server {pid} survived its aborted test process");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The aborted child could not remove its temp dir.
    if let Some(dir) = stdout.lines().find_map(|l| l.split("NATS_DIR=").nth(1)) {
        std::fs::remove_dir_all(dir.trim()).expect("remove the aborted child's temp dir");
    }
}
