//! One autoscaling step: read the scanner count, decide, apply — and notice
//! when something else keeps changing the count.
//!
//! A [`Reconciler`] joins an [`Autoscaler`] (the decision) to a
//! [`ScaleBackend`] (the effect), in the shape of a kube-rs reconcile
//! function: each [`Reconciler::tick`] reads the actual state from the
//! backend — never from memory, so a controller that just became the leader
//! starts from what is really running — makes at most one change, and
//! reports what it saw and did.
//!
//! **Another actor.** When the count the backend reports differs from the
//! count this reconciler last set, and this reconciler did not change it
//! since, something else did (an operator reconciling its own replica count:
//! the NeuVector guide says auto-scaling is unsupported under the OpenShift
//! operator for this reason). The first such reset is accepted as a manual
//! change. If it happens again ([`FIGHT_LIMIT`] resets without an operator
//! touching the settings), the reconciler stops scaling — fighting would
//! only make the count flap — and reports [`TickReport::overridden`] until
//! the settings are changed ([`Reconciler::set_settings`]), which is how an
//! operator says "try again".

use crate::backend::{ScaleBackend, ScaleState};
use crate::strategy::{AutoscaleSettings, Autoscaler, Decision, SettingsError};
use std::sync::Arc;
use std::time::Duration;

/// Resets by another actor after which the reconciler stops scaling.
pub const FIGHT_LIMIT: u32 = 2;

/// What one tick saw and did.
#[derive(Debug, Clone, PartialEq)]
pub struct TickReport {
    /// The backend's state before any change (`None` when it could not be read).
    pub state: Option<ScaleState>,
    /// The strategy's decision (a hold when the state could not be read or scaling is overridden).
    pub decision: Decision,
    /// The count asked of the backend this tick, when it accepted it.
    pub applied: Option<u32>,
    /// Another actor keeps resetting the count; scaling is suspended.
    pub overridden: bool,
    /// This tick found the count changed by someone else.
    pub reset_detected: bool,
    /// Scanners that had exited by themselves and were started again this
    /// tick, before the state was read (backends that replace them: `process`).
    pub restored: u32,
    /// Why the backend could not be read or changed.
    pub error: Option<String>,
}

/// Reads, decides, applies: one step per [`Reconciler::tick`].
pub struct Reconciler {
    autoscaler: Autoscaler,
    backend: Arc<dyn ScaleBackend>,
    /// The count this reconciler last set and the backend accepted.
    last_set: Option<u32>,
    resets: u32,
}

impl Reconciler {
    /// A reconciler with `settings` over `backend`.
    pub fn new(settings: AutoscaleSettings, backend: Arc<dyn ScaleBackend>) -> Result<Reconciler, SettingsError> {
        Ok(Reconciler { autoscaler: Autoscaler::new(settings)?, backend, last_set: None, resets: 0 })
    }

    /// The settings in force.
    pub fn settings(&self) -> &AutoscaleSettings {
        self.autoscaler.settings()
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// New settings; also ends a suspension for another actor (an operator
    /// changing the settings has looked at the situation).
    pub fn set_settings(&mut self, settings: AutoscaleSettings) -> Result<(), SettingsError> {
        self.autoscaler.set_settings(settings)?;
        self.resets = 0;
        self.last_set = None;
        Ok(())
    }

    /// Whether scaling is suspended because another actor keeps resetting the count.
    pub fn overridden(&self) -> bool {
        self.resets >= FIGHT_LIMIT
    }

    /// One step at time `now` (monotonic, as [`Autoscaler::observe`] takes it)
    /// with `task_count` tasks in the queue.
    pub async fn tick(&mut self, now: Duration, task_count: u64) -> TickReport {
        let mut report = TickReport {
            state: None,
            decision: Decision::Hold(crate::strategy::HoldReason::Waiting),
            applied: None,
            overridden: self.overridden(),
            reset_detected: false,
            restored: 0,
            error: None,
        };
        // Replacing crashed scanners is not a scaling decision: the count
        // asked for stays the same, so it is done even while overridden.
        match self.backend.restore_exited().await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    backend = self.backend.name(),
                    started = n,
                    "replaced scanners that exited by themselves"
                );
                report.restored = n;
            }
            Err(e) => report.error = Some(e.to_string()),
        }
        let state = match self.backend.state().await {
            Ok(state) => state,
            Err(e) => {
                report.error = Some(e.to_string());
                return report;
            }
        };
        report.state = Some(state);
        if let Some(set) = self.last_set {
            if state.desired != set {
                report.reset_detected = true;
                self.resets = self.resets.saturating_add(1);
                // From now on the backend's count is the baseline.
                self.last_set = Some(state.desired);
                if self.overridden() {
                    tracing::warn!(
                        backend = self.backend.name(),
                        set,
                        found = state.desired,
                        "another actor keeps resetting the scanner count; autoscaling stops fighting it until \
                         the autoscale settings are changed"
                    );
                }
            }
        }
        report.overridden = self.overridden();
        // The strategy keeps observing the queue while suspended, so its runs
        // are right when scaling resumes.
        let decision = self.autoscaler.observe(now, task_count, state.desired);
        report.decision = decision;
        if report.overridden {
            return report;
        }
        if let Some(target) = decision.target() {
            match self.backend.set_desired(target).await {
                Ok(()) => {
                    self.last_set = Some(target);
                    report.applied = Some(target);
                }
                Err(e) => report.error = Some(e.to_string()),
            }
        }
        report
    }
}
