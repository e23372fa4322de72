//! Registry configurations: what the controller crawls and how scanners
//! reach it, stored as JSON in the `TRAWL_REGISTRIES` bucket.
//!
//! A configuration never holds a secret. Credentials are *named*: an
//! environment variable or a file (a mounted Kubernetes Secret) that each
//! process reads on its own side, so the controller and the scanners
//! resolve the same configuration with their own copies of the secret, and
//! nothing on the bus, in the API or in the logs carries it.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How a registry is crawled and pulled from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryConfig {
    /// Short unique name: `[a-z0-9-]`, 1–63 characters.
    pub name: String,
    /// Base URL: `https://host[:port]` or `http://host:port`.
    pub url: String,
    /// Accept plain HTTP (`http://` URLs) or unverified TLS certificates.
    #[serde(default)]
    pub insecure: bool,
    /// Where the credentials are, if the registry needs any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialSource>,
    /// Repositories to scan, as globs (`library/*`); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// Tags to scan, as globs (`v*`, `latest`); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Repositories or tags (`repo:tag` globs) to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// When it is crawled.
    #[serde(default)]
    pub schedule: Schedule,
    /// Which images a crawl queues.
    #[serde(default)]
    pub rescan: RescanPolicy,
}

/// When a registry is crawled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Schedule {
    /// Only when asked (`POST /api/v1/registries/{name}/scan`).
    #[default]
    Manual,
    /// Every `interval` seconds, by the lead controller.
    Periodic {
        /// Seconds between crawls (at least 60).
        interval_seconds: u64,
    },
}

/// Which images a crawl queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RescanPolicy {
    /// Images without a result from the current database (new digests,
    /// failed scans, results from an older database that re-matching has not
    /// reached): the default.
    #[default]
    Missing,
    /// Every image, every crawl.
    Always,
}

/// Named credentials: a user name (literal or from the environment) and a
/// password (or token) from an environment variable or a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialSource {
    /// The user name, when it is not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Environment variable holding the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_env: Option<String>,
    /// Environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// File holding the password (trailing newline ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// Resolved credentials. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryLogin {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryLogin({}, ***)", self.username)
    }
}

/// Why a configuration is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryConfigError {
    /// A field is invalid.
    #[error("registry {name:?}: {field}: {reason}")]
    Invalid {
        /// The configuration's name.
        name: String,
        /// Which field.
        field: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The credentials could not be read.
    #[error("registry {name:?}: credentials: {reason}")]
    Credentials {
        /// The configuration's name.
        name: String,
        /// What is missing (a variable or file name, never a value).
        reason: String,
    },
}

impl RegistryConfig {
    /// A configuration for `url` with the defaults (no filters, manual, rescan missing).
    pub fn new(name: &str, url: &str) -> RegistryConfig {
        RegistryConfig {
            name: name.into(),
            url: url.into(),
            insecure: false,
            credentials: None,
            repositories: Vec::new(),
            tags: Vec::new(),
            exclude: Vec::new(),
            schedule: Schedule::Manual,
            rescan: RescanPolicy::Missing,
        }
    }

    /// Checks every field, so a bad configuration is refused when it is added, not at crawl time.
    pub fn validate(&self) -> Result<(), RegistryConfigError> {
        let invalid = |field: &'static str, reason: String| RegistryConfigError::Invalid {
            name: self.name.clone(),
            field,
            reason,
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 63
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(invalid("name", "use 1-63 characters of a-z, 0-9 and -".into()));
        }
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return Err(invalid("url", format!("{:?} is not a URL: write https://host[:port]", self.url)));
        };
        match scheme {
            "https" => {}
            "http" if self.insecure => {}
            "http" => return Err(invalid("url", "plain http:// needs \"insecure\": true".into())),
            other => return Err(invalid("url", format!("scheme {other:?} is not http or https"))),
        }
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') || host.contains('@') || host.contains(char::is_whitespace) {
            return Err(invalid("url", "give only scheme, host and port (no path, no user@)".into()));
        }
        if let Schedule::Periodic { interval_seconds } = self.schedule {
            if interval_seconds < 60 {
                return Err(invalid("schedule", "interval_seconds must be at least 60".into()));
            }
        }
        for (field, globs) in [("repositories", &self.repositories), ("tags", &self.tags), ("exclude", &self.exclude)] {
            if let Some(g) = globs.iter().find(|g| g.is_empty() || g.len() > 256) {
                return Err(invalid(field, format!("glob {g:?} must be 1-256 characters")));
            }
        }
        if let Some(c) = &self.credentials {
            if c.username.is_some() == c.username_env.is_some() {
                return Err(invalid("credentials", "give exactly one of username and username_env".into()));
            }
            if c.password_env.is_some() == c.password_file.is_some() {
                return Err(invalid("credentials", "give exactly one of password_env and password_file".into()));
            }
        }
        Ok(())
    }

    /// `host[:port]` as image references name it.
    pub fn host(&self) -> &str {
        self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| rest).trim_end_matches('/')
    }

    /// Whether the registry is reached over plain HTTP.
    pub fn plain_http(&self) -> bool {
        self.url.starts_with("http://")
    }

    /// Whether TLS certificates go unverified.
    pub fn insecure_tls(&self) -> bool {
        self.insecure && !self.plain_http()
    }

    /// Reads the credentials from this process's environment and files.
    pub fn login(&self) -> Result<Option<RegistryLogin>, RegistryConfigError> {
        let Some(c) = &self.credentials else { return Ok(None) };
        let missing = |reason: String| RegistryConfigError::Credentials { name: self.name.clone(), reason };
        let env = |var: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| missing(format!("environment variable {var} is not set")))
        };
        let username = match (&c.username, &c.username_env) {
            (Some(u), _) => u.clone(),
            (None, Some(var)) => env(var)?,
            (None, None) => return Err(missing("no username".into())),
        };
        let password = match (&c.password_env, &c.password_file) {
            (Some(var), _) => env(var)?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| missing(format!("cannot read password file {}: {e}", path.display())))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            (None, None) => return Err(missing("no password source".into())),
        };
        Ok(Some(RegistryLogin { username, password }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_body_is_a_valid_configuration() {
        let c: RegistryConfig =
            serde_json::from_str(r#"{"name": "local", "url": "http://127.0.0.1:5000", "insecure": true}"#).unwrap();
        c.validate().unwrap();
        assert_eq!((c.host(), c.plain_http(), c.insecure_tls()), ("127.0.0.1:5000", true, false));
        assert_eq!(c.schedule, Schedule::Manual);
        assert_eq!(c.rescan, RescanPolicy::Missing);
    }

    #[test]
    fn bad_configurations_say_which_field() {
        let field = |json: &str| match serde_json::from_str::<RegistryConfig>(json).unwrap().validate() {
            Err(RegistryConfigError::Invalid { field, .. }) => field,
            other => panic!("{json}: {other:?}"),
        };
        assert_eq!(field(r#"{"name": "Bad Name", "url": "https://r"}"#), "name");
        assert_eq!(field(r#"{"name": "r", "url": "http://r:5000"}"#), "url");
        assert_eq!(field(r#"{"name": "r", "url": "https://u:p@r"}"#), "url");
        assert_eq!(
            field(r#"{"name": "r", "url": "https://r", "schedule": {"kind": "periodic", "interval_seconds": 5}}"#),
            "schedule"
        );
        assert_eq!(field(r#"{"name": "r", "url": "https://r", "credentials": {"username": "u"}}"#), "credentials");
    }

    #[test]
    fn credentials_are_read_locally_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret\n").unwrap();
        let mut c = RegistryConfig::new("r", "https://r");
        c.credentials =
            Some(CredentialSource { username: Some("ci".into()), password_file: Some(file), ..Default::default() });
        let login = c.login().unwrap().unwrap();
        assert_eq!(login.password, "s3cret");
        assert!(!format!("{login:?}").contains("s3cret"));
        assert!(!serde_json::to_string(&c).unwrap().contains("s3cret"));
        c.credentials = Some(CredentialSource {
            username: Some("ci".into()),
            password_env: Some("TRAWL_TEST_SURELY_UNSET_VAR".into()),
            ..Default::default()
        });
        let err = c.login().unwrap_err().to_string();
        assert!(err.contains("TRAWL_TEST_SURELY_UNSET_VAR"), "{err}");
    }
}
