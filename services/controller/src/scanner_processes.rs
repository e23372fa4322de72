//! The `process` scale backend: local `trawl-scanner worker` processes on
//! this machine, for the one-machine stack (demo, load tests, the
//! end-to-end autoscaling test).
//!
//! Scaling up starts processes with the next free indexes; scaling down
//! sends SIGTERM — never SIGKILL — to the newest ones, which finish or hand
//! back their in-flight tasks before exiting (the worker's drain), and count
//! as stopping until they do. A process that dies by itself is reaped and
//! replaced on the next step. Children die with the controller
//! (`PR_SET_PDEATHSIG`), and [`ScannerProcesses::shutdown`] stops them all.

use async_trait::async_trait;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use trawl_autoscale::backend::{ScaleBackend, ScaleError, ScaleState};

/// How to start one scanner.
#[derive(Debug, Clone)]
pub struct ScannerCommand {
    /// The program (`trawl-scanner`).
    pub program: PathBuf,
    /// Its arguments; `{index}` is replaced by the scanner's index.
    pub args: Vec<String>,
    /// Environment set for it (e.g. `NATS_URL` with the scanner's own credentials).
    pub env: Vec<(String, String)>,
    /// Environment variables not passed on (the controller's secrets).
    pub env_remove: Vec<String>,
    /// Where `scanner-<index>.log` is written.
    pub log_dir: PathBuf,
}

struct Running {
    index: u32,
    child: Child,
    /// SIGTERM sent: finishing its tasks, not counted as current.
    stopping: bool,
}

#[derive(Default)]
struct Inner {
    desired: u32,
    running: Vec<Running>,
}

/// Local scanner processes behind [`ScaleBackend`].
pub struct ScannerProcesses {
    command: ScannerCommand,
    inner: Mutex<Inner>,
}

impl ScannerProcesses {
    /// No scanners yet; `set_desired` starts them.
    pub fn new(command: ScannerCommand) -> ScannerProcesses {
        ScannerProcesses { command, inner: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic mid-update leaves the list usable: every entry is a whole child.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reaps children that exited; logs the ones that were not asked to.
    fn reap(inner: &mut Inner) {
        inner.running.retain_mut(|r| match r.child.try_wait() {
            Ok(Some(status)) => {
                if !r.stopping {
                    tracing::warn!(index = r.index, %status, "scanner process exited by itself; it will be replaced");
                }
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
    }

    fn spawn(&self, index: u32) -> Result<Child, ScaleError> {
        let failed = |reason: String| ScaleError::Unavailable { what: format!("starting scanner {index}"), reason };
        let log_path = self.command.log_dir.join(format!("scanner-{index}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| failed(format!("{}: {e}", log_path.display())))?;
        let err = log.try_clone().map_err(|e| failed(e.to_string()))?;
        let mut cmd = Command::new(&self.command.program);
        cmd.args(self.command.args.iter().map(|a| a.replace("{index}", &index.to_string())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        for var in &self.command.env_remove {
            cmd.env_remove(var);
        }
        cmd.envs(self.command.env.iter().map(|(k, v)| (k, v)));
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn().map_err(|e| failed(format!("{}: {e}", self.command.program.display())))
    }

    /// SIGTERM to every scanner, SIGKILL to those still running after `grace`.
    pub fn shutdown(&self, grace: Duration) {
        let mut inner = self.lock();
        inner.desired = 0;
        for r in inner.running.iter_mut() {
            terminate(&r.child);
            r.stopping = true;
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            Self::reap(&mut inner);
            if inner.running.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for r in inner.running.iter_mut() {
            tracing::warn!(index = r.index, "scanner did not stop within {grace:?}; killing it");
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        inner.running.clear();
    }
}

fn terminate(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child with a valid signal.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

#[async_trait]
impl ScaleBackend for ScannerProcesses {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn state(&self) -> Result<ScaleState, ScaleError> {
        let mut inner = self.lock();
        Self::reap(&mut inner);
        let current = inner.running.iter().filter(|r| !r.stopping).count() as u32;
        Ok(ScaleState { desired: inner.desired, current, ready: current })
    }

    async fn set_desired(&self, replicas: u32) -> Result<(), ScaleError> {
        let mut inner = self.lock();
        Self::reap(&mut inner);
        inner.desired = replicas;
        let active = inner.running.iter().filter(|r| !r.stopping).count() as u32;
        if active < replicas {
            for _ in active..replicas {
                // The lowest index not in use, so logs and ids stay small and stable.
                let index = (0..).find(|i| inner.running.iter().all(|r| r.index != *i)).unwrap_or(0);
                let child = self.spawn(index)?;
                tracing::info!(index, pid = child.id(), "started a scanner process");
                inner.running.push(Running { index, child, stopping: false });
            }
        } else {
            let mut extra = active - replicas;
            // Newest first: the oldest have warm caches and long-running scans.
            for r in inner.running.iter_mut().rev() {
                if extra == 0 {
                    break;
                }
                if !r.stopping {
                    terminate(&r.child);
                    r.stopping = true;
                    extra -= 1;
                    tracing::info!(index = r.index, "stopping a scanner process (it finishes or hands back its tasks)");
                }
            }
        }
        Ok(())
    }
}

impl Drop for ScannerProcesses {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(10));
    }
}
