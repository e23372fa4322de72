//! The reconciler against an in-memory backend: it reads the count from the
//! backend, applies the strategy's decisions, and stops fighting an actor
//! that keeps resetting the count until the settings change.

use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use trawl_autoscale::backend::{ScaleBackend, ScaleError, ScaleState};
use trawl_autoscale::reconcile::{Reconciler, FIGHT_LIMIT};
use trawl_autoscale::strategy::{AutoscaleSettings, Decision, Strategy};

/// A backend whose count is a number in memory, with an optional "operator"
/// that puts it back to a fixed value after every change.
#[derive(Default)]
struct Memory {
    desired: Mutex<u32>,
    operator: Mutex<Option<u32>>,
    fail_reads: Mutex<bool>,
    sets: Mutex<Vec<u32>>,
}

#[async_trait]
impl ScaleBackend for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn state(&self) -> Result<ScaleState, ScaleError> {
        if *self.fail_reads.lock().unwrap() {
            return Err(ScaleError::Unavailable { what: "reading".into(), reason: "down".into() });
        }
        let d = *self.desired.lock().unwrap();
        Ok(ScaleState { desired: d, current: d, ready: d })
    }

    async fn set_desired(&self, replicas: u32) -> Result<(), ScaleError> {
        self.sets.lock().unwrap().push(replicas);
        *self.desired.lock().unwrap() = self.operator.lock().unwrap().unwrap_or(replicas);
        Ok(())
    }
}

fn immediate(min: u32, max: u32) -> AutoscaleSettings {
    AutoscaleSettings { strategy: Strategy::Immediate, min_scanners: min, max_scanners: max, ..Default::default() }
}

const S: Duration = Duration::from_secs(1);

#[tokio::test]
async fn it_reads_the_backend_and_applies_decisions() {
    let backend = Arc::new(Memory::default());
    *backend.desired.lock().unwrap() = 1;
    let mut r = Reconciler::new(immediate(1, 3), backend.clone()).unwrap();
    let first = r.tick(S, 10).await;
    assert_eq!((first.state.map(|s| s.desired), first.applied), (Some(1), Some(2)));
    assert_eq!(r.tick(2 * S, 10).await.applied, Some(3));
    let at_max = r.tick(3 * S, 10).await;
    assert_eq!((at_max.applied, at_max.decision.reason_str()), (None, "at_maximum"));
    assert_eq!(*backend.sets.lock().unwrap(), vec![2, 3]);
}

#[tokio::test]
async fn a_manual_change_is_accepted_once_and_a_fighting_actor_suspends_scaling() {
    let backend = Arc::new(Memory::default());
    *backend.desired.lock().unwrap() = 1;
    let mut r = Reconciler::new(immediate(1, 5), backend.clone()).unwrap();
    assert_eq!(r.tick(S, 10).await.applied, Some(2));
    // Someone scales by hand: accepted as the new baseline, scaling goes on from there.
    *backend.desired.lock().unwrap() = 4;
    let manual = r.tick(2 * S, 10).await;
    assert!(manual.reset_detected && !manual.overridden, "{manual:?}");
    assert_eq!(manual.applied, Some(5));
    // An operator that puts the count back to 1 after every change.
    *backend.operator.lock().unwrap() = Some(1);
    *backend.desired.lock().unwrap() = 1;
    let mut suspended = None;
    for t in 3..10 {
        let report = r.tick(t * S, 10).await;
        if report.overridden {
            suspended = Some((t, report));
            break;
        }
    }
    let (t, report) = suspended.expect("the reconciler stops fighting");
    assert_eq!(report.applied, None, "no change while suspended");
    assert!(r.overridden());
    let sets_before = backend.sets.lock().unwrap().len();
    for k in 1..5 {
        let again = r.tick((t + k) * S, 10).await;
        assert!(again.overridden && again.applied.is_none(), "{again:?}");
    }
    assert_eq!(backend.sets.lock().unwrap().len(), sets_before, "suspended: no more changes");
    assert!(sets_before <= 2 + FIGHT_LIMIT as usize, "it gave up after {FIGHT_LIMIT} resets: {sets_before} sets");

    // Changing the settings is the operator's "try again".
    *backend.operator.lock().unwrap() = None;
    r.set_settings(immediate(1, 3)).unwrap();
    let resumed = r.tick(20 * S, 10).await;
    assert!(!resumed.overridden);
    assert_eq!(resumed.applied, Some(2));
}

#[tokio::test]
async fn an_unreadable_backend_changes_nothing_and_says_why() {
    let backend = Arc::new(Memory::default());
    *backend.fail_reads.lock().unwrap() = true;
    let mut r = Reconciler::new(immediate(1, 3), backend.clone()).unwrap();
    let report = r.tick(S, 10).await;
    assert!(report.state.is_none() && report.applied.is_none());
    assert!(report.error.as_deref().is_some_and(|e| e.contains("down")), "{report:?}");
    assert!(matches!(report.decision, Decision::Hold(_)));
    assert!(backend.sets.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_new_reconciler_starts_from_the_backends_count() {
    // What a controller that just became the leader does: no memory of the old leader's sets.
    let backend = Arc::new(Memory::default());
    *backend.desired.lock().unwrap() = 3;
    let mut r = Reconciler::new(
        AutoscaleSettings { strategy: Strategy::Delayed, min_scanners: 1, max_scanners: 3, ..Default::default() },
        backend.clone(),
    )
    .unwrap();
    let report = r.tick(S, 50).await;
    assert!(!report.reset_detected);
    assert_eq!((report.applied, report.decision.reason_str()), (None, "waiting"), "a fresh 90 s wait");
    let later = r.tick(S + Duration::from_secs(91), 50).await;
    assert_eq!((later.applied, later.decision.reason_str()), (None, "at_maximum"), "already at 3");
}
