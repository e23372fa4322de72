//! Scanner autoscaling: how many scanners the task queue needs, and the
//! backends that make it so.
//!
//! * [`strategy`] — the decision: from the task count (the depth of the task
//!   stream) observed over time, when to add or remove one scanner. The
//!   NeuVector guide's `delayed`, `immediate` and `disabled` strategies are
//!   reproduced exactly, plus `proportional`. Pure logic on an injected
//!   clock, so every edge (89 s vs 91 s) is testable.
//! * [`backend`] — the effect: a [`backend::ScaleBackend`] reads and sets the
//!   scanner count (`kubernetes`: the scanner Deployment's `scale`
//!   subresource; `process`: local `trawl-scanner worker` processes; `none`).
//!
//! * [`reconcile`] — one step joining the two: read the count from the
//!   backend, decide, apply; and stop fighting another actor that keeps
//!   resetting the count.
//!
//! The controller's lead replica calls the reconciler on a timer; this crate
//! knows nothing of NATS or leadership.

pub mod backend;
pub mod reconcile;
pub mod strategy;
