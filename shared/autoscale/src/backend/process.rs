//! The `process` scale backend: local scanner processes on this machine.
//!
//! For the one-machine stack — the demo, the load tests and the end-to-end
//! autoscaling test — where there is no cluster to ask for pods. The command
//! is generic ([`ProcessCommand`]); the controller passes
//! `trawl-scanner worker --id scanner-{index}`.
//!
//! * Scaling up starts processes with the lowest free indexes, so ids and log
//!   files stay few and stable across restarts.
//! * Scaling down sends SIGTERM — never SIGKILL — to the most recently started
//!   ones: the oldest have warm caches, and SIGTERM lets a scanner finish or
//!   hand back its in-flight task (the worker drains on SIGTERM). They count
//!   as stopping, and keep their index, until they exit.
//! * Every child has a watcher thread that reaps it the moment it exits, so
//!   none lingers as a zombie between two reconcile ticks; a child that exits
//!   by itself (a crash) is no longer counted, and the next reconcile tick
//!   starts a replacement ([`ScaleBackend::restore_exited`]) — the job a
//!   ReplicaSet does on Kubernetes; the tick period paces a crash loop.
//! * Children get SIGTERM if the controller dies (`PR_SET_PDEATHSIG`), and
//!   [`ProcessScaler::shutdown`] or, failing that, `Drop` stops them all.

use super::{ScaleBackend, ScaleError, ScaleState};
use async_trait::async_trait;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long `Drop` waits for processes to exit after SIGTERM before SIGKILL.
/// Short because a drop may block an async runtime's thread; call
/// [`ProcessScaler::shutdown`] for a longer drain.
pub const DROP_GRACE: Duration = Duration::from_secs(3);

/// How to start one scanner process.
#[derive(Clone)]
pub struct ProcessCommand {
    /// The program (e.g. `trawl-scanner`).
    pub program: PathBuf,
    /// Its arguments; `{index}` in any of them is replaced by the scanner's index.
    pub args: Vec<String>,
    /// Environment set for it, on top of the controller's own.
    pub env: Vec<(String, String)>,
    /// Environment variables of the controller not passed on (its secrets).
    pub env_remove: Vec<String>,
    /// The directory of the log files; created when missing.
    pub log_dir: PathBuf,
    /// The log file prefix: stdout and stderr go to `<log_dir>/<name>-<index>.log`.
    pub name: String,
}

impl ProcessCommand {
    /// `program` with no arguments or environment, logging to `<log_dir>/scanner-<index>.log`.
    pub fn new(program: impl Into<PathBuf>, log_dir: impl Into<PathBuf>) -> ProcessCommand {
        ProcessCommand {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            log_dir: log_dir.into(),
            name: "scanner".into(),
        }
    }

    /// The log file of the scanner with `index`.
    pub fn log_path(&self, index: u32) -> PathBuf {
        self.log_dir.join(format!("{}-{index}.log", self.name))
    }
}

// By hand, because the environment may carry credentials (a NATS URL with a
// password): only the variables' names are shown.
impl std::fmt::Debug for ProcessCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCommand")
            .field("program", &self.program)
            .field("args", &self.args.len())
            .field("env", &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("env_remove", &self.env_remove)
            .field("log_dir", &self.log_dir)
            .field("name", &self.name)
            .finish()
    }
}

/// One scanner process as [`ProcessScaler::processes`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannerProcess {
    /// Its index (what `{index}` became).
    pub index: u32,
    /// Its process id.
    pub pid: u32,
    /// SIGTERM was sent; it is finishing and no longer counted.
    pub stopping: bool,
}

/// What [`ProcessScaler::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownOutcome {
    /// Processes that exited within the grace period.
    pub exited: u32,
    /// Processes still running after it, SIGKILLed.
    pub killed: u32,
}

struct Scanner {
    index: u32,
    child: Child,
    stopping: bool,
}

#[derive(Default)]
struct Inner {
    desired: u32,
    /// In start order, so the newest are at the end.
    scanners: Vec<Scanner>,
    /// After [`ProcessScaler::shutdown`] nothing new is started.
    closed: bool,
}

impl Inner {
    /// Reaps every child that exited. Reaping happens only here, under the
    /// lock, so a signal never reaches a pid the kernel has handed on.
    fn reap(&mut self) -> bool {
        let before = self.scanners.len();
        self.scanners.retain_mut(|s| match s.child.try_wait() {
            Ok(Some(status)) => {
                if s.stopping {
                    tracing::info!(index = s.index, %status, "scanner process stopped");
                } else {
                    tracing::warn!(index = s.index, %status, "scanner process exited by itself; it will be replaced");
                }
                false
            }
            Ok(None) => true,
            // ECHILD: it is gone already; nothing left to count or signal.
            Err(_) => false,
        });
        self.scanners.len() != before
    }

    fn active(&self) -> u32 {
        count(self.scanners.iter().filter(|s| !s.stopping))
    }

    fn terminate_all(&mut self) {
        for s in self.scanners.iter_mut() {
            if !s.stopping {
                signal(&s.child, libc::SIGTERM);
                s.stopping = true;
            }
        }
    }

    /// SIGKILL for whatever is left, and reaps it.
    fn kill_all(&mut self) -> u32 {
        let killed = count(self.scanners.iter());
        for mut s in self.scanners.drain(..) {
            tracing::warn!(index = s.index, pid = s.child.id(), "scanner process did not stop in time; killing it");
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        killed
    }
}

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}

struct Shared {
    command: ProcessCommand,
    inner: Mutex<Inner>,
    /// Wakes a synchronous waiter (`Drop`) when a child was reaped.
    reaped: Condvar,
    /// Wakes an asynchronous waiter ([`ProcessScaler::shutdown`]) when a child was reaped.
    reaped_async: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves whole entries only: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Local scanner processes behind [`ScaleBackend`].
///
/// [`ScaleState::desired`] is the count last asked for; `current` and `ready`
/// are both the processes alive and not stopping — a local process has no
/// readiness signal of its own (the controller counts ready scanners from
/// their heartbeats).
pub struct ProcessScaler {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ProcessScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessScaler").field("command", &self.shared.command).finish_non_exhaustive()
    }
}

impl ProcessScaler {
    /// No processes yet; [`ScaleBackend::set_desired`] starts them.
    pub fn new(command: ProcessCommand) -> ProcessScaler {
        ProcessScaler {
            shared: Arc::new(Shared {
                command,
                inner: Mutex::default(),
                reaped: Condvar::new(),
                reaped_async: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The command the processes run.
    pub fn command(&self) -> &ProcessCommand {
        &self.shared.command
    }

    /// The processes not yet exited, oldest first.
    pub fn processes(&self) -> Vec<ScannerProcess> {
        let mut inner = self.shared.lock();
        inner.reap();
        inner
            .scanners
            .iter()
            .map(|s| ScannerProcess { index: s.index, pid: s.child.id(), stopping: s.stopping })
            .collect()
    }

    /// SIGTERM to every process, up to `grace` for them to exit, SIGKILL for
    /// the rest; all are reaped. Afterwards the backend starts nothing:
    /// [`ScaleBackend::set_desired`] is refused.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownOutcome {
        let deadline = tokio::time::Instant::now() + grace;
        let started = {
            let mut inner = self.shared.lock();
            inner.closed = true;
            inner.desired = 0;
            inner.reap();
            inner.terminate_all();
            count(inner.scanners.iter())
        };
        loop {
            // Registered before looking, so an exit between the look and the
            // wait still wakes it.
            let reaped = self.shared.reaped_async.notified();
            tokio::pin!(reaped);
            reaped.as_mut().enable();
            let left = {
                let mut inner = self.shared.lock();
                inner.reap();
                inner.scanners.len()
            };
            if left == 0 || tokio::time::timeout_at(deadline, reaped).await.is_err() {
                break;
            }
        }
        let killed = self.shared.lock().kill_all();
        ShutdownOutcome { exited: started.saturating_sub(killed), killed }
    }

    /// Starts processes until `desired` are active; how many it started.
    fn start_missing(&self, inner: &mut Inner) -> Result<u32, ScaleError> {
        let mut started = 0;
        for _ in inner.active()..inner.desired {
            // A stopping process keeps its index until it exits: two live
            // scanners must never share an id.
            let Some(index) = (0..=u32::MAX).find(|i| inner.scanners.iter().all(|s| s.index != *i)) else {
                break;
            };
            let child = self.spawn(index)?;
            tracing::info!(index, pid = child.id(), "started a scanner process");
            inner.scanners.push(Scanner { index, child, stopping: false });
            started += 1;
        }
        Ok(started)
    }

    fn spawn(&self, index: u32) -> Result<Child, ScaleError> {
        let command = &self.shared.command;
        let failed =
            |reason: String| ScaleError::Unavailable { what: format!("starting scanner process {index}"), reason };
        std::fs::create_dir_all(&command.log_dir)
            .map_err(|e| failed(format!("creating the log directory {}: {e}", command.log_dir.display())))?;
        let log_path = command.log_path(index);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| failed(format!("opening {}: {e}", log_path.display())))?;
        let log_err = log.try_clone().map_err(|e| failed(format!("opening {}: {e}", log_path.display())))?;
        let mut cmd = Command::new(&command.program);
        cmd.args(command.args.iter().map(|a| a.replace("{index}", &index.to_string())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for var in &command.env_remove {
            cmd.env_remove(var);
        }
        cmd.envs(command.env.iter().map(|(k, v)| (k, v)));
        // Errors name the program only: the arguments and environment may
        // carry credentials.
        let mut child =
            spawn_supervised(cmd).map_err(|e| failed(format!("running {}: {e}", command.program.display())))?;
        if let Err(e) = self.watch(&child, index) {
            // Unwatched, it could linger as a zombie: refuse it whole.
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed(format!("starting its reaper thread: {e}")));
        }
        Ok(child)
    }

    /// A thread that sleeps until `child` exits, then reaps it and wakes the
    /// waiters: an event, not a poll, so exits are seen at once.
    fn watch(&self, child: &Child, index: u32) -> io::Result<()> {
        let pid: libc::id_t = child.id();
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new().name(format!("scanner-{index}-reaper")).stack_size(256 * 1024).spawn(
            move || {
                // WNOWAIT: only wait, the reaping is done under the lock.
                // SAFETY: a zeroed siginfo_t is a valid out-parameter.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                loop {
                    // SAFETY: waitid writes only into `info`.
                    let rc = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
                    if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                        break;
                    }
                }
                let mut inner = shared.lock();
                inner.reap();
                drop(inner);
                shared.reaped.notify_all();
                shared.reaped_async.notify_waiters();
            },
        );
        spawned.map(drop)
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own unreaped child, so the pid is still ours.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` with `PR_SET_PDEATHSIG = SIGTERM` from one long-lived thread.
///
/// The kernel sends the death signal when the *thread* that forked the child
/// exits, not the process: spawning from an async runtime's thread (which the
/// runtime may retire) would stop scanners at random. This thread lives until
/// the process exits. SIGTERM, not SIGKILL, so that even a controller crash
/// lets each scanner hand back its task.
fn spawn_supervised(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let started = std::thread::Builder::new().name("trawl-scanner-spawner".into()).spawn(move || {
            for (mut cmd, reply) in rx {
                // SAFETY: getpid has no preconditions; this runs before the fork.
                let parent = unsafe { libc::getpid() };
                // SAFETY: the closure runs between fork and exec and calls
                // only async-signal-safe functions, allocating nothing.
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                            return Err(io::Error::last_os_error());
                        }
                        // The parent may have died before the prctl; then no signal would ever come.
                        if libc::getppid() != parent {
                            return Err(io::Error::from_raw_os_error(libc::ESRCH));
                        }
                        Ok(())
                    });
                }
                let _ = reply.send(cmd.spawn());
            }
        });
        if let Err(e) = started {
            // The receiver is gone with the closure, so every spawn reports it.
            tracing::error!("cannot start the scanner spawner thread: {e}");
        }
        tx
    });
    let gone = || io::Error::other("the scanner spawner thread is not running");
    let (reply_tx, reply_rx) = mpsc::channel();
    sender.send((cmd, reply_tx)).map_err(|_| gone())?;
    reply_rx.recv().map_err(|_| gone())?
}

#[async_trait]
impl ScaleBackend for ProcessScaler {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn state(&self) -> Result<ScaleState, ScaleError> {
        let mut inner = self.shared.lock();
        inner.reap();
        let current = inner.active();
        Ok(ScaleState { desired: inner.desired, current, ready: current })
    }

    async fn set_desired(&self, replicas: u32) -> Result<(), ScaleError> {
        let mut inner = self.shared.lock();
        if inner.closed {
            return Err(ScaleError::Refused {
                what: format!("starting {replicas} scanner processes"),
                reason: "the process backend has been shut down".into(),
            });
        }
        inner.reap();
        inner.desired = replicas;
        let active = inner.active();
        self.start_missing(&mut inner)?;
        let mut extra = active.saturating_sub(replicas);
        for s in inner.scanners.iter_mut().rev() {
            if extra == 0 {
                break;
            }
            if !s.stopping {
                signal(&s.child, libc::SIGTERM);
                s.stopping = true;
                extra -= 1;
                tracing::info!(index = s.index, pid = s.child.id(), "stopping a scanner process (SIGTERM)");
            }
        }
        Ok(())
    }

    async fn restore_exited(&self) -> Result<u32, ScaleError> {
        let mut inner = self.shared.lock();
        if inner.closed {
            return Ok(0);
        }
        inner.reap();
        self.start_missing(&mut inner)
    }

    async fn shutdown(&self, grace: Duration) {
        let outcome = ProcessScaler::shutdown(self, grace).await;
        tracing::info!(exited = outcome.exited, killed = outcome.killed, "scanner processes shut down");
    }
}

impl Drop for ProcessScaler {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.closed = true;
        inner.reap();
        if inner.scanners.is_empty() {
            return;
        }
        inner.terminate_all();
        let deadline = Instant::now() + DROP_GRACE;
        loop {
            inner.reap();
            if inner.scanners.is_empty() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            inner = self.shared.reaped.wait_timeout(inner, left).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
        inner.kill_all();
    }
}
