//! The process backend with a shell script standing in for
//! `trawl-scanner worker`: it records its start and its SIGTERM in an events
//! file, so the tests see what each process was told and when it was gone.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trawl_autoscale::backend::process::{ProcessCommand, ProcessScaler, ShutdownOutcome};
use trawl_autoscale::backend::{ScaleBackend, ScaleError, ScaleState};
use trawl_autoscale::reconcile::Reconciler;
use trawl_autoscale::strategy::{AutoscaleSettings, Strategy};

/// Drains like the scanner: the trap is set before "start" is written, so a
/// SIGTERM after "start" is always recorded; `wait` makes the trap run at once.
const WORKER: &str = r#"
trap 'echo "term $1 $$" >> "$EVENTS"; exit 0' TERM
echo "out $1"; echo "err $1" >&2
echo "start $1 $$" >> "$EVENTS"
while :; do sleep 0.1 & wait $!; done
"#;

/// A worker that will not stop for SIGTERM.
const STUBBORN: &str = r#"
trap '' TERM
echo "start $1 $$" >> "$EVENTS"
while :; do sleep 0.1; done
"#;

struct Setup {
    dir: tempfile::TempDir,
    scaler: ProcessScaler,
}

impl Setup {
    fn new(script: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut command = ProcessCommand::new("/bin/sh", dir.path().join("logs"));
        command.args = ["-c", script, "worker", "{index}"].map(String::from).to_vec();
        command.env = vec![("EVENTS".into(), dir.path().join("events").display().to_string())];
        command.name = "worker".into();
        Setup { scaler: ProcessScaler::new(command), dir }
    }

    fn events_path(&self) -> PathBuf {
        self.dir.path().join("events")
    }

    /// `(what, index, pid)` for every line of the events file.
    fn events(&self) -> Vec<(String, u32, u32)> {
        events(&self.events_path())
    }

    fn started(&self) -> Vec<(u32, u32)> {
        self.events().into_iter().filter(|e| e.0 == "start").map(|e| (e.1, e.2)).collect()
    }

    fn terminated(&self) -> Vec<u32> {
        let mut indexes: Vec<u32> = self.events().into_iter().filter(|e| e.0 == "term").map(|e| e.1).collect();
        indexes.sort_unstable();
        indexes
    }

    fn pids(&self) -> Vec<u32> {
        self.scaler.processes().iter().map(|p| p.pid).collect()
    }
}

fn events(path: &Path) -> Vec<(String, u32, u32)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect()
}

/// Whether `pid` is a process at all — a zombie counts, so this also tells
/// whether an exited child was reaped.
fn exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

async fn wait_until<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn scaling_up_starts_processes_with_distinct_indexes_and_logs() {
    let s = Setup::new(WORKER);
    assert_eq!(s.scaler.name(), "process");
    assert_eq!(s.scaler.state().await.unwrap(), ScaleState::default());
    s.scaler.set_desired(3).await.unwrap();
    assert_eq!(s.scaler.state().await.unwrap(), ScaleState { desired: 3, current: 3, ready: 3 });

    wait_until("three workers started", || async { s.started().len() == 3 }).await;
    let mut started = s.started();
    started.sort_unstable();
    let processes: Vec<(u32, u32)> = s.scaler.processes().iter().map(|p| (p.index, p.pid)).collect();
    assert_eq!(started, processes, "each index ran as the process the backend lists");
    assert_eq!(started.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1, 2]);

    for index in 0..3 {
        let log = s.scaler.command().log_path(index);
        assert_eq!(log, s.dir.path().join("logs").join(format!("worker-{index}.log")));
        let expected = format!("out {index}\nerr {index}\n");
        wait_until("the log has stdout and stderr", || async {
            std::fs::read_to_string(&log).unwrap_or_default() == expected
        })
        .await;
    }
}

#[tokio::test]
async fn scaling_down_terminates_the_newest_and_keeps_the_oldest() {
    let s = Setup::new(WORKER);
    s.scaler.set_desired(3).await.unwrap();
    wait_until("three workers started", || async { s.started().len() == 3 }).await;
    let pids = s.pids();

    s.scaler.set_desired(1).await.unwrap();
    // Stopping ones no longer count, whether or not they have exited yet.
    assert_eq!(s.scaler.state().await.unwrap(), ScaleState { desired: 1, current: 1, ready: 1 });

    wait_until("the two newest got SIGTERM", || async { s.terminated() == vec![1, 2] }).await;
    wait_until("they exited and were reaped", || async { !exists(pids[1]) && !exists(pids[2]) }).await;
    let left = s.scaler.processes();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].index, left[0].pid, left[0].stopping), (0, pids[0], false));
    assert!(exists(pids[0]), "the oldest keeps running");
    assert!(!s.terminated().contains(&0));
    assert_eq!(s.scaler.state().await.unwrap(), ScaleState { desired: 1, current: 1, ready: 1 });
}

#[tokio::test]
async fn a_process_killed_from_outside_is_reaped_and_replaced() {
    let s = Setup::new(WORKER);
    s.scaler.set_desired(2).await.unwrap();
    wait_until("two workers started", || async { s.started().len() == 2 }).await;
    let pids = s.pids();

    // SAFETY: our own child.
    unsafe { libc::kill(pids[1] as libc::pid_t, libc::SIGKILL) };
    // No call into the backend: its reaper alone must collect the zombie.
    wait_until("the killed worker was reaped", || async { !exists(pids[1]) }).await;
    assert_eq!(s.scaler.state().await.unwrap(), ScaleState { desired: 2, current: 1, ready: 1 });

    s.scaler.set_desired(2).await.unwrap();
    let processes = s.scaler.processes();
    assert_eq!(processes.iter().map(|p| p.index).collect::<Vec<_>>(), vec![0, 1], "the free index is reused");
    assert_eq!(processes[0].pid, pids[0]);
    assert_ne!(processes[1].pid, pids[1]);
    assert_eq!(s.scaler.state().await.unwrap(), ScaleState { desired: 2, current: 2, ready: 2 });
}

#[tokio::test]
async fn the_reconciler_restarts_a_crashed_process_without_a_new_decision() {
    let s = Setup::new(WORKER);
    let settings =
        AutoscaleSettings { strategy: Strategy::Immediate, min_scanners: 2, max_scanners: 2, ..Default::default() };
    let backend: Arc<ProcessScaler> = Arc::new(ProcessScaler::new(s.scaler.command().clone()));
    let mut reconciler = Reconciler::new(settings, backend.clone()).unwrap();
    assert_eq!(reconciler.tick(Duration::from_secs(1), 10).await.applied, Some(2));
    wait_until("two workers started", || async { s.started().len() == 2 }).await;
    let before = backend.processes();

    // SAFETY: our own child.
    unsafe { libc::kill(before[0].pid as libc::pid_t, libc::SIGKILL) };
    wait_until("the killed worker was reaped", || async { !exists(before[0].pid) }).await;
    // At the maximum already: the strategy holds, and the tick still puts the
    // count back, under the crashed process's index.
    let tick = reconciler.tick(Duration::from_secs(2), 10).await;
    assert_eq!((tick.restored, tick.applied, tick.error), (1, None, None));
    assert_eq!(tick.state, Some(ScaleState { desired: 2, current: 2, ready: 2 }));
    let after = backend.processes();
    assert_eq!(after.iter().map(|p| p.index).collect::<Vec<_>>(), vec![1, 0]);
    assert_ne!(after[1].pid, before[0].pid);
    assert_eq!(reconciler.tick(Duration::from_secs(3), 10).await.restored, 0, "nothing more to restore");

    backend.shutdown(Duration::from_secs(5)).await;
    assert_eq!(backend.restore_exited().await.unwrap(), 0, "nothing is started after shutdown");
}

#[tokio::test]
async fn a_stopping_process_keeps_its_index_until_it_exits() {
    let s = Setup::new(STUBBORN);
    s.scaler.set_desired(2).await.unwrap();
    wait_until("two workers started", || async { s.started().len() == 2 }).await;
    s.scaler.set_desired(1).await.unwrap();
    s.scaler.set_desired(2).await.unwrap();
    let processes: Vec<(u32, bool)> = s.scaler.processes().iter().map(|p| (p.index, p.stopping)).collect();
    assert_eq!(processes, vec![(0, false), (1, true), (2, false)]);
    assert_eq!(s.scaler.state().await.unwrap(), ScaleState { desired: 2, current: 2, ready: 2 });
    // Until its trap is set, SIGTERM would still stop the newest.
    wait_until("the third worker started", || async { s.started().len() == 3 }).await;
    let outcome = s.scaler.shutdown(Duration::from_millis(100)).await;
    assert_eq!(outcome, ShutdownOutcome { exited: 0, killed: 3 });
}

#[tokio::test]
async fn shutdown_terminates_everything_and_refuses_more() {
    let s = Setup::new(WORKER);
    s.scaler.set_desired(3).await.unwrap();
    wait_until("three workers started", || async { s.started().len() == 3 }).await;
    let pids = s.pids();

    let outcome = s.scaler.shutdown(Duration::from_secs(10)).await;
    assert_eq!(outcome, ShutdownOutcome { exited: 3, killed: 0 });
    assert_eq!(s.terminated(), vec![0, 1, 2], "each got SIGTERM and drained");
    for pid in pids {
        assert!(!exists(pid), "{pid} still exists (running or unreaped)");
    }
    assert_eq!(s.scaler.state().await.unwrap(), ScaleState::default());
    let err = s.scaler.set_desired(1).await.unwrap_err();
    assert!(matches!(err, ScaleError::Refused { .. }), "{err:?}");
    assert!(s.scaler.processes().is_empty());
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed_after_the_grace() {
    let s = Setup::new(STUBBORN);
    s.scaler.set_desired(1).await.unwrap();
    wait_until("the worker started", || async { s.started().len() == 1 }).await;
    let pid = s.pids()[0];

    let grace = Duration::from_millis(300);
    let started = Instant::now();
    let outcome = s.scaler.shutdown(grace).await;
    assert!(started.elapsed() >= grace, "killed before the grace was over");
    assert_eq!(outcome, ShutdownOutcome { exited: 0, killed: 1 });
    assert!(!exists(pid));
}

#[tokio::test]
async fn dropping_the_backend_stops_its_processes() {
    let s = Setup::new(WORKER);
    s.scaler.set_desired(2).await.unwrap();
    wait_until("two workers started", || async { s.started().len() == 2 }).await;
    let pids = s.pids();
    let Setup { dir, scaler } = s;
    drop(scaler);
    for pid in pids {
        assert!(!exists(pid), "{pid} outlived the backend");
    }
    let terms = events(&dir.path().join("events")).iter().filter(|e| e.0 == "term").count();
    assert_eq!(terms, 2, "SIGTERM came first");
}

#[tokio::test]
async fn a_program_that_cannot_start_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let scaler = ProcessScaler::new(ProcessCommand::new("/nonexistent/trawl-scanner", dir.path()));
    let err = scaler.set_desired(1).await.unwrap_err();
    let ScaleError::Unavailable { reason, .. } = &err else { panic!("{err:?}") };
    assert!(reason.contains("/nonexistent/trawl-scanner"), "{reason}");
    assert_eq!(scaler.state().await.unwrap(), ScaleState { desired: 1, current: 0, ready: 0 });
}

#[test]
fn the_command_debug_shows_no_environment_values() {
    let mut command = ProcessCommand::new("trawl-scanner", "/tmp");
    command.env = vec![("NATS_URL".into(), "nats://scanner:s3cret@127.0.0.1:4222".into())];
    let shown = format!("{command:?}");
    assert!(shown.contains("NATS_URL") && !shown.contains("s3cret"), "{shown}");
}

/// The stand-in controller for the next test: started as a separate process,
/// it starts two workers and waits to be killed (at most a minute).
#[test]
#[ignore = "run by workers_get_sigterm_when_the_controller_dies"]
fn controller_stand_in() {
    let Some(dir) = std::env::var_os("TRAWL_TEST_STAND_IN_DIR") else { return };
    let dir = PathBuf::from(dir);
    let mut command = ProcessCommand::new("/bin/sh", dir.join("logs"));
    command.args = ["-c", WORKER, "worker", "{index}"].map(String::from).to_vec();
    command.env = vec![("EVENTS".into(), dir.join("events").display().to_string())];
    let scaler = ProcessScaler::new(command);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(scaler.set_desired(2)).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[tokio::test]
async fn workers_get_sigterm_when_the_controller_dies() {
    let dir = tempfile::tempdir().unwrap();
    let events_path = dir.path().join("events");
    let mut stand_in = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "controller_stand_in", "--ignored", "--nocapture"])
        .env("TRAWL_TEST_STAND_IN_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = || events(&events_path).into_iter().filter(|e| e.0 == "start").map(|e| e.2).collect::<Vec<_>>();
    wait_until("the stand-in started two workers", || async { started().len() == 2 }).await;

    // SIGKILL: no Drop, no shutdown — only the kernel's death signal is left.
    stand_in.kill().unwrap();
    stand_in.wait().unwrap();
    // Which workers (by pid) handled a SIGTERM; a shell may log its trap more than once.
    let terms = || {
        let pids: std::collections::BTreeSet<u32> =
            events(&events_path).into_iter().filter(|e| e.0 == "term").map(|e| e.2).collect();
        pids
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while terms().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let orphans: Vec<u32> = started().into_iter().filter(|pid| exists(*pid)).collect();
    for pid in &orphans {
        // SAFETY: the orphans this test's stand-in started; a failed test must not leave them.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
    }
    let started: std::collections::BTreeSet<u32> = started().into_iter().collect();
    assert_eq!(terms(), started, "the workers did not get SIGTERM when their parent died");
}
