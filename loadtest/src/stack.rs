//! One run's cluster on this machine: nats-server, the controller and the scanners, as real processes.
//!
//! With fixed scanner counts the harness starts the scanners itself (as
//! `kubectl scale` would), and replaces one that was killed, as a
//! Deployment's ReplicaSet would. With autoscaling the controller's `process`
//! backend starts and stops them; they are its children, found through
//! `/proc`. Either way the harness reads every process's memory from
//! `/proc/<pid>/status` (`VmHWM`, the kernel's own peak), so a scanner that
//! is killed or scaled away still has its peak recorded from the last sample.

use crate::scenario::{AutoscaleSpec, RunPlan, ScannerSpec};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use trawl_testkit::{NatsServer, ServiceProcess};

/// How long a killed scanner stays down before the harness replaces it (kubelet's first back-off is 10 s; shorter keeps runs short).
const RESPAWN_AFTER: Duration = Duration::from_secs(1);

/// The service binaries a run starts.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `trawl-controller`.
    pub controller: PathBuf,
    /// `trawl-scanner`.
    pub scanner: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`, or beside this executable (`target/release` when run through the scripts).
    pub fn find(dir: Option<&Path>) -> Result<Binaries> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_exe()?.parent().context("the harness has no directory")?.to_path_buf(),
        };
        let bins = Binaries { controller: dir.join("trawl-controller"), scanner: dir.join("trawl-scanner") };
        for b in [&bins.controller, &bins.scanner] {
            if !b.is_file() {
                bail!(
                    "{} not found: build it (cargo build --release -p trawl-controller -p trawl-scanner) or pass --bin-dir",
                    b.display()
                );
            }
        }
        Ok(bins)
    }
}

/// The controller's API, as a client sees it.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        Self::json(path, response).await
    }

    /// `method path` with a JSON body and the API token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body)?)
            .send()
            .await?;
        Self::json(path, response).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<String> {
        Ok(self.http.get(format!("{}/metrics", self.base)).send().await?.error_for_status()?.text().await?)
    }

    async fn json(path: &str, response: reqwest::Response) -> Result<serde_json::Value> {
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        if body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&body).with_context(|| format!("{path}: not JSON"))
    }
}

/// A process's memory, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Resident now, KiB.
    pub rss_kib: u64,
    /// Peak resident, KiB (`VmHWM`).
    pub peak_kib: u64,
}

/// Reads `pid`'s memory; `None` once it has exited.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Some(Memory { rss_kib: field("VmRSS:")?, peak_kib: field("VmHWM:")? })
}

/// Live children of `parent` (from `/proc/*/stat`, whose fourth field is the parent pid).
pub fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The command name may hold spaces and parentheses: the fields start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && state != Some("Z") {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// The role of a sampled process, for the report's per-process peaks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// nats-server.
    Nats,
    /// trawl-controller.
    Controller,
    /// A trawl-scanner worker, by pid.
    Scanner(u32),
}

/// A harness-started scanner.
struct OwnScanner {
    process: ServiceProcess,
    /// When it was found dead, for the respawn delay.
    died_at: Option<Instant>,
}

/// The processes of one run.
pub struct Stack {
    /// The NATS server (restartable for fault injection).
    pub nats: NatsServer,
    controller: ServiceProcess,
    /// The controller's API.
    pub api: Api,
    own: Vec<OwnScanner>,
    target: usize,
    scanner_cmd: Box<dyn Fn(usize) -> Command + Send>,
    dir: PathBuf,
    /// Scanners the harness started over the run, replacements included; also the next one's index.
    pub scanners_started: usize,
}

impl Stack {
    /// Starts NATS, the controller and (for a fixed count) the scanners, and
    /// waits until every fixed scanner has sent its first heartbeat.
    pub async fn start(bins: &Binaries, plan: &RunPlan, spec: &ScannerSpec, db: &Path, dir: &Path) -> Result<Stack> {
        std::fs::create_dir_all(dir)?;
        let nats = tokio::task::block_in_place(NatsServer::start).context("start nats-server (run scripts/setup)")?;
        let port = trawl_testkit::free_port()?;
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let token = hex_token();
        let mut cmd = Command::new(&bins.controller);
        cmd.args(["--nats", &nats.url(), "--listen", &listen.to_string(), "--id", "loadtest-controller"])
            .env("TRAWL_API_TOKEN", &token)
            .env("TRAWL_LOG", "info");
        let scanner_args = scanner_args(spec, db);
        if let RunPlan::Autoscale(a) = plan {
            cmd.args(["--scale-backend", "process", "--autoscale-strategy", a.strategy.as_str()])
                .args(["--min-scanners", &a.min_scanners.to_string(), "--max-scanners", &a.max_scanners.to_string()])
                .arg("--scanner-program")
                .arg(&bins.scanner)
                .arg("--scanner-log-dir")
                .arg(dir);
            for a in &scanner_args {
                cmd.arg(format!("--scanner-arg={a}"));
            }
        }
        let mut controller = ServiceProcess::spawn("trawl-controller", cmd, &dir.join("controller.log"))?;
        tokio::task::block_in_place(|| controller.wait_http_ok(listen, "/readyz"))?;
        let api = Api { base: format!("http://{listen}"), token, http: reqwest::Client::new() };
        if let RunPlan::Autoscale(a) = plan {
            put_autoscale(&api, a).await?;
        }
        let nats_url = nats.url();
        let scanner = bins.scanner.clone();
        let scanner_cmd = Box::new(move |index: usize| {
            let mut cmd = Command::new(&scanner);
            cmd.args(["worker", "--nats", &nats_url, "--id", &format!("loadtest-scanner-{index}")])
                .args(&scanner_args)
                .env("TRAWL_LOG", "info");
            cmd
        });
        let target = match plan {
            RunPlan::Fixed(n) => *n,
            RunPlan::Autoscale(_) => 0,
        };
        let mut stack = Stack {
            nats,
            controller,
            api,
            own: Vec::new(),
            target,
            scanner_cmd,
            dir: dir.to_path_buf(),
            scanners_started: 0,
        };
        for _ in 0..target {
            stack.spawn_scanner()?;
        }
        stack.wait_heartbeats(target).await?;
        Ok(stack)
    }

    fn spawn_scanner(&mut self) -> Result<()> {
        let index = self.scanners_started;
        self.scanners_started += 1;
        let log = self.dir.join(format!("scanner-{index}.log"));
        let process = ServiceProcess::spawn("trawl-scanner", (self.scanner_cmd)(index), &log)?;
        self.own.push(OwnScanner { process, died_at: None });
        Ok(())
    }

    async fn wait_heartbeats(&mut self, n: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let beats = self.api.get("/api/v1/scanners").await?;
            if beats.as_array().map_or(0, Vec::len) >= n {
                return Ok(());
            }
            if let Some(dead) = self.own.iter_mut().find_map(|s| (!s.process.is_running()).then_some(s)) {
                bail!("a scanner exited while starting; its output:\n{}", dead.process.log());
            }
            if Instant::now() > deadline {
                bail!("{n} scanners did not all send a heartbeat within 60 s (logs in {})", self.dir.display());
            }
            // Heartbeats are KV writes the harness cannot subscribe to through the API: poll.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Live scanner pids: the harness's own, or the controller's children.
    pub fn scanner_pids(&mut self) -> Vec<u32> {
        if self.target == 0 {
            return self.controller.pid().map(children).unwrap_or_default();
        }
        self.own.iter_mut().filter_map(|s| if s.process.is_running() { s.process.pid() } else { None }).collect()
    }

    /// Every process to sample, with its role.
    pub fn processes(&mut self) -> Vec<(Role, u32)> {
        let mut out = Vec::new();
        out.extend(self.nats.pid().map(|p| (Role::Nats, p)));
        out.extend(self.controller.pid().map(|p| (Role::Controller, p)));
        out.extend(self.scanner_pids().into_iter().map(|p| (Role::Scanner(p), p)));
        out
    }

    /// SIGKILLs up to `n` scanners; returns how many.
    pub fn kill_scanners(&mut self, n: usize) -> usize {
        let pids = self.scanner_pids();
        let mut killed = 0;
        for pid in pids.into_iter().take(n) {
            // SAFETY: kill(2) on a pid read a moment ago from our own children.
            if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
        killed
    }

    /// Fixed counts: replaces scanners that have been dead for [`RESPAWN_AFTER`].
    pub fn replace_dead(&mut self) -> Result<()> {
        let now = Instant::now();
        let mut replace = 0;
        self.own.retain_mut(|s| {
            if s.process.is_running() {
                return true;
            }
            let died = *s.died_at.get_or_insert(now);
            if now.duration_since(died) >= RESPAWN_AFTER {
                replace += 1;
                return false;
            }
            true
        });
        for _ in 0..replace {
            self.spawn_scanner()?;
        }
        Ok(())
    }

    /// SIGKILLs nats-server, waits `down_for`, and starts it again on the same port and store.
    pub fn restart_nats(&mut self, down_for: Duration) -> Result<()> {
        self.nats.kill();
        std::thread::sleep(down_for);
        self.nats.restart()
    }

    /// The controller's log so far.
    pub fn controller_log(&self) -> String {
        self.controller.log()
    }

    /// SIGTERM to everything (scanners drain; the controller stops its own), then waits.
    pub fn stop(mut self) {
        for s in &mut self.own {
            s.process.terminate();
        }
        self.controller.terminate();
        for s in &mut self.own {
            if s.process.wait_exit(Duration::from_secs(30)).is_none() {
                s.process.kill();
            }
        }
        if self.controller.wait_exit(Duration::from_secs(30)).is_none() {
            self.controller.kill();
        }
    }
}

/// The worker options every scanner of a run gets.
fn scanner_args(spec: &ScannerSpec, db: &Path) -> Vec<String> {
    let mut args = vec![
        "--db".to_string(),
        db.display().to_string(),
        "--concurrency".into(),
        spec.concurrency.to_string(),
        "--parallel-layers".into(),
        spec.parallel_layers.to_string(),
    ];
    if !spec.layer_cache {
        args.push("--no-layer-cache".into());
    }
    args
}

async fn put_autoscale(api: &Api, settings: &AutoscaleSpec) -> Result<()> {
    let body = serde_json::to_value(settings)?;
    api.send(reqwest::Method::PUT, "/api/v1/settings/autoscale", body).await.context("store the autoscale settings")?;
    Ok(())
}

/// A random API token for the run's controller.
fn hex_token() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Per-role peak memory over a run, from the samples.
#[derive(Debug, Default, Clone)]
pub struct PeakMemory {
    /// Largest `VmHWM` seen per process.
    pub by_process: BTreeMap<Role, u64>,
    /// Largest sum of the resident sizes of all the run's processes at one sample, KiB.
    pub total_rss_kib: u64,
}

/// Resident memory of a run's processes at one sample, KiB.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Resident {
    /// All processes together.
    pub total_kib: u64,
    /// The largest scanner.
    pub scanner_kib: u64,
    /// The controller.
    pub controller_kib: u64,
    /// nats-server.
    pub nats_kib: u64,
}

impl PeakMemory {
    /// Records one sample of every process and returns what is resident now.
    pub fn sample(&mut self, processes: &[(Role, u32)]) -> Resident {
        let mut now = Resident::default();
        for (role, pid) in processes {
            if let Some(m) = memory(*pid) {
                now.total_kib += m.rss_kib;
                match role {
                    Role::Nats => now.nats_kib = m.rss_kib,
                    Role::Controller => now.controller_kib = m.rss_kib,
                    Role::Scanner(_) => now.scanner_kib = now.scanner_kib.max(m.rss_kib),
                }
                let peak = self.by_process.entry(role.clone()).or_default();
                *peak = (*peak).max(m.peak_kib);
            }
        }
        self.total_rss_kib = self.total_rss_kib.max(now.total_kib);
        now
    }

    /// Peak of one role: nats, controller, or the largest scanner.
    pub fn peak_mib(&self, which: &str) -> f64 {
        let kib = match which {
            "nats" => self.by_process.get(&Role::Nats).copied().unwrap_or(0),
            "controller" => self.by_process.get(&Role::Controller).copied().unwrap_or(0),
            _ => self
                .by_process
                .iter()
                .filter(|(r, _)| matches!(r, Role::Scanner(_)))
                .map(|(_, k)| *k)
                .max()
                .unwrap_or(0),
        };
        kib as f64 / 1024.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_memory_and_finds_its_children() {
        let me = std::process::id();
        let m = memory(me).expect("our own /proc/<pid>/status");
        assert!(m.rss_kib > 0 && m.peak_kib >= m.rss_kib);
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(children(me).contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!children(me).contains(&child.id()));
        assert!(memory(child.id()).is_none());
    }
}
