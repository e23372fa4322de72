//! Severity: CVSS v2/v3/v4 vectors turned into base scores and ratings,
//! and the qualitative severities some databases give instead (GitHub's
//! `database_specific.severity`, Ubuntu priorities).

use crate::osv::OsvSeverity;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Qualitative severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Rating {
    /// No rating available.
    #[default]
    Unknown,
    /// Negligible (Ubuntu) or CVSS 0.0.
    Negligible,
    /// Low.
    Low,
    /// Medium (GitHub: moderate).
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Rating {
    /// Parses a qualitative severity as databases write it.
    pub fn from_label(label: &str) -> Option<Rating> {
        Some(match label.trim().to_ascii_lowercase().as_str() {
            "critical" => Rating::Critical,
            "high" | "important" => Rating::High,
            "medium" | "moderate" => Rating::Medium,
            "low" => Rating::Low,
            "negligible" | "none" | "untriaged" => Rating::Negligible,
            _ => return None,
        })
    }

    /// The rating for a CVSS v3/v4 base score (v2 uses the same bands here,
    /// as Grype and Trivy do, so one filter works across versions).
    pub fn from_score(score: f64) -> Rating {
        match score {
            s if s >= 9.0 => Rating::Critical,
            s if s >= 7.0 => Rating::High,
            s if s >= 4.0 => Rating::Medium,
            s if s > 0.0 => Rating::Low,
            _ => Rating::Negligible,
        }
    }

    /// Upper-case name (`HIGH`).
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Unknown => "UNKNOWN",
            Rating::Negligible => "NEGLIGIBLE",
            Rating::Low => "LOW",
            Rating::Medium => "MEDIUM",
            Rating::High => "HIGH",
            Rating::Critical => "CRITICAL",
        }
    }
}

impl std::fmt::Display for Rating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resolved severity for an advisory or one affected package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Severity {
    /// Rating.
    pub rating: Rating,
    /// CVSS base score, when a vector was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// The CVSS vector the score comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<String>,
}

/// Computes a CVSS base score from a vector (`CVSS:3.1/…`, `CVSS:4.0/…`, or a bare v2 vector).
pub fn cvss_score(kind: &str, vector: &str) -> Option<f64> {
    let parsed = cvss::Cvss::from_str(vector).ok().or_else(|| {
        // OSV writes v2 vectors without the "CVSS:2.0/" prefix.
        (kind == "CVSS_V2").then(|| cvss::v2::Vector::from_str(vector).ok().map(cvss::Cvss::CvssV20)).flatten()
    })?;
    let score = parsed.score();
    score.is_finite().then_some(score)
}

/// Picks the most informative severity from OSV `severity` entries and a
/// `database_specific.severity` label: CVSS v3, then v4, then v2, then
/// qualitative labels. Returns `None` when nothing usable is given.
pub fn resolve(entries: &[OsvSeverity], database_specific: Option<&serde_json::Value>) -> Option<Severity> {
    for wanted in ["CVSS_V3", "CVSS_V4", "CVSS_V2"] {
        for e in entries.iter().filter(|e| e.kind == wanted) {
            if let Some(score) = cvss_score(&e.kind, &e.score) {
                return Some(Severity {
                    rating: Rating::from_score(score),
                    score: Some(score as f32),
                    vector: Some(e.score.clone()),
                });
            }
        }
    }
    // Qualitative: Ubuntu priorities and similar vendor labels.
    if let Some(r) = entries.iter().find_map(|e| Rating::from_label(&e.score)) {
        return Some(Severity { rating: r, ..Default::default() });
    }
    if let Some(rating) =
        database_specific.and_then(|d| d.get("severity")).and_then(|s| s.as_str()).and_then(Rating::from_label)
    {
        return Some(Severity { rating, ..Default::default() });
    }
    cves_map_severity(database_specific?)
}

/// Ubuntu notices bundle several CVEs and rate each one in
/// `database_specific.cves_map.cves[].severity`; the notice is as severe as
/// its worst CVE.
fn cves_map_severity(database_specific: &serde_json::Value) -> Option<Severity> {
    let cves = database_specific.get("cves_map")?.get("cves")?.as_array()?;
    cves.iter()
        .filter_map(|cve| {
            let entries: Vec<OsvSeverity> = serde_json::from_value(cve.get("severity")?.clone()).ok()?;
            resolve(&entries, None)
        })
        .max_by(|a, b| a.rating.cmp(&b.rating).then(a.score.partial_cmp(&b.score).unwrap_or(std::cmp::Ordering::Equal)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sev(kind: &str, score: &str) -> OsvSeverity {
        OsvSeverity { kind: kind.into(), score: score.into() }
    }

    #[test]
    fn scores_cvss_vectors_of_every_version() {
        let log4shell = resolve(&[sev("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H")], None).unwrap();
        assert_eq!((log4shell.rating, log4shell.score), (Rating::Critical, Some(10.0)));
        let v2 = resolve(&[sev("CVSS_V2", "AV:N/AC:L/Au:N/C:P/I:P/A:P")], None).unwrap();
        assert_eq!((v2.rating, v2.score), (Rating::High, Some(7.5)));
        let v4 = resolve(&[sev("CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")], None)
            .unwrap();
        assert_eq!((v4.rating, v4.score), (Rating::Critical, Some(9.3)));
    }

    #[test]
    fn prefers_v3_and_falls_back_to_labels() {
        let both = resolve(
            &[
                sev("CVSS_V2", "AV:N/AC:L/Au:N/C:N/I:N/A:P"),
                sev("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(both.score, Some(9.8));
        let ghsa = serde_json::json!({"severity": "MODERATE"});
        assert_eq!(resolve(&[], Some(&ghsa)).unwrap().rating, Rating::Medium);
        assert_eq!(resolve(&[sev("Ubuntu", "negligible")], None).unwrap().rating, Rating::Negligible);
        assert_eq!(resolve(&[sev("CVSS_V3", "garbage")], None), None);
        let usn = serde_json::json!({"cves_map": {"cves": [
            {"id": "CVE-1", "severity": [{"type": "Ubuntu", "score": "low"}]},
            {"id": "CVE-2", "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"}, {"type": "Ubuntu", "score": "low"}]}
        ]}});
        assert_eq!(resolve(&[], Some(&usn)).unwrap().score, Some(5.3));
    }
}
