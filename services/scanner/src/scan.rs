//! From an analysed image to a scan report: the one step that `scan` (the
//! standalone command) and `worker` (the queue consumer) share, so both
//! match and describe findings the same way.
//!
//! [`build_report`] matches every package and keeps every finding: the
//! worker's results are stored for admission control, which applies each
//! cluster's policy later, so nothing may be filtered out before it.
//! [`apply_policy`] is the standalone command's extra step (CI gating:
//! severities, unfixed findings, ignore files).

use crate::analyze::ImageAnalysis;
use chrono::NaiveDate;
use trawl_policy::{FindingPolicy, IgnoreRule};
use trawl_report::{SbomReport, ScanReport, SeverityCounts, SuppressedFinding};
use trawl_vulndb::{Database, Matcher};

/// Matches the analysed inventory against `db` and builds the full report
/// (no policy applied). The matcher's warnings are in `match_warnings`.
pub fn build_report(analysis: ImageAnalysis, db: &Database) -> ScanReport {
    let matched = Matcher::new(db).match_inventory(&analysis.inventory);
    ScanReport::new(
        SbomReport::new(analysis.identity, analysis.inventory),
        matched,
        trawl_report::DbInfo::from(db.header()),
    )
}

/// What [`apply_policy`] left out of a report, for logging and the CI gate.
#[derive(Debug, Clone, Default)]
pub struct PolicyOutcome {
    /// Ignore rules past their expiry date: their findings are reported again.
    pub expired: Vec<IgnoreRule>,
    /// Findings dropped by the severity filter.
    pub below_severity: usize,
    /// Findings dropped because they have no fix yet.
    pub unfixed: usize,
    /// Whether any finding remains (the `--exit-code` gate fails).
    pub fails_gate: bool,
}

/// Applies `policy` to the report's findings as of `today`: filtered-out
/// findings leave the report, suppressed ones move to `suppressed`, and the
/// summary counts only what is left.
pub fn apply_policy(report: &mut ScanReport, policy: &FindingPolicy, today: NaiveDate) -> PolicyOutcome {
    let filtered = policy.apply(std::mem::take(&mut report.findings), today);
    let outcome = PolicyOutcome {
        fails_gate: filtered.fails_gate(),
        expired: filtered.expired,
        below_severity: filtered.below_severity,
        unfixed: filtered.unfixed,
    };
    report.summary = SeverityCounts::of(&filtered.kept);
    report.findings = filtered.kept;
    report.suppressed = filtered
        .suppressed
        .into_iter()
        .map(|s| SuppressedFinding {
            finding: s.finding,
            reason: s.rule.reason.unwrap_or_else(|| format!("ignored by {}", s.rule.origin)),
            expires: s.rule.expires.map(|d| d.to_string()),
        })
        .collect();
    outcome
}
