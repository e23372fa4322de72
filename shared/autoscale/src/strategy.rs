//! Scaling decisions from the task count over time.
//!
//! The controller's lead replica calls [`Autoscaler::observe`] once per
//! observation tick with the time, the task count (the depth of the task
//! queue: pending plus in flight) and the scanner count it currently asks for;
//! the answer is a [`Decision`]: hold, or scale to a new count. Nothing here
//! does I/O or sleeps. The clock is injected — `now` is a [`Duration`] since
//! an origin of the caller's choosing (a monotonic one) — so that every edge
//! (89 s, 90 s, 91 s) can be pinned by a test.
//!
//! # Strategies
//!
//! The NeuVector guide's strategies, reproduced:
//!
//! * `delayed` (the default): when the task count has been > 0 continuously
//!   for more than `scale_up_after` (90 s), add one scanner unless at
//!   `max_scanners`; when it has been 0 continuously for more than
//!   `scale_down_after` (180 s), remove one unless at `min_scanners`.
//! * `immediate`: every observation with a task count > 0 adds one scanner
//!   unless at `max_scanners`; scale-down as in `delayed`.
//! * `disabled`: never changes anything, not even a count above the maximum.
//!
//! And a Trawl extra:
//!
//! * `proportional`: the wanted count is `ceil(task_count / tasks_per_scanner)`
//!   clamped to `[min_scanners, max_scanners]`. On an observation where that
//!   is more than the current count, go straight to it. There is no
//!   proportional scale-down: while tasks are pending the count is kept
//!   (a shrinking queue is being worked off by the scanners already running,
//!   and removing one would hand its in-flight task back), and scale-down is
//!   the same quiet period as the other strategies — task count 0 continuously
//!   for more than `scale_down_after` removes one scanner.
//!
//! `delayed` is the default rather than NeuVector's (effectively disabled)
//! one because it is the conservative active strategy: it only reacts to a
//! backlog that lasts, and one scanner at a time.
//!
//! # Rules, exactly
//!
//! 1. A *run* is an unbroken sequence of observations with task count > 0
//!    (busy) or == 0 (idle); an observation of the other kind ends it and
//!    starts the other kind's run. "Continuously for > X" means strictly more
//!    than X has elapsed since the start of the current run; exactly X is not
//!    enough. When a scale event fires from a run (`backlog`, `tasks_pending`,
//!    `proportional`, `idle`), the run's start is moved to the event's time,
//!    so `delayed` adds at most one scanner per `scale_up_after` of continued
//!    backlog and scale-down removes one per `scale_down_after` of continued
//!    idleness. A hold does not move it: a backlog held at the maximum stays
//!    "long enough", so raising the maximum takes effect on the next
//!    observation.
//! 2. The durations are settings: `scale_up_after` (default 90 s, used by
//!    `delayed`) and `scale_down_after` (default 180 s, used by `delayed`,
//!    `immediate` and `proportional`).
//! 3. An event's target is `clamp(current ± 1, min, max)` (`proportional`'s
//!    scale-up: `clamp(ceil(count / tasks_per_scanner), min, max)`). This is
//!    how NeuVector's "the minimum is applied during the first scale up/down
//!    event" works: below the minimum nothing happens by itself (not at
//!    start-up, not during a quiet period that has not lasted long enough),
//!    but the first event — up *or down* — goes to at least the minimum. So an
//!    `idle` event can raise the count: [`Decision::Scale`]'s `direction` is
//!    the way the count changes, its `reason` the condition that fired. A
//!    scale-up condition at or above the maximum holds with `at_maximum`; a
//!    scale-down condition at the minimum holds with `at_minimum`. A decision
//!    that would not change the count is always a hold, never an event.
//! 4. `immediate`: every observation with task count > 0 is a scale-up event
//!    (unless at the maximum).
//! 5. Settings can change at run time ([`Autoscaler::set_settings`]). The runs
//!    are facts about the queue and are kept (also while `disabled`: switching
//!    from `disabled` to `delayed` during a long backlog scales on the next
//!    observation); the new thresholds apply from the next observation. When
//!    the current count is above `max_scanners` (the maximum was lowered), the
//!    next observation scales down to the maximum at once, with reason
//!    `above_maximum`, whatever the strategy except `disabled`; this is not an
//!    event from a run and does not move a run's start.
//! 6. A `now` earlier than one already observed counts as no time elapsed
//!    (the latest `now` seen is used instead); nothing panics on any input.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest `scale_up_after`/`scale_down_after` accepted; longer is surely a unit mistake.
pub const MAX_QUIET_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest `scale_up_after`/`scale_down_after` accepted; the settings travel as whole seconds.
pub const MIN_QUIET_PERIOD: Duration = Duration::from_secs(1);

/// How the scanner count follows the task count (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// One more scanner per `scale_up_after` of continued backlog; the conservative default.
    #[default]
    Delayed,
    /// One more scanner on every observation with tasks pending.
    Immediate,
    /// Straight to `ceil(task_count / tasks_per_scanner)` scanners.
    Proportional,
    /// Never changes the scanner count, so operators can size it by hand.
    Disabled,
}

impl Strategy {
    /// Every strategy, for help texts and error messages.
    pub const ALL: [Strategy; 4] = [Strategy::Delayed, Strategy::Immediate, Strategy::Proportional, Strategy::Disabled];

    /// The name used in JSON, on the command line and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Delayed => "delayed",
            Strategy::Immediate => "immediate",
            Strategy::Proportional => "proportional",
            Strategy::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A strategy name that is not one of [`Strategy::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown autoscale strategy {0:?}; use one of delayed, immediate, proportional, disabled")]
pub struct ParseStrategyError(pub String);

impl FromStr for Strategy {
    type Err = ParseStrategyError;

    // Exact names only, as in JSON, so a value means the same everywhere.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == s)
            .ok_or_else(|| ParseStrategyError(s.to_owned()))
    }
}

/// The autoscaler's settings; JSON with durations in whole seconds, missing fields defaulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoscaleSettings {
    /// How the scanner count follows the task count.
    pub strategy: Strategy,
    /// Fewest scanners; applied from the first scale event, never by itself.
    pub min_scanners: u32,
    /// Most scanners; a count above it is scaled down to it at once.
    pub max_scanners: u32,
    /// How long a backlog must last before `delayed` adds a scanner (strictly longer).
    #[serde(rename = "scale_up_after_seconds", with = "whole_seconds")]
    pub scale_up_after: Duration,
    /// How long the queue must stay empty before a scanner is removed (strictly longer).
    #[serde(rename = "scale_down_after_seconds", with = "whole_seconds")]
    pub scale_down_after: Duration,
    /// Tasks one scanner is expected to work off; `proportional` only.
    pub tasks_per_scanner: u32,
}

impl Default for AutoscaleSettings {
    fn default() -> Self {
        AutoscaleSettings {
            strategy: Strategy::default(),
            min_scanners: 1,
            max_scanners: 10,
            scale_up_after: Duration::from_secs(90),
            scale_down_after: Duration::from_secs(180),
            tasks_per_scanner: 10,
        }
    }
}

/// Why settings were refused; each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A maximum of 0 would scale every scanner away.
    #[error("max_scanners is 0; set it to at least 1 (use strategy \"disabled\" to stop autoscaling)")]
    MaxScannersZero,
    /// No count satisfies both bounds.
    #[error("min_scanners ({min}) is greater than max_scanners ({max}); lower min_scanners or raise max_scanners")]
    MinAboveMax {
        /// The minimum asked for.
        min: u32,
        /// The maximum asked for.
        max: u32,
    },
    /// `proportional` divides by it.
    #[error("tasks_per_scanner is 0; set it to at least 1")]
    TasksPerScannerZero,
    /// Too short reacts to noise; too long is surely a unit mistake.
    #[error("{field} is {value:?}; set it between 1 and 86400 seconds (one day)")]
    DurationOutOfRange {
        /// The JSON name of the setting.
        field: &'static str,
        /// The value asked for.
        value: Duration,
    },
    /// The settings travel as whole seconds; a fraction would be lost silently.
    #[error("{field} is {value:?}; use a whole number of seconds")]
    DurationNotWholeSeconds {
        /// The JSON name of the setting.
        field: &'static str,
        /// The value asked for.
        value: Duration,
    },
}

impl AutoscaleSettings {
    /// Checks the bounds; the first problem found is returned.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.max_scanners == 0 {
            return Err(SettingsError::MaxScannersZero);
        }
        if self.min_scanners > self.max_scanners {
            return Err(SettingsError::MinAboveMax { min: self.min_scanners, max: self.max_scanners });
        }
        if self.tasks_per_scanner == 0 {
            return Err(SettingsError::TasksPerScannerZero);
        }
        check_quiet_period("scale_up_after_seconds", self.scale_up_after)?;
        check_quiet_period("scale_down_after_seconds", self.scale_down_after)
    }
}

fn check_quiet_period(field: &'static str, value: Duration) -> Result<(), SettingsError> {
    if !(MIN_QUIET_PERIOD..=MAX_QUIET_PERIOD).contains(&value) {
        return Err(SettingsError::DurationOutOfRange { field, value });
    }
    if value.subsec_nanos() != 0 {
        return Err(SettingsError::DurationNotWholeSeconds { field, value });
    }
    Ok(())
}

/// `Duration` as a JSON integer of seconds.
mod whole_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

/// Which way the scanner count changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More scanners.
    Up,
    /// Fewer scanners.
    Down,
}

impl Direction {
    /// Both directions, so metrics can be pre-registered.
    pub const ALL: [Direction; 2] = [Direction::Up, Direction::Down];

    /// The label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The condition that made a scale event fire; a stable Prometheus label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleReason {
    /// `delayed`: tasks pending continuously for longer than `scale_up_after`.
    Backlog,
    /// `immediate`: tasks pending at this observation.
    TasksPending,
    /// `proportional`: more scanners wanted for the task count than are asked for.
    Proportional,
    /// The queue empty continuously for longer than `scale_down_after` (may raise a count below the minimum).
    Idle,
    /// The count is above `max_scanners`, which was lowered.
    AboveMaximum,
}

impl ScaleReason {
    /// Every reason, so metrics can be pre-registered.
    pub const ALL: [ScaleReason; 5] = [
        ScaleReason::Backlog,
        ScaleReason::TasksPending,
        ScaleReason::Proportional,
        ScaleReason::Idle,
        ScaleReason::AboveMaximum,
    ];

    /// The label value for metrics and logs; never changes once released.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleReason::Backlog => "backlog",
            ScaleReason::TasksPending => "tasks_pending",
            ScaleReason::Proportional => "proportional",
            ScaleReason::Idle => "idle",
            ScaleReason::AboveMaximum => "above_maximum",
        }
    }
}

impl fmt::Display for ScaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the count was left alone; a stable Prometheus label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// The strategy is `disabled`.
    Disabled,
    /// More scanners are wanted but `max_scanners` is reached.
    AtMaximum,
    /// Fewer scanners are wanted but `min_scanners` is reached.
    AtMinimum,
    /// The current run (busy or idle) has not lasted long enough yet.
    Waiting,
    /// `proportional`: enough scanners for the tasks pending.
    Steady,
}

impl HoldReason {
    /// Every reason, so metrics can be pre-registered.
    pub const ALL: [HoldReason; 5] =
        [HoldReason::Disabled, HoldReason::AtMaximum, HoldReason::AtMinimum, HoldReason::Waiting, HoldReason::Steady];

    /// The label value for metrics and logs; never changes once released.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::Disabled => "disabled",
            HoldReason::AtMaximum => "at_maximum",
            HoldReason::AtMinimum => "at_minimum",
            HoldReason::Waiting => "waiting",
            HoldReason::Steady => "steady",
        }
    }
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one observation decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Leave the scanner count as it is.
    Hold(HoldReason),
    /// Ask the backend for `to` scanners instead of `from`; `from != to` always.
    Scale {
        /// The count passed to [`Autoscaler::observe`].
        from: u32,
        /// The count to ask for.
        to: u32,
        /// Whether `to` is above or below `from`.
        direction: Direction,
        /// The condition that fired.
        reason: ScaleReason,
    },
}

impl Decision {
    /// The count to ask for, if it changes.
    pub fn target(&self) -> Option<u32> {
        match *self {
            Decision::Hold(_) => None,
            Decision::Scale { to, .. } => Some(to),
        }
    }

    /// The reason's label value, for a single `reason` log field.
    pub fn reason_str(&self) -> &'static str {
        match *self {
            Decision::Hold(reason) => reason.as_str(),
            Decision::Scale { reason, .. } => reason.as_str(),
        }
    }

    fn scale(from: u32, to: u32, reason: ScaleReason) -> Decision {
        let direction = if to > from { Direction::Up } else { Direction::Down };
        Decision::Scale { from, to, direction, reason }
    }
}

/// What the current run of observations has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunKind {
    /// Task count > 0.
    Busy,
    /// Task count == 0.
    Idle,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    kind: RunKind,
    /// The run's first observation, or its last scale event.
    since: Duration,
}

/// The decision state machine: settings plus what the queue has been doing.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    settings: AutoscaleSettings,
    run: Option<Run>,
    /// The latest `now` observed, so a clock going backwards counts as no time.
    latest: Option<Duration>,
}

impl Autoscaler {
    /// An autoscaler that has observed nothing; invalid settings are refused.
    pub fn new(settings: AutoscaleSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        Ok(Autoscaler { settings, run: None, latest: None })
    }

    /// The settings in force.
    pub fn settings(&self) -> &AutoscaleSettings {
        &self.settings
    }

    /// Replaces the settings from the next observation on, keeping the observed runs;
    /// invalid settings are refused and the old ones stay.
    pub fn set_settings(&mut self, settings: AutoscaleSettings) -> Result<(), SettingsError> {
        settings.validate()?;
        self.settings = settings;
        Ok(())
    }

    /// Records one observation and decides whether the scanner count (`current`) should change.
    pub fn observe(&mut self, now: Duration, task_count: u64, current: u32) -> Decision {
        let now = match self.latest {
            Some(latest) if latest > now => latest,
            _ => now,
        };
        self.latest = Some(now);

        let kind = if task_count > 0 { RunKind::Busy } else { RunKind::Idle };
        let since = match self.run {
            Some(run) if run.kind == kind => run.since,
            _ => now,
        };
        self.run = Some(Run { kind, since });
        let elapsed = now.saturating_sub(since);

        let s = self.settings;
        if s.strategy == Strategy::Disabled {
            return Decision::Hold(HoldReason::Disabled);
        }
        if current > s.max_scanners {
            return Decision::scale(current, s.max_scanners, ScaleReason::AboveMaximum);
        }

        let decision = match kind {
            RunKind::Busy => self.scale_up(elapsed, task_count, current),
            RunKind::Idle => {
                if elapsed <= s.scale_down_after {
                    Decision::Hold(HoldReason::Waiting)
                } else {
                    let to = self.bounded(current.saturating_sub(1));
                    if to == current {
                        Decision::Hold(HoldReason::AtMinimum)
                    } else {
                        Decision::scale(current, to, ScaleReason::Idle)
                    }
                }
            }
        };
        if let (Decision::Scale { .. }, Some(run)) = (decision, self.run.as_mut()) {
            run.since = now;
        }
        decision
    }

    /// The decision for an observation in a busy run that has lasted `elapsed`.
    fn scale_up(&self, elapsed: Duration, task_count: u64, current: u32) -> Decision {
        let s = &self.settings;
        let (wanted, reason) = match s.strategy {
            Strategy::Delayed => {
                if elapsed <= s.scale_up_after {
                    return Decision::Hold(HoldReason::Waiting);
                }
                (current.saturating_add(1), ScaleReason::Backlog)
            }
            Strategy::Immediate => (current.saturating_add(1), ScaleReason::TasksPending),
            Strategy::Proportional => {
                // Compared unsaturated, so a count beyond `u32::MAX` scanners still reads as "more".
                let wanted = ceil_div(task_count, s.tasks_per_scanner);
                let saturated = u32::try_from(wanted).unwrap_or(u32::MAX);
                if wanted <= u64::from(current) && self.bounded(saturated) <= current {
                    return Decision::Hold(HoldReason::Steady);
                }
                (saturated, ScaleReason::Proportional)
            }
            Strategy::Disabled => return Decision::Hold(HoldReason::Disabled),
        };
        let to = self.bounded(wanted);
        if to > current {
            Decision::scale(current, to, reason)
        } else {
            Decision::Hold(HoldReason::AtMaximum)
        }
    }

    /// `count` clamped to the settings' bounds, without `Ord::clamp`'s panic on inverted bounds.
    fn bounded(&self, count: u32) -> u32 {
        count.max(self.settings.min_scanners).min(self.settings.max_scanners)
    }
}

/// `ceil(tasks / per_scanner)`; `div_ceil` does not overflow as `(tasks + per_scanner - 1) / per_scanner` would.
fn ceil_div(tasks: u64, per_scanner: u32) -> u64 {
    tasks.div_ceil(u64::from(per_scanner.max(1)))
}
