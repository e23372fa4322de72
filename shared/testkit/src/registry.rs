//! A real `docker-registry` (CNCF distribution) with filesystem storage, on a free loopback port:
//! anonymous, behind HTTP basic auth, or behind bearer-token auth with a real [`TokenServer`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::process::{find_binary, http_status, is_port_conflict, ManagedProcess};
use crate::token::{TokenServer, TOKEN_ISSUER, TOKEN_SERVICE};

const INSTALL_HINT: &str = "install it with `apt-get install docker-registry`";
const PORT_ATTEMPTS: usize = 5;

/// A running `docker-registry serve` owned by a test (plain HTTP on `127.0.0.1`); SIGKILLed
/// when dropped.
///
/// Storage is the filesystem driver in a private temp dir, so tests can reach behind the
/// registry's back (see [`Registry::corrupt_blob`]).
pub struct Registry {
    process: ManagedProcess,
    port: u16,
    credentials: Option<(String, String)>,
    // Stopped after the registry process is killed (fields drop in declaration order).
    token_server: Option<TokenServer>,
    // Declared last: dropped after the process is killed.
    dir: TempDir,
}

/// How a registry authenticates requests.
enum Auth {
    Anonymous,
    Basic { user: String, password: String },
    Token(TokenServer),
}

impl Registry {
    /// Starts an anonymous (no auth) registry and waits until `GET /v2/` answers.
    pub fn start() -> Result<Self> {
        Self::start_inner(Auth::Anonymous)
    }

    /// Starts a registry that requires HTTP basic auth (htpasswd with a bcrypt hash) for every
    /// request, including `GET /v2/`.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Result<Self> {
        if user.contains(':') || user.contains('\n') {
            bail!("htpasswd user names cannot contain ':' or newlines: {user:?}");
        }
        Self::start_inner(Auth::Basic { user: user.to_owned(), password: password.to_owned() })
    }

    /// Starts a registry with bearer-token auth (`auth: token`, the Docker token flow) and the
    /// [`TokenServer`] it trusts: `users` (`(name, password)`) may pull and push anywhere,
    /// anyone may pull the repositories in `anonymous_pull_repos`.
    ///
    /// Every request without a valid token, including `GET /v2/`, is answered `401` with a
    /// `Bearer realm=…,service=…` challenge. [`Registry::credentials`] returns the first user.
    pub fn start_with_token_auth(users: &[(&str, &str)], anonymous_pull_repos: &[&str]) -> Result<Self> {
        Self::start_inner(Auth::Token(TokenServer::start(users, anonymous_pull_repos)?))
    }

    fn start_inner(auth: Auth) -> Result<Self> {
        let bin = find_binary("DOCKER_REGISTRY_BIN", "docker-registry", INSTALL_HINT)?;
        let dir = tempfile::Builder::new().prefix("trawl-registry-").tempdir()?;
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        let (auth_yaml, credentials, token_server) = match auth {
            Auth::Anonymous => (String::new(), None, None),
            Auth::Basic { user, password } => {
                let htpasswd = dir.path().join("htpasswd");
                // Cost 4 is bcrypt's minimum: these hashes guard nothing and must verify fast.
                let hash = bcrypt::hash_with_result(&password, 4)
                    .context("bcrypt the registry password")?
                    .format_for_version(bcrypt::Version::TwoA);
                std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
                let yaml = format!("auth:\n  htpasswd:\n    realm: trawl-testkit\n    path: {}\n", yaml_str(&htpasswd));
                (yaml, Some((user, password)), None)
            }
            Auth::Token(server) => {
                let bundle = dir.path().join("token-signer.pem");
                std::fs::write(&bundle, server.cert_pem())?;
                let yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    yaml_quote(&server.realm()),
                    yaml_quote(TOKEN_SERVICE),
                    yaml_quote(TOKEN_ISSUER),
                    yaml_str(&bundle)
                );
                let first_user = server.first_user();
                (yaml, first_user, Some(server))
            }
        };
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = crate::free_port()?;
            let config = config_yaml(port, &storage, &auth_yaml);
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config)?;
            let mut cmd = Command::new(&bin);
            cmd.arg("serve").arg(&config_path);
            let mut process = ManagedProcess::spawn("docker-registry", cmd, &dir.path().join("registry.log"))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match process.wait_ready("GET /v2/", || matches!(http_status(addr, "/v2/"), Some(200 | 401))) {
                Ok(()) => return Ok(Self { process, port, credentials, token_server, dir }),
                Err(e) if is_port_conflict(&format!("{e:#}")) => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("at least one attempt")).context("docker-registry: no free port after several attempts")
    }

    /// `127.0.0.1:PORT`, the registry host as used in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `(user, password)` the registry was started with, if any (for token auth: the first
    /// user).
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The token server of a registry started with [`Registry::start_with_token_auth`].
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_ref()
    }

    /// Root of the filesystem storage driver (`docker/registry/v2/…` lives below it).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's log file (stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The pid of the registry process, `None` after [`Registry::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Kills the registry with SIGKILL and reaps it (storage is kept until drop).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Where the filesystem driver keeps the data of blob `digest` (`sha256:<hex>`).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .with_context(|| format!("not a sha256 digest: {digest:?}"))?;
        Ok(self.storage_dir().join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data"))
    }

    /// Overwrites the stored data of an already pushed blob, so the registry serves
    /// `new_bytes` under `digest`: a digest mismatch that clients must detect.
    pub fn corrupt_blob(&self, digest: &str, new_bytes: &[u8]) -> Result<()> {
        let path = self.blob_path(digest)?;
        if !path.is_file() {
            bail!("blob {digest} is not stored in this registry ({} is missing)", path.display());
        }
        std::fs::write(&path, new_bytes).with_context(|| format!("overwrite {}", path.display()))
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("url", &self.url())
            .field(
                "auth",
                &match (&self.token_server, &self.credentials) {
                    (Some(_), _) => "token",
                    (None, Some(_)) => "basic",
                    (None, None) => "none",
                },
            )
            .field("pid", &self.pid())
            .finish()
    }
}

fn yaml_str(p: &Path) -> String {
    yaml_quote(&p.to_string_lossy())
}

fn yaml_quote(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(s).expect("string serialises")
}

/// The registry configuration; `auth_yaml` is a complete top-level `auth:` section or empty.
fn config_yaml(port: u16, storage: &Path, auth_yaml: &str) -> String {
    // No blob descriptor cache: tests rewrite blobs on disk and the registry must see it.
    let mut yaml = format!(
        "version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: trawl-testkit-not-a-secret
",
        storage = yaml_str(storage)
    );
    yaml.push_str(auth_yaml);
    yaml
}
