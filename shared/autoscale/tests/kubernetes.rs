//! The Kubernetes backend against a fake API server that speaks the
//! Deployment `scale` subresource over plain HTTP on loopback.

use std::sync::Arc;
use std::time::Duration;
use trawl_autoscale::backend::kubernetes::{KubernetesScaler, CONFLICT_ATTEMPTS, FIELD_MANAGER};
use trawl_autoscale::backend::{ScaleBackend, ScaleError, ScaleState};

mod fake_api {
    //! A fake Kubernetes API server: `GET` and `PATCH`
    //! `/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale` with real
    //! autoscaling/v1 `Scale` bodies and v1 `Status` errors.
    //!
    //! What it models: `spec.replicas` omitted when zero (as the API server
    //! serialises it); `status.replicas` that does not follow `spec` until the
    //! test says so (the Deployment controller's lag); a `resourceVersion`
    //! bumped on every write and checked as a precondition when a patch
    //! carries one (409 Conflict); only `application/merge-patch+json`
    //! accepted (415 otherwise), applied per RFC 7386; forbidden verbs (403),
    //! unknown deployments (404), injected conflicts (another writer got in
    //! first), and an "operator" that puts `spec.replicas` back right after
    //! every patch.
    //!
    //! What it does not: authentication, TLS, API discovery, watches,
    //! strategic merge or JSON patch semantics, server-side apply and
    //! `managedFields`, `status.replicas` converging by itself, validation
    //! beyond `spec.replicas` being a non-negative integer, and any resource
    //! or verb other than the two above (axum answers those 404/405 without a
    //! `Status` body).

    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::{json, Value};
    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex, MutexGuard};

    /// One deployment's scale.
    #[derive(Debug, Clone, Copy)]
    pub struct Deployment {
        pub spec: i64,
        pub status: i64,
        pub resource_version: u64,
    }

    /// A patch as received.
    #[derive(Debug, Clone)]
    pub struct SeenPatch {
        pub content_type: String,
        pub field_manager: Option<String>,
        pub body: Value,
        pub answered: u16,
    }

    /// The cluster's state and the faults to inject.
    #[derive(Debug, Default)]
    pub struct Cluster {
        pub deployments: HashMap<(String, String), Deployment>,
        next_version: u64,
        /// Answer this many patches 409, as if another writer had just written.
        pub fail_patches: u32,
        /// After this many reads, someone else writes (a label, say): the
        /// version moves on, so the reader's next patch is stale.
        pub write_after_reads: u32,
        /// Verbs answered 403.
        pub forbidden: HashSet<&'static str>,
        /// `spec.replicas` put back to this right after every patch.
        pub operator: Option<i64>,
        pub patches: Vec<SeenPatch>,
        pub reads: u32,
    }

    impl Cluster {
        fn bump(&mut self, key: &(String, String)) {
            self.next_version += 1;
            let version = self.next_version;
            if let Some(d) = self.deployments.get_mut(key) {
                d.resource_version = version;
            }
        }
    }

    /// The server's handle for the test.
    #[derive(Clone)]
    pub struct Fake {
        pub url: String,
        cluster: Arc<Mutex<Cluster>>,
    }

    impl Fake {
        pub fn cluster(&self) -> MutexGuard<'_, Cluster> {
            self.cluster.lock().unwrap()
        }

        /// Adds (or replaces) a deployment.
        pub fn deploy(&self, ns: &str, name: &str, spec: i64, status: i64) {
            let mut c = self.cluster();
            c.next_version += 1;
            let resource_version = c.next_version;
            c.deployments.insert((ns.into(), name.into()), Deployment { spec, status, resource_version });
        }

        pub fn deployment(&self, ns: &str, name: &str) -> Deployment {
            self.cluster().deployments[&(ns.to_string(), name.to_string())]
        }

        /// The Deployment controller catching up: `status.replicas` becomes `spec.replicas`.
        pub fn converge(&self, ns: &str, name: &str) {
            let key = (ns.to_string(), name.to_string());
            let mut c = self.cluster();
            if let Some(d) = c.deployments.get_mut(&key) {
                d.status = d.spec;
            }
            c.bump(&key);
        }
    }

    pub async fn start() -> Fake {
        let cluster = Arc::new(Mutex::new(Cluster { next_version: 1000, ..Cluster::default() }));
        let app = Router::new()
            .route("/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale", get(read).patch(patch))
            .with_state(cluster.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { url, cluster }
    }

    type Reply = (StatusCode, Json<Value>);

    fn scale(ns: &str, name: &str, d: &Deployment) -> Reply {
        // The API server omits a zero spec.replicas (omitempty); status.replicas is always there.
        let spec = if d.spec == 0 { json!({}) } else { json!({ "replicas": d.spec }) };
        let body = json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": { "name": name, "namespace": ns, "resourceVersion": d.resource_version.to_string() },
            "spec": spec,
            "status": { "replicas": d.status, "selector": "app=trawl-scanner" },
        });
        (StatusCode::OK, Json(body))
    }

    fn status(code: u16, reason: &str, message: String) -> Reply {
        let body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": { "name": "", "group": "apps", "kind": "deployments" },
            "code": code,
        });
        (StatusCode::from_u16(code).unwrap(), Json(body))
    }

    fn forbidden(verb: &str, ns: &str, name: &str) -> Reply {
        status(
            403,
            "Forbidden",
            format!(
                "deployments.apps \"{name}\" is forbidden: User \"system:serviceaccount:{ns}:trawl-controller\" \
                 cannot {verb} resource \"deployments/scale\" in API group \"apps\" in the namespace \"{ns}\""
            ),
        )
    }

    fn not_found(name: &str) -> Reply {
        status(404, "NotFound", format!("deployments.apps \"{name}\" not found"))
    }

    fn conflict(name: &str) -> Reply {
        status(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on deployments.apps \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
    }

    async fn read(State(cluster): State<Arc<Mutex<Cluster>>>, Path((ns, name)): Path<(String, String)>) -> Reply {
        let mut c = cluster.lock().unwrap();
        if c.forbidden.contains("get") {
            return forbidden("get", &ns, &name);
        }
        let key = (ns.clone(), name.clone());
        let Some(d) = c.deployments.get(&key).copied() else {
            return not_found(&name);
        };
        c.reads += 1;
        let reply = scale(&ns, &name, &d);
        if c.write_after_reads > 0 {
            c.write_after_reads -= 1;
            c.bump(&key);
        }
        reply
    }

    /// RFC 7386 JSON merge patch.
    fn merge(target: &mut Value, patch: &Value) {
        let Value::Object(fields) = patch else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        let Value::Object(target) = target else { unreachable!() };
        for (key, value) in fields {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }

    async fn patch(
        State(cluster): State<Arc<Mutex<Cluster>>>,
        Path((ns, name)): Path<(String, String)>,
        Query(query): Query<HashMap<String, String>>,
        headers: HeaderMap,
        body: String,
    ) -> Reply {
        let mut c = cluster.lock().unwrap();
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let reply = answer_patch(&mut c, &ns, &name, &content_type, &parsed);
        c.patches.push(SeenPatch {
            content_type,
            field_manager: query.get("fieldManager").cloned(),
            body: parsed,
            answered: reply.0.as_u16(),
        });
        reply
    }

    fn answer_patch(c: &mut Cluster, ns: &str, name: &str, content_type: &str, patch: &Value) -> Reply {
        if c.forbidden.contains("patch") {
            return forbidden("patch", ns, name);
        }
        let key = (ns.to_string(), name.to_string());
        let Some(d) = c.deployments.get(&key).copied() else {
            return not_found(name);
        };
        if content_type != "application/merge-patch+json" {
            return status(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format: {content_type}"),
            );
        }
        if !patch.is_object() {
            return status(400, "BadRequest", "the patch is not a JSON object".into());
        }
        if c.fail_patches > 0 {
            c.fail_patches -= 1;
            c.bump(&key);
            return conflict(name);
        }
        let (_, Json(mut object)) = scale(ns, name, &d);
        merge(&mut object, patch);
        if object["metadata"]["resourceVersion"] != Value::String(d.resource_version.to_string()) {
            return conflict(name);
        }
        let replicas = match &object["spec"]["replicas"] {
            Value::Null => 0,
            v => match v.as_i64() {
                Some(n) if n >= 0 => n,
                _ => {
                    return status(
                        422,
                        "Invalid",
                        format!("Scale.autoscaling \"{name}\" is invalid: spec.replicas: {v}"),
                    )
                }
            },
        };
        c.bump(&key);
        let Some(d) = c.deployments.get_mut(&key) else { unreachable!() };
        d.spec = replicas;
        let reply = scale(ns, name, d);
        if let Some(fixed) = c.operator {
            // Its own reconcile, just after ours: our answer still showed our value.
            c.deployments.get_mut(&key).unwrap().spec = fixed;
            c.bump(&key);
        }
        reply
    }
}

const NS: &str = "trawl";
const NAME: &str = "trawl-scanner";

async fn setup(spec: i64, status: i64) -> (fake_api::Fake, KubernetesScaler) {
    let fake = fake_api::start().await;
    fake.deploy(NS, NAME, spec, status);
    let scaler = KubernetesScaler::with_url(&fake.url, NS, NAME).unwrap();
    (fake, scaler)
}

#[tokio::test]
async fn it_reads_desired_from_spec_and_current_from_status() {
    let (_fake, scaler) = setup(3, 2).await;
    assert_eq!(scaler.name(), "kubernetes");
    assert_eq!(scaler.state().await.unwrap(), ScaleState { desired: 3, current: 2, ready: 2 });
}

#[tokio::test]
async fn an_omitted_spec_replicas_reads_as_zero() {
    let (_fake, scaler) = setup(0, 1).await;
    assert_eq!(scaler.state().await.unwrap(), ScaleState { desired: 0, current: 1, ready: 1 });
}

#[tokio::test]
async fn scaling_up_and_down_patches_spec_replicas_with_a_merge_patch() {
    let (fake, scaler) = setup(1, 1).await;
    let served_version = fake.deployment(NS, NAME).resource_version.to_string();
    scaler.set_desired(4).await.unwrap();
    assert_eq!(fake.deployment(NS, NAME).spec, 4);
    // The Deployment controller has not caught up yet: desired moved, current did not.
    assert_eq!(scaler.state().await.unwrap(), ScaleState { desired: 4, current: 1, ready: 1 });
    fake.converge(NS, NAME);
    assert_eq!(scaler.state().await.unwrap(), ScaleState { desired: 4, current: 4, ready: 4 });

    scaler.set_desired(0).await.unwrap();
    assert_eq!(fake.deployment(NS, NAME).spec, 0);
    assert_eq!(scaler.state().await.unwrap().desired, 0);

    let patches = fake.cluster().patches.clone();
    assert_eq!(patches.len(), 2, "{patches:?}");
    let first = &patches[0];
    assert_eq!(first.content_type, "application/merge-patch+json");
    assert_eq!(first.field_manager.as_deref(), Some(FIELD_MANAGER));
    assert_eq!(first.body["spec"]["replicas"], 4);
    assert_eq!(
        first.body["metadata"]["resourceVersion"],
        served_version.as_str(),
        "the read version is the precondition"
    );
    assert_eq!(patches[1].body["spec"]["replicas"], 0);
}

#[tokio::test]
async fn asking_for_the_count_already_set_writes_nothing() {
    let (fake, scaler) = setup(2, 2).await;
    let version = fake.deployment(NS, NAME).resource_version;
    scaler.set_desired(2).await.unwrap();
    assert!(fake.cluster().patches.is_empty());
    assert_eq!(fake.deployment(NS, NAME).resource_version, version);
}

#[tokio::test]
async fn a_stale_resource_version_is_reread_and_retried() {
    let (fake, scaler) = setup(1, 1).await;
    // Someone writes right after each of our first two reads.
    fake.cluster().write_after_reads = 2;
    scaler.set_desired(3).await.unwrap();
    assert_eq!(fake.deployment(NS, NAME).spec, 3);
    let c = fake.cluster();
    let answers: Vec<u16> = c.patches.iter().map(|p| p.answered).collect();
    assert_eq!(answers, vec![409, 409, 200]);
    assert_eq!(c.reads, 3, "each attempt reads afresh");
}

#[tokio::test]
async fn injected_conflicts_are_retried_until_the_patch_succeeds() {
    let (fake, scaler) = setup(5, 5).await;
    fake.cluster().fail_patches = CONFLICT_ATTEMPTS - 1;
    scaler.set_desired(2).await.unwrap();
    assert_eq!(fake.deployment(NS, NAME).spec, 2);
    assert_eq!(fake.cluster().patches.len(), CONFLICT_ATTEMPTS as usize);
}

#[tokio::test]
async fn persistent_conflicts_give_up_with_a_conflict_error() {
    let (fake, scaler) = setup(5, 5).await;
    fake.cluster().fail_patches = 100;
    let err = scaler.set_desired(2).await.unwrap_err();
    assert!(matches!(err, ScaleError::Conflict { attempts: CONFLICT_ATTEMPTS, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("trawl/trawl-scanner") && text.contains("409"), "{text}");
    assert_eq!(fake.cluster().patches.len(), CONFLICT_ATTEMPTS as usize, "bounded attempts");
    assert_eq!(fake.deployment(NS, NAME).spec, 5);
}

#[tokio::test]
async fn a_forbidden_patch_is_refused_naming_the_missing_verb() {
    let (fake, scaler) = setup(1, 1).await;
    fake.cluster().forbidden.insert("patch");
    // Reading is still allowed.
    assert_eq!(scaler.state().await.unwrap().desired, 1);
    let err = scaler.set_desired(2).await.unwrap_err();
    let ScaleError::Refused { reason, .. } = &err else { panic!("not refused: {err:?}") };
    assert!(reason.contains("`patch`") && reason.contains("`deployments/scale`"), "{reason}");
    assert!(reason.contains("namespace `trawl`") && reason.contains("`trawl-scanner`"), "{reason}");
    assert_eq!(fake.deployment(NS, NAME).spec, 1);
}

#[tokio::test]
async fn a_forbidden_read_is_refused_naming_the_missing_verb() {
    let (fake, scaler) = setup(1, 1).await;
    fake.cluster().forbidden.insert("get");
    for err in [scaler.state().await.unwrap_err(), scaler.set_desired(2).await.unwrap_err()] {
        let ScaleError::Refused { reason, .. } = &err else { panic!("not refused: {err:?}") };
        assert!(reason.contains("`get`") && reason.contains("`deployments/scale`"), "{reason}");
    }
}

#[tokio::test]
async fn a_missing_deployment_is_unavailable_naming_it() {
    let fake = fake_api::start().await;
    let scaler = KubernetesScaler::with_url(&fake.url, NS, "no-such-scanner").unwrap();
    for err in [scaler.state().await.unwrap_err(), scaler.set_desired(2).await.unwrap_err()] {
        let ScaleError::Unavailable { reason, .. } = &err else { panic!("not unavailable: {err:?}") };
        assert!(reason.contains("`no-such-scanner`") && reason.contains("namespace `trawl`"), "{reason}");
    }
}

#[tokio::test]
async fn an_unreachable_api_server_is_unavailable() {
    // A port nobody listens on: bound, then released.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let scaler = KubernetesScaler::with_url(&url, NS, NAME).unwrap();
    let err = scaler.state().await.unwrap_err();
    assert!(matches!(err, ScaleError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn an_invalid_url_is_an_error_not_a_panic() {
    let err = KubernetesScaler::with_url("http://exa mple", NS, NAME).unwrap_err();
    assert!(err.to_string().contains("invalid API server URL"), "{err}");
}

#[tokio::test]
async fn a_client_for_https_can_be_built() {
    // Building the TLS configuration chooses rustls's crypto provider; a
    // wrong choice panics here rather than in a cluster.
    KubernetesScaler::with_url("https://127.0.0.1:6443", NS, NAME).unwrap();
}

#[tokio::test]
async fn an_operators_reset_shows_in_the_next_state() {
    let (fake, scaler) = setup(2, 2).await;
    fake.cluster().operator = Some(2);
    scaler.set_desired(6).await.unwrap();
    assert_eq!(fake.cluster().patches.last().map(|p| p.body["spec"]["replicas"].clone()), Some(6.into()));
    assert_eq!(scaler.state().await.unwrap().desired, 2, "the backend reports the reset, not what it set");
}

#[tokio::test]
async fn the_reconciler_stops_fighting_an_operator_through_this_backend() {
    use trawl_autoscale::reconcile::{Reconciler, FIGHT_LIMIT};
    use trawl_autoscale::strategy::{AutoscaleSettings, Strategy};

    let (fake, scaler) = setup(1, 1).await;
    fake.cluster().operator = Some(1);
    let settings =
        AutoscaleSettings { strategy: Strategy::Immediate, min_scanners: 1, max_scanners: 5, ..Default::default() };
    let mut reconciler = Reconciler::new(settings, Arc::new(scaler)).unwrap();
    let mut overridden = false;
    for tick in 1..=(FIGHT_LIMIT + 3) {
        let report = reconciler.tick(Duration::from_secs(u64::from(tick)), 1000).await;
        assert_eq!(report.error, None);
        overridden = report.overridden;
        if overridden {
            break;
        }
    }
    assert!(overridden, "the reconciler never noticed the operator");
    let patches = fake.cluster().patches.len();
    reconciler.tick(Duration::from_secs(100), 1000).await;
    assert_eq!(fake.cluster().patches.len(), patches, "no more patches once overridden");
}
