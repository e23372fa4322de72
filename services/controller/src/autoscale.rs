//! The lead controller's autoscaling loop, and the settings it reads.
//!
//! Every [`crate::leader::RENEW_EVERY`] each replica renews or tries to take
//! the lead-controller lease. The leader then reads the autoscale settings
//! from `TRAWL_SETTINGS` (changed at run time through
//! `PUT /api/v1/settings/autoscale`), the task count (the depth of the task
//! stream: pending plus in flight) and runs one
//! [`trawl_autoscale::reconcile::Reconciler`] step against the scale
//! backend; it publishes what it saw as the `autoscale` entry of
//! `TRAWL_LEADER`, which expires with the lease, so the API of any replica
//! shows the live status and a dead leader's status disappears with it.
//!
//! A replica that loses (or never had) the lease drops its reconciler: a new
//! leader starts from the backend's real count and a fresh strategy clock,
//! so a failover cannot scale twice for the same backlog.

use crate::controller::Controller;
use crate::leader::{Leader, RENEW_EVERY};
use async_nats::jetstream::{self, kv};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use trawl_autoscale::backend::{ScaleBackend, ScaleState};
use trawl_autoscale::reconcile::Reconciler;
use trawl_autoscale::strategy::{AutoscaleSettings, Decision};
use trawl_protocol::buckets::{AUTOSCALE_SETTINGS_KEY, AUTOSCALE_STATUS_KEY, LEADER_BUCKET, SETTINGS_BUCKET};

/// Why the settings could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SettingsStoreError {
    /// NATS did not answer.
    #[error("{what}: {reason}")]
    Nats {
        /// What was being done.
        what: &'static str,
        /// The error.
        reason: String,
    },
    /// The stored settings do not parse or validate (written by hand?).
    #[error("the stored autoscale settings are not valid ({0}); PUT /api/v1/settings/autoscale replaces them")]
    Invalid(String),
}

/// The autoscale settings in `TRAWL_SETTINGS`, with the values the
/// controller was started with as the default when none are stored.
#[derive(Clone)]
pub struct SettingsStore {
    kv: kv::Store,
    defaults: AutoscaleSettings,
}

impl SettingsStore {
    /// Opens the bucket; `defaults` apply until settings are stored.
    pub async fn open(
        js: &jetstream::Context,
        defaults: AutoscaleSettings,
    ) -> Result<SettingsStore, SettingsStoreError> {
        let kv = js
            .get_key_value(SETTINGS_BUCKET)
            .await
            .map_err(|e| SettingsStoreError::Nats { what: "opening TRAWL_SETTINGS", reason: e.to_string() })?;
        Ok(SettingsStore { kv, defaults })
    }

    /// The settings in force: stored, else the defaults.
    pub async fn get(&self) -> Result<AutoscaleSettings, SettingsStoreError> {
        let value = self
            .kv
            .get(AUTOSCALE_SETTINGS_KEY)
            .await
            .map_err(|e| SettingsStoreError::Nats { what: "reading the autoscale settings", reason: e.to_string() })?;
        let Some(bytes) = value else { return Ok(self.defaults) };
        let settings: AutoscaleSettings =
            serde_json::from_slice(&bytes).map_err(|e| SettingsStoreError::Invalid(e.to_string()))?;
        settings.validate().map_err(|e| SettingsStoreError::Invalid(e.to_string()))?;
        Ok(settings)
    }

    /// Stores `settings` (already validated by the caller).
    pub async fn put(&self, settings: &AutoscaleSettings) -> Result<(), SettingsStoreError> {
        let json = serde_json::to_vec(settings).map_err(|e| SettingsStoreError::Invalid(e.to_string()))?;
        self.kv
            .put(AUTOSCALE_SETTINGS_KEY, json.into())
            .await
            .map_err(|e| SettingsStoreError::Nats { what: "storing the autoscale settings", reason: e.to_string() })?;
        Ok(())
    }
}

/// A scaling change the leader made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalingEvent {
    /// RFC 3339 time.
    pub at: String,
    /// Scanner count before.
    pub from: u32,
    /// Scanner count asked for.
    pub to: u32,
    /// `up` or `down`.
    pub direction: String,
    /// Why (`backlog`, `tasks_pending`, `proportional`, `idle`, `above_maximum`).
    pub reason: String,
}

/// What the leader saw on its last step (the `autoscale` entry of `TRAWL_LEADER`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoscaleStatus {
    /// The leading replica.
    pub leader: String,
    /// The scale backend (`kubernetes`, `process`, `none`).
    pub backend: String,
    /// The settings in force.
    pub settings: AutoscaleSettings,
    /// Tasks in the queue (pending plus in flight).
    pub task_count: u64,
    /// The backend's scanner count, when it could be read.
    pub scanners: Option<ScaleState>,
    /// The strategy's last decision (`waiting`, `at_maximum`, `backlog`, …).
    pub decision: String,
    /// Another actor keeps resetting the scanner count: scaling is suspended
    /// until the settings are changed.
    pub overridden: bool,
    /// The last change made.
    pub last_event: Option<ScalingEvent>,
    /// Why the backend or the queue could not be read, or the change made.
    pub error: Option<String>,
    /// RFC 3339 time of this step.
    pub updated_at: String,
}

/// What this replica's autoscaling loop shares with the API and `/metrics`.
#[derive(Debug, Default)]
pub struct AutoscaleMetrics {
    /// This replica leads.
    pub leader: AtomicBool,
    /// Its last status, while it leads.
    pub status: Mutex<Option<AutoscaleStatus>>,
}

impl AutoscaleMetrics {
    /// This replica's last status, while it leads.
    pub fn status(&self) -> Option<AutoscaleStatus> {
        lock(&self.status).clone()
    }
}

/// The loop: elect, read, reconcile, publish the status.
pub struct Autoscaling {
    leader: Leader,
    settings: SettingsStore,
    status_kv: kv::Store,
    /// `None` for `--scale-backend none`: the replica still runs for
    /// leadership (the leader crawls on schedule) but changes nothing.
    backend: Option<Arc<dyn ScaleBackend>>,
    controller: Controller,
    shared: Arc<AutoscaleMetrics>,
    events: prometheus::IntCounterVec,
}

impl Autoscaling {
    /// The loop for replica `id` scaling with `backend` (none: elect only).
    pub async fn new(
        js: &jetstream::Context,
        id: &str,
        settings: SettingsStore,
        backend: Option<Arc<dyn ScaleBackend>>,
        controller: Controller,
        shared: Arc<AutoscaleMetrics>,
        events: prometheus::IntCounterVec,
    ) -> anyhow::Result<Autoscaling> {
        let leader = Leader::new(js, id).await?;
        let status_kv =
            js.get_key_value(LEADER_BUCKET).await.map_err(|e| anyhow::anyhow!("opening {LEADER_BUCKET}: {e}"))?;
        Ok(Autoscaling { leader, settings, status_kv, backend, controller, shared, events })
    }

    /// Runs until `stop` changes, then releases the lease.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let started = Instant::now();
        let mut reconciler: Option<Reconciler> = None;
        let mut last_event: Option<ScalingEvent> = None;
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let leading = self.leader.renew().await;
            self.shared.leader.store(leading, Ordering::Relaxed);
            if !leading {
                if reconciler.take().is_some() {
                    tracing::info!(id = %self.leader.id(), "no longer the lead controller: autoscaling stops here");
                }
                *lock(&self.shared.status) = None;
                continue;
            }
            let status = self.step(started, &mut reconciler, &mut last_event).await;
            if let Ok(json) = serde_json::to_vec(&status) {
                if let Err(e) = self.status_kv.put(AUTOSCALE_STATUS_KEY, json.into()).await {
                    tracing::debug!("publishing the autoscale status: {e}");
                }
            }
            *lock(&self.shared.status) = Some(status);
        }
        self.shared.leader.store(false, Ordering::Relaxed);
        self.leader.release().await;
    }

    /// One leader step.
    async fn step(
        &self,
        started: Instant,
        reconciler: &mut Option<Reconciler>,
        last_event: &mut Option<ScalingEvent>,
    ) -> AutoscaleStatus {
        let mut errors = Vec::new();
        let settings = match self.settings.get().await {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(e.to_string());
                reconciler.as_ref().map(|r| *r.settings())
            }
        };
        let settings = settings.unwrap_or(self.settings.defaults);
        let Some(backend) = &self.backend else {
            let task_count = self.controller.queue_status().await.map_or(0, |q| q.depth);
            return self.status(settings, task_count, None, "no_backend", false, last_event, errors);
        };
        let r = match reconciler {
            Some(r) => {
                if *r.settings() != settings {
                    if let Err(e) = r.set_settings(settings) {
                        errors.push(e.to_string());
                    } else {
                        tracing::info!(strategy = %settings.strategy, min = settings.min_scanners,
                            max = settings.max_scanners, "autoscale settings changed");
                    }
                }
                r
            }
            None => match Reconciler::new(settings, backend.clone()) {
                Ok(r) => reconciler.insert(r),
                Err(e) => {
                    errors.push(e.to_string());
                    // Unreachable in practice: stored settings are validated on read.
                    return self.status(settings, 0, None, "invalid_settings", false, last_event, errors);
                }
            },
        };
        let task_count = match self.controller.queue_status().await {
            Ok(q) => q.depth,
            Err(e) => {
                errors.push(e.to_string());
                let settings = *r.settings();
                let overridden = r.overridden();
                return self.status(settings, 0, None, "queue_unreadable", overridden, last_event, errors);
            }
        };
        let report = r.tick(started.elapsed(), task_count).await;
        if let (Decision::Scale { from, to, direction, reason }, Some(applied)) = (report.decision, report.applied) {
            let event = ScalingEvent {
                at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                from,
                to: applied,
                direction: direction.as_str().to_string(),
                reason: reason.as_str().to_string(),
            };
            tracing::info!(from, to, direction = %event.direction, reason = %event.reason, task_count,
                backend = backend.name(), "scaled scanners");
            self.events.with_label_values(&[&event.direction, &event.reason]).inc();
            *last_event = Some(event);
        }
        if let Some(e) = report.error {
            errors.push(e);
        }
        let decision = if report.overridden { "overridden" } else { report.decision.reason_str() };
        let settings = *r.settings();
        self.status(settings, task_count, report.state, decision, report.overridden, last_event, errors)
    }

    #[allow(clippy::too_many_arguments)]
    fn status(
        &self,
        settings: AutoscaleSettings,
        task_count: u64,
        scanners: Option<ScaleState>,
        decision: &str,
        overridden: bool,
        last_event: &Option<ScalingEvent>,
        errors: Vec<String>,
    ) -> AutoscaleStatus {
        AutoscaleStatus {
            leader: self.leader.id().to_string(),
            backend: self.backend.as_ref().map_or("none", |b| b.name()).to_string(),
            settings,
            task_count,
            scanners,
            decision: decision.to_string(),
            overridden,
            last_event: last_event.clone(),
            error: (!errors.is_empty()).then(|| errors.join("; ")),
            updated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// The leader's published status in `TRAWL_LEADER`, read by any replica's API.
#[derive(Clone)]
pub struct PublishedStatus(kv::Store);

impl PublishedStatus {
    /// Opens the bucket once, for every later read.
    pub async fn open(js: &jetstream::Context) -> anyhow::Result<PublishedStatus> {
        let kv = js.get_key_value(LEADER_BUCKET).await.map_err(|e| anyhow::anyhow!("opening {LEADER_BUCKET}: {e}"))?;
        Ok(PublishedStatus(kv))
    }

    /// The status, while a leader publishes one.
    pub async fn get(&self) -> Option<AutoscaleStatus> {
        let bytes = self.0.get(AUTOSCALE_STATUS_KEY).await.ok()??;
        serde_json::from_slice(&bytes).ok()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic mid-update leaves a complete value: keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
