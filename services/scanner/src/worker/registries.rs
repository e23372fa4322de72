//! How the worker reaches a task's registry: its configuration, read from
//! the `TRAWL_REGISTRIES` bucket (cached briefly, since every task asks), and
//! the credentials it names, read from this process's environment and files.
//!
//! A task names its registry by configuration name; the reference's host
//! must then be that configuration's host, because the configuration's
//! credentials are sent to whichever host the reference names. A task
//! without a (known) name is matched by host instead, and an unknown host is
//! pulled anonymously over HTTPS.

use async_nats::jetstream::kv;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use trawl_image::{Credentials, SourceOptions};
use trawl_protocol::registry::RegistryConfigError;
use trawl_protocol::RegistryConfig;
use trawl_report::imageref::canonical_registry;

/// How long a snapshot of the bucket is used before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// A task naming a configuration the snapshot lacks re-reads the bucket at most this often.
const MISS_REFRESH: Duration = Duration::from_secs(1);

/// Why a task's registry access could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RegistryLookupError {
    /// The bucket could not be read and no earlier snapshot exists.
    #[error("cannot read registry configurations from {bucket}: {reason}")]
    Unavailable {
        /// The bucket.
        bucket: &'static str,
        /// What failed.
        reason: String,
    },
    /// The task's reference names another host than its registry configuration.
    #[error("task reference host {host} is not the host {expected} of registry {name:?}: its credentials are not sent there")]
    HostMismatch {
        /// The configuration's name.
        name: String,
        /// The configuration's host.
        expected: String,
        /// The reference's host.
        host: String,
    },
    /// The configuration's credentials could not be read on this scanner.
    #[error(transparent)]
    Credentials(#[from] RegistryConfigError),
}

/// Registry configurations by name, as last read from the bucket.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    configs: BTreeMap<String, RegistryConfig>,
}

impl Snapshot {
    /// A snapshot holding `configs`.
    pub fn new(configs: impl IntoIterator<Item = RegistryConfig>) -> Snapshot {
        Snapshot { configs: configs.into_iter().map(|c| (c.name.clone(), c)).collect() }
    }

    /// The configuration for a task of registry `name` whose reference is on
    /// `host`: by name when it is known (and then only on its own host), else
    /// the first configuration (by name) on that host, else none.
    pub fn resolve(&self, name: &str, host: &str) -> Result<Option<&RegistryConfig>, RegistryLookupError> {
        let same_host =
            |c: &RegistryConfig| canonical_registry(c.host()).eq_ignore_ascii_case(canonical_registry(host));
        if let Some(config) = self.configs.get(name).filter(|_| !name.is_empty()) {
            if !same_host(config) {
                return Err(RegistryLookupError::HostMismatch {
                    name: name.to_string(),
                    expected: config.host().to_string(),
                    host: host.to_string(),
                });
            }
            return Ok(Some(config));
        }
        Ok(self.configs.values().find(|c| same_host(c)))
    }

    fn knows(&self, name: &str) -> bool {
        self.configs.contains_key(name)
    }
}

/// `base` adjusted to reach the registry `config` describes (anonymous
/// HTTPS without one), with credentials resolved on this process's side.
pub fn source_options(
    config: Option<&RegistryConfig>,
    base: &SourceOptions,
) -> Result<SourceOptions, RegistryLookupError> {
    let mut options = base.clone();
    options.credentials = Credentials::Anonymous;
    options.plain_http = false;
    options.insecure_tls = false;
    if let Some(config) = config {
        options.plain_http = config.plain_http();
        options.insecure_tls = config.insecure_tls();
        if let Some(login) = config.login()? {
            options.credentials = Credentials::Basic { username: login.username, password: login.password };
        }
    }
    Ok(options)
}

/// The bucket, with a short-lived snapshot in front of it.
pub struct RegistryDirectory {
    kv: kv::Store,
    cache: tokio::sync::Mutex<Option<(Instant, Snapshot)>>,
}

impl RegistryDirectory {
    /// A directory over the `TRAWL_REGISTRIES` bucket `kv`.
    pub fn new(kv: kv::Store) -> RegistryDirectory {
        RegistryDirectory { kv, cache: tokio::sync::Mutex::new(None) }
    }

    /// Source options for a task of registry `name` whose reference is on `host`.
    pub async fn options_for(
        &self,
        name: &str,
        host: &str,
        base: &SourceOptions,
    ) -> Result<SourceOptions, RegistryLookupError> {
        let snapshot = self.snapshot(name).await?;
        source_options(snapshot.resolve(name, host)?, base)
    }

    /// The cached snapshot, read again when it is stale or lacks `name`.
    /// One task refreshes while the others wait for its answer.
    async fn snapshot(&self, name: &str) -> Result<Snapshot, RegistryLookupError> {
        let mut cache = self.cache.lock().await;
        let fresh = cache.as_ref().is_some_and(|(at, snap)| {
            let age = at.elapsed();
            age < CACHE_TTL && (name.is_empty() || snap.knows(name) || age < MISS_REFRESH)
        });
        if fresh {
            if let Some((_, snap)) = cache.as_ref() {
                return Ok(snap.clone());
            }
        }
        match self.read().await {
            Ok(snap) => {
                *cache = Some((Instant::now(), snap.clone()));
                Ok(snap)
            }
            Err(reason) => match cache.as_ref() {
                // NATS trouble: a stale answer beats failing every task until it is back.
                Some((_, snap)) => {
                    tracing::warn!(%reason, "cannot refresh registry configurations; using the previous ones");
                    Ok(snap.clone())
                }
                None => {
                    Err(RegistryLookupError::Unavailable { bucket: trawl_protocol::buckets::REGISTRIES_BUCKET, reason })
                }
            },
        }
    }

    async fn read(&self) -> Result<Snapshot, String> {
        let mut keys = self.kv.keys().await.map_err(|e| e.to_string())?;
        let mut configs = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| e.to_string())?;
            let Some(value) = self.kv.get(key.as_str()).await.map_err(|e| e.to_string())? else { continue };
            match serde_json::from_slice::<RegistryConfig>(&value) {
                Ok(config) => configs.push(config),
                Err(e) => tracing::warn!(key = %key, "ignoring an unreadable registry configuration: {e}"),
            }
        }
        Ok(Snapshot::new(configs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_protocol::registry::CredentialSource;

    fn config(name: &str, url: &str) -> RegistryConfig {
        let mut c = RegistryConfig::new(name, url);
        c.insecure = url.starts_with("http://");
        c
    }

    #[test]
    fn tasks_find_their_registry_by_name_then_by_host() {
        let snap = Snapshot::new([config("local", "http://127.0.0.1:5000"), config("hub", "https://docker.io")]);
        let by_name = snap.resolve("local", "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(by_name.name, "local");
        let by_host = snap.resolve("", "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(by_host.name, "local");
        assert_eq!(snap.resolve("gone", "index.docker.io").unwrap().unwrap().name, "hub");
        assert!(snap.resolve("gone", "elsewhere.example").unwrap().is_none());
        let err = snap.resolve("local", "evil.example").unwrap_err();
        assert!(matches!(err, RegistryLookupError::HostMismatch { .. }), "{err}");
    }

    #[test]
    fn options_follow_the_configuration_and_default_to_anonymous_https() {
        let base = SourceOptions { plain_http: true, insecure_tls: true, ..Default::default() };
        let anonymous = source_options(None, &base).unwrap();
        assert!(!anonymous.plain_http && !anonymous.insecure_tls);
        assert!(matches!(anonymous.credentials, Credentials::Anonymous));

        let local = source_options(Some(&config("local", "http://127.0.0.1:5000")), &base).unwrap();
        assert!(local.plain_http && !local.insecure_tls);

        let mut private = config("private", "https://registry.example");
        private.credentials = Some(CredentialSource {
            username: Some("ci".into()),
            password_env: Some("TRAWL_TEST_WORKER_SURELY_UNSET".into()),
            ..Default::default()
        });
        let err = source_options(Some(&private), &base).unwrap_err();
        assert!(matches!(err, RegistryLookupError::Credentials(_)), "{err}");
        assert!(err.to_string().contains("TRAWL_TEST_WORKER_SURELY_UNSET"));
    }
}
