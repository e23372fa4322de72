//! The controller's REST API (documented in `docs/api.md`).
//!
//! Reads are open — admission controllers and dashboards poll them — and
//! are served from the storage mirror. Routes that change something
//! require `Authorization: Bearer <TRAWL_API_TOKEN>`; without a configured
//! token they are refused rather than left open.

use crate::controller::{ControlError, Controller, CrawlReport};
use crate::storage::{ImageRecord, ImageStatus, RegistryCounts};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use trawl_protocol::RegistryConfig;

/// Largest request body accepted.
const BODY_LIMIT: usize = 64 << 10;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The controller's operations.
    pub controller: Controller,
    /// The mutation token; `None` refuses every mutation.
    pub token: Option<Arc<str>>,
    /// NATS connection, for readiness.
    pub client: async_nats::Client,
    /// The metrics `/metrics` exports.
    pub metrics: crate::metrics::ControllerMetrics,
    /// The autoscale settings.
    pub settings: crate::autoscale::SettingsStore,
    /// The leader's published autoscale status.
    pub status: crate::autoscale::PublishedStatus,
    /// This replica's autoscaling state, for `/metrics`.
    pub autoscale: Arc<crate::autoscale::AutoscaleMetrics>,
}

/// An API error: a status and a message saying what to do.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let status = match &e {
            ControlError::UnknownRegistry(_) => StatusCode::NOT_FOUND,
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::Crawl { .. } => StatusCode::BAD_GATEWAY,
            ControlError::Storage(_) | ControlError::Nats(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        // 413 for an oversized body and 415 without a JSON content type stay; a body that is not
        // the expected document is a plain 400, like every other invalid request here.
        let status = match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => e.status(),
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, format!("request body: {}", e.body_text()))
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The router with every route.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/registries", post(add_registry).get(list_registries))
        .route("/api/v1/registries/{name}", get(show_registry).put(replace_registry).delete(delete_registry))
        .route("/api/v1/registries/{name}/scan", post(scan_registry))
        .route("/api/v1/images", get(list_images))
        .route("/api/v1/images/{digest}", get(show_image))
        .route("/api/v1/images/{digest}/report", get(image_report))
        .route("/api/v1/scan", post(scan_image))
        .route("/api/v1/scanners", get(list_scanners))
        .route("/api/v1/queue", get(queue))
        .route("/api/v1/settings/autoscale", get(autoscale_settings).put(set_autoscale_settings))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Refuses a mutation without the right bearer token.
fn authorize(state: &ApiState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(token) = &state.token else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "changes are disabled: start the controller with TRAWL_API_TOKEN set".into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError(StatusCode::UNAUTHORIZED, "send Authorization: Bearer <TRAWL_API_TOKEN>".into()))
    }
}

/// Compares without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A registry as the API shows it: its configuration (which holds no
/// secrets), its image counts and its last crawl.
#[derive(Debug, Serialize)]
struct RegistryView {
    #[serde(flatten)]
    config: RegistryConfig,
    #[serde(flatten)]
    counts: RegistryCounts,
    last_crawl: Option<CrawlReport>,
}

async fn registry_view(state: &ApiState, config: RegistryConfig) -> RegistryView {
    let counts = state.controller.storage().read(|m| m.registry_counts(&config.name));
    let last_crawl = state.controller.last_crawl(&config.name).await;
    RegistryView { config, counts, last_crawl }
}

async fn add_registry(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<RegistryConfig>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<RegistryView>)> {
    authorize(&state, &headers)?;
    let Json(config) = body?;
    config.validate().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    if state.controller.registry(&config.name).is_ok() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("registry {:?} exists: PUT /api/v1/registries/{} replaces it", config.name, config.name),
        ));
    }
    state.controller.storage().put_registry(&config).await?;
    tracing::info!(registry = %config.name, url = %config.url, "registry added");
    Ok((StatusCode::CREATED, Json(registry_view(&state, config).await)))
}

async fn replace_registry(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<RegistryConfig>, JsonRejection>,
) -> ApiResult<Json<RegistryView>> {
    authorize(&state, &headers)?;
    let Json(config) = body?;
    if config.name != name {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("the body names {:?}, the path {name:?}", config.name)));
    }
    config.validate().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    state.controller.storage().put_registry(&config).await?;
    Ok(Json(registry_view(&state, config).await))
}

async fn list_registries(State(state): State<ApiState>) -> Json<Vec<RegistryView>> {
    let configs: Vec<RegistryConfig> = state.controller.storage().read(|m| m.registries.values().cloned().collect());
    let mut views = Vec::with_capacity(configs.len());
    for c in configs {
        views.push(registry_view(&state, c).await);
    }
    Json(views)
}

async fn show_registry(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult<Json<RegistryView>> {
    let config = state.controller.registry(&name)?;
    Ok(Json(registry_view(&state, config).await))
}

async fn delete_registry(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    authorize(&state, &headers)?;
    state.controller.registry(&name)?;
    state.controller.storage().delete_registry(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct ScanRegistryQuery {
    /// Answer only when the crawl has finished, with its report.
    #[serde(default)]
    wait: bool,
}

async fn scan_registry(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<ScanRegistryQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    authorize(&state, &headers)?;
    state.controller.registry(&name)?;
    if query.wait {
        let report = state.controller.sweep(&name).await?;
        return Ok((StatusCode::OK, Json(report)).into_response());
    }
    let controller = state.controller.clone();
    let registry = name.clone();
    tokio::spawn(async move {
        if let Err(e) = controller.sweep(&registry).await {
            tracing::warn!(registry = %registry, "crawl failed: {e}");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({"registry": name, "status": "crawling"}))).into_response())
}

/// An image as the API lists it: its record and the tags that point to it.
#[derive(Debug, Serialize)]
struct ImageView {
    #[serde(flatten)]
    record: ImageRecord,
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ImagesQuery {
    registry: Option<String>,
    status: Option<ImageStatus>,
}

async fn list_images(
    State(state): State<ApiState>,
    Query(query): Query<ImagesQuery>,
) -> ApiResult<Json<Vec<ImageView>>> {
    if let Some(r) = &query.registry {
        state.controller.registry(r)?;
    }
    let views = state.controller.storage().read(|m| {
        let digests: Vec<String> = match &query.registry {
            Some(r) => m.registry_digests(r),
            None => {
                let mut all: Vec<String> = m.images.keys().cloned().collect();
                all.sort();
                all
            }
        };
        digests
            .into_iter()
            .filter_map(|d| m.images.get(&d).cloned())
            .filter(|r| query.status.is_none_or(|s| r.status == s))
            .map(|record| ImageView { tags: m.tags_of(&record.digest), record })
            .collect()
    });
    Ok(Json(views))
}

fn find_record(state: &ApiState, digest: &str) -> ApiResult<ImageRecord> {
    state.controller.storage().read(|m| m.images.get(digest).cloned()).ok_or_else(|| {
        ApiError(StatusCode::NOT_FOUND, format!("no result for {digest}: queue it with POST /api/v1/scan"))
    })
}

async fn show_image(State(state): State<ApiState>, Path(digest): Path<String>) -> ApiResult<Json<ImageView>> {
    let record = find_record(&state, &digest)?;
    let tags = state.controller.storage().read(|m| m.tags_of(&digest));
    Ok(Json(ImageView { record, tags }))
}

async fn image_report(State(state): State<ApiState>, Path(digest): Path<String>) -> ApiResult<Response> {
    let record = find_record(&state, &digest)?;
    let result = state.controller.storage().result(&record).await?;
    match result.and_then(|r| r.report) {
        Some(report) => Ok(Json(report).into_response()),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "{digest} has no report: its scan failed ({})",
                record.failure.map(|f| f.message).unwrap_or_default()
            ),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct ScanRequest {
    reference: String,
    #[serde(default)]
    registry: Option<String>,
}

async fn scan_image(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<ScanRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<crate::controller::OnDemand>)> {
    authorize(&state, &headers)?;
    let Json(request) = body?;
    let queued = state.controller.scan_now(&request.reference, request.registry.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

async fn list_scanners(State(state): State<ApiState>) -> ApiResult<Json<Vec<trawl_protocol::ScannerHeartbeat>>> {
    Ok(Json(state.controller.storage().scanners().await?))
}

async fn queue(State(state): State<ApiState>) -> ApiResult<Json<crate::controller::QueueStatus>> {
    Ok(Json(state.controller.queue_status().await?))
}

impl From<crate::autoscale::SettingsStoreError> for ApiError {
    fn from(e: crate::autoscale::SettingsStoreError) -> Self {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

/// The autoscale settings with the leader's live status.
#[derive(Debug, Serialize)]
struct AutoscaleView {
    #[serde(flatten)]
    settings: trawl_autoscale::strategy::AutoscaleSettings,
    /// What the lead controller saw on its last step; `null` while no replica leads.
    status: Option<crate::autoscale::AutoscaleStatus>,
}

async fn autoscale_view(state: &ApiState) -> ApiResult<AutoscaleView> {
    let settings = state.settings.get().await?;
    Ok(AutoscaleView { settings, status: state.status.get().await })
}

async fn autoscale_settings(State(state): State<ApiState>) -> ApiResult<Json<AutoscaleView>> {
    Ok(Json(autoscale_view(&state).await?))
}

async fn set_autoscale_settings(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<trawl_autoscale::strategy::AutoscaleSettings>, JsonRejection>,
) -> ApiResult<Json<AutoscaleView>> {
    authorize(&state, &headers)?;
    let Json(settings) = body?;
    settings.validate().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    state.settings.put(&settings).await?;
    tracing::info!(strategy = %settings.strategy, min = settings.min_scanners, max = settings.max_scanners,
        "autoscale settings stored");
    let mut view = autoscale_view(&state).await?;
    // The leader applies them on its next step; answer with what was stored.
    view.settings = settings;
    Ok(Json(view))
}

async fn ready(State(state): State<ApiState>) -> (StatusCode, &'static str) {
    let connected = state.client.connection_state() == async_nats::connection::State::Connected;
    match (connected, state.controller.storage().is_synced()) {
        (true, true) => (StatusCode::OK, "ready\n"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not connected to NATS\n"),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "loading admission-control storage\n"),
    }
}

/// Refreshes the gauges of shared state, then renders every metric.
async fn metrics(State(state): State<ApiState>) -> Response {
    let m = &state.metrics;
    if let Ok(q) = state.controller.queue_status().await {
        m.task_stream_depth.set(gauge_value(q.depth));
        for (lane, d) in &q.lanes {
            m.tasks_pending.with_label_values(&[lane]).set(gauge_value(d.pending));
            m.tasks_in_flight.with_label_values(&[lane]).set(gauge_value(d.in_flight));
            m.task_queue_depth.with_label_values(&[lane]).set(gauge_value(d.pending + d.in_flight));
        }
        m.dead_letters.set(gauge_value(q.dead_letters));
        m.results_pending.set(gauge_value(q.results_pending));
    }
    let (scanned, failed) = state.controller.storage().read(|m| {
        let scanned = m.images.values().filter(|r| r.status == ImageStatus::Scanned).count();
        (scanned, m.images.len() - scanned)
    });
    m.images.with_label_values(&["scanned"]).set(gauge_value(scanned as u64));
    m.images.with_label_values(&["failed"]).set(gauge_value(failed as u64));
    if let Ok(scanners) = state.controller.storage().scanners().await {
        m.scanners_live.set(gauge_value(scanners.len() as u64));
    }
    m.controller_leader.set(i64::from(state.autoscale.leader.load(Ordering::Relaxed)));
    // The scanner count and strategy as the leader last saw them: the same on every replica.
    if let Some(status) = state.status.get().await {
        if let Some(s) = status.scanners {
            m.scanners_desired.set(i64::from(s.desired));
            m.scanners_current.set(i64::from(s.current));
            m.scanners_ready.set(i64::from(s.ready));
        }
        m.autoscale_overridden.set(i64::from(status.overridden));
        for strategy in trawl_autoscale::strategy::Strategy::ALL {
            let active = strategy == status.settings.strategy;
            m.autoscale_strategy.with_label_values(&[strategy.as_str()]).set(i64::from(active));
        }
    }
    let built = m.vulndb_built.get();
    if built > 0 {
        m.vulndb_age_seconds.set((chrono::Utc::now().timestamp() - built).max(0) as f64);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.render()).into_response()
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
