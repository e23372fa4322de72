//! The `kubernetes` scale backend: the scanner Deployment's `scale` subresource.
//!
//! Through the subresource, not the Deployment itself, so the controller's
//! RBAC can be as narrow as `get` and `patch` on `deployments/scale` of one
//! deployment (`resourceNames`): it can change the replica count and nothing
//! else about the scanners — not their image, not their service account.
//!
//! * Reading: [`ScaleState::desired`] is the Scale's `spec.replicas` (absent
//!   means 0: the API omits a zero), `current` its `status.replicas`. `ready`
//!   is reported as `status.replicas` too, because readiness is not in the
//!   scale subresource; the controller counts ready scanners from their
//!   heartbeats instead.
//! * Writing: read the Scale, then a JSON merge patch of `spec.replicas` that
//!   carries the read `resourceVersion` as a precondition, so the change is
//!   made to the state it was decided on. A 409 Conflict (someone wrote in
//!   between) re-reads and retries, [`CONFLICT_ATTEMPTS`] times at most.
//! * Another actor resetting the count (an OpenShift operator, an HPA) is not
//!   this module's business: it reports what the API server says, and the
//!   reconcile loop, which knows what it last set, notices the fight.

use super::{ScaleBackend, ScaleError, ScaleState};
use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::Scale;
use kube::api::{Api, Patch, PatchParams};
use std::time::Duration;

/// Attempts at a change that meets 409 Conflict before giving up with [`ScaleError::Conflict`].
pub const CONFLICT_ATTEMPTS: u32 = 5;

/// The field manager the patches are made as (what `managedFields` shows).
pub const FIELD_MANAGER: &str = "trawl-autoscaler";

/// The longest wait for one API response; a reconcile tick must not hang on a
/// silent API server.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The scanner Deployment's replica count behind [`ScaleBackend`].
pub struct KubernetesScaler {
    api: Api<Deployment>,
    namespace: String,
    deployment: String,
}

impl std::fmt::Debug for KubernetesScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesScaler")
            .field("namespace", &self.namespace)
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

impl KubernetesScaler {
    /// Scales `deployment` in `namespace` through `client`. A client built
    /// by hand with rustls must have a crypto provider chosen (see
    /// [`KubernetesScaler::in_cluster_or_kubeconfig`]).
    pub fn new(client: kube::Client, namespace: &str, deployment: &str) -> KubernetesScaler {
        KubernetesScaler {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            deployment: deployment.to_owned(),
        }
    }

    /// A client configured as `kubectl` would be — `KUBECONFIG` or
    /// `~/.kube/config`, else the pod's service account — as
    /// `kube::Client::try_default` does, plus a response timeout. `namespace`
    /// `None` means the configuration's own (in a pod: the pod's namespace).
    pub async fn in_cluster_or_kubeconfig(
        namespace: Option<&str>,
        deployment: &str,
    ) -> Result<KubernetesScaler, ScaleError> {
        let what = "configuring the Kubernetes client";
        let mut config = kube::Config::infer().await.map_err(|e| ScaleError::Unavailable {
            what: what.into(),
            reason: format!("no kubeconfig and not running in a pod: {}", error_chain(&e)),
        })?;
        config.read_timeout.get_or_insert(READ_TIMEOUT);
        let client = client_from(config)?;
        let namespace = namespace.map(str::to_owned).unwrap_or_else(|| client.default_namespace().to_owned());
        Ok(KubernetesScaler::new(client, &namespace, deployment))
    }

    /// A client for the API server at `url` with no credentials: a
    /// `kubectl proxy` (`http://127.0.0.1:8001`) or a test double.
    pub fn with_url(url: &str, namespace: &str, deployment: &str) -> Result<KubernetesScaler, ScaleError> {
        let uri = url.parse().map_err(|e| ScaleError::Unavailable {
            what: "configuring the Kubernetes client".into(),
            reason: format!("invalid API server URL {url:?}: {e}"),
        })?;
        let mut config = kube::Config::new(uri);
        config.read_timeout = Some(READ_TIMEOUT);
        Ok(KubernetesScaler::new(client_from(config)?, namespace, deployment))
    }

    /// The deployment's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The deployment's name.
    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    async fn read(&self, what: &str) -> Result<Scale, ScaleError> {
        self.api.get_scale(&self.deployment).await.map_err(|e| self.error(what, "get", e))
    }

    /// A typed error for a failed call with `verb` on `deployments/scale`,
    /// worded for the operator who has to fix it.
    fn error(&self, what: &str, verb: &str, error: kube::Error) -> ScaleError {
        let (ns, name) = (&self.namespace, &self.deployment);
        let what = what.to_owned();
        let kube::Error::Api(status) = error else {
            return ScaleError::Unavailable { what, reason: error_chain(&error) };
        };
        let said = if status.message.is_empty() { String::new() } else { format!(" (API server: {})", status.message) };
        match status.code {
            401 => ScaleError::Refused {
                what,
                reason: format!("the API server did not accept the controller's credentials (401 Unauthorized){said}"),
            },
            403 => ScaleError::Refused {
                what,
                reason: format!(
                    "forbidden: the controller's service account needs RBAC verb `{verb}` on resource \
                     `deployments/scale` (API group `apps`) for `{name}` in namespace `{ns}`{said}"
                ),
            },
            404 => ScaleError::Unavailable {
                what,
                reason: format!("deployment `{name}` not found in namespace `{ns}`{said}"),
            },
            400 | 422 => ScaleError::Refused { what, reason: format!("the API server rejected it{said}") },
            code => {
                let reason = if status.reason.is_empty() { String::new() } else { format!(" {}", status.reason) };
                ScaleError::Unavailable { what, reason: format!("HTTP {code}{reason}{said}") }
            }
        }
    }
}

/// Builds the client with rustls on aws-lc-rs: the workspace compiles rustls
/// with both ring and aws-lc-rs, and then rustls will not choose by itself.
fn client_from(config: kube::Config) -> Result<kube::Client, ScaleError> {
    // Err only when a provider was installed already, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    kube::Client::try_from(config).map_err(|e| ScaleError::Unavailable {
        what: "configuring the Kubernetes client".into(),
        reason: error_chain(&e),
    })
}

/// The error and its causes on one line, each once (kube's messages often
/// repeat their source).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

fn replicas(value: i32) -> u32 {
    // Negative counts are invalid in the API; none means none.
    u32::try_from(value).unwrap_or(0)
}

#[async_trait]
impl ScaleBackend for KubernetesScaler {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    async fn state(&self) -> Result<ScaleState, ScaleError> {
        let what = format!("reading the scale of deployment {}/{}", self.namespace, self.deployment);
        let scale = self.read(&what).await?;
        let desired = replicas(scale.spec.and_then(|s| s.replicas).unwrap_or(0));
        let current = replicas(scale.status.map_or(0, |s| s.replicas));
        Ok(ScaleState { desired, current, ready: current })
    }

    async fn set_desired(&self, replicas: u32) -> Result<(), ScaleError> {
        let what = format!("scaling deployment {}/{} to {replicas}", self.namespace, self.deployment);
        let Ok(target) = i32::try_from(replicas) else {
            return Err(ScaleError::Refused {
                what,
                reason: format!("Kubernetes allows at most {} replicas", i32::MAX),
            });
        };
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let scale = self.read(&what).await?;
            let from = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            if from == target {
                return Ok(());
            }
            let mut metadata = serde_json::Map::new();
            // Without a resourceVersion the patch would apply to whatever is
            // there by then; a null one would mean "remove it".
            if let Some(version) = scale.metadata.resource_version {
                metadata.insert("resourceVersion".into(), version.into());
            }
            let patch = serde_json::json!({ "metadata": metadata, "spec": { "replicas": target } });
            match self.api.patch_scale(&self.deployment, &params, &Patch::Merge(&patch)).await {
                Ok(_) => {
                    tracing::info!(
                        namespace = %self.namespace,
                        deployment = %self.deployment,
                        from,
                        to = target,
                        "scaled the scanner deployment"
                    );
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    tracing::debug!(attempt, deployment = %self.deployment, "scale changed since read; retrying");
                    if attempt < CONFLICT_ATTEMPTS {
                        // A short, growing pause so two writers stop colliding.
                        tokio::time::sleep(Duration::from_millis(10 << attempt.min(6))).await;
                    }
                }
                Err(e) => return Err(self.error(&what, "patch", e)),
            }
        }
        Err(ScaleError::Conflict { what, attempts: CONFLICT_ATTEMPTS })
    }
}
