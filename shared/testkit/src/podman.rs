//! A real Podman Docker-compatible API service (`podman system service`) on a private unix
//! socket, optionally also on a free loopback TCP port, with its own image storage.
//!
//! It stands in for a Docker engine in tests of the `docker:` image source: Podman serves the
//! Docker Engine API (`/_ping`, `/images/{name}/json`, `/images/{name}/get`, `/images/load`, …)
//! and needs no daemon, systemd or network. Everything it writes lives in a temp dir:
//! `--root`/`--runroot` storage with the `vfs` driver (no overlay mounts, so no privileges
//! beyond what Podman itself needs), `--tmpdir`, `--volumepath`, `--network-config-dir`, a
//! private `HOME`/`XDG_*`/`TMPDIR`, and private `containers.conf`, `storage.conf`,
//! `registries.conf` and signature `policy.json` (accept anything) so the host's configuration
//! cannot leak in (additional image stores, a reject-all signature policy).
//! `--cgroup-manager cgroupfs` and `--events-backend none` make it run without systemd.
//!
//! Two things stay shared with other root Podman processes: the `/dev/shm/libpod_lock` lock
//! segment (only used by containers, pods and volumes, which tests do not create) and
//! `/var/lib/containers/cache/blob-info-cache-v1.boltdb`, a cache Podman's image library
//! writes as root whatever the storage flags say.
//!
//! The fixture talks to the service over the API only (HTTP/1.0, so responses are never
//! chunked); [`PodmanService::cli`] runs the `podman` command line against the same storage for
//! independent checks.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tempfile::TempDir;

use crate::process::{find_binary, http_status, is_port_conflict, ManagedProcess};

const INSTALL_HINT: &str =
    "install it with `apt-get install podman` (Debian 12 brings conmon, crun and containers-common)";
const PORT_ATTEMPTS: usize = 5;
/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// Loading or exporting an image copies it through Podman's storage: allow for slow disks.
const API_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest API response the fixture reads (load progress, inspect documents).
const MAX_RESPONSE: u64 = 16 << 20;

/// A running `podman system service` owned by a test; SIGKILLed when dropped.
///
/// Images loaded into it are visible through [`PodmanService::url`] (and
/// [`PodmanService::tcp_url`] when started with [`PodmanService::start_tcp`]) as they would be
/// in a Docker engine, with one Podman difference: an unqualified name in an archive's
/// `RepoTags` (`ubuntu:16.04`) is stored as `localhost/ubuntu:16.04`. The compat API still
/// finds it as `ubuntu:16.04` (Podman tries `localhost/` for short names), but not as
/// `docker.io/library/ubuntu:16.04`; add that name with [`PodmanService::tag`] when a test
/// needs it.
pub struct PodmanService {
    bin: PathBuf,
    unix: ManagedProcess,
    /// A second service process on the same storage, listening on `127.0.0.1:port`.
    tcp: Option<(ManagedProcess, u16)>,
    socket: PathBuf,
    // Declared last: dropped after the processes are killed.
    dir: TempDir,
}

impl PodmanService {
    /// Starts the service on `unix://<tmp>/podman.sock` and waits until `GET /_ping` answers.
    pub fn start() -> Result<Self> {
        Self::start_inner(false)
    }

    /// Like [`PodmanService::start`], and also serves the same storage on
    /// `tcp://127.0.0.1:<free port>` (a second `podman system service` process: one service
    /// listens on one URI).
    pub fn start_tcp() -> Result<Self> {
        Self::start_inner(true)
    }

    fn start_inner(with_tcp: bool) -> Result<Self> {
        let bin = find_binary("PODMAN_BIN", "podman", INSTALL_HINT)?;
        let dir = tempfile::Builder::new().prefix("trawl-podman-").tempdir()?;
        let socket = dir.path().join("podman.sock");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            bail!("socket path {} is too long for a unix socket; set TMPDIR to a shorter directory", socket.display());
        }
        write_private_config(dir.path())?;
        let mut service = Command::new(&bin);
        configure(&mut service, dir.path());
        service.args(["system", "service", "--time=0"]).arg(format!("unix://{}", socket.display()));
        let mut unix = ManagedProcess::spawn("podman system service", service, &dir.path().join("podman.log"))?;
        unix.wait_ready("GET /_ping on the unix socket", || unix_ping(&socket))?;
        let tcp = if with_tcp { Some(start_tcp_service(&bin, dir.path())?) } else { None };
        Ok(Self { bin, unix, tcp, socket, dir })
    }

    /// The unix socket the service listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// `unix:///…/podman.sock`, the Docker Engine API endpoint of the service.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `tcp://127.0.0.1:PORT` when started with [`PodmanService::start_tcp`].
    pub fn tcp_url(&self) -> Option<String> {
        self.tcp.as_ref().map(|(_, port)| format!("tcp://127.0.0.1:{port}"))
    }

    /// The TCP port when started with [`PodmanService::start_tcp`].
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp.as_ref().map(|(_, port)| *port)
    }

    /// The service's log (the unix-socket process; the TCP one logs to `podman-tcp.log` beside it).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("podman.log")
    }

    /// The pid of the unix-socket service process.
    pub fn pid(&self) -> Option<u32> {
        self.unix.pid()
    }

    /// A `podman` command line using this service's private storage and configuration (not
    /// the API), for checking behind the service's back: `cli().args(["images"])`.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        configure(&mut cmd, self.dir.path());
        cmd
    }

    /// Loads a `docker save` archive through the API (`POST /images/load`) and returns the
    /// names Podman reports, e.g. `["localhost/ubuntu:16.04"]` (or the image ID when the
    /// archive has no tags).
    pub fn load_docker_archive(&self, archive: &Path) -> Result<Vec<String>> {
        let mut file = File::open(archive).with_context(|| format!("open {}", archive.display()))?;
        let size = file.metadata()?.len();
        // Podman reads the body as a form unless told it is a tar.
        let body = Body { content_type: "application/x-tar", len: size, data: &mut file };
        let (status, response) = self.request("POST", "/images/load", Some(body))?;
        if status != 200 {
            bail!("POST /images/load answered HTTP {status}: {}", message_of(&response));
        }
        loaded_names(&response)
    }

    /// Adds the name `repo:tag` to an image (`POST /images/{image}/tag`), as `docker tag` does.
    pub fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        let path = format!("/images/{}/tag?repo={}&tag={}", encode(image), encode(repo), encode(tag));
        let (status, response) = self.request("POST", &path, None)?;
        if status != 201 {
            bail!("tagging {image} as {repo}:{tag} answered HTTP {status}: {}", message_of(&response));
        }
        Ok(())
    }

    /// The image ID (`sha256:…`) the compat API reports for `name`, or `None` when it answers
    /// 404 (`GET /images/{name}/json`).
    pub fn image_id(&self, name: &str) -> Result<Option<String>> {
        let (status, response) = self.request("GET", &format!("/images/{}/json", encode(name)), None)?;
        match status {
            200 => {
                let doc: Value = serde_json::from_slice(&response).context("parse image inspect")?;
                let id = doc["Id"].as_str().context("image inspect has no Id")?;
                Ok(Some(id.to_owned()))
            }
            404 => Ok(None),
            _ => bail!("GET /images/{name}/json answered HTTP {status}: {}", message_of(&response)),
        }
    }

    /// One API request over the unix socket; returns the status and body.
    fn request(&self, method: &str, path: &str, body: Option<Body<'_>>) -> Result<(u16, Vec<u8>)> {
        http_over_unix(&self.socket, method, path, body, API_TIMEOUT)
            .with_context(|| format!("{method} {path} on {}; service output:\n{}", self.url(), self.unix.log_tail()))
    }
}

impl std::fmt::Debug for PodmanService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodmanService")
            .field("url", &self.url())
            .field("tcp_url", &self.tcp_url())
            .field("pid", &self.pid())
            .finish()
    }
}

/// Starts a second service on a free loopback port, retrying when another process takes it.
fn start_tcp_service(bin: &Path, dir: &Path) -> Result<(ManagedProcess, u16)> {
    let mut last_err = None;
    for _ in 0..PORT_ATTEMPTS {
        let port = crate::free_port()?;
        let mut cmd = Command::new(bin);
        configure(&mut cmd, dir);
        cmd.args(["system", "service", "--time=0"]).arg(format!("tcp://127.0.0.1:{port}"));
        let mut process = ManagedProcess::spawn("podman system service (tcp)", cmd, &dir.join("podman-tcp.log"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match process.wait_ready("GET /_ping on TCP", || http_status(addr, "/_ping") == Some(200)) {
            Ok(()) => return Ok((process, port)),
            Err(e) if is_port_conflict(&format!("{e:#}")) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.expect("at least one attempt")).context("podman system service: no free port after several attempts")
}

/// Global flags and environment that confine a `podman` process to `dir`.
fn configure(cmd: &mut Command, dir: &Path) {
    let sub = |name: &str| dir.join(name);
    cmd.arg("--root")
        .arg(sub("root"))
        .arg("--runroot")
        .arg(sub("runroot"))
        .args(["--storage-driver", "vfs"])
        .arg("--tmpdir")
        .arg(sub("libpod-tmp"))
        .arg("--volumepath")
        .arg(sub("volumes"))
        .arg("--network-config-dir")
        .arg(sub("networks"))
        .args(["--cgroup-manager", "cgroupfs", "--events-backend", "none"]);
    // HOME too: the signature policy is read from ~/.config/containers/policy.json first.
    cmd.env("HOME", sub("home"))
        .env("XDG_RUNTIME_DIR", sub("xdg-runtime"))
        .env("XDG_CONFIG_HOME", sub("xdg-config"))
        .env("XDG_DATA_HOME", sub("xdg-data"))
        .env("TMPDIR", sub("tmp"))
        .env("CONTAINERS_CONF", sub("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", sub("storage.conf"))
        .env("CONTAINERS_REGISTRIES_CONF", sub("registries.conf"))
        // Either would turn `podman` into a client of some other service.
        .env_remove("CONTAINER_HOST")
        .env_remove("CONTAINER_CONNECTION");
}

/// Creates the directories and configuration files [`configure`] points at.
fn write_private_config(dir: &Path) -> Result<()> {
    const DIRS: [&str; 10] = [
        "root",
        "runroot",
        "libpod-tmp",
        "volumes",
        "networks",
        "home",
        "xdg-runtime",
        "xdg-config",
        "xdg-data",
        "tmp",
    ];
    for sub in DIRS {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    // Loading checks the signature policy; a host policy that rejects unsigned images
    // (hardened machines have one) must not fail the fixture.
    let policy_dir = dir.join("home/.config/containers");
    std::fs::create_dir_all(&policy_dir)?;
    std::fs::write(policy_dir.join("policy.json"), r#"{"default":[{"type":"insecureAcceptAnything"}]}"#)?;
    let path = |name: &str| toml_str(&dir.join(name));
    std::fs::write(
        dir.join("containers.conf"),
        format!(
            "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\nimage_copy_tmp_dir = {}\n",
            path("tmp")
        ),
    )?;
    // An empty storage.conf is rejected ("the storage 'driver' option must be set").
    std::fs::write(
        dir.join("storage.conf"),
        format!("[storage]\ndriver = \"vfs\"\ngraphroot = {}\nrunroot = {}\n", path("root"), path("runroot")),
    )?;
    // Docker's short-name rules: `ubuntu` means docker.io/library/ubuntu; never prompt.
    std::fs::write(
        dir.join("registries.conf"),
        "unqualified-search-registries = [\"docker.io\"]\nshort-name-mode = \"permissive\"\n",
    )?;
    Ok(())
}

fn toml_str(p: &Path) -> String {
    // A JSON string is a valid TOML basic string.
    serde_json::to_string(&p.to_string_lossy()).expect("string serialises")
}

/// A request body streamed from a reader.
struct Body<'a> {
    content_type: &'static str,
    len: u64,
    data: &'a mut dyn Read,
}

/// `GET /_ping` over the unix socket answers 200 (for readiness polling).
fn unix_ping(socket: &Path) -> bool {
    matches!(http_over_unix(socket, "GET", "/_ping", None, Duration::from_secs(2)), Ok((200, _)))
}

/// One HTTP/1.0 exchange over a unix socket. HTTP/1.0 keeps it simple: the server
/// answers without chunked encoding and closes the connection at the end of the body.
fn http_over_unix(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Body<'_>>,
    wait: Duration,
) -> io::Result<(u16, Vec<u8>)> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(wait))?;
    stream.set_write_timeout(Some(wait))?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    match &body {
        Some(b) => head.push_str(&format!("Content-Type: {}\r\nContent-Length: {}\r\n", b.content_type, b.len)),
        None => head.push_str("Content-Length: 0\r\n"),
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(b) = body {
        let sent = io::copy(&mut b.data.take(b.len), &mut stream)?;
        if sent != b.len {
            return Err(io::Error::other(format!("request body ended after {sent} of {} bytes", b.len)));
        }
    }
    let mut response = Vec::new();
    (&mut stream).take(MAX_RESPONSE).read_to_end(&mut response)?;
    parse_response(&response)
}

/// Splits an HTTP/1.0 response into its status code and body.
fn parse_response(response: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad HTTP response: {why}"));
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&response[..end]);
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(&format!("status line {status_line:?}")))?;
    Ok((status, response[end + 4..].to_vec()))
}

/// Names from a load response: a stream of JSON objects with `"stream": "Loaded image: a,b"`
/// (Podman joins several names with commas) or `"Loaded image ID: sha256:…"`, or `"error"`.
fn loaded_names(response: &[u8]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for doc in serde_json::Deserializer::from_slice(response).into_iter::<Value>() {
        let doc = doc.with_context(|| format!("parse the load response {:?}", String::from_utf8_lossy(response)))?;
        if let Some(error) = doc.get("error").and_then(Value::as_str) {
            bail!("loading the image failed: {error}");
        }
        let Some(line) = doc.get("stream").and_then(Value::as_str) else { continue };
        let line = line.trim();
        let listed = line.strip_prefix("Loaded image ID: ").or_else(|| line.strip_prefix("Loaded image: "));
        if let Some(listed) = listed {
            names.extend(listed.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned));
        }
    }
    if names.is_empty() {
        bail!("the load response names no image: {:?}", String::from_utf8_lossy(response));
    }
    Ok(names)
}

/// The engine's `message` from an error body, or the body itself.
fn message_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

/// Percent-encodes everything but unreserved characters (for path segments and query values).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_responses_name_the_images() {
        let podman = br#"{"stream":"Loaded image: localhost/ubuntu:16.04,localhost/ubuntu:latest"}"#;
        assert_eq!(loaded_names(podman).unwrap(), ["localhost/ubuntu:16.04", "localhost/ubuntu:latest"]);
        let docker =
            b"{\"stream\":\"Loaded image: ubuntu:16.04\\n\"}\n{\"stream\":\"Loaded image ID: sha256:ab\\n\"}\n";
        assert_eq!(loaded_names(docker).unwrap(), ["ubuntu:16.04", "sha256:ab"]);
        assert!(loaded_names(br#"{"errorDetail":{"message":"x"},"error":"x"}"#).is_err());
        assert!(loaded_names(b"").is_err());
    }

    #[test]
    fn parses_http_responses() {
        let (status, body) = parse_response(b"HTTP/1.0 201 Created\r\nA: b\r\n\r\n{}").unwrap();
        assert_eq!((status, body.as_slice()), (201, &b"{}"[..]));
        assert!(parse_response(b"garbage").is_err());
        assert_eq!(encode("docker.io/library/x:1"), "docker.io%2Flibrary%2Fx%3A1");
    }
}
