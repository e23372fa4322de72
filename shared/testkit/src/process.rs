//! Child-process plumbing shared by the server fixtures: supervised spawning, log capture,
//! readiness polling with a deadline, and a tiny blocking HTTP probe.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a fixture waits for its server to become ready before giving up.
///
/// Generous because CI machines are small and may be compiling in parallel; overridable with
/// `TRAWL_TESTKIT_START_TIMEOUT_SECS`.
pub(crate) fn start_timeout() -> Duration {
    std::env::var("TRAWL_TESTKIT_START_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(30))
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` with `PR_SET_PDEATHSIG = SIGKILL` from one long-lived helper thread.
///
/// The kernel delivers the death signal when the *thread* that forked the child exits, not
/// the process. Spawning from the test's own thread would kill a server shared between tests
/// (e.g. in a `static OnceLock`) as soon as the first test finishes. The helper thread lives
/// until the test binary exits, so servers die with the test process — even on `abort` or
/// `SIGKILL`, where `Drop` never runs — and not before.
fn spawn_supervised(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("trawl-testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                                return Err(io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the testkit spawner thread");
        tx
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    sender.send((cmd, reply_tx)).map_err(|_| io::Error::other("testkit spawner thread is gone"))?;
    reply_rx.recv().map_err(|_| io::Error::other("testkit spawner thread is gone"))?
}

/// A server process owned by a fixture: its output goes to a log file, it is SIGKILLed and
/// reaped on [`ManagedProcess::kill`] and on drop.
pub(crate) struct ManagedProcess {
    name: &'static str,
    child: Option<Child>,
    log_path: PathBuf,
    /// Byte offset in the log where the current incarnation's output starts.
    log_start: u64,
}

impl ManagedProcess {
    /// Spawns `cmd`, appending its stdout and stderr to `log_path`.
    pub(crate) fn spawn(name: &'static str, mut cmd: Command, log_path: &Path) -> Result<Self> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("open log file {}", log_path.display()))?;
        let log_start = log.metadata()?.len();
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let child = spawn_supervised(cmd).with_context(|| format!("spawn {name}"))?;
        Ok(Self { name, child: Some(child), log_path: log_path.to_path_buf(), log_start })
    }

    /// The OS process id while the process is owned (even if it already exited unreaped).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGKILL and reaps the process. A no-op when already killed.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `timeout` for the process to exit on its own and reaps it.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still alive (not exited, not killed).
    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The output of the current incarnation (last 8 KiB at most).
    pub(crate) fn log_tail(&self) -> String {
        read_tail(&self.log_path, self.log_start, 8192).unwrap_or_else(|e| format!("<cannot read log: {e}>"))
    }

    /// Polls `probe` until it returns true, failing early with the server's output if the
    /// process exits, or after [`start_timeout`].
    pub(crate) fn wait_ready(&mut self, what: &str, mut probe: impl FnMut() -> bool) -> Result<()> {
        let timeout = start_timeout();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!(
                        "{} exited with {status} before becoming ready ({what}); its output:\n{}",
                        self.name,
                        self.log_tail()
                    );
                }
            } else {
                bail!("{} is not running", self.name);
            }
            if probe() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let tail = self.log_tail();
                self.kill();
                bail!("{} was not ready ({what}) within {timeout:?}; its output:\n{tail}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_tail(path: &Path, from: u64, max: u64) -> io::Result<String> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = from.max(len.saturating_sub(max));
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Issues `GET path` over HTTP/1.0 and returns the status code, or `None` if the server
/// cannot be reached or answers garbage. Blocking, with short timeouts: meant for polling.
pub(crate) fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Issues `GET path` over HTTP/1.0 and returns the status code and body, or `None` if the
/// server cannot be reached or answers garbage. Blocking, with short timeouts: for polling
/// small monitoring endpoints (`/jsz`).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.take(1 << 20).read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Whether a log says the server could not bind its port (so a retry on another port helps).
pub(crate) fn is_port_conflict(message: &str) -> bool {
    message.contains("address already in use")
}

/// Finds `name` on `PATH`, resolving a pyenv shim to the real binary so that the pid we hold
/// is the server itself (and startup skips the shim's shell scripts).
pub(crate) fn find_binary(env_var: &str, name: &str, install_hint: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{env_var}={} does not name a file", p.display());
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p));
    let Some(found) = found else {
        bail!("`{name}` not found on PATH (or set {env_var}); {install_hint}");
    };
    if found.parent().is_some_and(|d| d.ends_with("shims")) {
        if let Ok(out) = Command::new("pyenv").args(["which", name]).stderr(Stdio::null()).output() {
            let real = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && is_executable(&real) {
                return Ok(real);
            }
        }
    }
    Ok(found)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
