//! Measuring child processes (wall time, CPU time, peak RSS) and summarising repeated runs.

use anyhow::{bail, Context, Result};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one finished child process cost.
#[derive(Debug, Clone, Copy)]
pub struct ChildRun {
    /// From just before spawning to the moment it was reaped.
    pub wall: Duration,
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub sys: Duration,
    /// Peak resident set size in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
}

impl ChildRun {
    /// Peak RSS in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }

    /// CPU time (user + system) over wall time: how many cores it kept busy.
    pub fn cores_used(&self) -> f64 {
        (self.user + self.sys).as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs commands through a small launcher process and measures them.
///
/// Why a launcher: Linux carries a process's peak RSS across `fork` and
/// `exec`, so a child forked straight from this harness (hundreds of MiB after
/// building images) would report the harness's RSS as its own `ru_maxrss`.
/// The launcher is this same binary re-executed (`exec-measured`, a few MiB),
/// which spawns the real command, reaps it with `wait4` and reports its wall
/// time, CPU time and peak RSS.
pub struct Meter {
    launcher: PathBuf,
}

impl Meter {
    /// A meter using this executable as the launcher.
    pub fn current() -> Result<Self> {
        Ok(Meter { launcher: std::env::current_exe().context("find the harness executable")? })
    }

    /// A meter using `launcher` (a `trawl-loadtest` binary) as the launcher.
    pub fn with_launcher(launcher: impl Into<PathBuf>) -> Self {
        Meter { launcher: launcher.into() }
    }

    /// Runs `cmd` (program, arguments, environment, working directory) to
    /// completion with `stdout` as its standard output, and measures it.
    ///
    /// Stderr is captured and shown if the command fails. The command is
    /// killed after `timeout` so that a hung peer cannot hang the benchmark.
    pub fn run(&self, cmd: &Command, stdout: Stdio, timeout: Duration) -> Result<ChildRun> {
        let shown = format!("{cmd:?}");
        let report = tempfile::NamedTempFile::new().context("temp file for the launcher report")?;
        let mut stderr_file = tempfile::tempfile().context("temp file for stderr")?;
        let mut launcher = Command::new(&self.launcher);
        launcher.arg(EXEC_MEASURED).arg(report.path()).arg("--").arg(cmd.get_program()).args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(v) => launcher.env(key, v),
                None => launcher.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            launcher.current_dir(dir);
        }
        launcher.stdin(Stdio::null()).stdout(stdout).stderr(stderr_file.try_clone()?);
        let mut child = launcher.spawn().with_context(|| format!("spawn the launcher for {shown}"))?;
        let finished = wait_exit_or_timeout(child.id() as libc::pid_t, timeout);
        if !finished {
            // The command dies with the launcher (parent-death signal).
            child.kill().ok();
        }
        let status = child.wait().context("wait for the launcher")?;
        if !finished {
            bail!("{shown} did not finish within {timeout:?}; killed");
        }
        let text = std::fs::read_to_string(report.path()).unwrap_or_default();
        let parsed = parse_report(&text);
        let mut stderr_tail = || {
            let mut err = String::new();
            stderr_file.rewind().ok();
            stderr_file.read_to_string(&mut err).ok();
            let lines: Vec<&str> = err.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        match parsed {
            Some((run, 0)) => Ok(run),
            Some((_, wait_status)) => bail!("{shown} failed (wait status {wait_status:#x}):\n{}", stderr_tail()),
            None => bail!("launcher for {shown} failed ({status}):\n{}", stderr_tail()),
        }
    }
}

/// Name of the hidden launcher subcommand (`trawl-loadtest exec-measured REPORT -- PROGRAM ARGS…`).
pub const EXEC_MEASURED: &str = "exec-measured";

/// The launcher side: runs `program` with `args` (inheriting stdio), reaps it
/// with `wait4` and writes `wall_ns user_us sys_us maxrss_kib wait_status` to
/// `report`. Returns an error only if the command could not be run at all.
pub fn exec_measured(report: &Path, program: &OsStr, args: &[OsString]) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    // Dies with the launcher, which the harness kills on timeout.
    // SAFETY: prctl is async-signal-safe and touches no parent memory.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    // Reaped by `wait4` below, never through std (dropping a `Child` neither waits nor kills).
    let child = cmd.spawn().with_context(|| format!("spawn {}", program.to_string_lossy()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: plain syscall with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            bail!("wait4: {err}");
        }
    }
    let wall = start.elapsed();
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    std::fs::write(
        report,
        format!("{} {} {} {} {}\n", wall.as_nanos(), us(usage.ru_utime), us(usage.ru_stime), usage.ru_maxrss, status),
    )
    .with_context(|| format!("write {}", report.display()))
}

/// Parses the launcher's report line into the run and the raw wait status.
fn parse_report(text: &str) -> Option<(ChildRun, i32)> {
    let f: Vec<u64> = text.split_whitespace().map(|w| w.parse().ok()).collect::<Option<_>>()?;
    let [wall_ns, user_us, sys_us, maxrss, status] = f[..] else { return None };
    Some((
        ChildRun {
            wall: Duration::from_nanos(wall_ns),
            user: Duration::from_micros(user_us),
            sys: Duration::from_micros(sys_us),
            max_rss_kib: maxrss,
        },
        status as i32,
    ))
}

/// Waits until `pid` has exited (without reaping it) or `timeout` passes;
/// true if it exited. Uses a pidfd so the wait ends the moment the child does.
fn wait_exit_or_timeout(pid: libc::pid_t, timeout: Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if fd < 0 {
        // Old kernel: no timeout, the caller's wait blocks until the end.
        return true;
    }
    let deadline = Instant::now() + timeout;
    let exited = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
        if r > 0 || (r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted) {
            break true;
        }
    };
    // SAFETY: we own fd.
    unsafe { libc::close(fd) };
    exited
}

/// The median of `values` (mean of the middle two for an even count); NaN if empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Repeated measurements of one quantity, kept in run order.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// One value per run.
    pub values: Vec<f64>,
}

impl Series {
    /// Adds a run's value.
    pub fn push(&mut self, v: f64) {
        self.values.push(v);
    }

    /// The median run.
    pub fn median(&self) -> f64 {
        median(&self.values)
    }

    /// `median<unit> (runs: a, b, c)` with `decimals` digits.
    pub fn show(&self, decimals: usize, unit: &str) -> String {
        let runs: Vec<String> = self.values.iter().map(|v| format!("{v:.decimals$}")).collect();
        format!("{:.decimals$}{unit} (runs: {})", self.median(), runs.join(", "))
    }
}

/// A tool's version for the record: the text after `after` on the first line
/// of `cmd`'s output that has it (`""`: the whole first line).
pub fn version_line(cmd: &mut Command, after: &str) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().with_context(|| format!("run {program} (scripts/setup installs it)"))?;
    if !out.status.success() {
        bail!("{program} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.find(after).map(|i| l[i + after.len()..].trim().to_string()))
        .with_context(|| format!("{program} printed no version"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        let s = Series { values: vec![1.24, 3.0, 2.0] };
        assert_eq!(s.show(1, " s"), "2.0 s (runs: 1.2, 3.0, 2.0)");
    }

    #[test]
    fn launcher_reports_parse() {
        let (run, status) = parse_report("1500000000 200000 100000 4096 0\n").unwrap();
        assert_eq!(status, 0);
        assert_eq!(run.wall, Duration::from_millis(1500));
        assert_eq!(run.rss_mib(), 4.0);
        assert!((run.cores_used() - 0.2).abs() < 1e-9);
        assert!(parse_report("").is_none());
        assert!(parse_report("1 2 3").is_none());
    }
}
