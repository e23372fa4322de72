//! Finding policy: which findings a scan reports, which an ignore file
//! suppresses, and whether what remains should fail a CI pipeline.
//!
//! The flow is findings → [`FindingPolicy::apply`] → [`Filtered`]: findings
//! outside the chosen severities or without a fix (when asked) are dropped,
//! those an [`IgnoreFile`] rule names are set aside *with their reason* so a
//! report can still show what was waived, and expired rules are handed back
//! so the caller can warn. Gating is then a question about what was kept —
//! the same semantics as Trivy's `--severity` / `--ignore-unfixed` /
//! `--exit-code`, so pipelines can move over unchanged.

mod ignore;

pub use ignore::{IgnoreFile, IgnoreRule, DEFAULT_IGNORE_FILE};

use chrono::NaiveDate;
use std::collections::BTreeSet;
use trawl_vulndb::{Finding, Rating};

/// Why a policy could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The ignore file could not be read.
    #[error("cannot read the ignore file {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the ignore file is not valid.
    #[error("{path}:{line}: {reason} (expected `ID [exp:YYYY-MM-DD] [pkg:NAME] [# reason]`)")]
    Parse {
        /// File path.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A severity name is not one Trawl knows.
    #[error("unknown severity {0:?}: use CRITICAL, HIGH, MEDIUM, LOW, NEGLIGIBLE or UNKNOWN")]
    Severity(String),
}

/// Parses a comma-separated severity list (`HIGH,CRITICAL`, any case).
pub fn parse_severities(list: &str) -> Result<BTreeSet<Rating>, PolicyError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.eq_ignore_ascii_case("unknown") {
                Ok(Rating::Unknown)
            } else {
                Rating::from_label(s).ok_or_else(|| PolicyError::Severity(s.to_string()))
            }
        })
        .collect()
}

/// What to report and what to waive.
#[derive(Debug, Clone, Default)]
pub struct FindingPolicy {
    /// Severities to report; `None` reports all.
    pub severities: Option<BTreeSet<Rating>>,
    /// Drop findings no advisory names a fixed version for.
    pub ignore_unfixed: bool,
    /// Suppression rules.
    pub ignore: IgnoreFile,
}

/// A finding an ignore rule suppressed.
#[derive(Debug, Clone)]
pub struct Suppression {
    /// The finding.
    pub finding: Finding,
    /// The rule that matched.
    pub rule: IgnoreRule,
}

/// The outcome of applying a policy.
#[derive(Debug, Clone, Default)]
pub struct Filtered {
    /// Findings to report (and gate on), in their original order.
    pub kept: Vec<Finding>,
    /// Findings an ignore rule suppressed.
    pub suppressed: Vec<Suppression>,
    /// Findings dropped for their severity.
    pub below_severity: usize,
    /// Findings dropped for having no fix.
    pub unfixed: usize,
    /// Rules that have expired and were not applied (warn about these).
    pub expired: Vec<IgnoreRule>,
}

impl FindingPolicy {
    /// Sorts `findings` into kept, suppressed and dropped, as of `today`.
    pub fn apply(&self, findings: Vec<Finding>, today: NaiveDate) -> Filtered {
        let (active, expired): (Vec<&IgnoreRule>, Vec<&IgnoreRule>) =
            self.ignore.rules.iter().partition(|r| !r.expired(today));
        let mut out = Filtered { expired: expired.into_iter().cloned().collect(), ..Default::default() };
        for finding in findings {
            if self.severities.as_ref().is_some_and(|s| !s.contains(&finding.severity)) {
                out.below_severity += 1;
            } else if self.ignore_unfixed && finding.fixed_version.is_none() {
                out.unfixed += 1;
            } else if let Some(rule) = active.iter().find(|r| r.matches(&finding)) {
                out.suppressed.push(Suppression { finding, rule: (*rule).clone() });
            } else {
                out.kept.push(finding);
            }
        }
        out
    }
}

impl Filtered {
    /// True when a CI gate should fail: some finding survived the policy.
    pub fn fails_gate(&self) -> bool {
        !self.kept.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn finding(id: &str, aliases: &[&str], package: &str, severity: Rating, fixed: Option<&str>) -> Finding {
        Finding {
            id: id.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            advisories: vec![id.into()],
            package: package.into(),
            package_type: trawl_catalog::PackageType::Deb,
            ecosystem: "Debian:12".into(),
            purl: format!("pkg:deb/debian/{package}@1.0"),
            installed_version: "1.0".into(),
            fixed_version: fixed.map(str::to_string),
            severity,
            score: None,
            cvss_vector: None,
            summary: String::new(),
            url: None,
            path: "var/lib/dpkg/status".into(),
            layer: None,
        }
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn severities_parse_in_any_case_and_reject_unknown_names() {
        let s = parse_severities("high, CRITICAL,unknown").unwrap();
        assert_eq!(s, BTreeSet::from([Rating::High, Rating::Critical, Rating::Unknown]));
        assert!(matches!(parse_severities("HIGH,severe"), Err(PolicyError::Severity(s)) if s == "severe"));
    }

    #[test]
    fn severity_and_unfixed_filters_drop_and_count() {
        let policy = FindingPolicy {
            severities: Some(parse_severities("HIGH,CRITICAL").unwrap()),
            ignore_unfixed: true,
            ..Default::default()
        };
        let out = policy.apply(
            vec![
                finding("CVE-1", &[], "a", Rating::High, Some("2")),
                finding("CVE-2", &[], "b", Rating::Low, Some("2")),
                finding("CVE-3", &[], "c", Rating::Critical, None),
            ],
            day("2026-01-01"),
        );
        assert_eq!(out.kept.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["CVE-1"]);
        assert_eq!((out.below_severity, out.unfixed), (1, 1));
        assert!(out.fails_gate());
    }

    #[test]
    fn ignore_rules_match_aliases_and_expire() {
        let ignore = IgnoreFile::parse(
            "CVE-2099-0001 exp:2026-06-30 # accepted until the base image moves\nghsa-aaaa-bbbb-cccc\nCVE-2099-0003 exp:2025-01-01\n",
            ".trawlignore",
        )
        .unwrap();
        let policy = FindingPolicy { ignore, ..Default::default() };
        let findings = vec![
            finding("DSA-1-1", &["CVE-2099-0001"], "openssl", Rating::High, Some("2")),
            finding("CVE-2099-0002", &["GHSA-aaaa-bbbb-cccc"], "requests", Rating::High, Some("2")),
            finding("CVE-2099-0003", &[], "zlib", Rating::Medium, None),
        ];
        let before = policy.apply(findings.clone(), day("2026-06-30"));
        assert_eq!(before.suppressed.len(), 2);
        assert_eq!(before.suppressed[0].rule.reason.as_deref(), Some("accepted until the base image moves"));
        assert_eq!(before.kept.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["CVE-2099-0003"]);
        assert_eq!(before.expired.len(), 1, "CVE-2099-0003's rule expired in 2025");
        let after = policy.apply(findings, day("2026-07-01"));
        assert_eq!(after.suppressed.len(), 1, "the first rule has expired the day after its date");
        assert_eq!(after.expired.len(), 2);
        assert_eq!(after.kept.len(), 2);
    }

    #[test]
    fn package_scoped_rules_only_match_that_package() {
        let ignore = IgnoreFile::parse("CVE-7 pkg:libssl3\n", "f").unwrap();
        let policy = FindingPolicy { ignore, ..Default::default() };
        let out = policy.apply(
            vec![
                finding("CVE-7", &[], "libssl3", Rating::High, None),
                finding("CVE-7", &[], "openssl", Rating::High, None),
            ],
            day("2026-01-01"),
        );
        assert_eq!(out.suppressed.len(), 1);
        assert_eq!(out.kept[0].package, "openssl");
    }

    #[test]
    fn nothing_kept_passes_the_gate() {
        let out = FindingPolicy::default().apply(vec![], day("2026-01-01"));
        assert!(!out.fails_gate());
    }
}
