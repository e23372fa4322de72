//! Trawl's own services as child processes of a test: the controller and
//! scanner workers run as the real binaries, so a test can SIGKILL one
//! mid-scan or SIGTERM it and watch it drain, as an operator or the kernel
//! would.

use crate::process::ManagedProcess;
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A binary of this workspace (`trawl-scanner`, `trawl-controller`…), from
/// the target directory the running test binary was built into.
///
/// `cargo test --workspace` builds every package's binaries before running
/// any test; a single-package run may not, hence the hint.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).context("the test binary has no target directory")?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is not built: run `cargo build --workspace --bins` (scripts/test does) before this test",
            path.display()
        );
    }
    Ok(path)
}

/// A service process: output in a log file, SIGKILLed on drop and when the test binary dies.
pub struct ServiceProcess {
    process: ManagedProcess,
    log: PathBuf,
}

impl ServiceProcess {
    /// Starts `cmd`, logging to `log` (appended, so restarts keep earlier output).
    pub fn spawn(name: &'static str, cmd: Command, log: &Path) -> Result<ServiceProcess> {
        Ok(ServiceProcess { process: ManagedProcess::spawn(name, cmd, log)?, log: log.to_path_buf() })
    }

    /// The process id, while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// SIGKILL: the process dies at once, mid-whatever (`kill -9`).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Sends SIGTERM, as Kubernetes does before stopping a pod.
    pub fn terminate(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) with a pid we own and a valid signal number.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }

    /// Waits for the process to exit by itself; `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.process.wait_exit(timeout)
    }

    /// Everything it has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `GET path` on `addr` answers 200, failing with the log if the process exits.
    pub fn wait_http_ok(&mut self, addr: SocketAddr, path: &str) -> Result<()> {
        self.process.wait_ready(path, || crate::process::http_status(addr, path) == Some(200))
    }

    /// Waits until the log contains `needle` (the process announcing a state), or fails after `timeout`.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if !self.is_running() {
                bail!("the process exited before logging {needle:?}; its output:\n{}", self.log());
            }
            if Instant::now() >= deadline {
                bail!("no {needle:?} in the log within {timeout:?}; its output:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
