//! The scaling rules of `trawl_autoscale::strategy`, edge by edge, on an injected clock.

use std::collections::HashSet;
use std::time::Duration;

use trawl_autoscale::strategy::{
    AutoscaleSettings, Autoscaler, Decision, Direction, HoldReason, ScaleReason, SettingsError, Strategy,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn settings(strategy: Strategy) -> AutoscaleSettings {
    AutoscaleSettings { strategy, ..AutoscaleSettings::default() }
}

fn autoscaler(settings: AutoscaleSettings) -> Autoscaler {
    Autoscaler::new(settings).expect("valid settings")
}

fn hold(reason: HoldReason) -> Decision {
    Decision::Hold(reason)
}

fn up(from: u32, to: u32, reason: ScaleReason) -> Decision {
    Decision::Scale { from, to, direction: Direction::Up, reason }
}

fn down(from: u32, to: u32, reason: ScaleReason) -> Decision {
    Decision::Scale { from, to, direction: Direction::Down, reason }
}

const WAITING: Decision = Decision::Hold(HoldReason::Waiting);

// ---- delayed: scale-up ----

#[test]
fn delayed_backlog_for_89_seconds_holds() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 5, 2), WAITING);
    assert_eq!(a.observe(secs(45), 5, 2), WAITING);
    assert_eq!(a.observe(secs(89), 5, 2), WAITING);
}

#[test]
fn delayed_backlog_for_91_seconds_adds_one() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 5, 2), WAITING);
    assert_eq!(a.observe(secs(91), 5, 2), up(2, 3, ScaleReason::Backlog));
}

#[test]
fn delayed_backlog_for_exactly_90_seconds_holds() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 5, 2), WAITING);
    assert_eq!(a.observe(secs(90), 5, 2), WAITING);
    assert_eq!(a.observe(secs(90) + Duration::from_millis(1), 5, 2), up(2, 3, ScaleReason::Backlog));
}

#[test]
fn delayed_run_starts_at_its_first_observation_not_at_the_origin() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(1000), 5, 2), WAITING);
    assert_eq!(a.observe(secs(1090), 5, 2), WAITING);
    assert_eq!(a.observe(secs(1091), 5, 2), up(2, 3, ScaleReason::Backlog));
}

#[test]
fn delayed_idle_observation_restarts_the_backlog_run() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 5, 2), WAITING);
    assert_eq!(a.observe(secs(50), 0, 2), WAITING);
    assert_eq!(a.observe(secs(60), 5, 2), WAITING);
    // 91 s after the first observation, but only 31 s into the new run.
    assert_eq!(a.observe(secs(91), 5, 2), WAITING);
    assert_eq!(a.observe(secs(150), 5, 2), WAITING);
    assert_eq!(a.observe(secs(151), 5, 2), up(2, 3, ScaleReason::Backlog));
}

#[test]
fn delayed_needs_another_90_seconds_after_an_event() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 5, 2), WAITING);
    assert_eq!(a.observe(secs(91), 5, 2), up(2, 3, ScaleReason::Backlog));
    assert_eq!(a.observe(secs(92), 5, 3), WAITING);
    assert_eq!(a.observe(secs(181), 5, 3), WAITING);
    assert_eq!(a.observe(secs(182), 5, 3), up(3, 4, ScaleReason::Backlog));
    assert_eq!(a.observe(secs(272), 5, 4), WAITING);
    assert_eq!(a.observe(secs(273), 5, 4), up(4, 5, ScaleReason::Backlog));
}

#[test]
fn delayed_at_maximum_holds_and_a_raised_maximum_applies_on_the_next_observation() {
    let mut a = autoscaler(AutoscaleSettings { max_scanners: 3, ..settings(Strategy::Delayed) });
    assert_eq!(a.observe(secs(0), 5, 3), WAITING);
    assert_eq!(a.observe(secs(91), 5, 3), hold(HoldReason::AtMaximum));
    assert_eq!(a.observe(secs(500), 5, 3), hold(HoldReason::AtMaximum));
    // The backlog has lasted long enough all along; holds did not restart the run.
    a.set_settings(AutoscaleSettings { max_scanners: 5, ..*a.settings() }).unwrap();
    assert_eq!(a.observe(secs(501), 5, 3), up(3, 4, ScaleReason::Backlog));
    assert_eq!(a.observe(secs(502), 5, 4), WAITING);
}

#[test]
fn delayed_reaches_the_maximum_one_scanner_at_a_time() {
    let mut a = autoscaler(AutoscaleSettings { max_scanners: 3, ..settings(Strategy::Delayed) });
    let mut current = 1;
    a.observe(secs(0), 100, current);
    let mut now = 0;
    let mut events = Vec::new();
    while now < 1000 {
        now += 10;
        if let Some(to) = a.observe(secs(now), 100, current).target() {
            events.push((now, to));
            current = to;
        }
    }
    assert_eq!(events, vec![(100, 2), (200, 3)]);
    assert_eq!(a.observe(secs(now + 1), 100, current), hold(HoldReason::AtMaximum));
}

// ---- scale-down ----

#[test]
fn scale_down_at_179_seconds_holds_and_at_181_removes_one() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 0, 4), WAITING);
    assert_eq!(a.observe(secs(179), 0, 4), WAITING);
    assert_eq!(a.observe(secs(180), 0, 4), WAITING);
    assert_eq!(a.observe(secs(181), 0, 4), down(4, 3, ScaleReason::Idle));
}

#[test]
fn scale_down_repeats_once_per_quiet_period_down_to_the_minimum() {
    let mut a = autoscaler(AutoscaleSettings { min_scanners: 2, ..settings(Strategy::Delayed) });
    assert_eq!(a.observe(secs(0), 0, 4), WAITING);
    assert_eq!(a.observe(secs(181), 0, 4), down(4, 3, ScaleReason::Idle));
    assert_eq!(a.observe(secs(200), 0, 3), WAITING);
    assert_eq!(a.observe(secs(361), 0, 3), WAITING);
    assert_eq!(a.observe(secs(362), 0, 3), down(3, 2, ScaleReason::Idle));
    assert_eq!(a.observe(secs(543), 0, 2), hold(HoldReason::AtMinimum));
    assert_eq!(a.observe(secs(10_000), 0, 2), hold(HoldReason::AtMinimum));
}

#[test]
fn a_task_breaks_the_idle_run() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 0, 4), WAITING);
    assert_eq!(a.observe(secs(100), 1, 4), WAITING);
    assert_eq!(a.observe(secs(110), 0, 4), WAITING);
    assert_eq!(a.observe(secs(181), 0, 4), WAITING);
    assert_eq!(a.observe(secs(290), 0, 4), WAITING);
    assert_eq!(a.observe(secs(291), 0, 4), down(4, 3, ScaleReason::Idle));
}

#[test]
fn minimum_zero_scales_to_zero() {
    let mut a = autoscaler(AutoscaleSettings { min_scanners: 0, ..settings(Strategy::Delayed) });
    a.observe(secs(0), 0, 1);
    assert_eq!(a.observe(secs(181), 0, 1), down(1, 0, ScaleReason::Idle));
    assert_eq!(a.observe(secs(362), 0, 0), hold(HoldReason::AtMinimum));
}

// ---- immediate ----

#[test]
fn immediate_adds_one_on_every_observation_with_tasks_up_to_the_maximum() {
    let mut a = autoscaler(AutoscaleSettings { max_scanners: 4, ..settings(Strategy::Immediate) });
    assert_eq!(a.observe(secs(0), 1, 1), up(1, 2, ScaleReason::TasksPending));
    assert_eq!(a.observe(secs(0), 1, 2), up(2, 3, ScaleReason::TasksPending));
    assert_eq!(a.observe(secs(1), 7, 3), up(3, 4, ScaleReason::TasksPending));
    assert_eq!(a.observe(secs(2), 7, 4), hold(HoldReason::AtMaximum));
    assert_eq!(a.observe(secs(3), 7, 4), hold(HoldReason::AtMaximum));
}

#[test]
fn immediate_scales_down_after_the_quiet_period() {
    let mut a = autoscaler(settings(Strategy::Immediate));
    assert_eq!(a.observe(secs(0), 3, 2), up(2, 3, ScaleReason::TasksPending));
    assert_eq!(a.observe(secs(10), 0, 3), WAITING);
    assert_eq!(a.observe(secs(190), 0, 3), WAITING);
    assert_eq!(a.observe(secs(191), 0, 3), down(3, 2, ScaleReason::Idle));
}

// ---- minimum and maximum ----

#[test]
fn minimum_is_not_applied_before_any_event() {
    let min3 = |strategy| AutoscaleSettings { min_scanners: 3, ..settings(strategy) };
    let mut idle = autoscaler(min3(Strategy::Delayed));
    assert_eq!(idle.observe(secs(0), 0, 1), WAITING);
    assert_eq!(idle.observe(secs(180), 0, 1), WAITING);

    let mut busy = autoscaler(min3(Strategy::Delayed));
    assert_eq!(busy.observe(secs(0), 5, 1), WAITING);
    assert_eq!(busy.observe(secs(90), 5, 1), WAITING);

    let mut proportional = autoscaler(min3(Strategy::Proportional));
    assert_eq!(proportional.observe(secs(0), 0, 1), WAITING);
}

#[test]
fn minimum_is_applied_by_the_first_scale_down_event() {
    let mut a = autoscaler(AutoscaleSettings { min_scanners: 3, ..settings(Strategy::Delayed) });
    assert_eq!(a.observe(secs(0), 0, 1), WAITING);
    // An idle event, raised to the minimum: the count goes up.
    assert_eq!(a.observe(secs(181), 0, 1), up(1, 3, ScaleReason::Idle));
    assert_eq!(a.observe(secs(362), 0, 3), hold(HoldReason::AtMinimum));
}

#[test]
fn minimum_is_applied_by_the_first_scale_up_event() {
    let min3 = |strategy| AutoscaleSettings { min_scanners: 3, ..settings(strategy) };
    let mut delayed = autoscaler(min3(Strategy::Delayed));
    assert_eq!(delayed.observe(secs(0), 5, 1), WAITING);
    assert_eq!(delayed.observe(secs(91), 5, 1), up(1, 3, ScaleReason::Backlog));

    let mut immediate = autoscaler(min3(Strategy::Immediate));
    assert_eq!(immediate.observe(secs(0), 1, 1), up(1, 3, ScaleReason::TasksPending));

    // One task wants one scanner, but the event goes to the minimum.
    let mut proportional = autoscaler(min3(Strategy::Proportional));
    assert_eq!(proportional.observe(secs(0), 1, 1), up(1, 3, ScaleReason::Proportional));
}

#[test]
fn minimum_equal_to_maximum_pins_the_count_at_the_first_event() {
    let mut a = autoscaler(AutoscaleSettings { min_scanners: 5, max_scanners: 5, ..settings(Strategy::Immediate) });
    assert_eq!(a.observe(secs(0), 1, 2), up(2, 5, ScaleReason::TasksPending));
    assert_eq!(a.observe(secs(1), 1, 5), hold(HoldReason::AtMaximum));
    a.observe(secs(2), 0, 5);
    assert_eq!(a.observe(secs(183), 0, 5), hold(HoldReason::AtMinimum));
}

// ---- disabled ----

#[test]
fn disabled_never_scales() {
    let mut a = autoscaler(AutoscaleSettings { min_scanners: 3, max_scanners: 5, ..settings(Strategy::Disabled) });
    let disabled = hold(HoldReason::Disabled);
    for t in (0..2000).step_by(30) {
        assert_eq!(a.observe(secs(t), 1000, 1), disabled, "backlog at {t} s");
    }
    for t in (2000..4000).step_by(30) {
        assert_eq!(a.observe(secs(t), 0, 4), disabled, "idle at {t} s");
    }
    // Not even above the maximum or below the minimum.
    assert_eq!(a.observe(secs(4000), 0, 50), disabled);
    assert_eq!(a.observe(secs(4001), 10, 50), disabled);
    assert_eq!(a.observe(secs(4002), 10, 0), disabled);
}

// ---- settings changed at run time ----

#[test]
fn switching_delayed_to_immediate_mid_run_scales_on_the_next_observation() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 5, 2), WAITING);
    assert_eq!(a.observe(secs(30), 5, 2), WAITING);
    a.set_settings(settings(Strategy::Immediate)).unwrap();
    assert_eq!(a.observe(secs(31), 5, 2), up(2, 3, ScaleReason::TasksPending));
    assert_eq!(a.observe(secs(32), 5, 3), up(3, 4, ScaleReason::TasksPending));
}

#[test]
fn switching_immediate_to_delayed_keeps_the_run_but_waits_from_the_last_event() {
    let mut a = autoscaler(settings(Strategy::Immediate));
    assert_eq!(a.observe(secs(0), 5, 2), up(2, 3, ScaleReason::TasksPending));
    a.set_settings(settings(Strategy::Delayed)).unwrap();
    assert_eq!(a.observe(secs(90), 5, 3), WAITING);
    assert_eq!(a.observe(secs(91), 5, 3), up(3, 4, ScaleReason::Backlog));
}

#[test]
fn runs_observed_while_disabled_count_once_enabled() {
    let mut a = autoscaler(settings(Strategy::Disabled));
    assert_eq!(a.observe(secs(0), 5, 2), hold(HoldReason::Disabled));
    assert_eq!(a.observe(secs(100), 5, 2), hold(HoldReason::Disabled));
    a.set_settings(settings(Strategy::Delayed)).unwrap();
    assert_eq!(a.observe(secs(101), 5, 2), up(2, 3, ScaleReason::Backlog));
}

#[test]
fn idle_run_is_kept_across_a_strategy_change() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 0, 4), WAITING);
    a.set_settings(settings(Strategy::Proportional)).unwrap();
    assert_eq!(a.observe(secs(180), 0, 4), WAITING);
    assert_eq!(a.observe(secs(181), 0, 4), down(4, 3, ScaleReason::Idle));
}

#[test]
fn lowering_the_maximum_below_the_current_count_scales_down_at_once() {
    for strategy in [Strategy::Delayed, Strategy::Immediate, Strategy::Proportional] {
        for task_count in [0, 5, 1000] {
            let mut a = autoscaler(settings(strategy));
            a.observe(secs(0), task_count, 8);
            a.set_settings(AutoscaleSettings { max_scanners: 3, ..settings(strategy) }).unwrap();
            assert_eq!(
                a.observe(secs(1), task_count, 8),
                down(8, 3, ScaleReason::AboveMaximum),
                "{strategy} with {task_count} tasks"
            );
        }
    }
}

#[test]
fn scaling_down_to_the_maximum_does_not_restart_the_idle_run() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 0, 8), WAITING);
    a.set_settings(AutoscaleSettings { max_scanners: 5, ..settings(Strategy::Delayed) }).unwrap();
    assert_eq!(a.observe(secs(170), 0, 8), down(8, 5, ScaleReason::AboveMaximum));
    assert_eq!(a.observe(secs(181), 0, 5), down(5, 4, ScaleReason::Idle));
}

#[test]
fn raising_scale_up_after_mid_run_moves_the_edge() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 5, 2), WAITING);
    assert_eq!(a.observe(secs(60), 5, 2), WAITING);
    a.set_settings(AutoscaleSettings { scale_up_after: secs(120), ..settings(Strategy::Delayed) }).unwrap();
    assert_eq!(a.observe(secs(91), 5, 2), WAITING);
    assert_eq!(a.observe(secs(120), 5, 2), WAITING);
    assert_eq!(a.observe(secs(121), 5, 2), up(2, 3, ScaleReason::Backlog));
}

#[test]
fn lowering_scale_up_after_mid_run_moves_the_edge() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 5, 2), WAITING);
    assert_eq!(a.observe(secs(20), 5, 2), WAITING);
    a.set_settings(AutoscaleSettings { scale_up_after: secs(30), ..settings(Strategy::Delayed) }).unwrap();
    assert_eq!(a.observe(secs(30), 5, 2), WAITING);
    assert_eq!(a.observe(secs(31), 5, 2), up(2, 3, ScaleReason::Backlog));
}

#[test]
fn changing_scale_down_after_mid_run_moves_the_edge() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(0), 0, 4), WAITING);
    a.set_settings(AutoscaleSettings { scale_down_after: secs(60), ..settings(Strategy::Delayed) }).unwrap();
    assert_eq!(a.observe(secs(60), 0, 4), WAITING);
    assert_eq!(a.observe(secs(61), 0, 4), down(4, 3, ScaleReason::Idle));
}

#[test]
fn invalid_settings_are_rejected_and_leave_the_old_ones() {
    let old = AutoscaleSettings { max_scanners: 4, ..settings(Strategy::Delayed) };
    let mut a = autoscaler(old);
    a.observe(secs(0), 5, 2);
    let cases = [
        (AutoscaleSettings { max_scanners: 0, min_scanners: 0, ..old }, SettingsError::MaxScannersZero),
        (AutoscaleSettings { min_scanners: 5, max_scanners: 4, ..old }, SettingsError::MinAboveMax { min: 5, max: 4 }),
        (AutoscaleSettings { tasks_per_scanner: 0, ..old }, SettingsError::TasksPerScannerZero),
        (
            AutoscaleSettings { scale_up_after: Duration::ZERO, ..old },
            SettingsError::DurationOutOfRange { field: "scale_up_after_seconds", value: Duration::ZERO },
        ),
        (
            AutoscaleSettings { scale_down_after: secs(86_401), ..old },
            SettingsError::DurationOutOfRange { field: "scale_down_after_seconds", value: secs(86_401) },
        ),
        (
            AutoscaleSettings { scale_up_after: Duration::from_millis(1500), ..old },
            SettingsError::DurationNotWholeSeconds {
                field: "scale_up_after_seconds",
                value: Duration::from_millis(1500),
            },
        ),
    ];
    for (new, error) in cases {
        assert_eq!(a.set_settings(new), Err(error.clone()));
        assert_eq!(new.validate(), Err(error.clone()));
        assert_eq!(Autoscaler::new(new).err(), Some(error));
        assert_eq!(a.settings(), &old);
    }
    // The old settings still decide, and the run was not disturbed.
    assert_eq!(a.observe(secs(90), 5, 2), WAITING);
    assert_eq!(a.observe(secs(91), 5, 2), up(2, 3, ScaleReason::Backlog));
}

#[test]
fn settings_bounds_are_inclusive() {
    let edges = AutoscaleSettings {
        min_scanners: 7,
        max_scanners: 7,
        scale_up_after: secs(1),
        scale_down_after: secs(86_400),
        tasks_per_scanner: 1,
        ..AutoscaleSettings::default()
    };
    assert_eq!(edges.validate(), Ok(()));
    assert_eq!(AutoscaleSettings::default().validate(), Ok(()));
}

#[test]
fn settings_errors_say_what_to_do() {
    let message = SettingsError::MinAboveMax { min: 5, max: 4 }.to_string();
    assert!(message.contains("min_scanners (5)") && message.contains("max_scanners (4)"), "{message}");
    assert!(message.contains("lower min_scanners or raise max_scanners"), "{message}");
    let message =
        SettingsError::DurationOutOfRange { field: "scale_up_after_seconds", value: Duration::ZERO }.to_string();
    assert!(message.contains("scale_up_after_seconds") && message.contains("between 1 and 86400 seconds"), "{message}");
    assert!(SettingsError::MaxScannersZero.to_string().contains("at least 1"));
    assert!(SettingsError::TasksPerScannerZero.to_string().contains("at least 1"));
}

// ---- proportional ----

#[test]
fn proportional_95_tasks_at_10_per_scanner_wants_10_clamped_by_the_maximum() {
    let with_max = |max_scanners| AutoscaleSettings { max_scanners, ..settings(Strategy::Proportional) };
    assert_eq!(autoscaler(with_max(10)).observe(secs(0), 95, 1), up(1, 10, ScaleReason::Proportional));
    assert_eq!(autoscaler(with_max(8)).observe(secs(0), 95, 1), up(1, 8, ScaleReason::Proportional));
    assert_eq!(autoscaler(with_max(20)).observe(secs(0), 95, 1), up(1, 10, ScaleReason::Proportional));
}

#[test]
fn proportional_rounds_up() {
    let big = AutoscaleSettings { max_scanners: 100, ..settings(Strategy::Proportional) };
    for (tasks, wanted) in [(1, 1), (10, 1), (11, 2), (90, 9), (91, 10), (100, 10), (101, 11)] {
        let decision = autoscaler(big).observe(secs(0), tasks, 0);
        assert_eq!(decision.target(), Some(wanted), "{tasks} tasks");
    }
}

#[test]
fn proportional_goes_straight_up_then_holds_while_tasks_are_pending() {
    let mut a = autoscaler(AutoscaleSettings { max_scanners: 20, ..settings(Strategy::Proportional) });
    assert_eq!(a.observe(secs(0), 30, 1), up(1, 3, ScaleReason::Proportional));
    assert_eq!(a.observe(secs(1), 30, 3), hold(HoldReason::Steady));
    assert_eq!(a.observe(secs(2), 120, 3), up(3, 12, ScaleReason::Proportional));
    // A shrinking queue does not scale down.
    assert_eq!(a.observe(secs(3), 5, 12), hold(HoldReason::Steady));
    assert_eq!(a.observe(secs(500), 5, 12), hold(HoldReason::Steady));
}

#[test]
fn proportional_at_the_maximum_holds_at_maximum() {
    let mut a = autoscaler(AutoscaleSettings { max_scanners: 4, ..settings(Strategy::Proportional) });
    assert_eq!(a.observe(secs(0), 95, 4), hold(HoldReason::AtMaximum));
    // Enough scanners for the tasks is steady, even at the maximum.
    assert_eq!(a.observe(secs(1), 40, 4), hold(HoldReason::Steady));
}

#[test]
fn proportional_scales_down_one_step_after_the_quiet_period() {
    let mut a = autoscaler(AutoscaleSettings { max_scanners: 20, ..settings(Strategy::Proportional) });
    assert_eq!(a.observe(secs(0), 200, 1), up(1, 20, ScaleReason::Proportional));
    assert_eq!(a.observe(secs(10), 0, 20), WAITING);
    assert_eq!(a.observe(secs(190), 0, 20), WAITING);
    assert_eq!(a.observe(secs(191), 0, 20), down(20, 19, ScaleReason::Idle));
    assert_eq!(a.observe(secs(371), 0, 19), WAITING);
    assert_eq!(a.observe(secs(372), 0, 19), down(19, 18, ScaleReason::Idle));
}

#[test]
fn proportional_huge_task_counts_do_not_overflow() {
    let s = AutoscaleSettings { max_scanners: u32::MAX, tasks_per_scanner: 1, ..settings(Strategy::Proportional) };
    assert_eq!(autoscaler(s).observe(secs(0), u64::MAX, 0), up(0, u32::MAX, ScaleReason::Proportional));
    let s = AutoscaleSettings { tasks_per_scanner: u32::MAX, max_scanners: u32::MAX, ..s };
    // ceil(u64::MAX / u32::MAX) = 2^32 + 1, more than u32 holds: saturates.
    assert_eq!(autoscaler(s).observe(secs(0), u64::MAX, 7), up(7, u32::MAX, ScaleReason::Proportional));
    assert_eq!(autoscaler(s).observe(secs(0), u64::MAX, u32::MAX), hold(HoldReason::AtMaximum));
}

// ---- the clock ----

#[test]
fn now_going_backwards_counts_as_no_time_elapsed() {
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(100), 5, 2), WAITING);
    assert_eq!(a.observe(secs(50), 5, 2), WAITING);
    assert_eq!(a.observe(Duration::ZERO, 5, 2), WAITING);
    assert_eq!(a.observe(secs(190), 5, 2), WAITING);
    assert_eq!(a.observe(secs(191), 5, 2), up(2, 3, ScaleReason::Backlog));

    // A run that starts on a backwards observation starts at the latest time seen.
    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(secs(100), 5, 4), WAITING);
    assert_eq!(a.observe(secs(10), 0, 4), WAITING);
    assert_eq!(a.observe(secs(280), 0, 4), WAITING);
    assert_eq!(a.observe(secs(281), 0, 4), down(4, 3, ScaleReason::Idle));
}

#[test]
fn extreme_inputs_do_not_panic() {
    let all = AutoscaleSettings { min_scanners: 0, max_scanners: u32::MAX, ..settings(Strategy::Immediate) };
    let mut a = autoscaler(all);
    assert_eq!(a.observe(Duration::MAX, u64::MAX, u32::MAX - 1), up(u32::MAX - 1, u32::MAX, ScaleReason::TasksPending));
    assert_eq!(a.observe(Duration::ZERO, u64::MAX, u32::MAX), hold(HoldReason::AtMaximum));
    assert_eq!(a.observe(Duration::MAX, 0, 0), WAITING);
    assert_eq!(a.observe(Duration::MAX, 0, 0), WAITING);

    let mut a = autoscaler(settings(Strategy::Delayed));
    assert_eq!(a.observe(Duration::ZERO, 0, u32::MAX), down(u32::MAX, 10, ScaleReason::AboveMaximum));
    assert_eq!(a.observe(Duration::MAX, 0, 0), up(0, 1, ScaleReason::Idle));
}

// ---- serialisation and names ----

#[test]
fn settings_json_round_trip_uses_whole_seconds() {
    let s = AutoscaleSettings {
        strategy: Strategy::Proportional,
        min_scanners: 2,
        max_scanners: 12,
        scale_up_after: secs(30),
        scale_down_after: secs(600),
        tasks_per_scanner: 4,
    };
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "strategy": "proportional",
            "min_scanners": 2,
            "max_scanners": 12,
            "scale_up_after_seconds": 30,
            "scale_down_after_seconds": 600,
            "tasks_per_scanner": 4,
        })
    );
    let back: AutoscaleSettings = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn settings_defaults_and_partial_json() {
    let d = AutoscaleSettings::default();
    assert_eq!(d.strategy, Strategy::Delayed);
    assert_eq!((d.min_scanners, d.max_scanners, d.tasks_per_scanner), (1, 10, 10));
    assert_eq!((d.scale_up_after, d.scale_down_after), (secs(90), secs(180)));

    let empty: AutoscaleSettings = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, d);
    let partial: AutoscaleSettings =
        serde_json::from_str(r#"{"strategy": "immediate", "scale_down_after_seconds": 300}"#).unwrap();
    assert_eq!(partial, AutoscaleSettings { strategy: Strategy::Immediate, scale_down_after: secs(300), ..d });
}

#[test]
fn settings_json_rejects_unknown_fields_and_bad_values() {
    let typo = serde_json::from_str::<AutoscaleSettings>(r#"{"scale_up_after": 30}"#).unwrap_err();
    assert!(typo.to_string().contains("unknown field `scale_up_after`"), "{typo}");
    let bad_strategy = serde_json::from_str::<AutoscaleSettings>(r#"{"strategy": "Delayed"}"#).unwrap_err();
    assert!(bad_strategy.to_string().contains("unknown variant"), "{bad_strategy}");
    assert!(serde_json::from_str::<AutoscaleSettings>(r#"{"scale_up_after_seconds": 1.5}"#).is_err());
    assert!(serde_json::from_str::<AutoscaleSettings>(r#"{"scale_up_after_seconds": -1}"#).is_err());
}

#[test]
fn strategy_names_agree_across_from_str_display_and_serde() {
    let names = ["delayed", "immediate", "proportional", "disabled"];
    assert_eq!(Strategy::ALL.map(Strategy::as_str), names);
    for strategy in Strategy::ALL {
        let name = strategy.to_string();
        assert_eq!(name.parse::<Strategy>(), Ok(strategy));
        assert_eq!(serde_json::to_value(strategy).unwrap(), serde_json::Value::String(name.clone()));
        assert_eq!(serde_json::from_value::<Strategy>(serde_json::Value::String(name)).unwrap(), strategy);
    }
    assert_eq!(Strategy::default(), Strategy::Delayed);
    let error = "fast".parse::<Strategy>().unwrap_err();
    assert!(error.to_string().contains("\"fast\"") && error.to_string().contains("delayed"), "{error}");
    assert!("Delayed".parse::<Strategy>().is_err());
}

#[test]
fn reason_label_values_are_stable_snake_case_and_distinct() {
    assert_eq!(
        ScaleReason::ALL.map(ScaleReason::as_str),
        ["backlog", "tasks_pending", "proportional", "idle", "above_maximum"]
    );
    assert_eq!(HoldReason::ALL.map(HoldReason::as_str), ["disabled", "at_maximum", "at_minimum", "waiting", "steady"]);
    assert_eq!(Direction::ALL.map(Direction::as_str), ["up", "down"]);
    for reason in ScaleReason::ALL {
        assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        assert_eq!(reason.to_string(), reason.as_str());
    }
    for reason in HoldReason::ALL {
        assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        assert_eq!(reason.to_string(), reason.as_str());
    }
    let distinct: HashSet<&str> =
        ScaleReason::ALL.map(ScaleReason::as_str).into_iter().chain(HoldReason::ALL.map(HoldReason::as_str)).collect();
    // `proportional` names both a strategy and a reason, but no hold reason shares a scale reason's name.
    assert_eq!(distinct.len(), ScaleReason::ALL.len() + HoldReason::ALL.len());
}

#[test]
fn decision_accessors() {
    assert_eq!(hold(HoldReason::Waiting).target(), None);
    assert_eq!(hold(HoldReason::Waiting).reason_str(), "waiting");
    assert_eq!(down(5, 3, ScaleReason::AboveMaximum).target(), Some(3));
    assert_eq!(down(5, 3, ScaleReason::AboveMaximum).reason_str(), "above_maximum");
}
